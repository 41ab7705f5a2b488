import type { MiddlewareHandler } from 'hono';
import { continueTrace, requestContext } from '../observability/request-context.ts';

/**
 * Opens the request's context (observability/request-context.ts): continues the client's W3C
 * `traceparent` or starts a trace, and runs the rest of the request, stream included, inside it.
 * node-client.ts sends the trace on to the GPU node; the request log line carries its id, so one
 * request can be followed from the edge's log into the node's.
 *
 * @example
 * app.use(trace())
 */
export function trace(): MiddlewareHandler {
  return async function trace(c, next) {
    await requestContext.run({ trace: continueTrace(c.req.header('traceparent')) }, next);
  };
}
