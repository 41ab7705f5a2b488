/**
 * D1 aggregations behind the usage dashboard and its JSON API (routes/dashboard-api.ts).
 *
 * Every figure is a sum over usage_events rows, computed by SQLite at read time: nothing is
 * pre-aggregated, so the dashboard always agrees with the rows (and with monthly statements,
 * which sum the same rows). A request belongs to the instant it *finished*, as in statements.
 *
 * Speed comes from two indexes (shared/schema.ts, migration 0003): (org_id, finished_at) for one
 * org's range scans and newest-first paging, (finished_at) for an admin's all-orgs view.
 * `npm run bench:dashboard` times these queries over 1M rows with and without them.
 *
 * Scope: `orgId: null` means every organization (admins only; routes/dashboard-api.ts decides).
 * Times are epoch ms, half-open [from, to); money integer micro-dollars.
 */
import { and, desc, eq, gte, lt, sql, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { prices, usageEvents } from '../../../shared/schema.ts';

export interface StatsQuery {
  orgId: string | null;
  from: number;
  to: number;
}

export interface Totals {
  requests: number;
  /** All prompt tokens, cached ones included (as usage_events stores them). */
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
}

export interface Summary extends Totals {
  /** cachedTokens / promptTokens, 0 when there were no prompt tokens. */
  cacheHitRate: number;
  /**
   * What the cached tokens would have cost at their price row's cache-miss price, minus what they
   * cost at its cache-hit price, summed per price row and rounded down (never overstated).
   */
  savedMicros: number;
}

export type Bucket = 'hour' | 'day';
export const BUCKET_MS: Readonly<Record<Bucket, number>> = { hour: 3_600_000, day: 86_400_000 };

export interface Point extends Totals {
  /** Start of the UTC hour or day, epoch ms. */
  t: number;
}

export type BreakdownBy = 'model' | 'key' | 'org';

export interface BreakdownRow extends Totals {
  /** The model id, key id or org id, by what was asked for. */
  group: string;
}

export interface RequestRow {
  id: number;
  requestId: string;
  orgId: string;
  keyId: string;
  modelId: string;
  endpoint: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
  status: string;
  finishReason: string | null;
  startedAt: number;
  finishedAt: number;
}

/** Position after the last row of a page: newest first, ties broken by row id. */
export interface Cursor {
  finishedAt: number;
  id: number;
}

const totalsColumns = {
  requests: sql<number>`count(*)`,
  promptTokens: sql<number>`coalesce(sum(${usageEvents.promptTokens}), 0)`,
  cachedTokens: sql<number>`coalesce(sum(${usageEvents.cachedTokens}), 0)`,
  completionTokens: sql<number>`coalesce(sum(${usageEvents.completionTokens}), 0)`,
  costMicros: sql<number>`coalesce(sum(${usageEvents.costMicros}), 0)`,
};

function inRange(q: StatsQuery): SQL {
  const range = and(gte(usageEvents.finishedAt, q.from), lt(usageEvents.finishedAt, q.to))!;
  return q.orgId === null ? range : and(eq(usageEvents.orgId, q.orgId), range)!;
}

// D1 returns SQLite integers as numbers; Number() also turns a driver's bigint or string into one.
function totals(r: Record<keyof Totals, unknown>): Totals {
  return {
    requests: Number(r.requests),
    promptTokens: Number(r.promptTokens),
    cachedTokens: Number(r.cachedTokens),
    completionTokens: Number(r.completionTokens),
    costMicros: Number(r.costMicros),
  };
}

/**
 * Totals of the range plus cache hit rate and money saved by caching. Grouped by price row so the
 * saving uses the prices each request was actually billed at (a price change mid-range is exact).
 */
export async function usageSummary(db: D1Database, q: StatsQuery): Promise<Summary> {
  const rows = await drizzle(db)
    .select({
      ...totalsColumns,
      inputCacheMiss: prices.inputCacheMiss,
      inputCacheHit: prices.inputCacheHit,
    })
    .from(usageEvents)
    .leftJoin(prices, eq(prices.id, usageEvents.priceId))
    .where(inRange(q))
    .groupBy(usageEvents.priceId);
  const sum: Totals = { requests: 0, promptTokens: 0, cachedTokens: 0, completionTokens: 0, costMicros: 0 };
  let savedMicros = 0;
  for (const r of rows) {
    const t = totals(r);
    for (const k of Object.keys(sum) as (keyof Totals)[]) sum[k] += t[k];
    const perMillion = Math.max(0, Number(r.inputCacheMiss ?? 0) - Number(r.inputCacheHit ?? 0));
    // BigInt: tokens × µ$-per-million passes 2^53 long before the sums here do.
    savedMicros += Number((BigInt(t.cachedTokens) * BigInt(perMillion)) / 1_000_000n);
  }
  return { ...sum, cacheHitRate: sum.promptTokens === 0 ? 0 : sum.cachedTokens / sum.promptTokens, savedMicros };
}

/**
 * finished_at floored to the start of its UTC hour or day. The size is written into the SQL, not
 * bound: D1 binds a JS number as a REAL, and integer / REAL would not floor.
 */
function bucketStart(bucket: Bucket): SQL<number> {
  const size = sql.raw(String(BUCKET_MS[bucket]));
  return sql<number>`(${usageEvents.finishedAt} / ${size}) * ${size}`;
}

/** One point per UTC hour or day that had requests, oldest first (empty buckets are left out). */
export async function usageTimeseries(db: D1Database, q: StatsQuery, bucket: Bucket): Promise<Point[]> {
  const t = bucketStart(bucket);
  const rows = await drizzle(db).select({ t, ...totalsColumns }).from(usageEvents).where(inRange(q)).groupBy(t).orderBy(t);
  return rows.map((r) => ({ t: Number(r.t), ...totals(r) }));
}

/** Totals per model, per key or per org, largest spend first. */
export async function usageBreakdown(db: D1Database, q: StatsQuery, by: BreakdownBy): Promise<BreakdownRow[]> {
  const column = { model: usageEvents.modelId, key: usageEvents.keyId, org: usageEvents.orgId }[by];
  const rows = await drizzle(db)
    .select({ group: column, ...totalsColumns })
    .from(usageEvents)
    .where(inRange(q))
    .groupBy(column)
    .orderBy(sql`sum(${usageEvents.costMicros}) desc`, column);
  return rows.map((r) => ({ group: r.group, ...totals(r) }));
}

/**
 * One page of requests, newest first, and the cursor of the next page (null on the last one).
 * Keyset paging, not OFFSET: page 1000 costs what page 1 costs, and rows arriving meanwhile
 * neither repeat nor skip a row.
 */
export async function recentRequests(
  db: D1Database,
  q: { orgId: string | null; limit: number; before: Cursor | null },
): Promise<{ rows: RequestRow[]; next: Cursor | null }> {
  const conditions: SQL[] = [];
  if (q.orgId !== null) conditions.push(eq(usageEvents.orgId, q.orgId));
  if (q.before) conditions.push(sql`(${usageEvents.finishedAt}, ${usageEvents.id}) < (${q.before.finishedAt}, ${q.before.id})`);
  const rows = await drizzle(db)
    .select()
    .from(usageEvents)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(desc(usageEvents.finishedAt), desc(usageEvents.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit) as RequestRow[];
  const last = page[page.length - 1];
  return { rows: page, next: rows.length > q.limit && last ? { finishedAt: last.finishedAt, id: last.id } : null };
}

export interface UsageLine extends Totals {
  /** Start of the UTC day, epoch ms. */
  day: number;
  orgId: string;
  modelId: string;
  keyId: string;
}

/** Daily lines per (org, model, key): the rows of the usage CSV download. */
export async function dailyUsageLines(db: D1Database, q: StatsQuery): Promise<UsageLine[]> {
  const day = bucketStart('day');
  const rows = await drizzle(db)
    .select({ day, orgId: usageEvents.orgId, modelId: usageEvents.modelId, keyId: usageEvents.keyId, ...totalsColumns })
    .from(usageEvents)
    .where(inRange(q))
    .groupBy(day, usageEvents.orgId, usageEvents.modelId, usageEvents.keyId)
    .orderBy(day, usageEvents.orgId, usageEvents.modelId, usageEvents.keyId);
  return rows.map((r) => ({ day: Number(r.day), orgId: r.orgId, modelId: r.modelId, keyId: r.keyId, ...totals(r) }));
}
