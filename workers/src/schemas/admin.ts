/** zod schemas for the admin API bodies. */
import { z } from 'zod';
import { SCOPES } from '../api-keys.ts';
import { MAX_GRANT_MICROS } from '../billing/credit-ceilings.ts';

const micros = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const createOrganization = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, "-" and "_", at most 64').optional(),
  name: z.string().min(1).max(200),
});

export const createKey = z.object({
  org_id: z.string().min(1),
  name: z.string().max(200).optional(),
  scopes: z.array(z.enum(SCOPES)).min(1).optional(),
  /** Epoch milliseconds after which the key stops working. */
  expires_at: z.number().int().positive().nullish(),
});

export const grantCredit = z.object({
  org_id: z.string().min(1),
  /** One grant is at most $1,000,000 (credit-ceilings.ts); the balance ceiling is checked on the ledger. */
  amount_micros: micros.positive().max(MAX_GRANT_MICROS, `at most ${MAX_GRANT_MICROS} µ$ ($1,000,000) per grant`),
  note: z.string().max(500).optional(),
});

export const setPrice = z.object({
  model: z.string().min(1),
  input_cache_miss: micros,
  input_cache_hit: micros,
  output: micros,
  /** Epoch milliseconds; defaults to now. A price can be scheduled ahead but never rewrite the past. */
  effective_from: z.number().int().nonnegative().optional(),
});

export const registerNode = z.object({
  pool: z.string().min(1),
  url: z.url({ protocol: /^https?$/ }),
});
