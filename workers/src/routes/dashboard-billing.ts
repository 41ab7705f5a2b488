/**
 * Top-ups and receipts in the dashboard's JSON API (mounted at /dashboard/api behind `session()`,
 * beside routes/dashboard-api.ts; same rules: a key sees its own org, the admin names one).
 *
 *   GET  /billing                     is Stripe configured, the amount bounds, may this viewer pay
 *   POST /billing/checkout            {amount_cents, org_id?} → Stripe Checkout Session (key scope `billing`, or the admin)
 *   GET  /receipts?org                the org's top-ups, newest first
 *   GET  /receipts/:id?org&format=    one receipt, JSON or a printable HTML page
 */
import { Hono } from 'hono';
import { checkoutView, createTopUpSession, MAX_TOPUP_CENTS, MIN_TOPUP_CENTS, stripeConfigured } from '../billing/stripe.ts';
import { receiptPage, receiptView } from '../documents/receipt.ts';
import { DOCUMENT_HEADERS } from '../documents/page-shell.ts';
import { database, organizationName } from '../db/queries.ts';
import { topupOfOrg, topupsOfOrg } from '../db/topups.ts';
import type { AppEnv } from '../env.ts';
import { NotFoundError, ScopeError } from '../errors.ts';
import type { Viewer } from '../middleware/session.ts';
import { dashboardCheckout, receipt } from '../schemas/billing.ts';
import { orgOnly, validated } from '../schemas/dashboard-api.ts';
import { oneOrg } from './dashboard-api.ts';

const mayPay = (viewer: Viewer) => viewer.role === 'admin' || viewer.scopes.has('billing');

export const dashboardBilling = new Hono<AppEnv>()
  .get('/billing', (c) =>
    c.json({
      object: 'billing',
      stripe_enabled: stripeConfigured(c.env).checkout,
      can_top_up: mayPay(c.var.viewer),
      min_amount_cents: MIN_TOPUP_CENTS,
      max_amount_cents: MAX_TOPUP_CENTS,
    }),
  )

  .post('/billing/checkout', validated('json', dashboardCheckout), async (c) => {
    const body = c.req.valid('json');
    const viewer = c.var.viewer;
    if (!mayPay(viewer)) throw new ScopeError('billing');
    const orgId = await oneOrg(c, body.org_id, 'org_id');
    const dashboard = `${new URL(c.req.url).origin}/dashboard`;
    const session = await createTopUpSession(c.env, {
      orgId,
      amountCents: body.amount_cents,
      successUrl: `${dashboard}?topup=success`,
      cancelUrl: `${dashboard}?topup=cancelled`,
      requestedBy: viewer.role === 'admin' ? 'admin' : viewer.keyId,
    });
    return c.json(checkoutView(session, orgId, body.amount_cents), 201);
  })

  .get('/receipts', validated('query', orgOnly), async (c) => {
    const orgId = await oneOrg(c, c.req.valid('query').org);
    const [name, rows] = await Promise.all([organizationName(database(c.env.DB), orgId), topupsOfOrg(c.env.DB, orgId)]);
    return c.json({ object: 'list', org_id: orgId, data: rows.map((t) => receiptView(t, name ?? orgId)) });
  })

  .get('/receipts/:id', validated('query', receipt), async (c) => {
    const { org, format } = c.req.valid('query');
    const orgId = await oneOrg(c, org);
    const id = c.req.param('id');
    const [name, row] = await Promise.all([organizationName(database(c.env.DB), orgId), topupOfOrg(c.env.DB, orgId, id)]);
    if (!row) throw new NotFoundError(`receipt '${id}'`);
    const view = receiptView(row, name ?? orgId);
    if (format === 'json') return c.json(view);
    return c.html(receiptPage(view), 200, DOCUMENT_HEADERS);
  });
