/**
 * Per-key spend caps, held by the org's OrgAccount beside its credit reservations and persisted in
 * its SQLite storage. The rule, for every key with a budget and every period P:
 *
 *   Σ charged in P  ≤  limit
 *
 * At admission a request holds its worst-case cost against the key's period: it is admitted only
 * if spent(P) + open holds in P + its worst case ≤ limit (the same worst case the org's credit
 * reserves). A settle charges within its hold and, as a second guard, never more than the room
 * left in the period it was admitted in (limit − spent), which is what keeps the rule true when a
 * hold expired and its request settles late, or the limit was lowered mid-flight. A charge counts
 * in the period its request was admitted in, so a request admitted at 23:59 cannot spend
 * tomorrow's budget. Synchronous like lease-window.ts: the object decides without awaiting.
 *
 * Spend is counted from when a key has a budget; changing the period or time zone starts a new
 * period (its spend so far counted again from zero), changing only the limit keeps the spend.
 */
import { periodBounds, type BudgetPeriod } from './budget-period.ts';

export interface KeyBudget {
  limitMicros: number;
  period: BudgetPeriod;
  /** IANA zone the period boundaries are in; "UTC" by default. */
  timeZone: string;
}

/** A key's budget as of now: what the key holder sees (GET /v1/key) and what a refusal reports. */
export interface BudgetState extends KeyBudget {
  periodStart: number;
  /** When the period ends and spend starts again from zero; null for "total". */
  resetsAt: number | null;
  /** Charged in this period. */
  spentMicros: number;
  /** Held by this key's requests in flight (worst case). */
  heldMicros: number;
  /** limit − spent − held, never negative. */
  remainingMicros: number;
}

export type BudgetHold = { ok: true; state: BudgetState } | { ok: false; state: BudgetState };

/** What a settle under a budget changed: the alert check reads it. */
export interface BudgetCharge {
  keyId: string;
  periodStart: number;
  limitMicros: number;
  spentMicros: number;
}

interface Hold {
  requestId: string;
  keyId: string;
  /** The period of the budget in force at admission (its identity: kind, zone and start). */
  periodKey: string;
  limitMicros: number;
  amountMicros: number;
  /** 0 once its reservation expired: no longer held, still settled against its period. */
  open: boolean;
  createdAt: number;
}

type Row = Record<string, SqlStorageValue>;

/** Closed holds (expired, waiting for a late settle) are kept this long, like the object's settlements. */
const HOLD_RETENTION_MS = 24 * 3600_000;
/** A month is the longest period that resets: older period rows are never read again. */
const SPEND_RETENTION_MS = 62 * 24 * 3600_000;

/** The spend row a budget's current period counts in: kind, zone and start, so a config change starts afresh. */
function periodKey(budget: KeyBudget, start: number): string {
  return `${budget.period}:${budget.timeZone}:${start}`;
}

export class KeyBudgets {
  readonly #sql: SqlStorage;
  readonly #holds = new Map<string, Hold>();

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS key_spend (
      key_id TEXT NOT NULL, period_key TEXT NOT NULL, period_start INTEGER NOT NULL,
      spent_micros INTEGER NOT NULL, PRIMARY KEY (key_id, period_key))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS budget_holds (
      request_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, period_key TEXT NOT NULL, limit_micros INTEGER NOT NULL,
      amount_micros INTEGER NOT NULL, open INTEGER NOT NULL, created_at INTEGER NOT NULL)`);
    for (const r of sql.exec<Row>('SELECT * FROM budget_holds').toArray()) {
      this.#holds.set(String(r.request_id), {
        requestId: String(r.request_id),
        keyId: String(r.key_id),
        periodKey: String(r.period_key),
        limitMicros: Number(r.limit_micros),
        amountMicros: Number(r.amount_micros),
        open: Number(r.open) === 1,
        createdAt: Number(r.created_at),
      });
    }
  }

  state(keyId: string, budget: KeyBudget, now: number): BudgetState {
    const { start, end } = periodBounds(budget.period, budget.timeZone, now);
    const key = periodKey(budget, start);
    const spentMicros = this.#spent(keyId, key);
    let heldMicros = 0;
    for (const h of this.#holds.values()) if (h.open && h.keyId === keyId && h.periodKey === key) heldMicros += h.amountMicros;
    return {
      ...budget,
      periodStart: start,
      resetsAt: end,
      spentMicros,
      heldMicros,
      remainingMicros: Math.max(0, budget.limitMicros - spentMicros - heldMicros),
    };
  }

  /** Holds `amountMicros` of the key's budget for request `requestId`, or refuses (nothing held). */
  tryHold(requestId: string, keyId: string, budget: KeyBudget, amountMicros: number, now: number): BudgetHold {
    const state = this.state(keyId, budget, now);
    if (state.spentMicros + state.heldMicros + amountMicros > budget.limitMicros) return { ok: false, state };
    const hold: Hold = {
      requestId,
      keyId,
      periodKey: periodKey(budget, state.periodStart),
      limitMicros: budget.limitMicros,
      amountMicros,
      open: true,
      createdAt: now,
    };
    this.#holds.set(requestId, hold);
    this.#sql.exec(
      'INSERT OR REPLACE INTO budget_holds (request_id, key_id, period_key, limit_micros, amount_micros, open, created_at) VALUES (?, ?, ?, ?, ?, 1, ?)',
      requestId,
      keyId,
      hold.periodKey,
      hold.limitMicros,
      amountMicros,
      now,
    );
    this.#sql.exec(
      'INSERT OR IGNORE INTO key_spend (key_id, period_key, period_start, spent_micros) VALUES (?, ?, ?, 0)',
      keyId,
      hold.periodKey,
      state.periodStart,
    );
    return { ok: true, state: { ...state, heldMicros: state.heldMicros + amountMicros, remainingMicros: state.remainingMicros - amountMicros } };
  }

  /** Forgets an admission another check refused. */
  cancel(requestId: string): void {
    if (!this.#holds.delete(requestId)) return;
    this.#sql.exec('DELETE FROM budget_holds WHERE request_id = ?', requestId);
  }

  /** The most a settle of `requestId` may charge under its key's cap; null when it was admitted without one. */
  room(requestId: string): number | null {
    const hold = this.#holds.get(requestId);
    if (!hold) return null;
    return Math.max(0, hold.limitMicros - this.#spent(hold.keyId, hold.periodKey));
  }

  /** Counts the charge in the period the request was admitted in and drops its hold. */
  settle(requestId: string, chargedMicros: number): BudgetCharge | null {
    const hold = this.#holds.get(requestId);
    if (!hold) return null;
    this.#holds.delete(requestId);
    this.#sql.exec('DELETE FROM budget_holds WHERE request_id = ?', requestId);
    this.#sql.exec('UPDATE key_spend SET spent_micros = spent_micros + ? WHERE key_id = ? AND period_key = ?', chargedMicros, hold.keyId, hold.periodKey);
    const start = Number(hold.periodKey.slice(hold.periodKey.lastIndexOf(':') + 1));
    return { keyId: hold.keyId, periodStart: start, limitMicros: hold.limitMicros, spentMicros: this.#spent(hold.keyId, hold.periodKey) };
  }

  /**
   * The request's reservation expired, charged `chargedMicros` (counted in its period): it no longer
   * holds budget, but a late settle still counts the rest (within the room).
   */
  expire(requestId: string, chargedMicros: number): BudgetCharge | null {
    const hold = this.#holds.get(requestId);
    if (!hold || !hold.open) return null;
    hold.open = false;
    this.#sql.exec('UPDATE budget_holds SET open = 0 WHERE request_id = ?', requestId);
    this.#sql.exec('UPDATE key_spend SET spent_micros = spent_micros + ? WHERE key_id = ? AND period_key = ?', chargedMicros, hold.keyId, hold.periodKey);
    const start = Number(hold.periodKey.slice(hold.periodKey.lastIndexOf(':') + 1));
    return { keyId: hold.keyId, periodStart: start, limitMicros: hold.limitMicros, spentMicros: this.#spent(hold.keyId, hold.periodKey) };
  }

  /** Drops closed holds past retention and spend rows of periods long over. */
  prune(now: number): void {
    for (const h of this.#holds.values()) {
      if (!h.open && h.createdAt < now - HOLD_RETENTION_MS) this.cancel(h.requestId);
    }
    // "total" periods start at 0 and never end: keep them.
    this.#sql.exec('DELETE FROM key_spend WHERE period_start > 0 AND period_start < ?', now - SPEND_RETENTION_MS);
  }

  #spent(keyId: string, key: string): number {
    const row = this.#sql.exec<Row>('SELECT spent_micros FROM key_spend WHERE key_id = ? AND period_key = ?', keyId, key).toArray()[0];
    return row ? Number(row.spent_micros) : 0;
  }
}
