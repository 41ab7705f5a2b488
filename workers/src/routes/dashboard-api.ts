/**
 * The dashboard's JSON API, mounted at /dashboard/api behind `session()`. API users call it with
 * `Authorization: Bearer sk-...` (their org) or the admin token (every org); the dashboard page
 * calls it with its session cookie. Full reference: workers/src/dashboard/API.md.
 *
 *   GET  /me                          who is signed in (+ the org list, for admins)
 *   GET  /summary?from&to&org         totals, cache hit rate, money saved by caching
 *   GET  /timeseries?bucket=hour|day  tokens and spend per UTC hour or day
 *   GET  /latency?bucket=hour|day     TTFT p50/p95 and error count per model and backend, per hour or day
 *   GET  /breakdown?by=model|key|org  totals per model, key or org
 *   GET  /requests?limit&cursor       recent requests, newest first, keyset-paged
 *   GET  /account?org                 balance, open reservations, rate-limit usage
 *   GET  /usage.csv?from&to&org       daily usage lines as CSV
 *   GET  /statements/:month?format=   monthly statement (CSV by default, JSON, or a printable HTML page)
 *   GET  /keys  POST /keys  POST /keys/:id/revoke   keys of the org with budgets and allowlists (writes need keys:write)
 *   (dashboard-spend-controls.ts) PUT/DELETE /keys/:id/budget, PUT /keys/:id/allowed-models, GET/PUT /alerts, GET /alerts/events
 *
 * A key sees only its own org: `org` may be left out or must be its org (else 403). The admin
 * sees every org; endpoints about one org's money or keys then need `org`.
 * Money is integer micro-dollars, times epoch ms, ranges half-open [from, to).
 */
import { Hono, type Context } from 'hono';
import { loadStatement, parseMonth, statementCsv, totalsWire } from '../billing/statement.ts';
import { keyControls, type KeyControls } from '../billing/spend-controls.ts';
import { accountView } from '../dashboard/account-view.ts';
import { DOCUMENT_HEADERS } from '../documents/page-shell.ts';
import { receiptHref } from '../documents/receipt.ts';
import { renderStatementPage } from '../documents/statement-page.ts';
import { createKey, revokeKey } from '../dashboard/keys.ts';
import { usageCsv } from '../dashboard/usage-csv.ts';
import { listKeys, listOrganizations, type KeyListing } from '../db/dashboard-keys.ts';
import { latencyTimeseries } from '../db/latency-stats.ts';
import { database, organizationExists } from '../db/queries.ts';
import {
  dailyUsageLines,
  recentRequests,
  usageBreakdown,
  usageSummary,
  usageTimeseries,
  type RequestRow,
} from '../db/usage-stats.ts';
import type { AppEnv } from '../env.ts';
import { InvalidRequestError, NotFoundError, OrgAccessError } from '../errors.ts';
import * as schemas from '../schemas/dashboard-api.ts';
import { validated } from '../schemas/dashboard-api.ts';

/** The org a query is about: a key's own org, or for the admin the one asked for (null = all). */
export function orgScope(c: Context<AppEnv>, requested: string | undefined): string | null {
  const viewer = c.var.viewer;
  if (viewer.role === 'admin') return requested ?? null;
  if (requested !== undefined && requested !== viewer.orgId) throw new OrgAccessError(requested);
  return viewer.orgId;
}

/** As orgScope, for endpoints about one org's money or keys: the admin must name the org. */
export async function oneOrg(c: Context<AppEnv>, requested: string | undefined, param = 'org'): Promise<string> {
  const orgId = orgScope(c, requested);
  if (orgId === null) throw new InvalidRequestError(`${param} is required: name the organization`, param);
  if (!(await organizationExists(database(c.env.DB), orgId))) throw new NotFoundError(`organization '${orgId}'`);
  return orgId;
}

function request(r: RequestRow) {
  return {
    request_id: r.requestId,
    org_id: r.orgId,
    key_id: r.keyId,
    model: r.modelId,
    endpoint: r.endpoint,
    status: r.status,
    finish_reason: r.finishReason,
    prompt_tokens: r.promptTokens,
    cached_tokens: r.cachedTokens,
    completion_tokens: r.completionTokens,
    cost_micros: r.costMicros,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
  };
}

function key(k: KeyListing, controls?: KeyControls) {
  return {
    id: k.id,
    org_id: k.orgId,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    created_at: k.createdAt,
    expires_at: k.expiresAt,
    revoked_at: k.revokedAt,
    parent_key_id: k.parentKeyId,
    /** The key's spend cap with this period's spend, and its model allowlist (null: none). */
    budget: controls?.budget ?? null,
    allowed_models: controls?.allowed_models ?? null,
  };
}

export const usage = new Hono<AppEnv>()
  .get('/me', async (c) => {
    const viewer = c.var.viewer;
    if (viewer.role === 'key') {
      return c.json({ role: 'key', org_id: viewer.orgId, key_id: viewer.keyId, scopes: [...viewer.scopes], organizations: null });
    }
    return c.json({ role: 'admin', org_id: null, key_id: null, scopes: null, organizations: await listOrganizations(c.env.DB) });
  })

  .get('/summary', validated('query', schemas.range), async (c) => {
    const { org, from, to } = c.req.valid('query');
    const orgId = orgScope(c, org);
    const s = await usageSummary(c.env.DB, { orgId, from, to });
    return c.json({ object: 'usage.summary', org_id: orgId, from, to, ...totalsWire(s), cache_hit_rate: s.cacheHitRate, saved_micros: s.savedMicros });
  })

  .get('/timeseries', validated('query', schemas.timeseries), async (c) => {
    const { org, from, to, bucket } = c.req.valid('query');
    const orgId = orgScope(c, org);
    const points = await usageTimeseries(c.env.DB, { orgId, from, to }, bucket);
    return c.json({ object: 'usage.timeseries', org_id: orgId, from, to, bucket, data: points.map((p) => ({ t: p.t, ...totalsWire(p) })) });
  })

  .get('/latency', validated('query', schemas.timeseries), async (c) => {
    const { org, from, to, bucket } = c.req.valid('query');
    const orgId = orgScope(c, org);
    const points = await latencyTimeseries(c.env.DB, { orgId, from, to }, bucket);
    const data = points.map((p) => ({ t: p.t, model: p.model, backend: p.backend, requests: p.requests, errors: p.errors, ttft_p50_ms: p.ttftP50Ms, ttft_p95_ms: p.ttftP95Ms }));
    return c.json({ object: 'usage.latency', org_id: orgId, from, to, bucket, data });
  })

  .get('/breakdown', validated('query', schemas.breakdown), async (c) => {
    const { org, from, to, by } = c.req.valid('query');
    const orgId = orgScope(c, org);
    const rows = await usageBreakdown(c.env.DB, { orgId, from, to }, by);
    return c.json({ object: 'usage.breakdown', org_id: orgId, from, to, by, data: rows.map((r) => ({ [by]: r.group, ...totalsWire(r) })) });
  })

  .get('/requests', validated('query', schemas.requests), async (c) => {
    const { org, limit, cursor } = c.req.valid('query');
    const orgId = orgScope(c, org);
    const page = await recentRequests(c.env.DB, { orgId, limit, before: cursor ?? null });
    return c.json({
      object: 'list',
      org_id: orgId,
      data: page.rows.map(request),
      has_more: page.next !== null,
      next_cursor: page.next ? `${page.next.finishedAt}.${page.next.id}` : null,
    });
  })

  .get('/account', validated('query', schemas.orgOnly), async (c) => {
    const orgId = await oneOrg(c, c.req.valid('query').org);
    const viewer = c.var.viewer;
    return c.json(await accountView(c.env, orgId, viewer.role === 'key' ? viewer.keyId : null));
  })

  .get('/usage.csv', validated('query', schemas.range), async (c) => {
    const { org, from, to } = c.req.valid('query');
    const orgId = orgScope(c, org);
    const lines = await dailyUsageLines(c.env.DB, { orgId, from, to });
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    return c.body(usageCsv(lines), 200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="usage-${orgId ?? 'all'}-${day(from)}-${day(to - 1)}.csv"`,
    });
  })

  .get('/statements/:month', validated('query', schemas.statement), async (c) => {
    const month = c.req.param('month');
    const period = parseMonth(month);
    if (!period) throw new InvalidRequestError(`month must be "YYYY-MM", got "${month}"`, 'month');
    const { org, format } = c.req.valid('query');
    const orgId = await oneOrg(c, org);
    const statement = await loadStatement(c.env.DB, orgId, period);
    if (format === 'json') return c.json(statement);
    if (format === 'html') return c.html(await renderStatementPage(c.env.DB, statement, receiptHref(orgId)), 200, DOCUMENT_HEADERS);
    return c.body(statementCsv(statement), 200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="statement-${orgId}-${month}.csv"`,
    });
  })

  .get('/keys', validated('query', schemas.orgOnly), async (c) => {
    const orgId = orgScope(c, c.req.valid('query').org);
    const keys = await listKeys(c.env.DB, orgId);
    const controls = await keyControls(c.env, keys.filter((k) => k.revokedAt === null));
    return c.json({ object: 'list', data: keys.map((k) => key(k, controls.get(k.id))) });
  })

  .post('/keys', validated('json', schemas.createKey), async (c) => {
    const body = c.req.valid('json');
    const orgId = await oneOrg(c, body.org_id, 'org_id');
    return c.json(await createKey(c.env.DB, c.var.viewer, orgId, { name: body.name ?? '', scopes: body.scopes, expiresAt: body.expires_at }), 201);
  })

  .post('/keys/:id/revoke', async (c) => {
    const { key: revoked, revokedKeyIds } = await revokeKey(c.env.DB, c.var.viewer, c.req.param('id'));
    return c.json({ ...key(revoked), revoked_key_ids: revokedKeyIds });
  });
