/**
 * The billing side of one request: admission before it reaches a GPU node, settlement when it ends.
 *
 *   admit  → the key's RateLimiter (key rpm / tpm / concurrency), then the org's OrgAccount
 *            (org rpm / tpm / concurrency and the credit reservation, in one atomic step).
 *            Worst case held = prompt tokens at the cache-miss price + max_tokens at the output
 *            price, so no answer can cost more than what was reserved.
 *   settle → the real cost (from the meter) is charged, the rest released, the leases closed.
 *
 * Both objects are exact across every edge instance; nothing here is kept in isolate memory
 * beyond this one request. The D1 reservation record is written off the request path (waitUntil).
 */
import { costMicros, type Price } from '../../../shared/pricing.ts';
import { closeReservation, insertReservation } from './ledger.ts';
import type { EffectiveLimits } from './limits/limit-settings.ts';
import type { OrgAccount, Settlement } from './org-account.ts';
import { DEFAULT_RESERVATION_TTL_MS } from './org-account.ts';
import type { RateLimiter } from '../durable/rate-limiter.ts';
import { DuplicateRequestError, InsufficientCreditError, RateLimitError } from '../errors.ts';
import type { Admission, WindowState } from './limits/lease-window.ts';
import { rateLimitHeaders, retryAfterSeconds } from './limits/headers.ts';

export interface AdmitInput {
  /** Tokens the edge will send (all of the prompt; cache hits are unknown until the node answers). */
  promptTokens: number;
  /** The max_tokens the node will be given. */
  maxTokens: number;
  price: Price;
}

export interface RequestParty {
  requestId: string;
  orgId: string;
  keyId: string;
}

export class RequestBilling {
  readonly party: RequestParty;
  /** May still be loading (the rate-limit middleware starts the read); admit() waits for it. */
  readonly limits: Promise<EffectiveLimits>;
  /** x-ratelimit-* for the response, once admitted (or refused by a rate limit). */
  headers: Record<string, string> = {};
  readonly #env: Env;
  readonly #waitUntil: (p: Promise<unknown>) => void;
  readonly #ttlMs: number;
  #admitted = false;
  #settled: Promise<Settlement | null> | undefined;

  constructor(
    env: Env,
    party: RequestParty,
    limits: EffectiveLimits | Promise<EffectiveLimits>,
    waitUntil: (p: Promise<unknown>) => void,
    ttlMs = DEFAULT_RESERVATION_TTL_MS,
  ) {
    this.#env = env;
    this.party = party;
    this.limits = Promise.resolve(limits);
    this.#waitUntil = waitUntil;
    this.#ttlMs = ttlMs;
  }

  get admitted(): boolean {
    return this.#admitted;
  }

  /** Worst-case cost in µ$: every prompt token a cache miss, every allowed output token produced. */
  static worstCaseMicros(input: AdmitInput): number {
    const { inputCacheMiss, inputCacheHit, output } = input.price;
    return costMicros(
      { inputCacheMiss, inputCacheHit, output },
      { promptTokens: input.promptTokens, cachedTokens: 0, completionTokens: input.maxTokens },
    );
  }

  /** Throws RateLimitError (429), InsufficientCreditError (402) or DuplicateRequestError (409). */
  async admit(input: AdmitInput): Promise<void> {
    const { requestId, orgId, keyId } = this.party;
    const tokens = input.promptTokens + input.maxTokens;
    const amountMicros = RequestBilling.worstCaseMicros(input);
    const limits = await this.limits;

    const key = this.#keyLimiter();
    const keyAdmission = await key.acquire(requestId, tokens, limits.key, this.#ttlMs);
    if (!keyAdmission.ok) throw this.#rateLimited('key', keyAdmission, []);

    const org = this.#orgAccount();
    const result = await org.admit({ orgId, requestId, keyId, amountMicros, limits: limits.org, tokens, ttlMs: this.#ttlMs });
    if (!result.ok) {
      // The org refused: the key's slot goes back, as if this request never came (unless the key
      // object had already seen this id, which then belongs to the earlier attempt).
      if (!keyAdmission.duplicate) this.#waitUntil(key.cancel(requestId));
      if (result.error === 'rate_limited') throw this.#rateLimited('organization', result.admission, [keyAdmission.state]);
      if (result.error === 'duplicate_request') throw new DuplicateRequestError(requestId);
      throw new InsufficientCreditError();
    }
    this.#admitted = true;
    this.headers = rateLimitHeaders([keyAdmission.state, result.rate]);
    const { reservation } = result;
    this.#waitUntil(insertReservation(this.#env.DB, { orgId, ...reservation }));
  }

  /**
   * Charges the real cost and releases the rest of the reservation; closes both leases with the
   * real token count. Idempotent (the objects are): a second call returns the first call's promise.
   * Returns null when the request was never admitted (nothing was reserved).
   */
  settle(costMicros: number, tokens: number): Promise<Settlement | null> {
    this.#settled ??= this.#settle(costMicros, tokens);
    return this.#settled;
  }

  async #settle(costMicros: number, tokens: number): Promise<Settlement | null> {
    if (!this.#admitted) return null;
    const { requestId, orgId } = this.party;
    const [settlement] = await Promise.all([
      this.#orgAccount().settle({ orgId, requestId, costMicros, tokens }),
      this.#keyLimiter().finish(requestId, tokens),
    ]);
    if (settlement.status === 'settled') {
      await closeReservation(this.#env.DB, requestId, 'settled', settlement.chargedMicros, Date.now());
    }
    return settlement;
  }

  #rateLimited(scope: 'key' | 'organization', admission: Extract<Admission, { ok: false }>, others: WindowState[]) {
    this.headers = { ...rateLimitHeaders([admission.state, ...others]), 'retry-after': retryAfterSeconds(admission.retryAfterMs) };
    return new RateLimitError(scope, admission.reason, admission.tooLarge, this.headers);
  }

  #keyLimiter(): DurableObjectStub<RateLimiter> {
    return this.#env.RATE_LIMITER.get(this.#env.RATE_LIMITER.idFromName(`key:${this.party.keyId}`));
  }

  #orgAccount(): DurableObjectStub<OrgAccount> {
    return this.#env.ORG_ACCOUNT.get(this.#env.ORG_ACCOUNT.idFromName(this.party.orgId));
  }
}
