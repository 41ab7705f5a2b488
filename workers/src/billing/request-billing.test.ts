import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { reservationRecord } from './ledger.ts';
import { createOrganization, database } from '../db/queries.ts';
import { grantCredit } from './ledger.ts';
import type { EffectiveLimits } from './limits/limit-settings.ts';
import { ApiError } from '../errors.ts';
import { PLANS, type Limits } from './limits/plans.ts';
import { RequestBilling, type AdmitInput } from './request-billing.ts';

// K2 list prices in µ$ per million tokens.
const price = { inputCacheMiss: 600_000, inputCacheHit: 150_000, output: 2_500_000 };
const wide: Limits = { rpm: 10_000, tpm: 10_000_000, concurrency: 10_000 };

async function newOrg(grantMicros: number): Promise<string> {
  const orgId = `org-${crypto.randomUUID()}`;
  await createOrganization(database(env.DB), orgId, orgId);
  if (grantMicros > 0) await grantCredit(database(env.DB), orgId, grantMicros, 'test');
  return orgId;
}

/** A request's billing as the credit middleware builds it; background writes are collected and awaited. */
function billingFor(orgId: string, keyId: string, limits: Partial<EffectiveLimits> = {}) {
  const pending: Promise<unknown>[] = [];
  const billing = new RequestBilling(
    env,
    { requestId: `req_${crypto.randomUUID()}`, orgId, keyId },
    { plan: null, org: wide, key: wide, ...limits },
    (p) => pending.push(p),
  );
  return { billing, flush: () => Promise.all(pending) };
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  return err;
}

describe('RequestBilling', () => {
  it('reserves the worst case: prompt at the cache-miss price + max_tokens at the output price, rounded up once', () => {
    const input: AdmitInput = { model: 'm', promptTokens: 1_000, maxTokens: 333, price };
    // 1000 × 0.6 + 333 × 2.5 = 600 + 832.5 → 833 µ$
    expect(RequestBilling.worstCaseMicros(input)).toBe(1_433);
  });

  it('admits, records the reservation in D1, and settles to the real cost', async () => {
    const orgId = await newOrg(1_000_000);
    const { billing, flush } = billingFor(orgId, 'key_1');
    await billing.admit({ model: 'm', promptTokens: 1_000, maxTokens: 1_000, price });
    await flush();
    const requestId = billing.party.requestId;
    // Nothing is written to D1 on the request path: the object holds the open reservation.
    expect(billing.reservation).toMatchObject({ amountMicros: 3_100, keyId: 'key_1', orgId });
    expect(await reservationRecord(env.DB, requestId)).toBeNull();
    expect(billing.headers).toMatchObject({ 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-requests': '9999' });

    const settlement = await billing.settle(700, 1_100);
    expect(settlement).toMatchObject({ status: 'settled', chargedMicros: 700, reservedMicros: 3_100 });
    expect(settlement!.account).toMatchObject({ balanceMicros: 999_300, reservedMicros: 0 });
    // The D1 record is written with the usage row (usage-queue.ts), not by the object's settle.
    expect(await reservationRecord(env.DB, requestId)).toBeNull();
    // A second settle (a retried waitUntil, a cancel racing a finish) changes nothing.
    expect(await billing.settle(700, 1_100)).toBe(settlement);
  });

  it('answers 402 when the worst case exceeds the available credit, and gives the key slot back', async () => {
    const orgId = await newOrg(1_000);
    const keyId = `key_${crypto.randomUUID()}`;
    const key = { ...wide, rpm: 1 };
    const first = billingFor(orgId, keyId, { key });
    const err = await refusal(first.billing.admit({ model: 'm', promptTokens: 1_000, maxTokens: 1_000, price }));
    expect(err.status).toBe(402);
    expect(err.body().error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
    await first.flush();
    // The key's single request per minute is still free: the refused request did not use it.
    const second = billingFor(orgId, keyId, { key });
    await second.billing.admit({ model: 'm', promptTokens: 100, maxTokens: 100, price });
  });

  it('answers 429 with Retry-After and the x-ratelimit-* headers when the key is over its limit', async () => {
    const orgId = await newOrg(1_000_000);
    const keyId = `key_${crypto.randomUUID()}`;
    const key = { ...wide, rpm: 2 };
    for (let i = 0; i < 2; i++) await billingFor(orgId, keyId, { key }).billing.admit({ model: 'm', promptTokens: 10, maxTokens: 10, price });
    const err = await refusal(billingFor(orgId, keyId, { key }).billing.admit({ model: 'm', promptTokens: 10, maxTokens: 10, price }));
    expect(err.status).toBe(429);
    expect(err.body().error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_requests' });
    expect(err.headers).toMatchObject({
      'x-ratelimit-limit-requests': '2',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-limit-tokens': '10000000',
    });
    expect(Number(err.headers['retry-after'])).toBeGreaterThanOrEqual(59);
    expect(err.headers['x-ratelimit-reset-requests']).toMatch(/^\d+(\.\d+)?s$/);
  });

  it('org limits span all of the org’s keys; the tighter window is reported', async () => {
    const orgId = await newOrg(1_000_000);
    const org = { ...wide, tpm: 1_000 };
    await billingFor(orgId, 'key_a', { org }).billing.admit({ model: 'm', promptTokens: 300, maxTokens: 300, price });
    const err = await refusal(billingFor(orgId, 'key_b', { org }).billing.admit({ model: 'm', promptTokens: 300, maxTokens: 300, price }));
    expect(err.status).toBe(429);
    expect(err.body().error.code).toBe('rate_limit_tokens');
    expect(err.headers).toMatchObject({ 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '400' });
  });

  it('a request larger than the whole token budget is told to shrink, not to wait', async () => {
    const orgId = await newOrg(1_000_000);
    const key = { ...PLANS.free };
    const err = await refusal(billingFor(orgId, 'key_x', { key }).billing.admit({ model: 'm', promptTokens: 30_000, maxTokens: 4_000, price }));
    expect(err.status).toBe(429);
    expect(err.message).toMatch(/Lower max_tokens/);
  });
});
