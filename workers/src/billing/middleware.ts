import type { MiddlewareHandler } from 'hono';
import { RequestBilling } from './request-billing.ts';
import type { AppEnv } from '../env.ts';

export interface CreditVariables {
  /** Admission (limits + credit reservation) and settlement of this request; see billing/request-billing.ts. */
  billing: RequestBilling;
}

/**
 * Prepaid credit with reservations. Installs `c.var.billing`; the generation calls
 * `billing.admit({promptTokens, maxTokens, price})` before it contacts a node (429 / 402 there),
 * and the usage meter calls `billing.settle(cost, tokens)` whichever way the request ends.
 * If the handler fails after admission and before any meter settled, the hold is released here;
 * a worker that dies outright leaves it to the org object's expiry alarm.
 * Mount after `rateLimit()`, whose `limits` it uses.
 *
 * @example
 * app.use('/v1/*', auth(), rateLimit(), credit())
 */
export function credit(): MiddlewareHandler<AppEnv> {
  return async function credit(c, next) {
    if (c.req.method === 'GET') return next();
    const { id: keyId, orgId } = c.var.apiKey;
    const billing = new RequestBilling(c.env, { requestId: c.var.requestId, orgId, keyId }, c.var.limits, (p) =>
      c.executionCtx.waitUntil(p),
    );
    c.set('billing', billing);
    try {
      await next();
    } finally {
      // Nothing reached a client if the handler threw (or hono caught it into c.error): release all.
      if (c.error && billing.admitted) c.executionCtx.waitUntil(billing.settle(0, 0));
    }
  };
}
