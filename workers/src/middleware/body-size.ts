import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AppEnv } from '../env.ts';
import { errorResponse } from '../error-response.ts';
import { PayloadTooLargeError } from '../errors.ts';

/**
 * The largest body the inference API (/v1/*) reads. K2 Thinking's 256K-token context is about
 * 1 MB of English; JSON escaping (\uXXXX is 6 bytes per character) can multiply that, so 4 MiB
 * leaves room for any prompt that could fit the context, while a hostile 100 MB body is refused
 * before it is read, parsed or tokenized (the tokenizer's CPU time is what an attacker would
 * otherwise spend).
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * The largest Stripe event delivery read. An event carries one API object (a Checkout Session, a
 * charge) of a few KiB; 1 MiB is far above any event Stripe sends us, yet small enough that an
 * unauthenticated caller cannot make the worker buffer and HMAC a large body before its signature
 * is checked. Generous on purpose: a real event refused here would be a top-up never granted.
 */
export const WEBHOOK_MAX_BODY_BYTES = 1024 * 1024;

/**
 * The largest body of the admin and dashboard APIs (and of any other route). Their bodies are small
 * JSON objects: the biggest is a key's model allowlist (at most 200 ids of at most 200 characters,
 * about 41 KiB). /dashboard/session takes a body before anyone is signed in, so this is also what
 * an anonymous caller can make the worker hold: 64 KiB, not hundreds of megabytes.
 */
export const CONTROL_MAX_BODY_BYTES = 64 * 1024;

/** Which limit a path gets: the inference API's, the Stripe webhook's, or the small default. */
export function maxBodyBytesFor(path: string): number {
  if (path === '/v1' || path.startsWith('/v1/')) return MAX_BODY_BYTES;
  if (path === '/webhooks/stripe' || path.startsWith('/webhooks/stripe/')) return WEBHOOK_MAX_BODY_BYTES;
  return CONTROL_MAX_BODY_BYTES;
}

/**
 * 413 in the called API's error shape (OpenAI's, or Anthropic's under /v1/messages) for a body over
 * `maxBytes` (a number, or a function of the request path). hono's bodyLimit trusts a
 * Content-Length header when present and otherwise reads and counts the streamed bytes up to the
 * limit, so a chunked body that lies by omission is cut off there too. Mount it before anything
 * that authenticates or reads the body: it decides from the bytes alone.
 *
 * @example
 * app.use(bodySize())                     // per route family: maxBodyBytesFor
 * app.post('/upload', bodySize({ maxBytes: 1024 }), handler)
 */
export function bodySize({ maxBytes = maxBodyBytesFor }: { maxBytes?: number | ((path: string) => number) } = {}): MiddlewareHandler<AppEnv> {
  const limits = new Map<number, MiddlewareHandler<AppEnv>>();
  const limitOf = (size: number) => {
    let limit = limits.get(size);
    if (!limit) {
      limit = bodyLimit({
        maxSize: size,
        // Answered, not thrown: for a streamed body the limit trips inside the body reader, where a
        // throw would become an unhandled rejection instead of reaching app.onError.
        onError: (c) => {
          const err = new PayloadTooLargeError(size);
          return errorResponse(c, err.status, err.body());
        },
      });
      limits.set(size, limit);
    }
    return limit;
  };
  return async function bodySize(c, next) {
    return limitOf(typeof maxBytes === 'number' ? maxBytes : maxBytes(c.req.path))(c, next);
  };
}
