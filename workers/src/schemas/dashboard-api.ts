/** zod schemas for the dashboard's JSON API (routes/dashboard-api.ts): query strings and the new-key body. */
import { zValidator } from '@hono/zod-validator';
import { z, type ZodType } from 'zod';
import { SCOPES } from '../api-keys.ts';
import { InvalidRequestError } from '../errors.ts';

const DAY_MS = 86_400_000;
/** Hourly points over more than this many days would be thousands of points nobody can read. */
export const MAX_HOURLY_DAYS = 31;
/** Longest range one query may cover: bounds the rows one aggregation scans. */
export const MAX_RANGE_DAYS = 400;

const epochMs = z.coerce.number().int().nonnegative().max(8.64e15);
const org = z.string().min(1).max(64).optional();

const rangeShape = { org, from: epochMs.optional(), to: epochMs.optional() };

/**
 * Fills in a query's `from`/`to` (epoch ms, half-open; default: the 30 days up to now) and bounds
 * the range, so one aggregation never scans more than a bounded slice of the table.
 */
function resolveRange<T extends { from?: number; to?: number }>(q: T, ctx: z.RefinementCtx): T & { from: number; to: number } {
  const to = q.to ?? Date.now();
  const from = q.from ?? to - 30 * DAY_MS;
  if (from >= to) ctx.addIssue({ code: 'custom', path: ['from'], message: 'from must be before to' });
  if (to - from > MAX_RANGE_DAYS * DAY_MS) ctx.addIssue({ code: 'custom', path: ['from'], message: `a range covers at most ${MAX_RANGE_DAYS} days` });
  return { ...q, from, to };
}

export const range = z.object(rangeShape).transform(resolveRange);

export const timeseries = z.object({ ...rangeShape, bucket: z.enum(['hour', 'day']).default('day') }).transform(resolveRange).superRefine((q, ctx) => {
  if (q.bucket === 'hour' && q.to - q.from > MAX_HOURLY_DAYS * DAY_MS) {
    ctx.addIssue({ code: 'custom', path: ['bucket'], message: `hourly points cover at most ${MAX_HOURLY_DAYS} days; use bucket=day` });
  }
});

export const breakdown = z.object({ ...rangeShape, by: z.enum(['model', 'key', 'org']) }).transform(resolveRange);

/** `cursor` is the `next_cursor` of the previous page: "<finished_at>.<id>". */
export const requests = z.object({
  org,
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^\d+\.\d+$/, 'cursor must be the next_cursor of the previous page')
    .transform((s) => {
      const [finishedAt, id] = s.split('.').map(Number);
      return { finishedAt, id };
    })
    .optional(),
});

export const orgOnly = z.object({ org });

export const statement = z.object({ org, format: z.enum(['csv', 'json', 'html']).default('csv') });

export const createKey = z.object({
  name: z.string().max(200).optional(),
  scopes: z.array(z.enum(SCOPES)).min(1).optional(),
  /** Admins only: which organization the key belongs to (a key's session uses its own). */
  org_id: z.string().min(1).optional(),
  /** Epoch ms, in the future; from a key session at most that key's own expiry (dashboard/keys.ts). */
  expires_at: z.number().int().positive().nullish(),
});

/**
 * `zValidator` for query strings and JSON bodies whose failure is our OpenAI-shaped 400, the
 * first issue's path becoming `param` (as `jsonBody` in validate.ts does for bodies).
 */
export function validated<Target extends 'query' | 'json', T extends ZodType>(target: Target, schema: T) {
  return zValidator(target, schema, (result) => {
    if (result.success) return;
    const issue = result.error.issues[0];
    const param = issue.path.length ? issue.path.join('.') : null;
    throw new InvalidRequestError(param ? `${param}: ${issue.message}` : issue.message, param);
  });
}
