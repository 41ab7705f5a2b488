import type { MiddlewareHandler } from 'hono';
import { hashesEqual, KEY_PREFIX, PREFIX_LENGTH, sha256Hex, type Scope } from '../api-keys.ts';
import { cachedKeysByPrefix } from '../db/read-cache.ts';
import { InvalidApiKeyError, MissingApiKeyError, RevokedApiKeyError, ScopeError } from '../errors.ts';
import type { AppEnv } from '../env.ts';

export interface AuthVariables {
  /** The authenticated key: who pays (orgId) and what it may do (scopes). */
  apiKey: { id: string; orgId: string; scopes: ReadonlySet<string> };
}

/**
 * Authenticates `Authorization: Bearer sk-...` (or `x-api-key: sk-...`, the header Anthropic's
 * clients send; Bearer wins when both are present) against the hashed keys in D1 (cached in the isolate:
 * db/read-cache.ts states how soon a revocation is seen). 401 when the header is missing or the key
 * unknown; 403 when it is revoked or expired.
 *
 * @example
 * app.use('/v1/*', auth())
 */
export function auth({ now = () => Date.now() }: { now?: () => number } = {}): MiddlewareHandler<AppEnv> {
  return async function auth(c, next) {
    const header = c.req.header('authorization');
    const apiKeyHeader = c.req.header('x-api-key')?.trim();
    let presented: string;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw new MissingApiKeyError();
      presented = match[1];
    } else if (apiKeyHeader) {
      presented = apiKeyHeader;
    } else {
      throw new MissingApiKeyError();
    }
    if (!presented.startsWith(KEY_PREFIX) || presented.length <= PREFIX_LENGTH) throw new InvalidApiKeyError();

    // The prefix narrows the rows; the hash comparison (constant time) is what authenticates.
    const hash = await sha256Hex(presented);
    const candidates = (await cachedKeysByPrefix(c.env, presented.slice(0, PREFIX_LENGTH))) ?? [];
    const row = candidates.find((k) => hashesEqual(k.hash, hash));
    if (!row) throw new InvalidApiKeyError();
    if (row.revokedAt !== null) throw new RevokedApiKeyError('revoked');
    if (row.expiresAt !== null && row.expiresAt <= now()) throw new RevokedApiKeyError('expired');

    c.set('apiKey', { id: row.id, orgId: row.orgId, scopes: new Set(row.scopes.split(' ').filter(Boolean)) });
    await next();
  };
}

/**
 * 403 unless the authenticated key holds `scope`. Mount after `auth()`, per route.
 *
 * @example
 * chat.post('/', requireScope('chat'), handler)
 */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async function requireScope(c, next) {
    if (!c.var.apiKey.scopes.has(scope)) throw new ScopeError(scope);
    await next();
  };
}
