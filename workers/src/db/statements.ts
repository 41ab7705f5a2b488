/**
 * D1 queries behind monthly statements. A statement is nothing but sums over usage_events and the
 * credit ledger, so its numbers reconcile exactly with the rows (no separate aggregate to drift).
 *
 * A request belongs to the month it *finished* in: that is when its ledger debit is dated
 * (metering writes both with finished_at), so usage and balance movements fall in the same month.
 */
import { and, asc, eq, gte, lt, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { creditLedger, topups, usageEvents } from '../../../shared/schema.ts';

export interface UsageTotals {
  requests: number;
  /** All prompt tokens, cached ones included (as usage_events stores them). */
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
}

export interface UsageLine extends UsageTotals {
  modelId: string;
  keyId: string;
}

export interface LedgerTotals {
  /** Ledger sum of everything before the period. */
  openingMicros: number;
  grantedMicros: number;
  /** Refund debits (Stripe refunds taking credit back) in the period, as a positive number. */
  refundedMicros: number;
  /** Usage debits in the period, as a positive number. */
  usageMicros: number;
  /** Charges of reservations that expired unsettled in the period, as a positive number. */
  expiredMicros: number;
  /** Ledger sum of everything before the period's end. */
  closingMicros: number;
}

/** One row per (model, key) that had a request finish in [from, to). */
export async function usageLines(db: D1Database, orgId: string, from: number, to: number): Promise<UsageLine[]> {
  const rows = await drizzle(db)
    .select({
      modelId: usageEvents.modelId,
      keyId: usageEvents.keyId,
      requests: sql<number>`count(*)`,
      promptTokens: sql<number>`sum(${usageEvents.promptTokens})`,
      cachedTokens: sql<number>`sum(${usageEvents.cachedTokens})`,
      completionTokens: sql<number>`sum(${usageEvents.completionTokens})`,
      costMicros: sql<number>`sum(${usageEvents.costMicros})`,
    })
    .from(usageEvents)
    .where(and(eq(usageEvents.orgId, orgId), gte(usageEvents.finishedAt, from), lt(usageEvents.finishedAt, to)))
    .groupBy(usageEvents.modelId, usageEvents.keyId)
    .orderBy(asc(usageEvents.modelId), asc(usageEvents.keyId));
  // D1 returns SQLite integers as numbers; Number() also turns a driver's bigint or string into one.
  return rows.map((r) => ({
    modelId: r.modelId,
    keyId: r.keyId,
    requests: Number(r.requests),
    promptTokens: Number(r.promptTokens),
    cachedTokens: Number(r.cachedTokens),
    completionTokens: Number(r.completionTokens),
    costMicros: Number(r.costMicros),
  }));
}

/** Balance movements of [from, to) from the credit ledger. */
export async function ledgerTotals(db: D1Database, orgId: string, from: number, to: number): Promise<LedgerTotals> {
  const inPeriod = sql`${creditLedger.createdAt} >= ${from} and ${creditLedger.createdAt} < ${to}`;
  const [row] = await drizzle(db)
    .select({
      openingMicros: sql<number>`coalesce(sum(case when ${creditLedger.createdAt} < ${from} then ${creditLedger.amountMicros} end), 0)`,
      grantedMicros: sql<number>`coalesce(sum(case when ${inPeriod} and ${creditLedger.kind} = 'grant' then ${creditLedger.amountMicros} end), 0)`,
      refundedMicros: sql<number>`coalesce(-sum(case when ${inPeriod} and ${creditLedger.kind} = 'refund' then ${creditLedger.amountMicros} end), 0)`,
      usageMicros: sql<number>`coalesce(-sum(case when ${inPeriod} and ${creditLedger.kind} = 'usage' then ${creditLedger.amountMicros} end), 0)`,
      expiredMicros: sql<number>`coalesce(-sum(case when ${inPeriod} and ${creditLedger.kind} = 'expiry' then ${creditLedger.amountMicros} end), 0)`,
      closingMicros: sql<number>`coalesce(sum(case when ${creditLedger.createdAt} < ${to} then ${creditLedger.amountMicros} end), 0)`,
    })
    .from(creditLedger)
    .where(eq(creditLedger.orgId, orgId));
  return {
    openingMicros: Number(row.openingMicros),
    grantedMicros: Number(row.grantedMicros),
    refundedMicros: Number(row.refundedMicros),
    usageMicros: Number(row.usageMicros),
    expiredMicros: Number(row.expiredMicros),
    closingMicros: Number(row.closingMicros),
  };
}

/** A ledger row that is not a usage line: a grant (admin or Stripe top-up), a refund debit or an expiry charge. */
export interface CreditEntry {
  ledgerId: number;
  kind: 'grant' | 'refund' | 'expiry';
  /** Signed, as in the ledger: grants positive, refunds and expiries negative. */
  amountMicros: number;
  note: string;
  createdAt: number;
  /** The Stripe top-up a grant paid for (its receipt id), or null. */
  topupId: string | null;
}

/** The period's grants, refunds and expiry charges, oldest first, each with the receipt of the top-up it came from. */
export async function creditEntries(db: D1Database, orgId: string, from: number, to: number): Promise<CreditEntry[]> {
  const rows = await drizzle(db)
    .select({
      ledgerId: creditLedger.id,
      kind: creditLedger.kind,
      amountMicros: creditLedger.amountMicros,
      note: creditLedger.note,
      createdAt: creditLedger.createdAt,
      topupId: topups.id,
    })
    .from(creditLedger)
    .leftJoin(topups, eq(topups.ledgerId, creditLedger.id))
    .where(
      and(
        eq(creditLedger.orgId, orgId),
        sql`${creditLedger.kind} in ('grant', 'refund', 'expiry')`,
        gte(creditLedger.createdAt, from),
        lt(creditLedger.createdAt, to),
      ),
    )
    .orderBy(asc(creditLedger.createdAt), asc(creditLedger.id));
  return rows.map((r) => ({ ...r, kind: r.kind as CreditEntry['kind'], amountMicros: Number(r.amountMicros) }));
}
