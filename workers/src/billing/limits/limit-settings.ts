/**
 * D1 reads and writes of the settings admission enforces: rate-limit plan tiers and overrides per
 * org and per key, the key's budget and model allowlist, and the org's alert thresholds. One D1
 * round trip reads all of them (cached per isolate by db/read-cache.ts).
 */
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { apiKeys, keyBudgets, keyLimits, keyModelAllowlists, orgAlertSettings, orgLimits } from '../../../../shared/schema.ts';
import type { AlertThresholds } from '../alerts/thresholds.ts';
import type { BudgetPeriod } from './budget-period.ts';
import type { KeyBudget } from './key-budgets.ts';
import { resolveLimits, type LimitOverrides, type Limits } from './plans.ts';

export interface EffectiveLimits {
  plan: string | null;
  org: Limits;
  key: Limits;
  /** The key's spend cap; null or absent: none. */
  budget?: KeyBudget | null;
  /** The only models the key may use; null or absent: every model. */
  allowedModels?: string[] | null;
  /** The org's alert thresholds; null: no alerts set up. */
  alerts?: AlertThresholds | null;
}

/** The settings in force for a key and its org, in one D1 round trip. A key defaults to its org's plan. */
export async function limitsFor(db: D1Database, orgId: string, keyId: string): Promise<EffectiveLimits> {
  const d = drizzle(db);
  const [orgRows, keyRows, budgetRows, allowRows, alertRows] = await d.batch([
    d.select().from(orgLimits).where(eq(orgLimits.orgId, orgId)).limit(1),
    d.select().from(keyLimits).where(eq(keyLimits.keyId, keyId)).limit(1),
    d.select().from(keyBudgets).where(eq(keyBudgets.keyId, keyId)).limit(1),
    d.select().from(keyModelAllowlists).where(eq(keyModelAllowlists.keyId, keyId)).limit(1),
    d
      .select({ balanceBelowMicros: orgAlertSettings.balanceBelowMicros, keyBudgetPercent: orgAlertSettings.keyBudgetPercent })
      .from(orgAlertSettings)
      .where(eq(orgAlertSettings.orgId, orgId))
      .limit(1),
  ]);
  const org = orgRows[0];
  const key = keyRows[0];
  const plan = org?.plan ?? null;
  const b = budgetRows[0];
  return {
    plan,
    org: resolveLimits(plan, org ?? {}),
    key: resolveLimits(plan, key ?? {}),
    budget: b ? { limitMicros: b.limitMicros, period: b.period as BudgetPeriod, timeZone: b.timeZone } : null,
    allowedModels: allowRows[0] ? allowRows[0].models.split(' ').filter(Boolean) : null,
    alerts: alertRows[0] ?? null,
  };
}

/** Replaces an org's plan and overrides (fields left out become NULL = plan default). */
export async function setOrgLimits(db: D1Database, orgId: string, plan: string | null, overrides: LimitOverrides): Promise<void> {
  const row = { plan, rpm: overrides.rpm ?? null, tpm: overrides.tpm ?? null, tpd: overrides.tpd ?? null, concurrency: overrides.concurrency ?? null, updatedAt: Date.now() };
  await drizzle(db).insert(orgLimits).values({ orgId, ...row }).onConflictDoUpdate({ target: orgLimits.orgId, set: row });
}

/** Replaces a key's overrides (fields left out become NULL = the org plan's default). */
export async function setKeyLimits(db: D1Database, keyId: string, overrides: LimitOverrides): Promise<void> {
  const row = { rpm: overrides.rpm ?? null, tpm: overrides.tpm ?? null, tpd: overrides.tpd ?? null, concurrency: overrides.concurrency ?? null, updatedAt: Date.now() };
  await drizzle(db).insert(keyLimits).values({ keyId, ...row }).onConflictDoUpdate({ target: keyLimits.keyId, set: row });
}

/** The org a key belongs to, or null for an unknown key. */
export async function keyOrg(db: D1Database, keyId: string): Promise<string | null> {
  const rows = await drizzle(db).select({ orgId: apiKeys.orgId }).from(apiKeys).where(eq(apiKeys.id, keyId)).limit(1);
  return rows[0]?.orgId ?? null;
}
