/**
 * The hot path's D1 reads, kept in isolate memory: key rows (auth), limits, and each model's
 * catalogue entry (model, prices, pool nodes, backends). On a warm isolate a request then makes no
 * D1 read before it is forwarded.
 *
 * Freshness bound: an entry lives READ_CACHE_TTL_MS (5 s unless the var says otherwise). Every admin
 * write through this isolate bumps the version stamp, which drops all entries at once, so in this
 * isolate a revocation, a limit, a price or a backend takes effect on the very next request; in any
 * other isolate within the TTL. Expiry of a key (`expires_at`) is checked against the clock on every
 * request, cached or not. Misses are not cached: a key created a moment ago works at once.
 *
 * Loads are shared: concurrent requests for the same entry wait on one D1 read.
 */

import { limitsFor, type EffectiveLimits } from '../billing/limits/limit-settings.ts';
import { database, keysByPrefix, modelEntry, type ApiKeyRow, type ModelEntry } from './queries.ts';

export const DEFAULT_READ_CACHE_TTL_MS = 5_000;

let version = 0;

/** Drops every cached read in this isolate (admin writes call it). */
export function bumpReadCacheVersion(): void {
  version++;
}

export function readCacheTtlMs(env: { READ_CACHE_TTL_MS?: string }): number {
  const ms = Number(env.READ_CACHE_TTL_MS);
  return Number.isFinite(ms) && ms >= 0 ? ms : DEFAULT_READ_CACHE_TTL_MS;
}

interface Entry<V> {
  value: Promise<V>;
  expiresAt: number;
  version: number;
}

/** A TTL cache of loads; `undefined` results (not found) are never kept. Bounded by `maxEntries`. */
export class ReadCache<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #maxEntries: number;

  constructor(maxEntries = 10_000) {
    this.#maxEntries = maxEntries;
  }

  get(key: string, ttlMs: number, load: () => Promise<V>, now = Date.now()): Promise<V> {
    const hit = this.#entries.get(key);
    if (hit && hit.expiresAt > now && hit.version === version) return hit.value;
    const value = load();
    const entry: Entry<V> = { value, expiresAt: now + ttlMs, version };
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, entry);
    // A failed or empty load is not an answer to keep.
    value.then(
      (v) => {
        if (v === undefined && this.#entries.get(key) === entry) this.#entries.delete(key);
      },
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      },
    );
    return value;
  }
}

// ── the cached reads ─────────────────────────────────────────────────────────

const keyRows = new ReadCache<ApiKeyRow[] | undefined>();
const modelEntries = new ReadCache<ModelEntry | undefined>();
const limitRows = new ReadCache<EffectiveLimits>();

/** Key rows sharing `prefix` (auth compares the hash). */
export function cachedKeysByPrefix(env: Env, prefix: string): Promise<ApiKeyRow[] | undefined> {
  return keyRows.get(prefix, readCacheTtlMs(env), async () => {
    const rows = await keysByPrefix(database(env.DB), prefix);
    return rows.length > 0 ? rows : undefined;
  });
}

export function cachedModelEntry(env: Env, modelId: string): Promise<ModelEntry | undefined> {
  return modelEntries.get(modelId, readCacheTtlMs(env), () => modelEntry(database(env.DB), modelId));
}

export function cachedLimits(env: Env, orgId: string, keyId: string): Promise<EffectiveLimits> {
  return limitRows.get(`${orgId}\n${keyId}`, readCacheTtlMs(env), () => limitsFor(env.DB, orgId, keyId));
}
