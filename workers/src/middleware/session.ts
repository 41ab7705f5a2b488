import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';
import { hashesEqual, KEY_PREFIX, PREFIX_LENGTH, sha256Hex } from '../api-keys.ts';
import { keyById } from '../db/dashboard-keys.ts';
import { database, keysByPrefix } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { AdminAuthError, CrossOriginError, InvalidApiKeyError, NotSignedInError, RevokedApiKeyError } from '../errors.ts';

/** Who is looking at the dashboard: the operator (every org) or one API key (its own org). */
export type Viewer =
  | { role: 'admin' }
  | { role: 'key'; keyId: string; orgId: string; scopes: ReadonlySet<string>; expiresAt: number | null };

export interface SessionVariables {
  viewer: Viewer;
}

/**
 * `__Host-` prefix: the browser only accepts the cookie with Secure, Path=/ and no Domain, so no
 * subdomain or plain-http page can plant or overwrite a session.
 */
const COOKIE = 'dashboard_session';
const COOKIE_PREFIX = { prefix: 'host' } as const;
/** Short-lived: a stolen cookie is worth an hour at most; signing in again takes one paste. */
export const SESSION_SECONDS = 3600;

/**
 * The cookie holds "a.<expires>" or "k.<keyId>.<expires>", HMAC-signed. The signing secret is
 * derived from ADMIN_TOKEN (the worker's only secret): rotating that token ends every session.
 * Nothing else is trusted from the cookie: a key session re-reads its key on every request, so
 * revoking or expiring the key ends the session at once.
 */
function signingSecret(env: Env): string {
  return `dashboard-session/v1:${env.ADMIN_TOKEN}`;
}

/**
 * Authenticates the dashboard and its JSON API, from (in order) an `Authorization: Bearer` header
 * (an API key, or the admin token) or the signed session cookie set by `signIn`. Sets `viewer`.
 * A cookie-authenticated write must come from our own origin: SameSite=Strict already keeps
 * other sites' requests from carrying the cookie; the Origin check covers older browsers.
 *
 * @example
 * app.use('/dashboard/api/*', session())
 */
export function session({ now = () => Date.now() }: { now?: () => number } = {}): MiddlewareHandler<AppEnv> {
  return async function session(c, next) {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (bearer) {
      c.set('viewer', await viewerFor(c.env, bearer, now()));
      return next();
    }
    const viewer = await viewerFromCookie(c, now());
    if (!viewer) throw new NotSignedInError();
    const origin = c.req.header('origin');
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && origin && origin !== new URL(c.req.url).origin) throw new CrossOriginError();
    c.set('viewer', viewer);
    await next();
  };
}

/** Checks a pasted API key or admin token and sets the session cookie. Returns who signed in. */
export async function signIn(c: Context<AppEnv>, token: string, now = Date.now()): Promise<Viewer> {
  const viewer = await viewerFor(c.env, token, now);
  let expires = now + SESSION_SECONDS * 1000;
  // Never outlive the key itself.
  if (viewer.role === 'key' && viewer.expiresAt !== null) expires = Math.min(expires, viewer.expiresAt);
  const value = viewer.role === 'admin' ? `a.${expires}` : `k.${viewer.keyId}.${expires}`;
  await setSignedCookie(c, COOKIE, value, signingSecret(c.env), {
    ...COOKIE_PREFIX,
    httpOnly: true,
    secure: true,
    sameSite: 'Strict',
    path: '/',
    maxAge: Math.max(1, Math.floor((expires - now) / 1000)),
  });
  return viewer;
}

export function signOut(c: Context<AppEnv>): void {
  deleteCookie(c, COOKIE, { ...COOKIE_PREFIX, path: '/', secure: true, httpOnly: true, sameSite: 'Strict' });
}

/** The viewer of the session cookie, or null when there is none, it is forged, or it expired. */
async function viewerFromCookie(c: Context<AppEnv>, now: number): Promise<Viewer | null> {
  const value = await getSignedCookie(c, signingSecret(c.env), COOKIE, 'host');
  if (!value) return null;
  const parts = value.split('.');
  const expires = Number(parts[parts.length - 1]);
  if (!Number.isFinite(expires) || expires <= now) return null;
  if (parts[0] === 'a' && parts.length === 2) return { role: 'admin' };
  if (parts[0] !== 'k' || parts.length !== 3) return null;
  const key = await keyById(c.env.DB, parts[1]);
  if (!key || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= now)) return null;
  return { role: 'key', keyId: key.id, orgId: key.orgId, scopes: new Set(key.scopes), expiresAt: key.expiresAt };
}

/**
 * An API key (as `auth()` checks it: prefix finds the rows, constant-time hash comparison decides)
 * or the admin token (both sides hashed first, as `adminAuth()` does). Throws the same errors.
 */
async function viewerFor(env: Env, token: string, now: number): Promise<Viewer> {
  if (token.startsWith(KEY_PREFIX)) {
    if (token.length <= PREFIX_LENGTH) throw new InvalidApiKeyError();
    const hash = await sha256Hex(token);
    const candidates = await keysByPrefix(database(env.DB), token.slice(0, PREFIX_LENGTH));
    const row = candidates.find((k) => hashesEqual(k.hash, hash));
    if (!row) throw new InvalidApiKeyError();
    if (row.revokedAt !== null) throw new RevokedApiKeyError('revoked');
    if (row.expiresAt !== null && row.expiresAt <= now) throw new RevokedApiKeyError('expired');
    return { role: 'key', keyId: row.id, orgId: row.orgId, scopes: new Set(row.scopes.split(' ').filter(Boolean)), expiresAt: row.expiresAt };
  }
  if (!env.ADMIN_TOKEN) throw new AdminAuthError();
  const [a, b] = await Promise.all([sha256Hex(token), sha256Hex(env.ADMIN_TOKEN)]);
  if (!hashesEqual(a, b)) throw new AdminAuthError();
  return { role: 'admin' };
}
