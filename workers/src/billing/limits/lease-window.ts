/**
 * Exact sliding-window rate limiting over "leases": one lease per admitted request, remembered for
 * the 60 s window (for RPM and TPM) and, while open, for concurrency.
 *
 * Pure and synchronous: the Durable Object that owns a window calls it without awaiting anything in
 * between, so two requests to the same object can never both see the last free slot. Persistence is
 * the caller's: every change is reported to `store` (the objects write it to their SQLite storage).
 *
 * A sliding log rather than a fixed minute or a token bucket: it is exact ("at most N in any 60 s"),
 * its reset times are real instants, and its memory is bounded by rpm + concurrency leases.
 */
import type { Limits } from './plans.ts';

export const WINDOW_MS = 60_000;

export interface Lease {
  id: string;
  /** ms since epoch when admitted. */
  startedAt: number;
  /** Worst case while open; the real prompt + completion count once finished. */
  tokens: number;
  open: boolean;
  /** An open lease past this instant is treated as finished (its request crashed or timed out). */
  expiresAt: number;
}

export interface LeaseStore {
  put(lease: Lease): void;
  delete(id: string): void;
}

/** What the x-ratelimit-* headers report. Reset = ms until the window is back to its full limit. */
export interface WindowState {
  limits: Limits;
  remainingRequests: number;
  remainingTokens: number;
  resetRequestsMs: number;
  resetTokensMs: number;
  inFlight: number;
}

/** 'tokens_per_day' is refused by daily-tokens.ts, never by a window; it shares the 429 path. */
export type RejectReason = 'requests' | 'tokens' | 'concurrency' | 'tokens_per_day';

export type Admission =
  | { ok: true; duplicate: boolean; state: WindowState }
  | {
      ok: false;
      reason: RejectReason;
      /** ms until retrying can succeed (a lower bound for concurrency: nobody knows when a request ends). */
      retryAfterMs: number;
      /** The request alone needs more tokens than the per-minute limit: retrying never helps. */
      tooLarge: boolean;
      state: WindowState;
    };

/** Nobody knows when an in-flight request ends: suggest a short wait. */
const CONCURRENCY_RETRY_MS = 1_000;

export class LeaseWindow {
  readonly #leases = new Map<string, Lease>();
  readonly #store: LeaseStore;

  constructor(leases: Iterable<Lease>, store: LeaseStore) {
    for (const lease of leases) this.#leases.set(lease.id, lease);
    this.#store = store;
  }

  /** Admits the request if all three limits allow it, opening lease `id`. Idempotent per id. */
  tryAcquire(id: string, tokens: number, limits: Limits, now: number, ttlMs: number): Admission {
    this.prune(now);
    if (this.#leases.has(id)) return { ok: true, duplicate: true, state: this.state(limits, now) };

    const inWindow = this.#inWindow(now);
    const usedTokens = inWindow.reduce((sum, l) => sum + l.tokens, 0);
    const inFlight = this.#openCount();
    const reject = (reason: RejectReason, retryAfterMs: number, tooLarge = false): Admission => ({
      ok: false,
      reason,
      retryAfterMs: Math.max(0, retryAfterMs),
      tooLarge,
      state: this.state(limits, now),
    });

    if (inFlight >= limits.concurrency) return reject('concurrency', CONCURRENCY_RETRY_MS, limits.concurrency === 0);
    if (inWindow.length >= limits.rpm) {
      if (limits.rpm === 0) return reject('requests', WINDOW_MS, true);
      // The (n - rpm + 1)-th oldest lease has to leave the window before one more fits.
      const oldest = sortByStart(inWindow)[inWindow.length - limits.rpm];
      return reject('requests', oldest.startedAt + WINDOW_MS - now);
    }
    if (usedTokens + tokens > limits.tpm) {
      if (tokens > limits.tpm) return reject('tokens', WINDOW_MS, true);
      return reject('tokens', this.#tokensFreeAt(inWindow, usedTokens + tokens - limits.tpm) - now);
    }

    const lease: Lease = { id, startedAt: now, tokens, open: true, expiresAt: now + ttlMs };
    this.#leases.set(id, lease);
    this.#store.put(lease);
    return { ok: true, duplicate: false, state: this.state(limits, now) };
  }

  /** Closes the lease; `tokens` (when known) replaces the worst case it was admitted with. */
  finish(id: string, tokens: number | null): boolean {
    const lease = this.#leases.get(id);
    if (!lease) return false;
    if (!lease.open && tokens === null) return true;
    lease.open = false;
    if (tokens !== null) lease.tokens = tokens;
    this.#store.put(lease);
    return true;
  }

  /** Forgets an admission entirely, as if it never happened (another limit refused the request). */
  cancel(id: string): boolean {
    if (!this.#leases.delete(id)) return false;
    this.#store.delete(id);
    return true;
  }

  /** Closes expired open leases and forgets closed ones that left the window. */
  prune(now: number): void {
    for (const lease of this.#leases.values()) {
      if (lease.open && lease.expiresAt <= now) {
        lease.open = false;
        this.#store.put(lease);
      }
      if (!lease.open && lease.startedAt + WINDOW_MS <= now) {
        this.#leases.delete(lease.id);
        this.#store.delete(lease.id);
      }
    }
  }

  state(limits: Limits, now: number): WindowState {
    const inWindow = this.#inWindow(now);
    let usedTokens = 0;
    // The window is back to its full limit once its newest lease (newest with tokens) leaves it.
    // Loops, not Math.max(...spread): an admin may set a limit far above the engine's argument cap.
    let lastStart = now - WINDOW_MS;
    let lastTokenStart = now - WINDOW_MS;
    for (const l of inWindow) {
      usedTokens += l.tokens;
      lastStart = Math.max(lastStart, l.startedAt);
      if (l.tokens > 0) lastTokenStart = Math.max(lastTokenStart, l.startedAt);
    }
    return {
      limits,
      remainingRequests: Math.max(0, limits.rpm - inWindow.length),
      remainingTokens: Math.max(0, limits.tpm - usedTokens),
      resetRequestsMs: lastStart + WINDOW_MS - now,
      resetTokensMs: lastTokenStart + WINDOW_MS - now,
      inFlight: this.#openCount(),
    };
  }

  /** The earliest instant something changes without a call: an open lease expiring or a closed one leaving. */
  nextChangeAt(): number | null {
    let next: number | null = null;
    for (const lease of this.#leases.values()) {
      const at = lease.open ? lease.expiresAt : lease.startedAt + WINDOW_MS;
      if (next === null || at < next) next = at;
    }
    return next;
  }

  get(id: string): Lease | undefined {
    return this.#leases.get(id);
  }

  #inWindow(now: number): Lease[] {
    return [...this.#leases.values()].filter((l) => l.startedAt + WINDOW_MS > now);
  }

  #openCount(): number {
    let n = 0;
    for (const lease of this.#leases.values()) if (lease.open) n++;
    return n;
  }

  /** When enough of the oldest leases have left the window to free `excess` tokens. */
  #tokensFreeAt(inWindow: Lease[], excess: number): number {
    let freed = 0;
    for (const lease of sortByStart(inWindow)) {
      freed += lease.tokens;
      if (freed >= excess) return lease.startedAt + WINDOW_MS;
    }
    throw new Error('unreachable: the request alone fits the limit, so emptying the window frees enough');
  }
}

function sortByStart(leases: Lease[]): Lease[] {
  return [...leases].sort((a, b) => a.startedAt - b.startedAt);
}
