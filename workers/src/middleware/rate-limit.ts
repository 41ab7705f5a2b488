import type { MiddlewareHandler } from 'hono';
import { limitsFor, type EffectiveLimits } from '../billing/limits/limit-settings.ts';
import type { AppEnv } from '../env.ts';

export interface RateLimitVariables {
  /**
   * Limits in force for this request's key and org: plan defaults + admin overrides, read from D1.
   * A promise: the read runs while the route parses the body and looks the model up, and only the
   * admission (`RequestBilling.admit`) waits for it.
   */
  limits: Promise<EffectiveLimits>;
}

/**
 * Starts reading the key's and org's limits for this request (one D1 round trip, not awaited here)
 * and, on the way out, puts the x-ratelimit-* headers of its admission on the response.
 *
 * Enforcement is in `credit()`'s admission (`RequestBilling.admit`): tokens per minute need the
 * prompt's exact token count, known only once the route has tokenized it, and one admission step
 * keeps a 429 from holding credit and a 402 from using a rate slot. Mount after `auth()`.
 *
 * @example
 * app.use('/v1/*', auth(), rateLimit(), credit())
 */
export function rateLimit(): MiddlewareHandler<AppEnv> {
  return async function rateLimit(c, next) {
    // Reading the model list costs nothing and is not limited, as at the K2 provider.
    if (c.req.method === 'GET') return next();
    const { id, orgId } = c.var.apiKey;
    const limits = limitsFor(c.env.DB, orgId, id);
    // The admission awaits `limits` and so sees a failed read; a request refused before admission
    // (unknown model, bad body) never needed it, and must not turn it into an unhandled rejection.
    limits.catch(() => undefined);
    c.set('limits', limits);
    await next();
    // A 429 carries its headers through the error; a success gets them here (streams included:
    // the headers go out before the first byte of the body).
    const billing = c.var.billing;
    if (billing?.admitted) for (const [name, value] of Object.entries(billing.headers)) c.res.headers.set(name, value);
  };
}
