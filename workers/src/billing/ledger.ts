/**
 * D1 reads and writes of the credit ledger made on behalf of `OrgAccount`.
 * The ledger is the durable record; the object's balance is a mirror built from it once.
 */
import { and, eq, ne, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { creditLedger, creditReservations } from '../../../shared/schema.ts';

export interface LedgerBalance {
  balanceMicros: number;
  /** Highest ledger row id included: grants with a higher id are not in the sum yet. */
  throughId: number;
}

/** The org's balance as the sum of its ledger, and the last row it covers. */
export async function ledgerBalance(db: D1Database, orgId: string): Promise<LedgerBalance> {
  const [row] = await drizzle(db)
    .select({
      balanceMicros: sql<number>`coalesce(sum(${creditLedger.amountMicros}), 0)`,
      throughId: sql<number>`coalesce(max(${creditLedger.id}), 0)`,
    })
    .from(creditLedger)
    .where(eq(creditLedger.orgId, orgId));
  return { balanceMicros: Number(row.balanceMicros), throughId: Number(row.throughId) };
}

export interface ReservationRecord {
  requestId: string;
  orgId: string;
  keyId: string;
  amountMicros: number;
  createdAt: number;
  expiresAt: number;
}

/** Records a reservation the org's object granted. A replay of the same request id changes nothing. */
export async function insertReservation(db: D1Database, r: ReservationRecord): Promise<void> {
  await drizzle(db)
    .insert(creditReservations)
    .values({ ...r, status: 'open' })
    .onConflictDoNothing();
}

/**
 * Closes a reservation once: 'settled' with what was charged, or 'expired' (released unused).
 * A settle may still follow an expiry (the request did finish, late), never the other way round.
 */
export async function closeReservation(
  db: D1Database,
  requestId: string,
  status: 'settled' | 'expired',
  chargedMicros: number,
  at: number,
): Promise<void> {
  await drizzle(db)
    .update(creditReservations)
    .set({ status, chargedMicros, settledAt: at })
    .where(
      and(
        eq(creditReservations.requestId, requestId),
        status === 'settled' ? ne(creditReservations.status, 'settled') : eq(creditReservations.status, 'open'),
      ),
    );
}

export async function reservationRecord(db: D1Database, requestId: string) {
  const rows = await drizzle(db).select().from(creditReservations).where(eq(creditReservations.requestId, requestId));
  return rows[0] ?? null;
}
