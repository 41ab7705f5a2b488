/** D1 reads and writes of rate-limit settings (plan tiers + overrides per org and per key). */
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { apiKeys, keyLimits, orgLimits } from '../../../../shared/schema.ts';
import { resolveLimits, type LimitOverrides, type Limits } from './plans.ts';

export interface EffectiveLimits {
  plan: string | null;
  org: Limits;
  key: Limits;
}

/** The limits in force for a key and its org, in one D1 round trip. A key defaults to its org's plan. */
export async function limitsFor(db: D1Database, orgId: string, keyId: string): Promise<EffectiveLimits> {
  const d = drizzle(db);
  const [orgRows, keyRows] = await d.batch([
    d.select().from(orgLimits).where(eq(orgLimits.orgId, orgId)).limit(1),
    d.select().from(keyLimits).where(eq(keyLimits.keyId, keyId)).limit(1),
  ]);
  const org = orgRows[0];
  const key = keyRows[0];
  const plan = org?.plan ?? null;
  return { plan, org: resolveLimits(plan, org ?? {}), key: resolveLimits(plan, key ?? {}) };
}

/** Replaces an org's plan and overrides (fields left out become NULL = plan default). */
export async function setOrgLimits(db: D1Database, orgId: string, plan: string | null, overrides: LimitOverrides): Promise<void> {
  const row = { plan, rpm: overrides.rpm ?? null, tpm: overrides.tpm ?? null, concurrency: overrides.concurrency ?? null, updatedAt: Date.now() };
  await drizzle(db).insert(orgLimits).values({ orgId, ...row }).onConflictDoUpdate({ target: orgLimits.orgId, set: row });
}

/** Replaces a key's overrides (fields left out become NULL = the org plan's default). */
export async function setKeyLimits(db: D1Database, keyId: string, overrides: LimitOverrides): Promise<void> {
  const row = { rpm: overrides.rpm ?? null, tpm: overrides.tpm ?? null, concurrency: overrides.concurrency ?? null, updatedAt: Date.now() };
  await drizzle(db).insert(keyLimits).values({ keyId, ...row }).onConflictDoUpdate({ target: keyLimits.keyId, set: row });
}

/** The org a key belongs to, or null for an unknown key. */
export async function keyOrg(db: D1Database, keyId: string): Promise<string | null> {
  const rows = await drizzle(db).select({ orgId: apiKeys.orgId }).from(apiKeys).where(eq(apiKeys.id, keyId)).limit(1);
  return rows[0]?.orgId ?? null;
}
