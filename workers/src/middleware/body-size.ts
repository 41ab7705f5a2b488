import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AppEnv } from '../env.ts';
import { errorResponse } from '../error-response.ts';
import { PayloadTooLargeError } from '../errors.ts';

/**
 * The largest body we read. K2 Thinking's 256K-token context is about 1 MB of English; JSON
 * escaping (\uXXXX is 6 bytes per character) can multiply that, so 4 MiB leaves room for any
 * prompt that could fit the context, while a hostile 100 MB body is refused before it is read,
 * parsed or tokenized (the tokenizer's CPU time is what an attacker would otherwise spend).
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * 413 in the called API's error shape (OpenAI's, or Anthropic's under /v1/messages) for a body over `maxBytes`. hono's bodyLimit trusts a
 * Content-Length header when present and otherwise counts the streamed bytes, so a chunked body
 * that lies by omission is cut off at the limit too.
 *
 * @example
 * app.use('/v1/*', bodySize())
 */
export function bodySize({ maxBytes = MAX_BODY_BYTES }: { maxBytes?: number } = {}): MiddlewareHandler<AppEnv> {
  const limit = bodyLimit({
    maxSize: maxBytes,
    // Answered, not thrown: for a streamed body the limit trips inside the body reader, where a
    // throw would become an unhandled rejection instead of reaching app.onError.
    onError: (c) => {
      const err = new PayloadTooLargeError(maxBytes);
      return errorResponse(c, err.status, err.body());
    },
  });
  return async function bodySize(c, next) {
    return limit(c, next);
  };
}
