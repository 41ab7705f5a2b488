import type { RequestIdVariables } from './middleware/request-id.ts';
import type { AuthVariables } from './middleware/auth.ts';
import type { CreditVariables } from './billing/middleware.ts';
import type { RateLimitVariables } from './middleware/rate-limit.ts';
import type { SessionVariables } from './middleware/session.ts';
import type { ResponseCacheVariables } from './response-cache/middleware.ts';

/** Every Hono app, context and middleware in the worker is parameterised by this. */
export interface AppEnv {
  Bindings: Env;
  Variables: RequestIdVariables & AuthVariables & RateLimitVariables & CreditVariables & SessionVariables & ResponseCacheVariables;
}
