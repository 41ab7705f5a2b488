/**
 * OrgAccount: one Durable Object per organisation (`idFromName(orgId)`), holding
 *   - a mirror of the org's prepaid balance (built once from the D1 credit ledger, then kept here),
 *   - the open credit reservations of its in-flight requests,
 *   - the sliding rate-limit windows of the org and of each of its keys, and their tokens per day,
 *   - each key's budget: spend in its current period and the holds of its requests in flight,
 *   - alert triggers (balance below a threshold, a key near its budget) and their outbox,
 *   - settlement records, so a retried settle or a reused request id never bills twice.
 *
 * Why an object and not D1 alone: "balance never below zero" across concurrent requests needs
 * check-and-reserve to be one atomic step. Every public method decides synchronously (SQLite
 * storage calls are synchronous), so no two calls can interleave between reading and writing.
 * The key's limits live here too (keys belong to one org), so admitting a request — key limits,
 * org limits and the credit hold — is one call and one decision: nothing is half-taken.
 *
 * Money is integer micro-dollars. What a settle charges is decided here and only here:
 *   charged = min(real cost, reserved amount, balance)
 * The reservation is the worst case at admission, so the cap only bites when an upstream reports
 * more tokens than the edge counted; the difference is returned as `overrunMicros` and recorded on
 * the usage row, and the D1 ledger debits exactly `charged` (see meter.ts). So both stores apply the
 * same number and neither can go below zero. A key with a budget adds one more bound to the charge,
 * the room left in its period (limits/key-budgets.ts), so a key's charges never pass its cap.
 */
import { DurableObject } from 'cloudflare:workers';
import { grantRefusal } from './credit-ceilings.ts';
import { ledgerBalance, recordExpiry } from './ledger.ts';
import type { Admission, WindowState } from './limits/lease-window.ts';
import { WINDOW_MS } from './limits/lease-window.ts';
import type { Limits } from './limits/plans.ts';
import { LeaseWindows } from './limits/lease-table.ts';
import { RefundBook, type RefundDecision } from './refund-book.ts';
import { DailyTokens, type DailyState } from './limits/daily-tokens.ts';
import { KeyBudgets, type BudgetState, type KeyBudget } from './limits/key-budgets.ts';
import { AlertTriggers } from './alerts/alert-triggers.ts';
import type { AlertThresholds } from './alerts/thresholds.ts';

/** A reservation still open after this long belongs to a request that crashed or hung: release it. */
export const DEFAULT_RESERVATION_TTL_MS = 15 * 60_000;
/**
 * Settlement records older than this are dropped here. Request ids are made by the worker, so a
 * repeat settle only comes from retries within a request's life (minutes, at most the TTL) or from
 * the usage queue's redeliveries (bounded by its retry budget); the D1 ledger's unique request_id
 * guards the durable record beyond that.
 */
const SETTLEMENT_RETENTION_MS = 24 * 3600_000;
/** How soon the alarm retries sending alert events the queue did not take. */
const ALERT_RETRY_MS = 5_000;

export interface Reservation {
  requestId: string;
  keyId: string;
  amountMicros: number;
  createdAt: number;
  /** Pushed back by `ttlMs` on every progress report, so a generation still streaming never expires. */
  expiresAt: number;
  ttlMs: number;
  /** The cost delivered to the client so far, as last reported by the meter; null: never reported. */
  deliveredMicros: number | null;
}

export interface AccountState {
  orgId: string;
  balanceMicros: number;
  reservedMicros: number;
  /** What a new reservation can take: balance minus open reservations, never negative. */
  availableMicros: number;
  openReservations: number;
}

export interface AdmitInput {
  orgId: string;
  requestId: string;
  keyId: string;
  /** Worst-case cost: prompt tokens at the cache-miss price + max_tokens at the output price. */
  amountMicros: number;
  /** Worst-case tokens for the TPM windows: prompt + max_tokens. */
  tokens: number;
  /** The limits in force (plan defaults + admin overrides) for the org and for this key. */
  limits: { org: Limits; key: Limits };
  /** The key's spend cap, held against with amountMicros; null or absent: none. */
  budget?: KeyBudget | null;
  /** The org's alert thresholds as configured now; absent: leave the stored ones. */
  alerts?: AlertThresholds | null;
  ttlMs?: number;
}

export type AdmitResult =
  | {
      ok: true;
      reservation: Reservation;
      account: AccountState;
      rates: WindowState[];
      /** Tokens-per-day state of the key and the org, where a daily limit applies. */
      daily: DailyState[];
      /** The key's budget after this hold; null without one. */
      budget: BudgetState | null;
    }
  /** The key's budget for this period cannot cover the worst case. */
  | { ok: false; error: 'key_budget_exceeded'; budget: BudgetState; requiredMicros: number; account: AccountState }
  | { ok: false; error: 'insufficient_credit'; requiredMicros: number; account: AccountState }
  /** The worst case is not an amount the ledger can hold (past 2^53 µ$): nothing is decided. */
  | { ok: false; error: 'unreservable'; message: string; account: AccountState }
  /** The request id was already admitted (in flight) or settled: a retry must not be billed again. */
  | { ok: false; error: 'duplicate_request'; status: 'in_flight' | 'settled'; account: AccountState }
  | {
      ok: false;
      error: 'rate_limited';
      scope: 'key' | 'organization';
      admission: Extract<Admission, { ok: false }>;
      /** Every window that applies (the refusing one first), for the x-ratelimit-* headers. */
      states: WindowState[];
      /** Tokens-per-day state where a daily limit applies (the refusing one first when TPD refused). */
      daily: DailyState[];
      account: AccountState;
    };

export interface SettleInput {
  orgId: string;
  requestId: string;
  /** Real cost of what was produced (cancelled and failed requests included). */
  costMicros: number;
  /** Real prompt + completion tokens, for the TPM windows; null if unknown. */
  tokens: number | null;
}

export interface Settlement {
  requestId: string;
  /** 'settled': this call charged. 'duplicate': an earlier call already did; nothing changed. */
  status: 'settled' | 'duplicate';
  reservedMicros: number;
  /** What the ledger must debit: min(cost, reserved, balance), the same on every replay. */
  chargedMicros: number;
  /** Cost above what was charged (an upstream that counted more than was reserved). */
  overrunMicros: number;
  account: AccountState;
}

export interface ProgressInput {
  orgId: string;
  requestId: string;
  /** Cost of what has reached the client so far (the meter's count at the request's price). */
  deliveredMicros: number;
}

export type ProgressResult =
  /** Recorded (the largest report wins, capped at the reservation) and the expiry pushed back. */
  | { status: 'recorded'; deliveredMicros: number; expiresAt: number }
  /** No open reservation: the request already settled or expired; a settle will bill it. */
  | { status: 'closed' }
  | { status: 'invalid'; message: string };

export interface RefundInput {
  orgId: string;
  /** The ledger entry the debit will be written under ("stripe:<event id>"): one decision per entry. */
  entryId: string;
  /** The refunded payment (its PaymentIntent id). */
  paymentId: string;
  /** The payment's refunded total so far, in micro-dollars (Stripe's amount_refunded × 10 000). */
  refundedMicros: number;
}

export interface RefundDebit extends RefundDecision {
  /** 'debited': this call decided. 'duplicate': an earlier call did; nothing changed. */
  status: 'debited' | 'duplicate';
  account: AccountState;
}

/** The object's side of a reconciliation: its balance and what it has not finished yet. */
export interface MirrorState extends AccountState {
  /** Ledger rows up to this id were summed when the mirror was built. */
  ledgerThroughId: number;
  /** Ledger grant rows applied since, by id. */
  grantIds: number[];
}

interface Account {
  orgId: string;
  balanceMicros: number;
  ledgerThroughId: number;
}

type Row = Record<string, SqlStorageValue>;

const ORG_WINDOW = 'org';
const keyWindow = (keyId: string) => `key:${keyId}`;

export class OrgAccount extends DurableObject<Env> {
  #account: Account | null = null;
  readonly #reservations = new Map<string, Reservation>();
  #windows!: LeaseWindows;
  #refunds!: RefundBook;
  #daily!: DailyTokens;
  #budgets!: KeyBudgets;
  #alerts!: AlertTriggers;
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
      // Progress reports (delivered so far, the TTL each report renews), added to older objects' tables.
      addMissingColumn(sql, 'reservations', 'ttl_ms', `INTEGER NOT NULL DEFAULT ${DEFAULT_RESERVATION_TTL_MS}`);
      addMissingColumn(sql, 'reservations', 'delivered_micros', 'INTEGER');
      sql.exec(`CREATE TABLE IF NOT EXISTS settlements (
        request_id TEXT PRIMARY KEY, reserved_micros INTEGER NOT NULL, charged_micros INTEGER NOT NULL,
        overrun_micros INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL, settled_at INTEGER NOT NULL)`);
      // Expired reservations not yet written to D1's reservation records (the alarm writes them).
      sql.exec(`CREATE TABLE IF NOT EXISTS unrecorded_expiries (
        request_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, amount_micros INTEGER NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, expired_at INTEGER NOT NULL)`);
      addMissingColumn(sql, 'unrecorded_expiries', 'charged_micros', 'INTEGER NOT NULL DEFAULT 0');
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
          ttlMs: Number(r.ttl_ms),
          deliveredMicros: r.delivered_micros === null ? null : Number(r.delivered_micros),
        });
      }
      this.#windows = new LeaseWindows(sql, 'window_leases');
      this.#refunds = new RefundBook(sql);
      this.#daily = new DailyTokens(sql);
      this.#budgets = new KeyBudgets(sql);
      this.#alerts = new AlertTriggers(sql, env.ALERT_QUEUE);
      this.#alarmAt = await ctx.storage.getAlarm();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Public methods (called over RPC by billing/request-billing.ts and the usage queue, or by tests)

  /**
   * Key limits, org limits and the credit hold in one atomic step: a 402 never uses a rate slot, a
   * 429 never holds credit, and a refusal (or a throw) leaves nothing taken.
   */
  async admit(input: AdmitInput): Promise<AdmitResult> {
    // Checked before anything is taken, so a bad input cannot leave a lease behind.
    await this.#ready(input.orgId);
    if (!Number.isSafeInteger(input.amountMicros) || input.amountMicros < 0) {
      return { ok: false, error: 'unreservable', message: `amountMicros must be a non-negative safe integer, got ${input.amountMicros}`, account: this.#state() };
    }
    if (!Number.isSafeInteger(input.tokens) || input.tokens < 0) {
      return { ok: false, error: 'unreservable', message: `tokens must be a non-negative safe integer, got ${input.tokens}`, account: this.#state() };
    }
    const now = Date.now();
    const ttlMs = input.ttlMs ?? DEFAULT_RESERVATION_TTL_MS;
    const duplicate = this.#duplicate(input.requestId);
    if (duplicate) return duplicate;

    const key = this.#windows.get(keyWindow(input.keyId));
    const org = this.#windows.get(ORG_WINDOW);
    const keyAdmission = key.tryAcquire(input.requestId, input.tokens, input.limits.key, now, ttlMs);
    if (!keyAdmission.ok) {
      return this.#rateLimited('key', keyAdmission, [org.state(input.limits.org, now)]);
    }
    const orgAdmission = org.tryAcquire(input.requestId, input.tokens, input.limits.org, now, ttlMs);
    if (!orgAdmission.ok) {
      key.cancel(input.requestId);
      return this.#rateLimited('organization', orgAdmission, [key.state(input.limits.key, now)]);
    }
    if (input.alerts !== undefined) this.#checkAlerts(() => this.#alerts.configure(input.alerts ?? null, input.orgId, this.#account!.balanceMicros, now));
    this.#expire(now);
    const controls = this.#holdSpendControls(input, now, [keyAdmission.state, orgAdmission.state]);
    if (!controls.ok) {
      key.cancel(input.requestId);
      org.cancel(input.requestId);
      return controls.refusal;
    }
    const state = this.#state();
    if (input.amountMicros > state.availableMicros) {
      key.cancel(input.requestId);
      org.cancel(input.requestId);
      this.#releaseSpendControls(input.requestId);
      return { ok: false, error: 'insufficient_credit', requiredMicros: input.amountMicros, account: state };
    }
    const reservation: Reservation = {
      requestId: input.requestId,
      keyId: input.keyId,
      amountMicros: input.amountMicros,
      createdAt: now,
      expiresAt: now + ttlMs,
      ttlMs,
      deliveredMicros: null,
    };
    this.#reservations.set(reservation.requestId, reservation);
    this.ctx.storage.sql.exec(
      'INSERT INTO reservations (request_id, key_id, amount_micros, created_at, expires_at, ttl_ms) VALUES (?, ?, ?, ?, ?, ?)',
      reservation.requestId,
      reservation.keyId,
      reservation.amountMicros,
      reservation.createdAt,
      reservation.expiresAt,
      reservation.ttlMs,
    );
    await this.#scheduleAlarm();
    // Only a changed threshold can leave an event here; sending it is not the request's wait.
    if (this.#alerts.pending()) this.ctx.waitUntil(this.#flushAlerts());
    return {
      ok: true,
      reservation,
      account: this.#state(),
      rates: [keyAdmission.state, orgAdmission.state],
      daily: controls.daily,
      budget: controls.budget,
    };
  }

  /**
   * The request ended (finished, cancelled or failed): charge min(cost, reserved, balance), release
   * the rest of its reservation, close its leases with the real token count. Idempotent: a second
   * settle of the same id changes nothing and returns the first one's charge, so the usage queue can
   * ask again after a lost answer and write the same debit. A settle after the reservation expired
   * (the request did finish, late) charges only what its expiry did not: the expiry took X (#expire),
   * so this settle takes min(cost, reserved) − X more, when positive, within the balance and the
   * key's budget; the request is never charged twice, nor past min(cost, reserved) beyond X.
   */
  async settle(input: SettleInput): Promise<Settlement> {
    if (!Number.isSafeInteger(input.costMicros) || input.costMicros < 0) {
      throw new RangeError(`costMicros must be a non-negative integer, got ${input.costMicros}`);
    }
    const account = await this.#ready(input.orgId);
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    const previous = sql
      .exec<Row>('SELECT reserved_micros, charged_micros, overrun_micros, outcome FROM settlements WHERE request_id = ?', input.requestId)
      .toArray()[0];
    if (previous && previous.outcome !== 'expired') {
      return {
        requestId: input.requestId,
        status: 'duplicate',
        reservedMicros: Number(previous.reserved_micros),
        chargedMicros: Number(previous.charged_micros),
        overrunMicros: Number(previous.overrun_micros),
        account: this.#state(),
      };
    }
    const reservation = this.#reservations.get(input.requestId);
    // A request never admitted here reserved nothing, so it can be charged nothing.
    const reservedMicros = reservation?.amountMicros ?? Number(previous?.reserved_micros ?? 0);
    // What its expiry already charged (0 unless it expired unsettled).
    const expiredMicros = previous ? Number(previous.charged_micros) : 0;
    // Releasing this reservation first means its own hold never stands in the way of its charge.
    if (reservation) this.#dropReservation(input.requestId);
    // A key with a budget is charged no more than the room left in its period (key-budgets.ts).
    const budgetRoom = this.#budgets.room(input.requestId) ?? Number.MAX_SAFE_INTEGER;
    const dueMicros = Math.max(0, Math.min(input.costMicros, reservedMicros) - expiredMicros);
    const chargedMicros = Math.min(dueMicros, account.balanceMicros, budgetRoom);
    const overrunMicros = Math.max(0, input.costMicros - expiredMicros - chargedMicros);
    this.#setBalance(account.balanceMicros - chargedMicros);
    const budgetCharge = this.#budgets.settle(input.requestId, chargedMicros);
    this.#daily.finish(input.requestId, input.tokens);
    sql.exec(
      `INSERT OR REPLACE INTO settlements (request_id, reserved_micros, charged_micros, overrun_micros, outcome, settled_at)
       VALUES (?, ?, ?, ?, 'settled', ?)`,
      input.requestId,
      reservedMicros,
      chargedMicros,
      overrunMicros,
      now,
    );
    this.#windows.get(ORG_WINDOW).finish(input.requestId, input.tokens);
    if (reservation) this.#windows.get(keyWindow(reservation.keyId)).finish(input.requestId, input.tokens);
    this.#checkAlerts(() => {
      this.#alerts.balanceChanged(account.orgId, account.balanceMicros, now);
      if (budgetCharge) this.#alerts.keySpent(account.orgId, budgetCharge, now);
    });
    const settled = { requestId: input.requestId, status: 'settled' as const, reservedMicros, chargedMicros, overrunMicros, account: this.#state() };
    await this.#flushAlerts();
    return settled;
  }

  /**
   * The meter's report of a request still streaming: the cost delivered to the client so far. It is
   * what an expiry charges if the request is never settled (#expire), and it pushes the expiry back
   * by the reservation's TTL, so a generation that keeps reporting never expires mid-flight.
   */
  async progress(input: ProgressInput): Promise<ProgressResult> {
    if (!Number.isSafeInteger(input.deliveredMicros) || input.deliveredMicros < 0) {
      return { status: 'invalid', message: `deliveredMicros must be a non-negative safe integer, got ${input.deliveredMicros}` };
    }
    await this.#ready(input.orgId);
    const now = Date.now();
    this.#expire(now);
    const reservation = this.#reservations.get(input.requestId);
    if (!reservation) return { status: 'closed' };
    // Reports may arrive out of order: the largest is the latest. Never more than was reserved.
    reservation.deliveredMicros = Math.min(reservation.amountMicros, Math.max(reservation.deliveredMicros ?? 0, input.deliveredMicros));
    reservation.expiresAt = now + reservation.ttlMs;
    this.ctx.storage.sql.exec(
      'UPDATE reservations SET delivered_micros = ?, expires_at = ? WHERE request_id = ?',
      reservation.deliveredMicros,
      reservation.expiresAt,
      reservation.requestId,
    );
    await this.#scheduleAlarm();
    return { status: 'recorded', deliveredMicros: reservation.deliveredMicros, expiresAt: reservation.expiresAt };
  }

  /**
   * Adds credit from ledger row `ledgerId` (already written to D1). Applied at most once per row.
   * Refuses (`refusal` set, nothing applied) an amount or a resulting balance past the ceilings
   * (credit-ceilings.ts). The ledger refused such a grant before writing its row, and this balance
   * is never above the ledger's, so a refusal here means the two stores already disagree: it is
   * left for reconcile.ts to report rather than widened.
   */
  async grant(orgId: string, ledgerId: number, amountMicros: number): Promise<AccountState & { refusal?: string }> {
    const account = await this.#ready(orgId);
    // Rows up to ledgerThroughId were in the sum the mirror was built from.
    if (ledgerId <= account.ledgerThroughId) return this.#state();
    const sql = this.ctx.storage.sql;
    if (sql.exec('SELECT 1 FROM grants WHERE ledger_id = ?', ledgerId).toArray().length > 0) return this.#state();
    const refusal = grantRefusal(amountMicros, account.balanceMicros);
    if (refusal) return { ...this.#state(), refusal };
    sql.exec('INSERT INTO grants (ledger_id, amount_micros) VALUES (?, ?)', ledgerId, amountMicros);
    this.#setBalance(account.balanceMicros + amountMicros);
    this.#checkAlerts(() => this.#alerts.balanceChanged(account.orgId, account.balanceMicros, Date.now()));
    const state = this.#state();
    await this.#flushAlerts();
    return state;
  }

  /**
   * Takes a refund back from the balance (refund-book.ts decides how much): the ledger writes the
   * returned `chargedMicros` under the same entry id afterwards. Idempotent per entry id.
   */
  async refund(input: RefundInput): Promise<RefundDebit> {
    if (!Number.isSafeInteger(input.refundedMicros) || input.refundedMicros < 0) {
      throw new RangeError(`refundedMicros must be a non-negative safe integer, got ${input.refundedMicros}`);
    }
    const account = await this.#ready(input.orgId);
    const previous = this.#refunds.decided(input.entryId);
    if (previous) return { ...previous, status: 'duplicate', account: this.#state() };
    const decision = this.#refunds.decide(input.entryId, input.paymentId, input.refundedMicros, account.balanceMicros, Date.now());
    this.#setBalance(account.balanceMicros - decision.chargedMicros);
    return { ...decision, status: 'debited', account: this.#state() };
  }

  async account(orgId: string): Promise<AccountState> {
    await this.#ready(orgId);
    this.#expire(Date.now());
    return this.#state();
  }

  /** What reconciliation compares with the D1 ledger. */
  async mirror(orgId: string): Promise<MirrorState> {
    const account = await this.#ready(orgId);
    this.#expire(Date.now());
    const grantIds = this.ctx.storage.sql.exec<Row>('SELECT ledger_id FROM grants ORDER BY ledger_id').toArray().map((r) => Number(r.ledger_id));
    return { ...this.#state(), ledgerThroughId: account.ledgerThroughId, grantIds };
  }

  /** The org's window, and the key's when `keyId` is given, as the dashboard shows them. */
  rateState(limits: { org: Limits; key?: Limits }, keyId?: string): { org: WindowState; key: WindowState | null } {
    const now = Date.now();
    const org = this.#windows.get(ORG_WINDOW);
    org.prune(now);
    let key: WindowState | null = null;
    if (keyId !== undefined && limits.key) {
      const window = this.#windows.get(keyWindow(keyId));
      window.prune(now);
      key = window.state(limits.key, now);
    }
    return { org: org.state(limits.org, now), key };
  }

  /** Tokens used today (UTC) against the org's and the key's daily limits, where one applies (the dashboard). */
  dailyTokenState(limits: { org: Limits; key?: Limits }, keyId?: string): { org: DailyState | null; key: DailyState | null } {
    const now = Date.now();
    const key = keyId !== undefined && limits.key ? this.#daily.state(keyWindow(keyId), limits.key.tpd, now) : null;
    return { org: this.#daily.state(ORG_WINDOW, limits.org.tpd, now), key };
  }

  /** A key's budget as of now: its period, spend, holds and when it resets (GET /v1/key, the dashboard). */
  async keyBudget(orgId: string, keyId: string, budget: KeyBudget): Promise<BudgetState> {
    await this.#ready(orgId);
    this.#expire(Date.now());
    return this.#budgets.state(keyId, budget, Date.now());
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
    this.#windows.prune(now);
    this.#daily.prune(now);
    this.#budgets.prune(now);
    this.#alerts.prune(now);
    await this.#flushAlerts();
    sql.exec('DELETE FROM settlements WHERE settled_at < ?', now - SETTLEMENT_RETENTION_MS);
    const orgId = this.#account?.orgId;
    for (const r of sql.exec<Row>('SELECT * FROM unrecorded_expiries').toArray()) {
      if (orgId === undefined) break;
      const record = {
        requestId: String(r.request_id),
        orgId,
        keyId: String(r.key_id),
        amountMicros: Number(r.amount_micros),
        createdAt: Number(r.created_at),
        expiresAt: Number(r.expires_at),
      };
      await recordExpiry(this.env.DB, record, Number(r.charged_micros), Number(r.expired_at));
      sql.exec('DELETE FROM unrecorded_expiries WHERE request_id = ?', r.request_id);
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

  #duplicate(requestId: string): Extract<AdmitResult, { error: 'duplicate_request' }> | null {
    if (this.#reservations.has(requestId)) {
      return { ok: false, error: 'duplicate_request', status: 'in_flight', account: this.#state() };
    }
    const settled = this.ctx.storage.sql.exec('SELECT 1 FROM settlements WHERE request_id = ?', requestId).toArray();
    if (settled.length > 0) return { ok: false, error: 'duplicate_request', status: 'settled', account: this.#state() };
    return null;
  }

  #rateLimited(
    scope: 'key' | 'organization',
    admission: Extract<Admission, { ok: false }>,
    others: WindowState[],
    daily: DailyState[] = [],
  ): Extract<AdmitResult, { error: 'rate_limited' }> {
    return { ok: false, error: 'rate_limited', scope, admission, states: [admission.state, ...others], daily, account: this.#state() };
  }

  // ---------------------------------------------------------------------------------------------
  // Spend controls: tokens per day (key, then org) and the key's budget, taken after the rate
  // windows and before the credit hold; a refusal takes back what this step took.

  #holdSpendControls(
    input: AdmitInput,
    now: number,
    windows: WindowState[],
  ): { ok: true; daily: DailyState[]; budget: BudgetState | null } | { ok: false; refusal: AdmitResult } {
    const id = input.requestId;
    const keyScope = keyWindow(input.keyId);
    const keyDay = this.#daily.tryAcquire(keyScope, id, input.tokens, input.limits.key.tpd, now);
    if (!keyDay.ok) {
      const orgDay = this.#daily.state(ORG_WINDOW, input.limits.org.tpd, now);
      return { ok: false, refusal: this.#tokensPerDay('key', keyDay, windows[0], windows, orgDay) };
    }
    const orgDay = this.#daily.tryAcquire(ORG_WINDOW, id, input.tokens, input.limits.org.tpd, now);
    if (!orgDay.ok) {
      this.#daily.cancel(id);
      return { ok: false, refusal: this.#tokensPerDay('organization', orgDay, windows[1], windows, keyDay.state) };
    }
    const daily = [keyDay.state, orgDay.state].filter((d): d is DailyState => d !== null);
    if (!input.budget) return { ok: true, daily, budget: null };
    const held = this.#budgets.tryHold(id, input.keyId, input.budget, input.amountMicros, now);
    if (!held.ok) {
      this.#daily.cancel(id);
      return { ok: false, refusal: { ok: false, error: 'key_budget_exceeded', budget: held.state, requiredMicros: input.amountMicros, account: this.#state() } };
    }
    return { ok: true, daily, budget: held.state };
  }

  #releaseSpendControls(requestId: string): void {
    this.#daily.cancel(requestId);
    this.#budgets.cancel(requestId);
  }

  #tokensPerDay(
    scope: 'key' | 'organization',
    refused: Extract<ReturnType<DailyTokens['tryAcquire']>, { ok: false }>,
    window: WindowState,
    windows: WindowState[],
    other: DailyState | null,
  ): AdmitResult {
    const admission = { ok: false as const, reason: 'tokens_per_day' as const, retryAfterMs: refused.retryAfterMs, tooLarge: refused.tooLarge, state: window };
    const daily = [refused.state, ...(other ? [other] : [])];
    return { ok: false, error: 'rate_limited', scope, admission, states: windows, daily, account: this.#state() };
  }

  /** Runs an alert decision after the money moved: a failure there is logged and never undoes a charge or a grant. */
  #checkAlerts(check: () => void): void {
    try {
      check();
    } catch (err) {
      console.error(`alert check failed (the charge or grant stands): ${String(err)}`);
    }
  }

  /** Hands new alert events to the queue; a failed send stays in the outbox for the alarm. */
  async #flushAlerts(): Promise<void> {
    if (!this.#alerts.pending()) return;
    try {
      await this.#alerts.flush();
    } catch (err) {
      console.warn(`alert events not sent yet, the alarm retries: ${String(err)}`);
      await this.#scheduleAlarm();
    }
  }

  /**
   * A reservation past its expiry belongs to a request that will never settle on its own (the edge
   * isolate died mid-stream, or hung): it is charged and its hold released. The charge follows the
   * settle rule, min(cost, reserved, balance, key budget room), with cost = what the meter last
   * reported delivered; a request that never reported is charged its whole reservation, since
   * whatever it streamed was never counted anywhere else. A report of 0 delivered charges 0. The
   * alarm writes the same number to the D1 ledger (recordExpiry). A late settle charges only the
   * rest (settle()).
   */
  #expire(now: number): void {
    const account = this.#account!;
    for (const r of this.#reservations.values()) {
      if (r.expiresAt > now) continue;
      this.#dropReservation(r.requestId);
      const budgetRoom = this.#budgets.room(r.requestId) ?? Number.MAX_SAFE_INTEGER;
      const chargedMicros = Math.min(r.deliveredMicros ?? r.amountMicros, r.amountMicros, account.balanceMicros, budgetRoom);
      this.#setBalance(account.balanceMicros - chargedMicros);
      const budgetCharge = this.#budgets.expire(r.requestId, chargedMicros);
      const sql = this.ctx.storage.sql;
      sql.exec(
        `INSERT OR IGNORE INTO settlements (request_id, reserved_micros, charged_micros, outcome, settled_at)
         VALUES (?, ?, ?, 'expired', ?)`,
        r.requestId,
        r.amountMicros,
        chargedMicros,
        now,
      );
      sql.exec(
        `INSERT OR IGNORE INTO unrecorded_expiries (request_id, key_id, amount_micros, created_at, expires_at, expired_at, charged_micros)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        r.requestId,
        r.keyId,
        r.amountMicros,
        r.createdAt,
        r.expiresAt,
        now,
        chargedMicros,
      );
      if (chargedMicros > 0) {
        this.#checkAlerts(() => {
          this.#alerts.balanceChanged(account.orgId, account.balanceMicros, now);
          if (budgetCharge) this.#alerts.keySpent(account.orgId, budgetCharge, now);
        });
      }
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
    const leaseChange = this.#windows.nextChangeAt();
    if (next === null && leaseChange !== null) next = Math.max(leaseChange, Date.now() + WINDOW_MS);
    // Expiries found between alarms (by a call) still have to reach D1: wake now.
    if (this.ctx.storage.sql.exec('SELECT 1 FROM unrecorded_expiries LIMIT 1').toArray().length > 0) next = Date.now();
    // Alert events the queue did not take: try again in a few seconds.
    if (this.#alerts.pending() && (next === null || next > Date.now() + ALERT_RETRY_MS)) next = Date.now() + ALERT_RETRY_MS;
    if (next === null || (this.#alarmAt !== null && this.#alarmAt <= next)) return;
    this.#alarmAt = next;
    await this.ctx.storage.setAlarm(next);
  }
}


/** Adds `column` to `table` in storage created before the column existed (SQLite has no ADD COLUMN IF NOT EXISTS). */
function addMissingColumn(sql: SqlStorage, table: string, column: string, definition: string): void {
  const columns = sql.exec<Row>(`PRAGMA table_info(${table})`).toArray().map((c) => String(c.name));
  if (!columns.includes(column)) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
}
