/**
 * Key management as the dashboard allows it: a key session needs the `keys:write` scope, can only
 * give a new key scopes it holds itself (no escalation), and can only revoke keys of its own org.
 * The admin can do all of it for any org. The new key is returned once and never stored.
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
}

export function requireKeyManager(viewer: Viewer): void {
  if (viewer.role === 'key' && !viewer.scopes.has('keys:write')) throw new ScopeError('keys:write');
}

export async function createKey(db: D1Database, viewer: Viewer, orgId: string, name: string, scopes: Scope[] | undefined): Promise<CreatedKey> {
  requireKeyManager(viewer);
  if (!(await organizationExists(database(db), orgId))) throw new NotFoundError(`organization '${orgId}'`);
  const held = (s: Scope) => viewer.role === 'admin' || viewer.scopes.has(s);
  const granted = scopes ?? DEFAULT_SCOPES.filter(held);
  const missing = granted.find((s) => !held(s));
  if (missing) throw new InvalidRequestError(`you cannot grant the "${missing}" scope: your own key lacks it`, 'scopes', 'scope_escalation');
  if (granted.length === 0) throw new InvalidRequestError('a key needs at least one scope', 'scopes');
  const { key, prefix, hash } = await generateKey();
  const id = `key_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`;
  await insertApiKey(database(db), { id, orgId, name, prefix, hash, scopes: granted.join(' '), createdAt: Date.now(), expiresAt: null });
  return { id, key, prefix, org_id: orgId, name, scopes: [...granted] };
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

/** Revokes `keyId` if the viewer may; another org's key answers 404, so its existence is not revealed. */
export async function revokeKey(db: D1Database, viewer: Viewer, keyId: string): Promise<KeyListing> {
  requireKeyManager(viewer);
  const key = await keyById(db, keyId);
  if (!key || (viewer.role === 'key' && key.orgId !== viewer.orgId)) throw new NotFoundError(`key '${keyId}'`);
  await revokeApiKey(database(db), keyId, Date.now());
  return (await keyById(db, keyId))!;
}
