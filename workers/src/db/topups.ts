/**
 * D1 queries of paid top-ups (`topups`): each row is the receipt of one paid Stripe Checkout
 * Session. The money itself is in the credit ledger (billing/ledger.ts); these rows say which
 * Stripe payment each grant came from and what was refunded of it.
 */
import { and, desc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { topups } from '../../../shared/schema.ts';

export type Topup = typeof topups.$inferSelect;
export type NewTopup = typeof topups.$inferInsert;

/**
 * The receipt of a session: written by the first event that paid it, then read back, so a second
 * event paying the same session (Stripe sends completed and async_payment_succeeded for delayed
 * methods) finds the first one's row and grants nothing.
 */
export async function claimTopup(db: D1Database, row: NewTopup): Promise<Topup> {
  const d = drizzle(db);
  await d.insert(topups).values(row).onConflictDoNothing();
  const [claimed] = await d.select().from(topups).where(eq(topups.id, row.id));
  return claimed;
}

/** Drops a receipt whose grant was refused: that payment moved no credit. */
export async function deleteTopup(db: D1Database, id: string): Promise<void> {
  await drizzle(db).delete(topups).where(eq(topups.id, id));
}

export async function setTopupLedgerId(db: D1Database, id: string, ledgerId: number): Promise<void> {
  await drizzle(db).update(topups).set({ ledgerId }).where(eq(topups.id, id));
}

export async function topupByPaymentIntent(db: D1Database, paymentIntentId: string): Promise<Topup | null> {
  const [row] = await drizzle(db).select().from(topups).where(eq(topups.paymentIntentId, paymentIntentId));
  return row ?? null;
}

export async function topupOfOrg(db: D1Database, orgId: string, id: string): Promise<Topup | null> {
  const [row] = await drizzle(db).select().from(topups).where(and(eq(topups.orgId, orgId), eq(topups.id, id)));
  return row ?? null;
}

/** An org's top-ups, newest first. */
export async function topupsOfOrg(db: D1Database, orgId: string, limit = 100): Promise<Topup[]> {
  return drizzle(db).select().from(topups).where(eq(topups.orgId, orgId)).orderBy(desc(topups.paidAt)).limit(limit);
}
