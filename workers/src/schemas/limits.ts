/** zod schemas for the admin API's rate-limit settings. */
import { z } from 'zod';
import { PLAN_IDS } from '../billing/limits/plans.ts';

/** A set value overrides the plan default; null (or leaving it out) falls back to it. */
const limit = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullish();

export const keyLimits = z.object({ rpm: limit, tpm: limit, tpd: limit, concurrency: limit });

export const orgLimits = keyLimits.extend({ plan: z.enum(PLAN_IDS).nullish() });
