/**
 * D1 reads and writes of the catalogue (models, prices, nodes) and of keys and organizations.
 * Money (ledger, usage rows, reservations) is in billing/ledger.ts; other concerns keep their queries
 * beside them (db/usage-stats.ts, db/statements.ts, db/dashboard-keys.ts, upstreams/backends.ts).
 * Times are epoch milliseconds, money integer micro-dollars (see shared/schema.ts).
 */
import { and, asc, desc, eq, inArray, lte, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/d1';
import { apiKeys, gpuNodes, modelBackends, models, organizations, prices } from '../../../shared/schema.ts';

export type Db = ReturnType<typeof database>;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type ModelRow = typeof models.$inferSelect;
export type PriceRow = typeof prices.$inferSelect;
export type ModelBackendRow = typeof modelBackends.$inferSelect;

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

export async function listOrganizationIds(db: Db): Promise<string[]> {
  const rows = await db.select({ id: organizations.id }).from(organizations).orderBy(asc(organizations.id));
  return rows.map((r) => r.id);
}

export async function organizationExists(db: Db, id: string): Promise<boolean> {
  const rows = await db.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, id)).limit(1);
  return rows.length > 0;
}

/** The organization's display name, or null when there is no such organization. */
export async function organizationName(db: Db, id: string): Promise<string | null> {
  const rows = await db.select({ name: organizations.name }).from(organizations).where(eq(organizations.id, id)).limit(1);
  return rows[0]?.name ?? null;
}

export async function insertApiKey(db: Db, row: typeof apiKeys.$inferInsert): Promise<void> {
  // A key minted under an Idempotency-Key is derived from it: its retry finds the row already there.
  await db.insert(apiKeys).values(row).onConflictDoNothing();
}

/**
 * Revokes key `id` and every key it created, transitively (parent_key_id), in one statement, so no
 * child outlives the revocation of its parent even for a moment. Sets revoked_at once: a second
 * revoke keeps the first time. Returns the ids of the key and its descendants (sorted), or null when
 * no such key exists. Raw SQL because drizzle's query builder has no recursive CTE.
 */
export async function revokeApiKey(db: Db, id: string, at: number): Promise<string[] | null> {
  const rows = await db.all<{ id: string }>(sql`
    WITH RECURSIVE family(id) AS (
      SELECT id FROM api_keys WHERE id = ${id}
      UNION
      SELECT k.id FROM api_keys k JOIN family f ON k.parent_key_id = f.id
    )
    UPDATE api_keys SET revoked_at = coalesce(revoked_at, ${at}) WHERE id IN (SELECT id FROM family) RETURNING id`);
  return rows.length > 0 ? rows.map((r) => r.id).sort() : null;
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
  /** Every price row of the model, newest effective_from first (future ones included). */
  prices: PriceRow[];
  /** URLs registered for the model's pool, in registration order (empty: use GPU_NODE_URLS). */
  poolNodeUrls: string[];
  /** The model's configured backends, in priority order; empty for the default pool. */
  backends: ModelBackendRow[];
}

/**
 * Everything a generation needs to know about `modelId`, in one D1 batch: one round trip instead of
 * one per table, and one consistent snapshot (a batch is a single transaction). The pool's nodes are
 * found through a subquery on the model's row, so no query waits for another's answer. All price
 * rows come along, so the entry can be cached and still give the price in force at any instant.
 */
export async function modelEntry(db: Db, modelId: string): Promise<ModelEntry | undefined> {
  const [modelRows, priceRows, nodeRows, backendRows] = await db.batch([
    db.select().from(models).where(eq(models.id, modelId)).limit(1),
    db.select().from(prices).where(eq(prices.modelId, modelId)).orderBy(desc(prices.effectiveFrom)),
    db
      .select({ url: gpuNodes.url })
      .from(gpuNodes)
      .where(inArray(gpuNodes.pool, db.select({ pool: models.pool }).from(models).where(eq(models.id, modelId))))
      .orderBy(asc(gpuNodes.id)),
    db.select().from(modelBackends).where(eq(modelBackends.modelId, modelId)).orderBy(asc(modelBackends.priority), asc(modelBackends.id)),
  ]);
  const model = modelRows[0];
  if (!model) return undefined;
  return { model, prices: priceRows, poolNodeUrls: nodeRows.map((r) => r.url), backends: backendRows };
}

/** The price row in force at `at` among `rows` (newest first): the latest not after it. */
export function priceInForce(rows: readonly PriceRow[], at: number): PriceRow | undefined {
  return rows.find((r) => r.effectiveFrom <= at);
}

/** The new price row, or undefined when the model already has a price taking effect at that instant. */
export async function insertPrice(db: Db, row: typeof prices.$inferInsert): Promise<PriceRow | undefined> {
  const [inserted] = await db.insert(prices).values(row).onConflictDoNothing().returning();
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
