/**
 * RateLimiter: one Durable Object per API key (`idFromName('key:' + keyId)`), holding that key's
 * sliding window. Every edge instance asks the same object, so "10 per minute" means 10 across
 * the whole fleet, not 10 per isolate.
 *
 * The limits travel with each call (the caller resolves plan defaults + admin overrides from D1),
 * so an admin change applies to the very next request and the object stores only leases.
 *
 * Org-wide limits are enforced by `OrgAccount`, in the same atomic step as the credit reservation.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Admission, WindowState } from '../billing/limits/lease-window.ts';
import { WINDOW_MS, type LeaseWindow } from '../billing/limits/lease-window.ts';
import type { Limits } from '../billing/limits/plans.ts';
import { openLeaseWindow } from '../billing/limits/lease-table.ts';

/** A lease still open after this long belongs to a request that crashed or hung: stop counting it. */
export const DEFAULT_LEASE_TTL_MS = 15 * 60_000;

export class RateLimiter extends DurableObject<Env> {
  #window!: LeaseWindow;
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.#window = openLeaseWindow(ctx.storage.sql, 'leases');
      this.#alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** Admits request `id` (worst-case `tokens`) if the key's limits allow it. Idempotent per id. */
  async acquire(id: string, tokens: number, limits: Limits, ttlMs = DEFAULT_LEASE_TTL_MS): Promise<Admission> {
    // Decided synchronously: no other call to this object can run between the check and the write.
    const admission = this.#window.tryAcquire(id, tokens, limits, Date.now(), ttlMs);
    if (admission.ok) await this.#scheduleCleanup();
    return admission;
  }

  /** The request ended: stop counting it as in flight, and count its real tokens if known. */
  finish(id: string, tokens: number | null): boolean {
    return this.#window.finish(id, tokens);
  }

  /** Undo an admission another check refused, so it costs the key nothing. */
  cancel(id: string): boolean {
    return this.#window.cancel(id);
  }

  state(limits: Limits): WindowState {
    this.#window.prune(Date.now());
    return this.#window.state(limits, Date.now());
  }

  /** Storage cleanup only: every call prunes on its own, so correctness never waits for an alarm. */
  override async alarm(): Promise<void> {
    this.#alarmAt = null;
    this.#window.prune(Date.now());
    await this.#scheduleCleanup();
  }

  /** One alarm at a time, no earlier than a window from now: cleanup is batched, not per lease. */
  async #scheduleCleanup(): Promise<void> {
    const next = this.#window.nextChangeAt();
    if (next === null || this.#alarmAt !== null) return;
    this.#alarmAt = Math.max(next, Date.now() + WINDOW_MS);
    await this.ctx.storage.setAlarm(this.#alarmAt);
  }
}
