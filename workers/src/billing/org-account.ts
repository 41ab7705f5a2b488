/**
 * OrgAccount: one Durable Object per organisation (`idFromName(orgId)`), holding
 *   - a mirror of the org's prepaid balance (built once from the D1 credit ledger, then kept here),
 *   - the open credit reservations of its in-flight requests,
 *   - the org-wide rate-limit window,
 *   - settlement records, so a retried settle or a reused request id never bills twice.
 *
 * Why an object and not D1 alone: "balance never below zero" across concurrent requests needs
 * check-and-reserve to be one atomic step. Every public method decides synchronously (SQLite
 * storage calls are synchronous), so no two calls can interleave between reading and writing.
 *
 * Money is integer micro-dollars. The invariant after every method: balance >= 0 and, while no
 * late settlement has arrived, balance >= sum of open reservations.
 */
import { DurableObject } from 'cloudflare:workers';
import { closeReservation, ledgerBalance } from './ledger.ts';
import type { Admission, WindowState } from './limits/lease-window.ts';
import { WINDOW_MS, type LeaseWindow } from './limits/lease-window.ts';
import type { Limits } from './limits/plans.ts';
import { openLeaseWindow } from './limits/lease-table.ts';

/** A reservation still open after this long belongs to a request that crashed or hung: release it. */
export const DEFAULT_RESERVATION_TTL_MS = 15 * 60_000;
/**
 * Settlement records older than this are dropped here. Request ids are made by the worker, so a
 * repeat settle only comes from retries within a request's life (minutes, at most the TTL); the D1
 * ledger's unique request_id guards the durable record beyond that.
 */
const SETTLEMENT_RETENTION_MS = 24 * 3600_000;

export interface Reservation {
  requestId: string;
  keyId: string;
  amountMicros: number;
  createdAt: number;
  expiresAt: number;
}

export interface AccountState {
  orgId: string;
  balanceMicros: number;
  reservedMicros: number;
  /** What a new reservation can take: balance minus open reservations, never negative. */
  availableMicros: number;
  openReservations: number;
}

export interface ReserveInput {
  orgId: string;
  requestId: string;
  keyId: string;
  /** Worst-case cost: prompt tokens at the cache-miss price + max_tokens at the output price. */
  amountMicros: number;
  ttlMs?: number;
}

export interface AdmitInput extends ReserveInput {
  /** The org's limits (plan defaults + admin overrides). */
  limits: Limits;
  /** Worst-case tokens for the TPM window: prompt + max_tokens. */
  tokens: number;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation; account: AccountState }
  | { ok: false; error: 'insufficient_credit'; requiredMicros: number; account: AccountState }
  /** The request id was already reserved (in flight) or settled: a retry must not be billed again. */
  | { ok: false; error: 'duplicate_request'; status: 'in_flight' | 'settled'; account: AccountState };

export type AdmitResult =
  | (Extract<ReserveResult, { ok: true }> & { rate: WindowState })
  | Extract<ReserveResult, { ok: false }>
  | { ok: false; error: 'rate_limited'; admission: Extract<Admission, { ok: false }>; account: AccountState };

export interface SettleInput {
  orgId: string;
  requestId: string;
  /** Real cost of what was produced (cancelled and failed requests included). */
  costMicros: number;
  /** Real prompt + completion tokens, for the org's TPM window; null if unknown. */
  tokens: number | null;
}

export interface Settlement {
  requestId: string;
  /** 'settled': this call charged. 'duplicate': an earlier call already did; nothing changed. */
  status: 'settled' | 'duplicate';
  reservedMicros: number;
  chargedMicros: number;
  /** Cost that could not be charged because the balance ran out (only when cost > reservation). */
  shortfallMicros: number;
  account: AccountState;
}

interface Account {
  orgId: string;
  balanceMicros: number;
  /** Ledger rows up to this id are included in the balance; grants are applied once by id. */
  ledgerThroughId: number;
}

type Row = Record<string, SqlStorageValue>;

export class OrgAccount extends DurableObject<Env> {
  #account: Account | null = null;
  readonly #reservations = new Map<string, Reservation>();
  #window!: LeaseWindow;
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      const sql = ctx.storage.sql;
      sql.exec(`CREATE TABLE IF NOT EXISTS account (
        id INTEGER PRIMARY KEY CHECK (id = 1), org_id TEXT NOT NULL,
        balance_micros INTEGER NOT NULL, ledger_through_id INTEGER NOT NULL)`);
      sql.exec(`CREATE TABLE IF NOT EXISTS reservations (
        request_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, amount_micros INTEGER NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)`);
      sql.exec(`CREATE TABLE IF NOT EXISTS settlements (
        request_id TEXT PRIMARY KEY, reserved_micros INTEGER NOT NULL, charged_micros INTEGER NOT NULL,
        outcome TEXT NOT NULL, settled_at INTEGER NOT NULL,
        -- 0 until an expiry has been written to the D1 reservation record (by the alarm)
        recorded INTEGER NOT NULL DEFAULT 1)`);
      sql.exec(`CREATE TABLE IF NOT EXISTS grants (ledger_id INTEGER PRIMARY KEY, amount_micros INTEGER NOT NULL)`);
      const account = sql.exec<Row>('SELECT org_id, balance_micros, ledger_through_id FROM account').toArray()[0];
      if (account) {
        this.#account = {
          orgId: String(account.org_id),
          balanceMicros: Number(account.balance_micros),
          ledgerThroughId: Number(account.ledger_through_id),
        };
      }
      for (const r of sql.exec<Row>('SELECT * FROM reservations').toArray()) {
        this.#reservations.set(String(r.request_id), {
          requestId: String(r.request_id),
          keyId: String(r.key_id),
          amountMicros: Number(r.amount_micros),
          createdAt: Number(r.created_at),
          expiresAt: Number(r.expires_at),
        });
      }
      this.#window = openLeaseWindow(sql, 'org_leases');
      this.#alarmAt = await ctx.storage.getAlarm();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Public methods (called over RPC by the credit and rate-limit middleware, or directly by tests)

  /** Org rate limits and credit in one atomic step: a 402 never uses a rate slot, a 429 never holds credit. */
  async admit(input: AdmitInput): Promise<AdmitResult> {
    await this.#ready(input.orgId);
    const now = Date.now();
    const ttlMs = input.ttlMs ?? DEFAULT_RESERVATION_TTL_MS;
    const duplicate = this.#duplicate(input.requestId);
    if (duplicate) return duplicate;
    const admission = this.#window.tryAcquire(input.requestId, input.tokens, input.limits, now, ttlMs);
    if (!admission.ok) return { ok: false, error: 'rate_limited', admission, account: this.#state() };
    const reserved = this.#reserve(input, now, ttlMs);
    if (!reserved.ok) this.#window.cancel(input.requestId);
    await this.#scheduleAlarm();
    return reserved.ok ? { ...reserved, rate: admission.state } : reserved;
  }

  /** Credit only: holds `amountMicros` for the request if the available balance covers it. */
  async reserve(input: ReserveInput): Promise<ReserveResult> {
    await this.#ready(input.orgId);
    const result = this.#duplicate(input.requestId) ?? this.#reserve(input, Date.now(), input.ttlMs ?? DEFAULT_RESERVATION_TTL_MS);
    await this.#scheduleAlarm();
    return result;
  }

  /**
   * The request ended (finished, cancelled or failed): charge its real cost, release the rest of
   * its reservation, close its org lease. Idempotent: a second settle of the same id is a no-op.
   * A settle after the reservation expired still charges (the tokens were produced), never below zero.
   */
  async settle(input: SettleInput): Promise<Settlement> {
    const account = await this.#ready(input.orgId);
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    const previous = sql
      .exec<Row>('SELECT reserved_micros, charged_micros, outcome FROM settlements WHERE request_id = ?', input.requestId)
      .toArray()[0];
    if (previous && previous.outcome !== 'expired') {
      return {
        requestId: input.requestId,
        status: 'duplicate',
        reservedMicros: Number(previous.reserved_micros),
        chargedMicros: Number(previous.charged_micros),
        shortfallMicros: 0,
        account: this.#state(),
      };
    }
    const reservation = this.#reservations.get(input.requestId);
    const reservedMicros = reservation?.amountMicros ?? Number(previous?.reserved_micros ?? 0);
    // Releasing this reservation first means its own hold never stands in the way of its charge.
    if (reservation) this.#dropReservation(input.requestId);
    const chargedMicros = Math.min(input.costMicros, account.balanceMicros);
    this.#setBalance(account.balanceMicros - chargedMicros);
    sql.exec(
      `INSERT OR REPLACE INTO settlements (request_id, reserved_micros, charged_micros, outcome, settled_at)
       VALUES (?, ?, ?, 'settled', ?)`,
      input.requestId,
      reservedMicros,
      chargedMicros,
      now,
    );
    this.#window.finish(input.requestId, input.tokens);
    return {
      requestId: input.requestId,
      status: 'settled',
      reservedMicros,
      chargedMicros,
      shortfallMicros: input.costMicros - chargedMicros,
      account: this.#state(),
    };
  }

  /** Adds credit from ledger row `ledgerId` (already written to D1). Applied at most once per row. */
  async grant(orgId: string, ledgerId: number, amountMicros: number): Promise<AccountState> {
    const account = await this.#ready(orgId);
    // Rows up to ledgerThroughId were in the sum the mirror was built from.
    if (ledgerId <= account.ledgerThroughId) return this.#state();
    const sql = this.ctx.storage.sql;
    if (sql.exec('SELECT 1 FROM grants WHERE ledger_id = ?', ledgerId).toArray().length > 0) return this.#state();
    sql.exec('INSERT INTO grants (ledger_id, amount_micros) VALUES (?, ?)', ledgerId, amountMicros);
    this.#setBalance(Math.max(0, account.balanceMicros + amountMicros));
    return this.#state();
  }

  async account(orgId: string): Promise<AccountState> {
    await this.#ready(orgId);
    this.#expire(Date.now());
    return this.#state();
  }

  rateState(limits: Limits): WindowState {
    this.#window.prune(Date.now());
    return this.#window.state(limits, Date.now());
  }

  getReservation(requestId: string): Reservation | null {
    return this.#reservations.get(requestId) ?? null;
  }

  /**
   * Releases reservations whose request crashed or timed out, writes those expiries to the D1
   * reservation records, and trims old records. A failed D1 write is retried by the next alarm.
   */
  override async alarm(): Promise<void> {
    this.#alarmAt = null;
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    this.#expire(now);
    this.#window.prune(now);
    sql.exec('DELETE FROM settlements WHERE settled_at < ? AND recorded = 1', now - SETTLEMENT_RETENTION_MS);
    const unrecorded = sql.exec<Row>("SELECT request_id, settled_at FROM settlements WHERE recorded = 0").toArray();
    for (const r of unrecorded) {
      await closeReservation(this.env.DB, String(r.request_id), 'expired', 0, Number(r.settled_at));
      sql.exec('UPDATE settlements SET recorded = 1 WHERE request_id = ?', r.request_id);
    }
    await this.#scheduleAlarm();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals: everything below is synchronous except loading and alarm scheduling.

  /** The balance mirror, built from the D1 ledger the first time this org is seen. */
  async #ready(orgId: string): Promise<Account> {
    if (!this.#account) {
      await this.ctx.blockConcurrencyWhile(async () => {
        if (this.#account) return; // another call loaded it while this one waited
        const { balanceMicros, throughId } = await ledgerBalance(this.env.DB, orgId);
        this.#account = { orgId, balanceMicros: Math.max(0, balanceMicros), ledgerThroughId: throughId };
        this.ctx.storage.sql.exec(
          'INSERT INTO account (id, org_id, balance_micros, ledger_through_id) VALUES (1, ?, ?, ?)',
          orgId,
          this.#account.balanceMicros,
          throughId,
        );
      });
    }
    const account = this.#account!;
    if (account.orgId !== orgId) throw new Error(`OrgAccount for ${account.orgId} called for ${orgId}`);
    return account;
  }

  #duplicate(requestId: string): Extract<ReserveResult, { error: 'duplicate_request' }> | null {
    if (this.#reservations.has(requestId)) {
      return { ok: false, error: 'duplicate_request', status: 'in_flight', account: this.#state() };
    }
    const settled = this.ctx.storage.sql.exec('SELECT 1 FROM settlements WHERE request_id = ?', requestId).toArray();
    if (settled.length > 0) return { ok: false, error: 'duplicate_request', status: 'settled', account: this.#state() };
    return null;
  }

  #reserve(input: ReserveInput, now: number, ttlMs: number): ReserveResult {
    if (!Number.isSafeInteger(input.amountMicros) || input.amountMicros < 0) {
      throw new RangeError(`amountMicros must be a non-negative integer, got ${input.amountMicros}`);
    }
    this.#expire(now);
    const state = this.#state();
    if (input.amountMicros > state.availableMicros) {
      return { ok: false, error: 'insufficient_credit', requiredMicros: input.amountMicros, account: state };
    }
    const reservation: Reservation = {
      requestId: input.requestId,
      keyId: input.keyId,
      amountMicros: input.amountMicros,
      createdAt: now,
      expiresAt: now + ttlMs,
    };
    this.#reservations.set(reservation.requestId, reservation);
    this.ctx.storage.sql.exec(
      'INSERT INTO reservations (request_id, key_id, amount_micros, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
      reservation.requestId,
      reservation.keyId,
      reservation.amountMicros,
      reservation.createdAt,
      reservation.expiresAt,
    );
    return { ok: true, reservation, account: this.#state() };
  }

  /** Stale reservations release their hold and are recorded as 'expired' (charged 0 unless settled later). */
  #expire(now: number): void {
    for (const r of this.#reservations.values()) {
      if (r.expiresAt > now) continue;
      this.#dropReservation(r.requestId);
      this.ctx.storage.sql.exec(
        `INSERT OR IGNORE INTO settlements (request_id, reserved_micros, charged_micros, outcome, settled_at, recorded)
         VALUES (?, ?, 0, 'expired', ?, 0)`,
        r.requestId,
        r.amountMicros,
        now,
      );
    }
  }

  #dropReservation(requestId: string): void {
    this.#reservations.delete(requestId);
    this.ctx.storage.sql.exec('DELETE FROM reservations WHERE request_id = ?', requestId);
  }

  #setBalance(balanceMicros: number): void {
    this.#account!.balanceMicros = balanceMicros;
    this.ctx.storage.sql.exec('UPDATE account SET balance_micros = ? WHERE id = 1', balanceMicros);
  }

  #state(): AccountState {
    const account = this.#account!;
    let reservedMicros = 0;
    for (const r of this.#reservations.values()) reservedMicros += r.amountMicros;
    return {
      orgId: account.orgId,
      balanceMicros: account.balanceMicros,
      reservedMicros,
      availableMicros: Math.max(0, account.balanceMicros - reservedMicros),
      openReservations: this.#reservations.size,
    };
  }

  /** Wake at the earliest reservation expiry (so holds are released without traffic), else for cleanup. */
  async #scheduleAlarm(): Promise<void> {
    let next: number | null = null;
    for (const r of this.#reservations.values()) if (next === null || r.expiresAt < next) next = r.expiresAt;
    const leaseChange = this.#window.nextChangeAt();
    if (next === null && leaseChange !== null) next = Math.max(leaseChange, Date.now() + WINDOW_MS);
    // Expiries found between alarms (by a call) still have to reach D1: wake now.
    if (this.ctx.storage.sql.exec('SELECT 1 FROM settlements WHERE recorded = 0 LIMIT 1').toArray().length > 0) next = Date.now();
    if (next === null || (this.#alarmAt !== null && this.#alarmAt <= next)) return;
    this.#alarmAt = next;
    await this.ctx.storage.setAlarm(next);
  }
}
