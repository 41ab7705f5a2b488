/**
 * Balance, open reservations and rate-limit usage of one org (and of the viewing key), read from
 * the same Durable Objects that admit requests, so the dashboard shows exactly what the next
 * request will be measured against, not a copy that may lag.
 */
import { limitsFor } from '../billing/limits/limit-settings.ts';
import type { DailyState } from '../billing/limits/daily-tokens.ts';
import type { WindowState } from '../billing/limits/lease-window.ts';

export interface WindowView {
  rpm: number;
  tpm: number;
  concurrency: number;
  /** Used in the current sliding 60 s window (limit minus remaining). */
  requests_used: number;
  tokens_used: number;
  in_flight: number;
  /** Tokens per UTC day and those used today; null where no daily limit applies. */
  tpd: number | null;
  tokens_today: number | null;
}

export interface AccountView {
  org_id: string;
  plan: string | null;
  balance_micros: number;
  reserved_micros: number;
  available_micros: number;
  open_reservations: number;
  rate_limits: { org: WindowView; key: (WindowView & { key_id: string }) | null };
}

function windowView(s: WindowState, day: DailyState | null): WindowView {
  return {
    tpd: day?.limit ?? null,
    tokens_today: day ? day.limit - day.remaining : null,
    rpm: s.limits.rpm,
    tpm: s.limits.tpm,
    concurrency: s.limits.concurrency,
    requests_used: s.limits.rpm - s.remainingRequests,
    tokens_used: s.limits.tpm - s.remainingTokens,
    in_flight: s.inFlight,
  };
}

export async function accountView(env: Env, orgId: string, keyId: string | null): Promise<AccountView> {
  // '' matches no key row, so it resolves the org plan's per-key defaults (as routes/limits.ts does).
  const limits = await limitsFor(env.DB, orgId, keyId ?? '');
  const org = env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(orgId));
  const [account, windows, days] = await Promise.all([
    org.account(orgId),
    org.rateState(limits, keyId ?? undefined),
    org.dailyTokenState(limits, keyId ?? undefined),
  ]);
  const orgWindow = windows.org;
  const keyWindow = windows.key;
  return {
    org_id: orgId,
    plan: limits.plan,
    balance_micros: account.balanceMicros,
    reserved_micros: account.reservedMicros,
    available_micros: account.availableMicros,
    open_reservations: account.openReservations,
    rate_limits: { org: windowView(orgWindow, days.org), key: keyWindow === null ? null : { key_id: keyId!, ...windowView(keyWindow, days.key) } },
  };
}
