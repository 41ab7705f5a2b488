/**
 * ResponseCache: one Durable Object per organization (`idFromName(orgId)`) holding that org's opt-in
 * exact-match responses (workers/src/response-cache/). One object per org makes isolation structural:
 * no key, however crafted, reaches another org's entries.
 */
import { DurableObject } from 'cloudflare:workers';
import type { TokenLogprob } from '../../../shared/protocol.ts';

/** One choice of a stored answer, as the node produced it. */
export interface CachedChoice {
  text: string;
  /** The choice's token ids: the response's size, kept for statistics and debugging. */
  tokenIds: number[];
  /** Present when the request asked for logprobs (then they are part of the answer). */
  logprobs?: TokenLogprob[];
  finishReason: 'stop' | 'length';
}

export interface CachedResponse {
  /** By choice index: one unless the request asked for n > 1. */
  choices: CachedChoice[];
  promptTokens: number;
  storedAt: number;
}

export class ResponseCache extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        'CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL)',
      );
      ctx.storage.sql.exec('CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at)');
    });
  }

  /** The live entry for `key`, or null (absent or expired). */
  get(key: string, now = Date.now()): CachedResponse | null {
    const rows = this.ctx.storage.sql.exec<{ body: string }>('SELECT body FROM responses WHERE key = ? AND expires_at > ?', key, now).toArray();
    return rows.length > 0 ? (JSON.parse(rows[0].body) as CachedResponse) : null;
  }

  /** Stores (or refreshes) an entry for `ttlMs`; expired entries are dropped on the way. */
  put(key: string, entry: CachedResponse, ttlMs: number, now = Date.now()): void {
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      sql.exec('INSERT OR REPLACE INTO responses (key, body, expires_at) VALUES (?, ?, ?)', key, JSON.stringify(entry), now + ttlMs);
      sql.exec('DELETE FROM responses WHERE expires_at <= ?', now);
    });
  }
}
