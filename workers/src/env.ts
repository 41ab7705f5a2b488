import type { IdempotencyVariables } from './billing/idempotency.ts';
import type { BillingVariables } from './billing/middleware.ts';
import type { AuthVariables } from './middleware/auth.ts';
import type { RequestIdVariables } from './middleware/request-id.ts';
import type { SessionVariables } from './middleware/session.ts';
import type { ResponseCacheVariables } from './response-cache/middleware.ts';

/** Every Hono app, context and middleware in the worker is parameterised by this. */
export interface AppEnv {
  Bindings: Env;
  Variables: RequestIdVariables & AuthVariables & BillingVariables & IdempotencyVariables & SessionVariables & ResponseCacheVariables;
}
