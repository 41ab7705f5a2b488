/**
 * The edge worker: requestId → bodySize → auth → requestBilling → responseCache → routes, one
 * onError for every failure. The routes admit a request (billing/: key and org limits and the
 * worst-case credit hold, one Durable Object call) once they have tokenized it; the meter settles it
 * and the usage queue writes its row. Also the queue consumer and the scheduled reconciliation.
 */
import { Hono, type MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { requestBilling } from './billing/middleware.ts';
import { reconcile } from './billing/reconcile.ts';
import { consumeUsage, type UsageMessage } from './billing/usage-queue.ts';
import type { AlertMessage } from './billing/alerts/alert-triggers.ts';
import { consumeAlerts } from './billing/alerts/webhook-delivery.ts';
import { trimIdempotencyKeys } from './billing/idempotency.ts';
import { bumpReadCacheVersion } from './db/read-cache.ts';
import type { AppEnv } from './env.ts';
import { ApiError, internalErrorBody, NotFoundError, type OpenAIErrorBody } from './errors.ts';
import { errorResponse } from './error-response.ts';
import { adminAuth } from './middleware/admin-auth.ts';
import { auth } from './middleware/auth.ts';
import { bodySize } from './middleware/body-size.ts';
import { requestId } from './middleware/request-id.ts';
import { session } from './middleware/session.ts';
import { trace } from './middleware/trace.ts';
import { responseCache } from './response-cache/middleware.ts';
import { adminApi } from './routes/admin-api.ts';
import { billingCheckout } from './routes/billing-checkout.ts';
import { chatCompletions } from './routes/chat-completions.ts';
import { completions } from './routes/completions.ts';
import { key } from './routes/key.ts';
import { dashboard } from './routes/dashboard.ts';
import { dashboardBilling } from './routes/dashboard-billing.ts';
import { messages } from './routes/messages.ts';
import { models } from './routes/models.ts';
import { responses } from './routes/responses.ts';
import { usage } from './routes/dashboard-api.ts';
import { stripeWebhook } from './routes/stripe-webhook.ts';
import { dashboardSpendControls } from './routes/dashboard-spend-controls.ts';
import { tokenCount } from './routes/token-count.ts';

/** The queue ALERT_QUEUE sends to (wrangler.toml); every other batch is usage. */
const ALERT_QUEUE_NAME = 'alert-webhooks';

const app = new Hono<AppEnv>();

app.use(requestId());
// W3C trace context for the request, passed on to the GPU node and named in the request log line.
app.use(trace());
// Oversized bodies are refused on every route, before anything authenticates, reads, parses or
// tokenizes them: each route family has its own limit (middleware/body-size.ts).
app.use(bodySize());
app.use('/v1/*', auth());
app.use('/v1/*', requestBilling());
// Opt-in exact-match response cache (x-response-cache: use); marks x-response-cache-status.
app.use('/v1/*', responseCache());
app.use('/admin/*', adminAuth());
// Keys, limits, prices, nodes and backends are cached per isolate: a write drops this isolate's copy.
app.use('/admin/*', invalidateReadsOnWrite());
app.use('/dashboard/api/*', invalidateReadsOnWrite());
app.use('/dashboard/api/*', session());

app.get('/health', (c) => c.json({ ok: true }));
app.route('/v1/models', models);
app.route('/v1/key', key);
app.route('/v1/chat/completions', chatCompletions);
app.route('/v1/completions', completions);
app.route('/v1/messages', messages);
app.route('/v1/responses', responses);
app.route('/v1/tokenizers/estimate-token-count', tokenCount);
app.route('/v1/billing/checkout', billingCheckout);
// Authenticated by Stripe's signature over the body, not by an API key.
app.route('/webhooks/stripe', stripeWebhook);
app.route('/admin', adminApi);
app.route('/dashboard/api', usage);
app.route('/dashboard/api', dashboardBilling);
app.route('/dashboard/api', dashboardSpendControls);
app.route('/dashboard', dashboard);

app.notFound((c) => {
  const err = new NotFoundError(`${c.req.method} ${c.req.path}`);
  return errorResponse(c, 404, err.body());
});

app.onError((err, c) => {
  if (err instanceof ApiError) return errorResponse(c, err.status, err.body(), err.headers);
  // hono's own HTTP errors (malformed JSON body, bad content type) are client errors too.
  if (err instanceof HTTPException && err.status < 500) {
    const body: OpenAIErrorBody = { error: { message: err.message, type: 'invalid_request_error', param: null, code: null } };
    return errorResponse(c, err.status, body);
  }
  const id = c.var.requestId ?? 'unknown';
  console.error(`request ${id} failed:`, err);
  return errorResponse(c, 500, internalErrorBody(id));
});


/** After a successful admin write, this isolate forgets its cached reads (db/read-cache.ts). */
function invalidateReadsOnWrite(): MiddlewareHandler<AppEnv> {
  return async function invalidateReadsOnWrite(c, next) {
    await next();
    if (c.req.method !== 'GET' && c.res.status < 400) bumpReadCacheVersion();
  };
}

export default {
  fetch: app.fetch,
  /** Usage rows and ledger debits, in batches (billing/usage-queue.ts); alert webhooks (billing/alerts/). */
  async queue(batch, env) {
    if (batch.queue === ALERT_QUEUE_NAME) return consumeAlerts(batch as MessageBatch<AlertMessage>, env);
    await consumeUsage(batch as MessageBatch<UsageMessage>, env);
  },
  /** Every org's object against its ledger; drift is logged for the operator (and served at /admin/reconcile). */
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(trimIdempotencyKeys(env.DB));
    const result = await reconcile(env);
    for (const o of result.drifted) console.error(`reconcile: org ${o.orgId} object ${o.objectMicros} µ$ vs ledger ${o.ledgerMicros} µ$ (open reservations ${o.openReservations})`);
  },
} satisfies ExportedHandler<Env>;

// Durable Object classes must be exported from the main module.
export { OrgAccount } from './billing/org-account.ts';
export { PrefixRouter } from './durable/prefix-router.ts';
export { ResponseCache } from './durable/response-cache.ts';
