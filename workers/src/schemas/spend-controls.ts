/** zod schemas for key budgets, model allowlists and alert settings (admin API and dashboard API). */
import { z } from 'zod';
import { BUDGET_PERIODS, isTimeZone } from '../billing/limits/budget-period.ts';

const micros = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const keyBudget = z.object({
  limit_micros: micros,
  period: z.enum(BUDGET_PERIODS),
  time_zone: z
    .string()
    .max(64)
    .refine(isTimeZone, { message: 'must be an IANA time zone such as "UTC" or "Europe/Paris"' })
    .default('UTC'),
});

export const allowedModels = z.object({
  /** null: every model; otherwise the only models the key may use. */
  models: z.array(z.string().min(1).max(200)).min(1).max(200).nullable(),
});

export const alertSettings = z.object({
  webhook_url: z
    .url({ protocol: /^https?$/, message: 'must be an http(s) URL' })
    .max(2_000),
  balance_below_micros: micros.nullish(),
  key_budget_percent: z.number().int().min(1).max(100).nullish(),
  /** Replace the signing secret with a new one. */
  rotate_secret: z.boolean().optional(),
});
