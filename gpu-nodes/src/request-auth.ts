/**
 * Who may use the node. Two doors, two credentials:
 *
 *   token-batch protocol (/v1/generate, /v1/cancel, /v1/load): only the edge, which signs each request
 *     with the pool's shared secret (shared/node-auth.ts); a copy replayed within the clock window is refused.
 *   OpenAI-compatible routes (/v1/chat/completions, /v1/completions): `Authorization: Bearer <key>`
 *     with a key from the node's own configuration.
 *
 * A node with no secret (or no key) refuses that door entirely, unless it was started with
 * `--insecure-no-auth`: an open node hands out free tokens to anyone who can reach its port.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { NODE_AUTH_MAX_SKEW_S, verifyNodeRequest } from '../../shared/node-auth.ts';
import { nodeErrorResponse } from './node-errors.ts';

export interface NodeAuthConfig {
  /** Accepted signing secrets: current first, then the previous one while a rotation is under way. */
  secrets: readonly string[];
  /** Accepted bearer keys for the OpenAI-compatible routes. */
  apiKeys: readonly string[];
  /** Accept everything unauthenticated (explicit opt-in for a node nothing untrusted can reach). */
  insecureNoAuth: boolean;
}

/**
 * Nonces seen within the replay window. An entry can be forgotten once its request's timestamp is
 * out of the window: a timestamp is at most MAX_SKEW ahead of the clock when it is first seen, so
 * it is stale 2·MAX_SKEW after that, and insertion order is expiry order. When full of live entries
 * the node refuses new signed requests rather than forget one that could then be replayed.
 */
export class NonceWindow {
  private readonly seen = new Map<string, number>();
  private readonly capacity: number;

  constructor(capacity = 100_000) {
    this.capacity = capacity;
  }

  /** false when the nonce was already used (or the window is full); otherwise records it. */
  admit(nonce: string, nowS: number): 'ok' | 'replayed' | 'full' {
    for (const [key, expires] of this.seen) {
      if (expires >= nowS) break;
      this.seen.delete(key);
    }
    if (this.seen.has(nonce)) return 'replayed';
    if (this.seen.size >= this.capacity) return 'full';
    this.seen.set(nonce, nowS + 2 * NODE_AUTH_MAX_SKEW_S);
    return 'ok';
  }

  get size(): number {
    return this.seen.size;
  }
}

const unauthorized = (message: string) => nodeErrorResponse('unauthorized', 401, message, { 'www-authenticate': 'K2-HMAC-SHA256' });

/**
 * Refuses a token-batch request that is unsigned, signed with a secret the node does not hold,
 * stale, replayed, or whose body differs from the one signed. Reads the body once (Hono caches it
 * for the handler's `c.req.json()`).
 *
 * @example
 * app.use('/v1/generate', requireSignature(config));
 */
export function requireSignature(config: NodeAuthConfig, nonces = new NonceWindow(), clock = () => Date.now()): MiddlewareHandler {
  return async function requireSignature(c, next) {
    if (config.insecureNoAuth) return next();
    if (config.secrets.length === 0) return unauthorized('this node has no signing secret configured (K2NODE_SECRET); it accepts no token-batch requests');
    const now = Math.floor(clock() / 1000);
    const body = new Uint8Array(await c.req.arrayBuffer());
    const result = await verifyNodeRequest({
      method: c.req.method,
      path: c.req.path,
      body,
      header: (name) => c.req.header(name),
      secrets: config.secrets,
      now,
    });
    if (!result.ok) return unauthorized(result.reason);
    const seen = nonces.admit(result.nonce, now);
    if (seen === 'replayed') return unauthorized('nonce already used (replayed request)');
    if (seen === 'full') return nodeErrorResponse('queue_full', 429, 'too many signed requests in the replay window', { 'retry-after': '1' });
    await next();
  };
}

function sameKey(given: string, key: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  // Lengths may differ; timingSafeEqual needs equal lengths, and the length of a key is not its secret.
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Bearer-key check for the OpenAI-compatible routes; answers in OpenAI's error shape, as those routes do.
 *
 * @example
 * app.use('/v1/chat/completions', requireApiKey(config));
 */
export function requireApiKey(config: NodeAuthConfig): MiddlewareHandler {
  return async function requireApiKey(c: Context, next) {
    if (config.insecureNoAuth) return next();
    const refuse = (message: string) =>
      c.json({ error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }, 401, { 'www-authenticate': 'Bearer' });
    if (config.apiKeys.length === 0) return refuse('this node has no API key configured (K2NODE_API_KEY); its OpenAI-compatible routes are closed');
    const given = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1]?.trim();
    if (!given) return refuse('missing API key: send Authorization: Bearer <key>');
    // Compare against every key so the time taken does not say which one matched.
    let ok = false;
    for (const key of config.apiKeys) ok = sameKey(given, key) || ok;
    if (!ok) return refuse('invalid API key');
    await next();
  };
}
