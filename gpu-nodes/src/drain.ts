/**
 * Graceful drain: once the supervisor sends SIGTERM the node admits no new generation (503
 * `draining` with Retry-After, so the edge tries the pool's next node at once), says `draining: true`
 * in `/v1/load` and fails `/ready`, and lets the streams already running finish. cli/serve.ts owns
 * the signal and the deadline; this file holds the state and the admission check.
 */
import type { MiddlewareHandler } from 'hono';
import { nodeErrorResponse } from './node-errors.ts';

export class DrainState {
  draining = false;
}

/** Seconds a client should wait before retrying this node: by then another node (or this one, restarted) answers. */
const DRAIN_RETRY_AFTER_S = 5;

/**
 * Refuses new work while draining; cancels, load reports and health checks still pass.
 *
 * @example
 * app.post('/v1/generate', admitUnlessDraining(drain), handler);
 */
export function admitUnlessDraining(state: DrainState): MiddlewareHandler {
  return async function admitUnlessDraining(_c, next) {
    if (state.draining) return nodeErrorResponse('draining', 503, 'node is draining for shutdown; send new requests to another node', { 'retry-after': String(DRAIN_RETRY_AFTER_S) });
    await next();
  };
}
