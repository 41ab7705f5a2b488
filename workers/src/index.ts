/**
 * The edge worker: requestId → auth → rateLimit → credit → routes, one onError for every failure.
 * rateLimit + credit (issue 7) admit a request against the key's and org's limits and reserve its
 * worst-case cost in the org's Durable Object; metering (metering/meter.ts) settles it.
 */
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { AppEnv } from './env.ts';
import { ApiError, internalErrorBody, NotFoundError, type OpenAIErrorBody } from './errors.ts';
import { adminAuth } from './middleware/admin-auth.ts';
import { auth } from './middleware/auth.ts';
import { bodySize } from './middleware/body-size.ts';
import { credit } from './middleware/credit.ts';
import { rateLimit } from './middleware/rate-limit.ts';
import { requestId } from './middleware/request-id.ts';
import { session } from './middleware/session.ts';
import { responseCache } from './response-cache/middleware.ts';
import { admin } from './routes/admin.ts';
import { backends } from './routes/backends.ts';
import { chatCompletions } from './routes/chat-completions.ts';
import { completions } from './routes/completions.ts';
import { dashboard } from './routes/dashboard.ts';
import { limits } from './routes/limits.ts';
import { models } from './routes/models.ts';
import { statements } from './routes/statements.ts';
import { tokenCount } from './routes/token-count.ts';
import { usage } from './routes/usage.ts';

const app = new Hono<AppEnv>();

app.use(requestId());
// Oversized bodies are refused before anything reads, parses or tokenizes them (issue 12).
app.use('/v1/*', bodySize());
app.use('/v1/*', auth());
app.use('/v1/*', rateLimit());
app.use('/v1/*', credit());
// Opt-in exact-match response cache (x-response-cache: use); marks x-response-cache-status.
app.use('/v1/*', responseCache());
app.use('/admin/*', adminAuth());
app.use('/dashboard/api/*', session());

app.get('/health', (c) => c.json({ ok: true }));
app.route('/v1/models', models);
app.route('/v1/chat/completions', chatCompletions);
app.route('/v1/completions', completions);
app.route('/v1/tokenizers/estimate-token-count', tokenCount);
app.route('/admin', admin);
app.route('/admin/organizations', statements);
app.route('/admin', limits);
app.route('/admin/models', backends);
app.route('/dashboard/api', usage);
app.route('/dashboard', dashboard);

app.notFound((c) => {
  const err = new NotFoundError(`${c.req.method} ${c.req.path}`);
  return c.json(err.body(), 404);
});

app.onError((err, c) => {
  if (err instanceof ApiError) return c.json(err.body(), err.status, err.headers);
  // hono's own HTTP errors (malformed JSON body, bad content type) are client errors too.
  if (err instanceof HTTPException && err.status < 500) {
    const body: OpenAIErrorBody = { error: { message: err.message, type: 'invalid_request_error', param: null, code: null } };
    return c.json(body, err.status);
  }
  const id = c.var.requestId ?? 'unknown';
  console.error(`request ${id} failed:`, err);
  return c.json(internalErrorBody(id), 500);
});

export default app;

// Durable Object classes must be exported from the main module (issue 7).
export { OrgAccount } from './durable/org-account.ts';
export { PrefixRouter } from './durable/prefix-router.ts';
export { ResponseCache } from './durable/response-cache.ts';
export { RateLimiter } from './durable/rate-limiter.ts';
