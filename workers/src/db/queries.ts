/**
 * Every D1 read and write of the worker. Route handlers and middleware call these; no SQL elsewhere.
 * Times are epoch milliseconds, money integer micro-dollars (see shared/schema.ts).
 */
import { and, asc, desc, eq, inArray, lte, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { apiKeys, creditLedger, gpuNodes, modelBackends, models, organizations, prices, usageEvents } from '../../../shared/schema.ts';

export type Db = ReturnType<typeof database>;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type ModelRow = typeof models.$inferSelect;
export type PriceRow = typeof prices.$inferSelect;
export type ModelBackendRow = typeof modelBackends.$inferSelect;
export type UsageEventRow = typeof usageEvents.$inferSelect;
export type NewUsageEvent = typeof usageEvents.$inferInsert;

export function database(d1: D1Database) {
  return drizzle(d1);
}

// ── keys and organizations ───────────────────────────────────────────────────

export async function keysByPrefix(db: Db, prefix: string): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).where(eq(apiKeys.prefix, prefix)).limit(8);
}

export async function createOrganization(db: Db, id: string, name: string): Promise<void> {
  await db.insert(organizations).values({ id, name, createdAt: Date.now() });
}

export async function organizationExists(db: Db, id: string): Promise<boolean> {
  const rows = await db.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, id)).limit(1);
  return rows.length > 0;
}

export async function insertApiKey(db: Db, row: typeof apiKeys.$inferInsert): Promise<void> {
  await db.insert(apiKeys).values(row);
}

/** Sets revoked_at once; returns false when no such key exists. A second revoke keeps the first time. */
export async function revokeApiKey(db: Db, id: string, at: number): Promise<boolean> {
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, ${at})` })
    .where(eq(apiKeys.id, id))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

// ── credit ───────────────────────────────────────────────────────────────────

export async function creditBalance(db: Db, orgId: string): Promise<number> {
  const [row] = await db
    .select({ balance: sql<number>`coalesce(sum(${creditLedger.amountMicros}), 0)` })
    .from(creditLedger)
    .where(eq(creditLedger.orgId, orgId));
  return Number(row.balance);
}

/** Returns the ledger row id: the org's Durable Object applies each grant row once, by this id. */
export async function grantCredit(db: Db, orgId: string, amountMicros: number, note: string): Promise<number> {
  const [row] = await db
    .insert(creditLedger)
    .values({ orgId, amountMicros, kind: 'grant', note, createdAt: Date.now() })
    .returning({ id: creditLedger.id });
  return row.id;
}

export async function ledgerEntryForRequest(db: Db, requestId: string) {
  const rows = await db.select().from(creditLedger).where(eq(creditLedger.requestId, requestId));
  return rows[0];
}

// ── catalogue: models, prices, nodes ─────────────────────────────────────────

export async function listModels(db: Db): Promise<ModelRow[]> {
  return db.select().from(models).orderBy(asc(models.id));
}

export async function getModel(db: Db, id: string): Promise<ModelRow | undefined> {
  const rows = await db.select().from(models).where(eq(models.id, id)).limit(1);
  return rows[0];
}

/** The price row in force at `at`: the latest one whose effective_from is not after it. */
export async function priceAt(db: Db, modelId: string, at: number): Promise<PriceRow | undefined> {
  const rows = await priceAtQuery(db, modelId, at);
  return rows[0];
}

function priceAtQuery(db: Db, modelId: string, at: number) {
  return db
    .select()
    .from(prices)
    .where(and(eq(prices.modelId, modelId), lte(prices.effectiveFrom, at)))
    .orderBy(desc(prices.effectiveFrom))
    .limit(1);
}

export interface ModelEntry {
  model: ModelRow;
  /** The price in force at the request's start; undefined when none is (the model cannot be billed). */
  price: PriceRow | undefined;
  /** URLs registered for the model's pool, in registration order (empty: use GPU_NODE_URLS). */
  poolNodeUrls: string[];
  /** The model's configured backends, in priority order; empty for the default pool. */
  backends: ModelBackendRow[];
}

/**
 * Everything a generation needs to know about `modelId` at `at`, in one D1 batch: one round trip
 * instead of one per table on the request path, and one consistent snapshot (a batch is a single
 * transaction). The pool's nodes are found through a subquery on the model's row, so no query
 * waits for another's answer. Nothing is cached: a price that takes effect at `at` is read here.
 */
export async function modelEntryAt(db: Db, modelId: string, at: number): Promise<ModelEntry | undefined> {
  const [modelRows, priceRows, nodeRows, backendRows] = await db.batch([
    db.select().from(models).where(eq(models.id, modelId)).limit(1),
    priceAtQuery(db, modelId, at),
    db
      .select({ url: gpuNodes.url })
      .from(gpuNodes)
      .where(inArray(gpuNodes.pool, db.select({ pool: models.pool }).from(models).where(eq(models.id, modelId))))
      .orderBy(asc(gpuNodes.id)),
    db.select().from(modelBackends).where(eq(modelBackends.modelId, modelId)).orderBy(asc(modelBackends.priority), asc(modelBackends.id)),
  ]);
  const model = modelRows[0];
  if (!model) return undefined;
  return { model, price: priceRows[0], poolNodeUrls: nodeRows.map((r) => r.url), backends: backendRows };
}

export async function insertPrice(db: Db, row: typeof prices.$inferInsert): Promise<PriceRow> {
  const [inserted] = await db.insert(prices).values(row).returning();
  return inserted;
}

export async function nodeUrlsForPool(db: Db, pool: string): Promise<string[]> {
  const rows = await db.select({ url: gpuNodes.url }).from(gpuNodes).where(eq(gpuNodes.pool, pool)).orderBy(asc(gpuNodes.id));
  return rows.map((r) => r.url);
}

export async function registerNode(db: Db, pool: string, url: string): Promise<void> {
  await db.insert(gpuNodes).values({ pool, url, createdAt: Date.now() }).onConflictDoNothing();
}

export async function removeNode(db: Db, pool: string, url: string): Promise<boolean> {
  const rows = await db
    .delete(gpuNodes)
    .where(and(eq(gpuNodes.pool, pool), eq(gpuNodes.url, url)))
    .returning({ id: gpuNodes.id });
  return rows.length > 0;
}

// ── metering ─────────────────────────────────────────────────────────────────

/**
 * Writes the request's usage row and its ledger debit in one D1 batch (one transaction). Both
 * tables are unique on request_id and the inserts do nothing on conflict, so replaying the same
 * request id — a retry of waitUntil, or a client re-sending an id — can never bill twice.
 * Returns true when this call wrote the row.
 */
export async function recordUsage(db: Db, event: NewUsageEvent): Promise<boolean> {
  const [inserted] = await db.batch([
    db.insert(usageEvents).values(event).onConflictDoNothing().returning({ id: usageEvents.id }),
    db
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
  ]);
  return inserted.length > 0;
}

export async function usageEventsForRequest(db: Db, requestId: string): Promise<UsageEventRow[]> {
  return db.select().from(usageEvents).where(eq(usageEvents.requestId, requestId));
}
