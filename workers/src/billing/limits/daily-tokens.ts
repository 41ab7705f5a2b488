/**
 * Tokens per day (TPD), beside the 60 s windows of lease-window.ts: prompt + completion tokens
 * admitted per UTC day, per scope (the org, each key). A fixed day rather than a sliding 24 h log:
 * a log would keep one entry per request for a day (millions at the top tiers); a counter per day
 * is one row. A request is counted at its worst case when admitted and corrected to its real count
 * when it finishes, in the day it was admitted in, as TPM is.
 *
 * Synchronous and persisted in the owning Durable Object's SQLite storage, like LeaseWindows.
 */

const DAY_MS = 86_400_000;

/** What the x-ratelimit-*-tokens-day headers report for one scope. */
export interface DailyState {
  limit: number;
  remaining: number;
  /** ms until the UTC day ends and the count starts again. */
  resetMs: number;
}

export type DailyAdmission =
  | { ok: true; state: DailyState | null }
  | { ok: false; retryAfterMs: number; tooLarge: boolean; state: DailyState };

type Row = Record<string, SqlStorageValue>;

export function utcDayStart(now: number): number {
  return now - (now % DAY_MS);
}

export class DailyTokens {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS daily_tokens (
      scope TEXT NOT NULL, day INTEGER NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (scope, day))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS daily_token_holds (
      request_id TEXT NOT NULL, scope TEXT NOT NULL, day INTEGER NOT NULL, tokens INTEGER NOT NULL,
      PRIMARY KEY (request_id, scope))`);
  }

  /** Counts `tokens` for request `id` in `scope` today, unless that passes `limit` (null: no daily limit). */
  tryAcquire(scope: string, id: string, tokens: number, limit: number | null | undefined, now: number): DailyAdmission {
    const day = utcDayStart(now);
    const used = this.#used(scope, day);
    const resetMs = day + DAY_MS - now;
    if (limit !== null && limit !== undefined && used + tokens > limit) {
      return { ok: false, retryAfterMs: resetMs, tooLarge: tokens > limit, state: { limit, remaining: Math.max(0, limit - used), resetMs } };
    }
    this.#sql.exec(
      `INSERT INTO daily_tokens (scope, day, tokens) VALUES (?, ?, ?)
       ON CONFLICT (scope, day) DO UPDATE SET tokens = tokens + excluded.tokens`,
      scope,
      day,
      tokens,
    );
    this.#sql.exec('INSERT OR REPLACE INTO daily_token_holds (request_id, scope, day, tokens) VALUES (?, ?, ?, ?)', id, scope, day, tokens);
    if (limit === null || limit === undefined) return { ok: true, state: null };
    return { ok: true, state: { limit, remaining: Math.max(0, limit - used - tokens), resetMs } };
  }

  /** Replaces the worst case of request `id` with its real count (null: unknown, the worst case stays). */
  finish(id: string, realTokens: number | null): void {
    for (const h of this.#sql.exec<Row>('SELECT scope, day, tokens FROM daily_token_holds WHERE request_id = ?', id).toArray()) {
      if (realTokens !== null) {
        this.#sql.exec('UPDATE daily_tokens SET tokens = MAX(0, tokens + ?) WHERE scope = ? AND day = ?', realTokens - Number(h.tokens), h.scope, h.day);
      }
    }
    this.#sql.exec('DELETE FROM daily_token_holds WHERE request_id = ?', id);
  }

  /** Forgets an admission another check refused. */
  cancel(id: string): void {
    this.finish(id, 0);
  }

  state(scope: string, limit: number | null | undefined, now: number): DailyState | null {
    if (limit === null || limit === undefined) return null;
    const day = utcDayStart(now);
    return { limit, remaining: Math.max(0, limit - this.#used(scope, day)), resetMs: day + DAY_MS - now };
  }

  /** Days before yesterday are never read again; holds of those days can no longer correct anything. */
  prune(now: number): void {
    const keepFrom = utcDayStart(now) - DAY_MS;
    this.#sql.exec('DELETE FROM daily_tokens WHERE day < ?', keepFrom);
    this.#sql.exec('DELETE FROM daily_token_holds WHERE day < ?', keepFrom);
  }

  #used(scope: string, day: number): number {
    const row = this.#sql.exec<Row>('SELECT tokens FROM daily_tokens WHERE scope = ? AND day = ?', scope, day).toArray()[0];
    return row ? Number(row.tokens) : 0;
  }
}
