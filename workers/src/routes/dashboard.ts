/**
 * The usage dashboard: one HTML page, its script modules and styles, and uPlot, all bundled into
 * the worker as text modules (wrangler.toml [[rules]]), so `wrangler dev`, deploys and the workerd
 * tests serve the same bytes with no asset pipeline. Its data comes from routes/dashboard-api.ts.
 *
 *   GET    /dashboard                 the page (sign-in form until a session exists)
 *   GET    /dashboard/assets/:file    app.js and the view modules it imports (billing.js: top-ups and receipts), latency-charts.js, app.css, uplot.js, uplot.css
 *   POST   /dashboard/session         { token } → session cookie (an API key or the admin token)
 *   DELETE /dashboard/session         signs out
 */
import { Hono } from 'hono';
import { z } from 'zod';
import appCss from '../dashboard/assets/app.css';
import appJs from '../dashboard/assets/app.js';
import latencyChartsJs from '../dashboard/assets/latency-charts.js';
import apiJs from '../dashboard/assets/api.js';
import billingJs from '../dashboard/assets/billing.js';
import chartsJs from '../dashboard/assets/charts.js';
import downloadsJs from '../dashboard/assets/downloads.js';
import formatJs from '../dashboard/assets/format.js';
import keysJs from '../dashboard/assets/keys.js';
import keyControlsJs from '../dashboard/assets/key-controls.js';
import alertsJs from '../dashboard/assets/alerts.js';
import sessionJs from '../dashboard/assets/session.js';
import stateJs from '../dashboard/assets/state.js';
import tablesJs from '../dashboard/assets/tables.js';
import totalsJs from '../dashboard/assets/totals.js';
import { PAGE } from '../dashboard/page.ts';
import uplotJs from 'uplot/dist/uPlot.iife.min.js';
import uplotCss from 'uplot/dist/uPlot.min.css';
import type { AppEnv } from '../env.ts';
import { NotFoundError } from '../errors.ts';
import { signIn, signOut } from '../middleware/session.ts';
import { validated } from '../schemas/dashboard-api.ts';

const ASSETS: Record<string, { body: string; type: string }> = {
  'app.js': { body: appJs, type: 'text/javascript; charset=utf-8' },
  'latency-charts.js': { body: latencyChartsJs, type: 'text/javascript; charset=utf-8' },
  'api.js': { body: apiJs, type: 'text/javascript; charset=utf-8' },
  'billing.js': { body: billingJs, type: 'text/javascript; charset=utf-8' },
  'charts.js': { body: chartsJs, type: 'text/javascript; charset=utf-8' },
  'downloads.js': { body: downloadsJs, type: 'text/javascript; charset=utf-8' },
  'format.js': { body: formatJs, type: 'text/javascript; charset=utf-8' },
  'keys.js': { body: keysJs, type: 'text/javascript; charset=utf-8' },
  'key-controls.js': { body: keyControlsJs, type: 'text/javascript; charset=utf-8' },
  'alerts.js': { body: alertsJs, type: 'text/javascript; charset=utf-8' },
  'session.js': { body: sessionJs, type: 'text/javascript; charset=utf-8' },
  'state.js': { body: stateJs, type: 'text/javascript; charset=utf-8' },
  'tables.js': { body: tablesJs, type: 'text/javascript; charset=utf-8' },
  'totals.js': { body: totalsJs, type: 'text/javascript; charset=utf-8' },
  'app.css': { body: appCss, type: 'text/css; charset=utf-8' },
  'uplot.js': { body: uplotJs, type: 'text/javascript; charset=utf-8' },
  'uplot.css': { body: uplotCss, type: 'text/css; charset=utf-8' },
};

/**
 * Only our own files run: no inline script, no third-party origin. uPlot sets element styles from
 * script (allowed by style-src 'unsafe-inline'; styles cannot run code). No framing (clickjacking).
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const signInBody = z.object({ token: z.string().min(1).max(512) });

export const dashboard = new Hono<AppEnv>()
  .get('/', (c) => c.html(PAGE, 200, { ...SECURITY_HEADERS, 'cache-control': 'no-store' }))

  .get('/assets/:file', (c) => {
    // hasOwn: a name like "__proto__" or "constructor" must be a 404, not an Object.prototype member.
    const asset = Object.hasOwn(ASSETS, c.req.param('file')) ? ASSETS[c.req.param('file')] : undefined;
    if (!asset) throw new NotFoundError(`asset '${c.req.param('file')}'`);
    // Short cache: the names carry no version, and a deploy must reach open tabs within minutes.
    return c.body(asset.body, 200, { 'content-type': asset.type, 'cache-control': 'public, max-age=300', ...SECURITY_HEADERS });
  })

  .post('/session', validated('json', signInBody), async (c) => {
    const viewer = await signIn(c, c.req.valid('json').token);
    return c.json(viewer.role === 'admin' ? { role: 'admin' } : { role: 'key', org_id: viewer.orgId, key_id: viewer.keyId });
  })

  .delete('/session', (c) => {
    signOut(c);
    return c.body(null, 204);
  });
