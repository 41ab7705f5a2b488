/**
 * The `LeaseWindow`s of one Durable Object (the org's window and one per key), persisted in its
 * SQLite storage: loaded once when the object starts, written through on every change. `sql.exec`
 * is synchronous, so persisting never opens the input gate in the middle of an admission decision.
 */
import { LeaseWindow, type Lease } from './lease-window.ts';

interface LeaseRow extends Record<string, SqlStorageValue> {
  scope: string;
  id: string;
  started_at: number;
  tokens: number;
  open: number;
  expires_at: number;
}

export class LeaseWindows {
  readonly #sql: SqlStorage;
  readonly #table: string;
  readonly #windows = new Map<string, LeaseWindow>();

  /** `table` is a fixed identifier chosen by the object (never user input): it is spliced into SQL. */
  constructor(sql: SqlStorage, table: string) {
    this.#sql = sql;
    this.#table = table;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS ${table} (
         scope TEXT NOT NULL, id TEXT NOT NULL, started_at INTEGER NOT NULL, tokens INTEGER NOT NULL,
         open INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (scope, id))`,
    );
    const byScope = new Map<string, Lease[]>();
    for (const r of sql.exec<LeaseRow>(`SELECT scope, id, started_at, tokens, open, expires_at FROM ${table}`).toArray()) {
      const leases = byScope.get(r.scope) ?? [];
      leases.push({ id: r.id, startedAt: r.started_at, tokens: r.tokens, open: r.open === 1, expiresAt: r.expires_at });
      byScope.set(r.scope, leases);
    }
    for (const [scope, leases] of byScope) this.#windows.set(scope, this.#open(scope, leases));
  }

  /** The window of `scope` ("org", "key:<id>"), created empty on first use. */
  get(scope: string): LeaseWindow {
    let window = this.#windows.get(scope);
    if (!window) {
      window = this.#open(scope, []);
      this.#windows.set(scope, window);
    }
    return window;
  }

  /** Prunes every window and forgets the ones left empty (a key not used for a minute). */
  prune(now: number): void {
    for (const [scope, window] of this.#windows) {
      window.prune(now);
      if (window.nextChangeAt() === null) this.#windows.delete(scope);
    }
  }

  nextChangeAt(): number | null {
    let next: number | null = null;
    for (const window of this.#windows.values()) {
      const at = window.nextChangeAt();
      if (at !== null && (next === null || at < next)) next = at;
    }
    return next;
  }

  #open(scope: string, leases: Lease[]): LeaseWindow {
    const table = this.#table;
    return new LeaseWindow(leases, {
      put: (l) =>
        this.#sql.exec(
          `INSERT OR REPLACE INTO ${table} (scope, id, started_at, tokens, open, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
          scope,
          l.id,
          l.startedAt,
          l.tokens,
          l.open ? 1 : 0,
          l.expiresAt,
        ),
      delete: (id) => this.#sql.exec(`DELETE FROM ${table} WHERE scope = ? AND id = ?`, scope, id),
    });
  }
}
