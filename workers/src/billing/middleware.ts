import type { MiddlewareHandler } from 'hono';
import { cachedLimits } from '../db/read-cache.ts';
import type { AppEnv } from '../env.ts';
import { RequestBilling } from './request-billing.ts';

export interface BillingVariables {
  /** Admission (limits + credit reservation) and settlement of this request; see request-billing.ts. */
  billing: RequestBilling;
}

/**
 * Installs `c.var.billing` for a metered request. The route admits it (`billing.admit`) once it has
 * tokenized the prompt, where a reader sees it; the meter settles it whichever way it ends. On the
 * way out this puts the admission's x-ratelimit-* headers on the response (a 429 carries its own),
 * and releases the hold of a request that failed after admission before any meter settled it; a
 * worker that dies outright leaves that to the org object's expiry alarm.
 * Mount after `auth()`.
 *
 * @example
 * app.use('/v1/*', auth(), requestBilling())
 */
export function requestBilling(): MiddlewareHandler<AppEnv> {
  return async function requestBilling(c, next) {
    // Reading the model list costs nothing and is not limited, as at the K2 provider.
    if (c.req.method === 'GET') return next();
    const { id: keyId, orgId } = c.var.apiKey;
    const billing = new RequestBilling(
      c.env,
      { requestId: c.var.requestId, orgId, keyId },
      () => cachedLimits(c.env, orgId, keyId),
      (p) => c.executionCtx.waitUntil(p),
    );
    c.set('billing', billing);
    await next();
    // Nothing reached a client if the handler threw (hono caught it into c.error): release all.
    if (c.error && billing.admitted) c.executionCtx.waitUntil(billing.settle(0, 0).catch(() => undefined));
    // Streams included: the headers go out before the first byte of the body.
    if (billing.admitted) for (const [name, value] of Object.entries(billing.headers)) c.res.headers.set(name, value);
  };
}
