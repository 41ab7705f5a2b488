/** D1 writes of a key's budget and model allowlist (read back through limit-settings.ts). */
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { keyBudgets, keyModelAllowlists } from '../../../../shared/schema.ts';
import type { KeyBudget } from './key-budgets.ts';

/** Sets (or with null removes) the key's spend cap. */
export async function setKeyBudget(db: D1Database, keyId: string, budget: KeyBudget | null): Promise<void> {
  const d = drizzle(db);
  if (budget === null) {
    await d.delete(keyBudgets).where(eq(keyBudgets.keyId, keyId));
    return;
  }
  const row = { limitMicros: budget.limitMicros, period: budget.period, timeZone: budget.timeZone, updatedAt: Date.now() };
  await d.insert(keyBudgets).values({ keyId, ...row }).onConflictDoUpdate({ target: keyBudgets.keyId, set: row });
}

/** Sets the only models the key may use (or with null lets it use every model). */
export async function setAllowedModels(db: D1Database, keyId: string, models: string[] | null): Promise<void> {
  const d = drizzle(db);
  if (models === null) {
    await d.delete(keyModelAllowlists).where(eq(keyModelAllowlists.keyId, keyId));
    return;
  }
  const row = { models: [...new Set(models)].join(' '), updatedAt: Date.now() };
  await d.insert(keyModelAllowlists).values({ keyId, ...row }).onConflictDoUpdate({ target: keyModelAllowlists.keyId, set: row });
}
