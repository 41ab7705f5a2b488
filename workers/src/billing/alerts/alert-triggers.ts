/**
 * The alert side of the org's OrgAccount: decides, in the same synchronous step as the charge or
 * grant that moved a value, whether a threshold was crossed (thresholds.ts), and if so writes one
 * event to an outbox in the object's storage. `flush()` then hands the outbox to ALERT_QUEUE; a
 * failed send stays in the outbox for the object's alarm to try again. So a crossing is one event
 * (one id) however many times it is sent, and the webhook consumer delivers it idempotently.
 */
import type { BudgetCharge } from '../limits/key-budgets.ts';
import { budgetThresholdReached, type AlertThresholds } from './thresholds.ts';

export type AlertType = 'balance.below_threshold' | 'key.budget_threshold';

/** One message on ALERT_QUEUE: the event, its body already fixed, so every retry sends the same bytes. */
export interface AlertMessage {
  eventId: string;
  orgId: string;
  type: AlertType;
  keyId: string | null;
  /** The JSON body the webhook delivers. */
  payload: string;
  createdAt: number;
}

type Row = Record<string, SqlStorageValue>;

const BALANCE = 'balance';

export class AlertTriggers {
  readonly #sql: SqlStorage;
  readonly #queue: Queue;
  #thresholds: AlertThresholds | null = null;

  constructor(sql: SqlStorage, queue: Queue) {
    this.#sql = sql;
    this.#queue = queue;
    sql.exec('CREATE TABLE IF NOT EXISTS alert_config (id INTEGER PRIMARY KEY CHECK (id = 1), balance_below_micros INTEGER, key_budget_percent INTEGER)');
    // A name here = that alert has fired and is not re-armed yet.
    sql.exec('CREATE TABLE IF NOT EXISTS alert_fired (name TEXT PRIMARY KEY, fired_at INTEGER NOT NULL)');
    sql.exec('CREATE TABLE IF NOT EXISTS alert_outbox (event_id TEXT PRIMARY KEY, message TEXT NOT NULL, created_at INTEGER NOT NULL)');
    const row = sql.exec<Row>('SELECT balance_below_micros, key_budget_percent FROM alert_config').toArray()[0];
    if (row) this.#thresholds = { balanceBelowMicros: nullableNumber(row.balance_below_micros), keyBudgetPercent: nullableNumber(row.key_budget_percent) };
  }

  /** The thresholds in force (they arrive with each admission, from D1 through the read cache). */
  configure(thresholds: AlertThresholds | null, orgId: string, balanceMicros: number, now: number): void {
    const t = thresholds ?? { balanceBelowMicros: null, keyBudgetPercent: null };
    const previous = this.#thresholds;
    if (previous && previous.balanceBelowMicros === t.balanceBelowMicros && previous.keyBudgetPercent === t.keyBudgetPercent) return;
    this.#thresholds = t;
    this.#sql.exec(
      'INSERT OR REPLACE INTO alert_config (id, balance_below_micros, key_budget_percent) VALUES (1, ?, ?)',
      t.balanceBelowMicros,
      t.keyBudgetPercent,
    );
    if (previous?.balanceBelowMicros === t.balanceBelowMicros) return;
    // A new balance threshold is judged against the balance now: already below it is a crossing.
    this.#sql.exec('DELETE FROM alert_fired WHERE name = ?', BALANCE);
    this.balanceChanged(orgId, balanceMicros, now);
  }

  /** After a charge or a grant: fire once below the threshold, re-arm at or above it. */
  balanceChanged(orgId: string, balanceMicros: number, now: number): void {
    const threshold = this.#thresholds?.balanceBelowMicros ?? null;
    if (threshold === null) return;
    if (balanceMicros >= threshold) {
      this.#sql.exec('DELETE FROM alert_fired WHERE name = ?', BALANCE);
      return;
    }
    if (!this.#fire(BALANCE, now)) return;
    this.#emit(orgId, 'balance.below_threshold', null, now, { balance_micros: balanceMicros, threshold_micros: threshold });
  }

  /** After a charge under a key's budget: fire once per period (and limit) when spend reaches the percentage. */
  keySpent(orgId: string, charge: BudgetCharge, now: number): void {
    const percent = this.#thresholds?.keyBudgetPercent ?? null;
    if (percent === null || !budgetThresholdReached(charge.spentMicros, charge.limitMicros, percent)) return;
    // The limit is part of the name: raising it re-arms the alert for the new limit.
    if (!this.#fire(`key:${charge.keyId}:${charge.periodStart}:${charge.limitMicros}`, now)) return;
    this.#emit(orgId, 'key.budget_threshold', charge.keyId, now, {
      key_id: charge.keyId,
      spent_micros: charge.spentMicros,
      limit_micros: charge.limitMicros,
      percent,
      period_start: charge.periodStart,
    });
  }

  /** Sends the outbox to the queue; what could not be sent stays for the next call or alarm. */
  async flush(): Promise<void> {
    for (const r of this.#sql.exec<Row>('SELECT event_id, message FROM alert_outbox ORDER BY created_at').toArray()) {
      await this.#queue.send(JSON.parse(String(r.message)) as AlertMessage, { contentType: 'json' });
      this.#sql.exec('DELETE FROM alert_outbox WHERE event_id = ?', r.event_id);
    }
  }

  pending(): boolean {
    return this.#sql.exec('SELECT 1 FROM alert_outbox LIMIT 1').toArray().length > 0;
  }

  /** Fired alerts of periods long over are dropped (their names can never be seen again). */
  prune(now: number): void {
    this.#sql.exec("DELETE FROM alert_fired WHERE name != ? AND fired_at < ?", BALANCE, now - 62 * 24 * 3600_000);
  }

  /** Marks `name` fired; false when it already was (no new crossing). */
  #fire(name: string, now: number): boolean {
    if (this.#sql.exec('SELECT 1 FROM alert_fired WHERE name = ?', name).toArray().length > 0) return false;
    this.#sql.exec('INSERT INTO alert_fired (name, fired_at) VALUES (?, ?)', name, now);
    return true;
  }

  #emit(orgId: string, type: AlertType, keyId: string | null, now: number, data: Record<string, unknown>): void {
    const eventId = `evt_${crypto.randomUUID().replaceAll('-', '')}`;
    const payload = JSON.stringify({ id: eventId, type, created_at: now, org_id: orgId, data });
    const message: AlertMessage = { eventId, orgId, type, keyId, payload, createdAt: now };
    this.#sql.exec('INSERT INTO alert_outbox (event_id, message, created_at) VALUES (?, ?, ?)', eventId, JSON.stringify(message), now);
  }
}

function nullableNumber(v: SqlStorageValue): number | null {
  return v === null ? null : Number(v);
}
