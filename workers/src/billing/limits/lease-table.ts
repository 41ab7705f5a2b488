/**
 * A `LeaseWindow` persisted in a Durable Object's SQLite storage: loaded once when the object
 * starts, written through on every change. `sql.exec` is synchronous, so persisting never opens
 * the input gate in the middle of an admission decision.
 */
import { LeaseWindow, type Lease } from './lease-window.ts';

interface LeaseRow extends Record<string, SqlStorageValue> {
  id: string;
  started_at: number;
  tokens: number;
  open: number;
  expires_at: number;
}

/** `table` is a fixed identifier chosen by the object (never user input): it is spliced into SQL. */
export function openLeaseWindow(sql: SqlStorage, table: string): LeaseWindow {
  sql.exec(
    `CREATE TABLE IF NOT EXISTS ${table} (
       id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, tokens INTEGER NOT NULL,
       open INTEGER NOT NULL, expires_at INTEGER NOT NULL)`,
  );
  const leases: Lease[] = sql
    .exec<LeaseRow>(`SELECT id, started_at, tokens, open, expires_at FROM ${table}`)
    .toArray()
    .map((r) => ({ id: r.id, startedAt: r.started_at, tokens: r.tokens, open: r.open === 1, expiresAt: r.expires_at }));
  return new LeaseWindow(leases, {
    put: (l) =>
      sql.exec(
        `INSERT OR REPLACE INTO ${table} (id, started_at, tokens, open, expires_at) VALUES (?, ?, ?, ?, ?)`,
        l.id,
        l.startedAt,
        l.tokens,
        l.open ? 1 : 0,
        l.expiresAt,
      ),
    delete: (id) => sql.exec(`DELETE FROM ${table} WHERE id = ?`, id),
  });
}
