/**
 * Reading and changing a key's budget and model allowlist and an org's alert settings, in the
 * wire shape both the admin API and the dashboard API answer with. Who may change what is the
 * caller's check; this module checks the values against the catalogue and reads spend from the
 * org's OrgAccount, the same object that enforces it.
 */
import { inArray } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { keyBudgets, keyModelAllowlists, models as modelsTable } from '../../../shared/schema.ts';
import { InvalidRequestError } from '../errors.ts';
import { alertSettings, setAlertSettings, type AlertSettings } from './alerts/alert-settings.ts';
import type { BudgetPeriod } from './limits/budget-period.ts';
import type { BudgetState, KeyBudget } from './limits/key-budgets.ts';
import { setAllowedModels, setKeyBudget } from './limits/key-controls.ts';
import { orgAccount } from './request-billing.ts';

export interface BudgetWire {
  limit_micros: number;
  period: BudgetPeriod;
  time_zone: string;
  period_start: number;
  /** Epoch ms when spend starts again from zero; null for "total". */
  resets_at: number | null;
  spent_micros: number;
  held_micros: number;
  remaining_micros: number;
}

export function budgetWire(s: BudgetState): BudgetWire {
  return {
    limit_micros: s.limitMicros,
    period: s.period,
    time_zone: s.timeZone,
    period_start: s.periodStart,
    resets_at: s.resetsAt,
    spent_micros: s.spentMicros,
    held_micros: s.heldMicros,
    remaining_micros: s.remainingMicros,
  };
}

/** The most parameters D1 binds in one query. */
const D1_MAX_PARAMS = 100;

export interface KeyControls {
  budget: BudgetWire | null;
  allowed_models: string[] | null;
}

/** Budgets (with this period's spend) and allowlists of `keys`, each of org `orgId` as given. */
export async function keyControls(env: Env, keys: { id: string; orgId: string }[]): Promise<Map<string, KeyControls>> {
  const out = new Map<string, KeyControls>();
  if (keys.length === 0) return out;
  const d = drizzle(env.DB);
  // D1 binds at most 100 parameters per query: an org with more keys is read in slices.
  const slices: string[][] = [];
  for (let i = 0; i < keys.length; i += D1_MAX_PARAMS) slices.push(keys.slice(i, i + D1_MAX_PARAMS).map((k) => k.id));
  const reads = await Promise.all(
    slices.map((ids) =>
      d.batch([d.select().from(keyBudgets).where(inArray(keyBudgets.keyId, ids)), d.select().from(keyModelAllowlists).where(inArray(keyModelAllowlists.keyId, ids))]),
    ),
  );
  const budgets = reads.flatMap(([b]) => b);
  const allowlists = reads.flatMap(([, a]) => a);
  const budgetOf = new Map(budgets.map((b) => [b.keyId, { limitMicros: b.limitMicros, period: b.period as BudgetPeriod, timeZone: b.timeZone }]));
  const allowOf = new Map(allowlists.map((a) => [a.keyId, a.models.split(' ').filter(Boolean)]));
  await Promise.all(
    keys.map(async (k) => {
      const budget = budgetOf.get(k.id);
      const state = budget ? await orgAccount(env, k.orgId).keyBudget(k.orgId, k.id, budget) : null;
      out.set(k.id, { budget: state ? budgetWire(state) : null, allowed_models: allowOf.get(k.id) ?? null });
    }),
  );
  return out;
}

export async function changeKeyBudget(env: Env, orgId: string, keyId: string, budget: KeyBudget | null): Promise<KeyControls> {
  await setKeyBudget(env.DB, keyId, budget);
  return (await keyControls(env, [{ id: keyId, orgId }])).get(keyId)!;
}

/** 400 naming the first model the catalogue does not have. */
export async function changeAllowedModels(env: Env, orgId: string, keyId: string, models: string[] | null): Promise<KeyControls> {
  if (models !== null) {
    // The whole catalogue (a few rows), not `IN (…models)`: an allowlist may name more models than
    // D1 binds parameters in one query.
    const known = new Set((await drizzle(env.DB).select({ id: modelsTable.id }).from(modelsTable)).map((m) => m.id));
    const index = models.findIndex((m) => !known.has(m));
    if (index >= 0) throw new InvalidRequestError(`models.${index}: the model '${models[index]}' does not exist`, `models.${index}`, 'model_not_found');
  }
  await setAllowedModels(env.DB, keyId, models);
  return (await keyControls(env, [{ id: keyId, orgId }])).get(keyId)!;
}

export function alertSettingsWire(s: AlertSettings | null) {
  if (!s) return { object: 'alert_settings', enabled: false, webhook_url: null, webhook_secret: null, balance_below_micros: null, key_budget_percent: null };
  return {
    object: 'alert_settings',
    enabled: true,
    webhook_url: s.webhookUrl,
    webhook_secret: s.webhookSecret,
    balance_below_micros: s.balanceBelowMicros,
    key_budget_percent: s.keyBudgetPercent,
  };
}

export async function readAlertSettings(env: Env, orgId: string) {
  return alertSettingsWire(await alertSettings(env.DB, orgId));
}

export async function changeAlertSettings(
  env: Env,
  orgId: string,
  body: { webhook_url: string; balance_below_micros?: number | null; key_budget_percent?: number | null; rotate_secret?: boolean },
) {
  const saved = await setAlertSettings(env.DB, orgId, {
    webhookUrl: body.webhook_url,
    balanceBelowMicros: body.balance_below_micros ?? null,
    keyBudgetPercent: body.key_budget_percent ?? null,
    rotateSecret: body.rotate_secret,
  });
  return alertSettingsWire(saved);
}

export function alertEventWire(e: {
  id: string;
  type: string;
  keyId: string | null;
  payload: string;
  createdAt: number;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: number | null;
}) {
  return {
    id: e.id,
    type: e.type,
    key_id: e.keyId,
    data: (JSON.parse(e.payload) as { data: unknown }).data,
    created_at: e.createdAt,
    attempts: e.attempts,
    last_status: e.lastStatus,
    last_error: e.lastError,
    delivered_at: e.deliveredAt,
  };
}
