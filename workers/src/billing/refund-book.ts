/**
 * The refunds an org's object has taken back from its balance, in the object's SQLite storage.
 * Stripe reports a charge's refunds as a running total (`amount_refunded`) on every
 * `charge.refunded` event, and may deliver those events late, twice or out of order; the object
 * serialises them per org, so the debit of an event is the growth of that total since the last
 * one seen: never negative, never counted twice. What it takes is capped by the balance left
 * (credit already spent cannot be taken back), the same rule a settle follows, so the balance
 * never goes below zero and the ledger row written afterwards carries the same number.
 *
 * The book starts with the object and every refund passes through it before its ledger row
 * exists, so the book has seen every refund the ledger holds.
 */

interface DebitRow extends Record<string, SqlStorageValue> {
  requested_micros: number;
  charged_micros: number;
  debited_total_micros: number;
}

export interface RefundDecision {
  /** Growth of the charge's refunded total this event brought (0 for a stale or repeated total). */
  requestedMicros: number;
  /** What leaves the balance: min(requested, balance). */
  chargedMicros: number;
  /** Everything the payment's refunds have taken from the balance, this one included. */
  debitedTotalMicros: number;
}

export class RefundBook {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS refunded_payments (
      payment_id TEXT PRIMARY KEY, refunded_micros INTEGER NOT NULL, debited_micros INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS refund_debits (
      entry_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, requested_micros INTEGER NOT NULL,
      charged_micros INTEGER NOT NULL, debited_total_micros INTEGER NOT NULL, decided_at INTEGER NOT NULL)`);
  }

  /** The decision already taken for this entry (a redelivered event), or null. */
  decided(entryId: string): RefundDecision | null {
    const row = this.#sql
      .exec<DebitRow>('SELECT requested_micros, charged_micros, debited_total_micros FROM refund_debits WHERE entry_id = ?', entryId)
      .toArray()[0];
    if (!row) return null;
    return { requestedMicros: Number(row.requested_micros), chargedMicros: Number(row.charged_micros), debitedTotalMicros: Number(row.debited_total_micros) };
  }

  /** Decides and records the debit of a new entry whose charge now has `refundedMicros` refunded in total. */
  decide(entryId: string, paymentId: string, refundedMicros: number, balanceMicros: number, now: number): RefundDecision {
    const seen = this.#sql
      .exec<{ refunded_micros: number; debited_micros: number }>('SELECT refunded_micros, debited_micros FROM refunded_payments WHERE payment_id = ?', paymentId)
      .toArray()[0];
    const before = seen ? Number(seen.refunded_micros) : 0;
    const requestedMicros = Math.max(0, refundedMicros - before);
    const chargedMicros = Math.min(requestedMicros, Math.max(0, balanceMicros));
    const debitedTotalMicros = (seen ? Number(seen.debited_micros) : 0) + chargedMicros;
    this.#sql.exec(
      'INSERT OR REPLACE INTO refunded_payments (payment_id, refunded_micros, debited_micros) VALUES (?, ?, ?)',
      paymentId,
      Math.max(before, refundedMicros),
      debitedTotalMicros,
    );
    this.#sql.exec(
      `INSERT INTO refund_debits (entry_id, payment_id, requested_micros, charged_micros, debited_total_micros, decided_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
      entryId,
      paymentId,
      requestedMicros,
      chargedMicros,
      debitedTotalMicros,
      now,
    );
    return { requestedMicros, chargedMicros, debitedTotalMicros };
  }
}
