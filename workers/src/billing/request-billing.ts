/**
 * The billing side of one request: admission before it reaches a backend, settlement when it ends.
 *
 *   admit  → the key's model allowlist (403, nothing taken), then one call to the org's OrgAccount:
 *            the key's and the org's rpm / tpm / tpd / concurrency, the key's budget and the credit
 *            reservation, decided in one atomic step. Worst case held = prompt tokens at the
 *            cache-miss price + max_tokens at the output price.
 *   progress → while a generation streams, the meter reports what it has delivered, at most once per
 *            PROGRESS_INTERVAL_MS and off the stream's path: an expiry (the isolate died) charges
 *            that, and each report renews the reservation's TTL.
 *   settle → the object charges min(real cost, reserved, balance) and returns that amount, which is
 *            what the ledger debits (meter.ts); the rest is released, the leases closed.
 *
 * A settle that fails (the object unreachable for a moment) is not remembered as done: the next
 * call tries again, and the usage queue settles whatever the request path could not.
 */
import { costMicros, type Price } from '../../../shared/pricing.ts';
import {
  DuplicateRequestError,
  InsufficientCreditError,
  InvalidRequestError,
  KeyBudgetExceededError,
  ModelNotAllowedError,
  RateLimitError,
} from '../errors.ts';
import type { ReservationRecord } from './ledger.ts';
import { rateLimitHeaders, retryAfterSeconds } from './limits/headers.ts';
import type { EffectiveLimits } from './limits/limit-settings.ts';
import type { OrgAccount, Settlement } from './org-account.ts';
import { DEFAULT_RESERVATION_TTL_MS } from './org-account.ts';

export interface AdmitInput {
  /** The model id the client asked for: checked against the key's allowlist before anything is held. */
  model: string;
  /** Tokens the edge will send (all of the prompt; cache hits are unknown until the node answers). */
  promptTokens: number;
  /** The max_tokens the backend will be given. */
  maxTokens: number;
  price: Price;
}

export interface RequestParty {
  requestId: string;
  orgId: string;
  keyId: string;
}

/**
 * Progress reports go at most this often. The report is an object call on waitUntil, never awaited
 * by the stream, and the throttle check is one clock read per token batch, so the token path pays
 * nothing else. A stream at 50–100 tokens/s reports every 250–500 tokens; if the isolate dies, at
 * most this long of delivered tokens goes unbilled. Against the 15-minute TTL, 180 reports in a row
 * would have to be lost before a live stream expired.
 */
export const PROGRESS_INTERVAL_MS = 5_000;

/** How often the request path tries a settle before leaving it to the usage queue. */
const SETTLE_ATTEMPTS = 3;
const SETTLE_BACKOFF_MS = 50;

export function orgAccount(env: Env, orgId: string): DurableObjectStub<OrgAccount> {
  return env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(orgId));
}

export class RequestBilling {
  readonly party: RequestParty;
  /** x-ratelimit-* for the response, once admitted (or refused by a rate limit). */
  headers: Record<string, string> = {};
  readonly #env: Env;
  readonly #limits: () => Promise<EffectiveLimits>;
  readonly #waitUntil: (p: Promise<unknown>) => void;
  readonly #ttlMs: number;
  readonly #progressIntervalMs: number;
  #lastProgressAt = 0;
  #admitted = false;
  #reservation: ReservationRecord | null = null;
  #settled: Promise<Settlement | null> | undefined;

  constructor(
    env: Env,
    party: RequestParty,
    limits: EffectiveLimits | (() => Promise<EffectiveLimits>),
    waitUntil: (p: Promise<unknown>) => void,
    ttlMs = DEFAULT_RESERVATION_TTL_MS,
    progressIntervalMs = PROGRESS_INTERVAL_MS,
  ) {
    this.#env = env;
    this.party = party;
    this.#limits = typeof limits === 'function' ? limits : () => Promise.resolve(limits);
    this.#waitUntil = waitUntil;
    this.#ttlMs = ttlMs;
    this.#progressIntervalMs = progressIntervalMs;
  }

  get admitted(): boolean {
    return this.#admitted;
  }

  /** The amount held for this request: no settle can charge more. */
  get reservedMicros(): number {
    return this.#reservation?.amountMicros ?? 0;
  }

  /** What was reserved, for the D1 record written with the usage row; null before admission. */
  get reservation(): ReservationRecord | null {
    return this.#reservation;
  }

  /** Worst-case cost in µ$: every prompt token a cache miss, every allowed output token produced. */
  static worstCaseMicros(input: AdmitInput): number {
    const { inputCacheMiss, inputCacheHit, output } = input.price;
    return costMicros(
      { inputCacheMiss, inputCacheHit, output },
      { promptTokens: input.promptTokens, cachedTokens: 0, completionTokens: input.maxTokens },
    );
  }

  /**
   * Throws ModelNotAllowedError (403), RateLimitError (429), InsufficientCreditError or
   * KeyBudgetExceededError (402), DuplicateRequestError (409) or InvalidRequestError (400).
   */
  async admit(input: AdmitInput): Promise<void> {
    const { requestId, orgId, keyId } = this.party;
    const limits = await this.#limits();
    if (limits.allowedModels && !limits.allowedModels.includes(input.model)) throw new ModelNotAllowedError(input.model);
    const tokens = input.promptTokens + input.maxTokens;
    const amountMicros = RequestBilling.worstCaseMicros(input);
    const org = orgAccount(this.#env, orgId);
    let result;
    try {
      result = await org.admit({
        orgId,
        requestId,
        keyId,
        amountMicros,
        tokens,
        limits: { org: limits.org, key: limits.key },
        budget: limits.budget ?? null,
        alerts: limits.alerts ?? null,
        ttlMs: this.#ttlMs,
      });
    } catch (err) {
      // The call failed without an answer: the object may have admitted before the connection was
      // lost. Settling at zero releases whatever it took (and is a no-op if it took nothing).
      this.#waitUntil(org.settle({ orgId, requestId, costMicros: 0, tokens: 0 }).catch(() => undefined));
      throw err;
    }
    if (!result.ok) {
      if (result.error === 'rate_limited') {
        const { admission } = result;
        this.headers = { ...rateLimitHeaders(result.states, result.daily), 'retry-after': retryAfterSeconds(admission.retryAfterMs) };
        throw new RateLimitError(result.scope, admission.reason, admission.tooLarge, this.headers);
      }
      if (result.error === 'duplicate_request') throw new DuplicateRequestError(requestId);
      if (result.error === 'unreservable') {
        throw new InvalidRequestError('The worst-case cost of this request is too large to reserve: lower max_tokens.', 'max_tokens');
      }
      if (result.error === 'key_budget_exceeded') throw new KeyBudgetExceededError(result.budget, result.requiredMicros);
      throw new InsufficientCreditError();
    }
    this.#admitted = true;
    this.#lastProgressAt = Date.now();
    this.#reservation = { orgId, ...result.reservation };
    this.headers = rateLimitHeaders(result.rates, result.daily);
  }

  /**
   * Reports the cost delivered so far to the org's object, if the last report (or the admission) is
   * at least the progress interval old; `deliveredMicros` is only evaluated then. Fire and forget:
   * a lost report only leaves the previous one standing. Nothing once the request is settling.
   */
  progress(deliveredMicros: () => number): void {
    if (!this.#admitted || this.#settled) return;
    const now = Date.now();
    if (now - this.#lastProgressAt < this.#progressIntervalMs) return;
    this.#lastProgressAt = now;
    const { requestId, orgId } = this.party;
    const report = orgAccount(this.#env, orgId)
      .progress({ orgId, requestId, deliveredMicros: deliveredMicros() })
      .then((r) => {
        if (r.status === 'invalid') console.warn(`progress ${requestId}: ${r.message}`);
      })
      .catch((err: unknown) => console.warn(`progress ${requestId} not recorded: ${String(err)}`));
    this.#waitUntil(report);
  }

  /**
   * Charges the real cost (capped at the reservation) and releases the rest; closes the leases with
   * the real token count. Resolves to the object's settlement (null when never admitted), or rejects
   * when the object could not be reached after a few tries; a later call tries again.
   */
  settle(costMicros: number, tokens: number): Promise<Settlement | null> {
    if (!this.#settled) {
      const attempt = this.#settle(costMicros, tokens);
      this.#settled = attempt;
      // A failure is not the answer: forget it so the next call (or the queue) asks again.
      attempt.catch(() => {
        if (this.#settled === attempt) this.#settled = undefined;
      });
    }
    return this.#settled;
  }

  async #settle(costMicros: number, tokens: number): Promise<Settlement | null> {
    if (!this.#admitted) return null;
    const { requestId, orgId } = this.party;
    const org = orgAccount(this.#env, orgId);
    for (let attempt = 1; ; attempt++) {
      try {
        return await org.settle({ orgId, requestId, costMicros, tokens });
      } catch (err) {
        if (attempt >= SETTLE_ATTEMPTS) throw err;
        console.warn(`settle ${requestId} failed (attempt ${attempt}), retrying: ${String(err)}`);
        await new Promise((r) => setTimeout(r, SETTLE_BACKOFF_MS * 2 ** (attempt - 1)));
      }
    }
  }
}
