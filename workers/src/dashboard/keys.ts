/**
 * Key management as the dashboard allows it: a key session needs the `keys:write` scope, can only
 * give a new key scopes it holds itself (no escalation), and can only revoke keys of its own org.
 * The admin can do all of it for any org. The new key is returned once and never stored.
 *
 * A key created by a key session is that key's child (parent_key_id) and cannot outlive it: its
 * expiry is the one asked for, at most the parent's (a later one is a 400, none gives the parent's).
 * Revoking a key revokes its children, transitively (db/queries.ts revokeApiKey), so a key that is
 * cut off cannot keep working through keys it minted. Keys the admin creates have no parent.
 */
import { DEFAULT_SCOPES, generateKey, type Scope } from '../api-keys.ts';
import { keyById, type KeyListing } from '../db/dashboard-keys.ts';
import { database, insertApiKey, organizationExists, revokeApiKey } from '../db/queries.ts';
import { InvalidRequestError, NotFoundError, OwnKeyControlsError, ScopeError } from '../errors.ts';
import type { Viewer } from '../middleware/session.ts';

export interface CreatedKey {
  id: string;
  /** Shown to the caller once: D1 keeps only its hash. */
  key: string;
  prefix: string;
  org_id: string;
  name: string;
  scopes: Scope[];
  expires_at: number | null;
  /** The session's key, which this one cannot outlive; null when the admin created it. */
  parent_key_id: string | null;
}

/**
 * The expiry of a key the viewer creates: `requested` (epoch ms) when it is in the future and, for a
 * key session, not after the session key's own expiry; none requested gives the session key's.
 */
export function childExpiry(viewer: Viewer, requested: number | null | undefined, now: number): number | null {
  if (requested != null && requested <= now) throw new InvalidRequestError(`expires_at must be in the future (now is ${now} ms)`, 'expires_at', 'invalid_value');
  if (viewer.role === 'admin' || viewer.expiresAt === null) return requested ?? null;
  if (requested == null) return viewer.expiresAt;
  if (requested > viewer.expiresAt) {
    throw new InvalidRequestError(
      `expires_at ${requested} is after your own key's expiry (${viewer.expiresAt}, ${new Date(viewer.expiresAt).toISOString()}): a key cannot outlive the key that creates it; send at most ${viewer.expiresAt} or leave expires_at out`,
      'expires_at',
      'expiry_beyond_parent',
    );
  }
  return requested;
}

export function requireKeyManager(viewer: Viewer): void {
  if (viewer.role === 'key' && !viewer.scopes.has('keys:write')) throw new ScopeError('keys:write');
}

export async function createKey(
  db: D1Database,
  viewer: Viewer,
  orgId: string,
  request: { name: string; scopes: Scope[] | undefined; expiresAt: number | null | undefined },
): Promise<CreatedKey> {
  const { name, scopes } = request;
  requireKeyManager(viewer);
  const now = Date.now();
  const expiresAt = childExpiry(viewer, request.expiresAt, now);
  if (!(await organizationExists(database(db), orgId))) throw new NotFoundError(`organization '${orgId}'`);
  const held = (s: Scope) => viewer.role === 'admin' || viewer.scopes.has(s);
  const granted = scopes ?? DEFAULT_SCOPES.filter(held);
  const missing = granted.find((s) => !held(s));
  if (missing) throw new InvalidRequestError(`you cannot grant the "${missing}" scope: your own key lacks it`, 'scopes', 'scope_escalation');
  if (granted.length === 0) throw new InvalidRequestError('a key needs at least one scope', 'scopes');
  const { key, prefix, hash } = await generateKey();
  const id = `key_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const parentKeyId = viewer.role === 'key' ? viewer.keyId : null;
  await insertApiKey(database(db), { id, orgId, name, prefix, hash, scopes: granted.join(' '), createdAt: now, expiresAt, parentKeyId });
  return { id, key, prefix, org_id: orgId, name, scopes: [...granted], expires_at: expiresAt, parent_key_id: parentKeyId };
}

/**
 * The key whose budget or allowlist the viewer wants to change, if it may: keys:write, a key of its
 * own org (another org's answers 404), and not the session's own key, so a key can never lift the
 * cap that was put on it.
 */
export async function controllableKey(db: D1Database, viewer: Viewer, keyId: string): Promise<KeyListing> {
  requireKeyManager(viewer);
  const key = await keyById(db, keyId);
  if (!key || (viewer.role === 'key' && key.orgId !== viewer.orgId)) throw new NotFoundError(`key '${keyId}'`);
  if (viewer.role === 'key' && key.id === viewer.keyId) throw new OwnKeyControlsError();
  return key;
}

/**
 * Revokes `keyId` and the keys it created, transitively, if the viewer may; another org's key answers
 * 404, so its existence is not revealed. Returns the key's listing and every id revoked with it.
 */
export async function revokeKey(db: D1Database, viewer: Viewer, keyId: string): Promise<{ key: KeyListing; revokedKeyIds: string[] }> {
  requireKeyManager(viewer);
  const key = await keyById(db, keyId);
  if (!key || (viewer.role === 'key' && key.orgId !== viewer.orgId)) throw new NotFoundError(`key '${keyId}'`);
  const revokedKeyIds = (await revokeApiKey(database(db), keyId, Date.now())) ?? [];
  return { key: (await keyById(db, keyId))!, revokedKeyIds };
}
