/**
 * Plan tiers: the default rate limits of an org (and of each of its keys) until the admin API sets
 * an override. Shaped like the K2 provider's published tiers, which also grow with the amount an
 * account has ever topped up: concurrency, requests per minute, tokens per minute, tokens per day
 * (the lower tiers only; the higher ones have no daily limit).
 *
 * Tokens per minute count prompt + completion tokens. At admission a request is counted at its
 * worst case (prompt + max_tokens) and corrected to the real count when it finishes, so a burst of
 * long generations cannot slip past the limit between admission and the first usage report.
 */

export interface Limits {
  /** Requests admitted in any sliding 60 s window. */
  rpm: number;
  /** Prompt + completion tokens of the requests admitted in any sliding 60 s window. */
  tpm: number;
  /** Requests in flight at once (admitted and not yet finished). */
  concurrency: number;
  /**
   * Prompt + completion tokens admitted per UTC day (daily-tokens.ts); null or absent: no daily
   * limit. Optional so a caller that only sets the per-minute limits need not name it.
   */
  tpd?: number | null;
}

export const PLAN_IDS = ['free', 'tier1', 'tier2', 'tier3', 'tier4', 'tier5'] as const;
export type PlanId = (typeof PLAN_IDS)[number];

export const PLANS: Readonly<Record<PlanId, Readonly<Limits>>> = {
  free: { concurrency: 1, rpm: 3, tpm: 32_000, tpd: 1_500_000 },
  tier1: { concurrency: 50, rpm: 200, tpm: 128_000, tpd: 10_000_000 },
  tier2: { concurrency: 100, rpm: 500, tpm: 128_000, tpd: 20_000_000 },
  tier3: { concurrency: 200, rpm: 5_000, tpm: 384_000, tpd: null },
  tier4: { concurrency: 400, rpm: 5_000, tpm: 768_000, tpd: null },
  tier5: { concurrency: 1_000, rpm: 10_000, tpm: 2_000_000, tpd: null },
};

export const DEFAULT_PLAN: PlanId = 'tier1';

/** Per-field overrides set through the admin API; a missing or null field falls back to the plan. */
export type LimitOverrides = { [K in keyof Limits]?: number | null };

export function isPlanId(value: string): value is PlanId {
  return (PLAN_IDS as readonly string[]).includes(value);
}

/** The limits in force: the plan's defaults with the set overrides on top. Unknown plans use the default. */
export function resolveLimits(plan: string | null | undefined, overrides: LimitOverrides = {}): Limits {
  const base = PLANS[plan && isPlanId(plan) ? plan : DEFAULT_PLAN];
  return {
    rpm: overrides.rpm ?? base.rpm,
    tpm: overrides.tpm ?? base.tpm,
    concurrency: overrides.concurrency ?? base.concurrency,
    tpd: overrides.tpd ?? base.tpd ?? null,
  };
}
