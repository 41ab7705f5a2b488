/**
 * The D1 side of the money: the credit ledger (grants and usage debits), the usage rows, and the
 * reservation records. Every movement is a row with a unique id; a balance is a sum over rows.
 * The org's Durable Object (org-account.ts) is a mirror of that sum that reconcile.ts checks.
 */
import { and, eq, ne, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { QueryBuilder } from 'drizzle-orm/sqlite-core';
import { creditLedger, creditReservations, topups, usageEvents } from '../../../shared/schema.ts';
import { MAX_BALANCE_MICROS } from './credit-ceilings.ts';

export type UsageEventRow = typeof usageEvents.$inferSelect;
export type NewUsageEvent = typeof usageEvents.$inferInsert;

type Db = ReturnType<typeof drizzle>;
const db = (d1: D1Database | Db): Db => ('batch' in d1 && 'select' in d1 ? d1 : drizzle(d1 as D1Database));

export interface LedgerBalance {
  balanceMicros: number;
  /** Highest ledger row id included: grants with a higher id are not in the sum yet. */
  throughId: number;
}

/** The org's balance as the sum of its ledger, and the last row it covers. */
export async function ledgerBalance(d1: D1Database | Db, orgId: string): Promise<LedgerBalance> {
  const [row] = await db(d1)
    .select({
      balanceMicros: sql<number>`coalesce(sum(${creditLedger.amountMicros}), 0)`,
      throughId: sql<number>`coalesce(max(${creditLedger.id}), 0)`,
    })
    .from(creditLedger)
    .where(eq(creditLedger.orgId, orgId));
  return { balanceMicros: Number(row.balanceMicros), throughId: Number(row.throughId) };
}

export async function creditBalance(d1: D1Database | Db, orgId: string): Promise<number> {
  return (await ledgerBalance(d1, orgId)).balanceMicros;
}

/** Every org's ledger sum in one query (reconciliation). */
export async function ledgerBalances(d1: D1Database | Db): Promise<Map<string, number>> {
  const rows = await db(d1)
    .select({ orgId: creditLedger.orgId, balanceMicros: sql<number>`coalesce(sum(${creditLedger.amountMicros}), 0)` })
    .from(creditLedger)
    .groupBy(creditLedger.orgId);
  return new Map(rows.map((r) => [r.orgId, Number(r.balanceMicros)]));
}

/**
 * Writes a grant row and returns its id: the org's Durable Object applies each grant row once, by
 * this id. With `entryId` (e.g. "grant:<Idempotency-Key>") the row is unique on it: a second call
 * writes nothing and returns the first row's id, so a retried grant is never doubled.
 *
 * The row is written only if the org's ledger balance plus the grant stays within
 * MAX_BALANCE_MICROS, checked by the insert itself (one statement, so two grants at once cannot
 * both pass on the same balance). Returns null when refused: no row was written. The object's
 * balance is never above the ledger's (debits reach the object first, grants the ledger first), so
 * a grant the ledger took always fits the object too.
 */
export async function grantCredit(d1: D1Database | Db, orgId: string, amountMicros: number, note: string, entryId?: string): Promise<number | null> {
  const d = db(d1);
  const ledgerSum = sql`(select coalesce(sum(${creditLedger.amountMicros}), 0) from ${creditLedger} where ${creditLedger.orgId} = ${orgId})`;
  const [row] = await d
    .insert(creditLedger)
    .select(
      new QueryBuilder()
        .select({
          id: sql`null`.as('id'),
          orgId: sql`${orgId}`.as('org_id'),
          amountMicros: sql`${amountMicros}`.as('amount_micros'),
          kind: sql`'grant'`.as('kind'),
          requestId: sql`${entryId ?? null}`.as('request_id'),
          note: sql`${note}`.as('note'),
          createdAt: sql`${Date.now()}`.as('created_at'),
        })
        .from(sql`(select 1)`)
        .where(sql`${ledgerSum} + ${amountMicros} <= ${MAX_BALANCE_MICROS}`),
    )
    .onConflictDoNothing()
    .returning({ id: creditLedger.id });
  if (row) return row.id;
  if (entryId === undefined) return null;
  // Either this entry was granted before (a retry: its row stands), or the ceiling refused it.
  const [first] = await d.select({ id: creditLedger.id }).from(creditLedger).where(eq(creditLedger.requestId, entryId));
  return first?.id ?? null;
}

export interface RefundEntry {
  orgId: string;
  /** The top-up whose charge was refunded (its Checkout Session id). */
  topupId: string;
  /** "stripe:<event id>": unique, so a redelivered event writes nothing. */
  entryId: string;
  /** What the org's object took from the balance (OrgAccount.refund); the row is −chargedMicros. */
  chargedMicros: number;
  /** The object's total taken back for this payment so far, this refund included. */
  debitedTotalMicros: number;
  /** Stripe's refunded total of the charge after this event, cents. */
  refundedCents: number;
  note: string;
  at: number;
}

/**
 * A refund's ledger debit and the top-up's refunded totals, in one D1 batch (one transaction). The
 * debit is unique on its entry id; the totals only ever grow to what the event reports, so a replay
 * changes nothing. A zero charge (nothing left to take, or a stale total) writes no ledger row but
 * still records the refunded total on the receipt.
 */
export async function recordRefund(d1: D1Database | Db, r: RefundEntry): Promise<void> {
  const d = db(d1);
  const totals = d
    .update(topups)
    .set({
      refundedCents: sql`max(${topups.refundedCents}, ${r.refundedCents})`,
      refundDebitedMicros: sql`max(${topups.refundDebitedMicros}, ${r.debitedTotalMicros})`,
    })
    .where(eq(topups.id, r.topupId));
  if (r.chargedMicros === 0) {
    await totals;
    return;
  }
  await d.batch([
    d
      .insert(creditLedger)
      .values({ orgId: r.orgId, amountMicros: -r.chargedMicros, kind: 'refund', requestId: r.entryId, note: r.note, createdAt: r.at })
      .onConflictDoNothing(),
    totals,
  ]);
}

export async function ledgerEntryForRequest(d1: D1Database | Db, requestId: string) {
  const rows = await db(d1).select().from(creditLedger).where(eq(creditLedger.requestId, requestId));
  return rows[0];
}

export async function usageEventsForRequest(d1: D1Database | Db, requestId: string): Promise<UsageEventRow[]> {
  return db(d1).select().from(usageEvents).where(eq(usageEvents.requestId, requestId));
}

/**
 * Writes usage rows with their ledger debits (−cost_micros, the amount the org's object charged)
 * and their reservation records (settled), all in one D1 batch (one transaction). Every insert is
 * unique on request_id and does nothing on conflict, so a replay — a queue redelivery, a retried
 * write whose answer was lost — can never bill twice. Returns the request ids this call wrote.
 */
export async function recordUsageBatch(d1: D1Database | Db, events: NewUsageEvent[], reservations: (ReservationRecord | null)[] = []): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const d = db(d1);
  const statements = events.flatMap((event, i) => [
    d.insert(usageEvents).values(event).onConflictDoNothing().returning({ requestId: usageEvents.requestId }),
    d
      .insert(creditLedger)
      .values({
        orgId: event.orgId,
        amountMicros: -event.costMicros,
        kind: 'usage',
        requestId: event.requestId,
        note: `${event.endpoint} ${event.modelId}`,
        createdAt: event.finishedAt,
      })
      .onConflictDoNothing(),
    reservationOutcome(d, reservations[i] ?? null, event.requestId, 'settled', event.costMicros, event.finishedAt),
  ]);
  const results = (await d.batch(statements as [(typeof statements)[number], ...(typeof statements)[number][]])) as unknown[];
  const written = new Set<string>();
  for (let i = 0; i < results.length; i += 3) {
    for (const r of results[i] as { requestId: string }[]) written.add(r.requestId);
  }
  return written;
}

/** One row: true when this call wrote it. */
export async function recordUsage(d1: D1Database | Db, event: NewUsageEvent): Promise<boolean> {
  return (await recordUsageBatch(d1, [event])).has(event.requestId);
}

export interface ReservationRecord {
  requestId: string;
  orgId: string;
  keyId: string;
  amountMicros: number;
  createdAt: number;
  expiresAt: number;
}

/**
 * The reservation record of a request, written once its outcome is known (the request path writes
 * nothing to D1: the object holds open reservations). 'settled' with what the settle charged, or
 * 'expired' (charged and released by the object's alarm). A settle may still follow an expiry (the
 * request did finish, late; its charge is then what the expiry did not take), never the other way round. Without the reservation's details (a request the
 * object never admitted) only an existing record is updated.
 */
function reservationOutcome(d: Db, r: ReservationRecord | null, requestId: string, status: 'settled' | 'expired', chargedMicros: number, at: number) {
  const outcome = { status, chargedMicros, settledAt: at };
  const replaceable = status === 'settled' ? ne(creditReservations.status, 'settled') : eq(creditReservations.status, 'open');
  if (!r) return d.update(creditReservations).set(outcome).where(and(eq(creditReservations.requestId, requestId), replaceable));
  return d
    .insert(creditReservations)
    .values({ ...r, ...outcome })
    .onConflictDoUpdate({ target: creditReservations.requestId, set: outcome, setWhere: replaceable });
}

/**
 * A reservation that expired unsettled, as its org's object charged it (OrgAccount.#expire): its
 * reservation record ('expired', with the charge) and, for a charge above 0, the ledger debit, in
 * one D1 batch. The debit is an 'expiry' row under "expiry:<request id>", apart from the request's
 * own usage row: a late settle writes that row with only what the expiry did not charge. Each write
 * is unique, so the alarm may repeat it after a lost answer.
 */
export async function recordExpiry(d1: D1Database | Db, r: ReservationRecord, chargedMicros: number, at: number): Promise<void> {
  const d = db(d1);
  const record = reservationOutcome(d, r, r.requestId, 'expired', chargedMicros, at);
  if (chargedMicros === 0) {
    await record;
    return;
  }
  await d.batch([
    d
      .insert(creditLedger)
      .values({
        orgId: r.orgId,
        amountMicros: -chargedMicros,
        kind: 'expiry',
        requestId: expiryEntryId(r.requestId),
        note: `request ${r.requestId}: reservation expired unsettled`,
        createdAt: at,
      })
      .onConflictDoNothing(),
    record,
  ]);
}

/** The ledger entry id of a request's expiry charge. */
export const expiryEntryId = (requestId: string): string => `expiry:${requestId}`;

export async function reservationRecord(d1: D1Database | Db, requestId: string) {
  const rows = await db(d1).select().from(creditReservations).where(eq(creditReservations.requestId, requestId));
  return rows[0] ?? null;
}
