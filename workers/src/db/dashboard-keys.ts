/**
 * D1 reads for the dashboard's keys list and organization picker, and the key lookup that
 * re-checks a session's key on every request (so a revoked key's session ends at once).
 * Key creation and revocation reuse queries.ts (insertApiKey, revokeApiKey).
 */
import { asc, desc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { apiKeys, organizations } from '../../../shared/schema.ts';

/** A key as listings show it: never its hash. */
export interface KeyListing {
  id: string;
  orgId: string;
  name: string;
  prefix: string;
  scopes: string[];
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  /** The key whose session created it; null when the admin did. */
  parentKeyId: string | null;
}

const listingColumns = {
  id: apiKeys.id,
  orgId: apiKeys.orgId,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  scopes: apiKeys.scopes,
  createdAt: apiKeys.createdAt,
  expiresAt: apiKeys.expiresAt,
  revokedAt: apiKeys.revokedAt,
  parentKeyId: apiKeys.parentKeyId,
};

/** Keys of one org (or every org), newest first. */
export async function listKeys(db: D1Database, orgId: string | null): Promise<KeyListing[]> {
  const query = drizzle(db).select(listingColumns).from(apiKeys);
  const rows = await (orgId === null ? query : query.where(eq(apiKeys.orgId, orgId))).orderBy(desc(apiKeys.createdAt), asc(apiKeys.id));
  return rows.map((r) => ({ ...r, scopes: r.scopes.split(' ').filter(Boolean) }));
}

export async function keyById(db: D1Database, id: string): Promise<KeyListing | null> {
  const rows = await drizzle(db).select(listingColumns).from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
  const r = rows[0];
  return r ? { ...r, scopes: r.scopes.split(' ').filter(Boolean) } : null;
}

export async function listOrganizations(db: D1Database): Promise<{ id: string; name: string }[]> {
  return drizzle(db).select({ id: organizations.id, name: organizations.name }).from(organizations).orderBy(asc(organizations.id));
}
