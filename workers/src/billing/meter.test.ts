import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt, type PriceRow } from '../db/queries.ts';
import { adminFetch, createTenant, eventually, type Tenant } from '../../test/fixtures.ts';
import { creditBalance, recordUsage, usageEventsForRequest } from './ledger.ts';
import { UsageMeter } from './meter.ts';
import { RequestBilling } from './request-billing.ts';

const wide = { rpm: 10_000, tpm: 10_000_000, concurrency: 10_000 };

/**
 * The org's object namespace with its RPCs to settle failing `failures` times first: the object is
 * the real one, only the connection to it drops (what a reset or an overloaded object looks like).
 */
function flakySettle(failures: number): Env {
  let left = failures;
  const ns = env.ORG_ACCOUNT;
  const flaky = {
    idFromName: (name: string) => ns.idFromName(name),
    get: (id: DurableObjectId) => {
      const stub = ns.get(id);
      return new Proxy(stub, {
        get(target, prop) {
          if (prop === 'settle' && left > 0) {
            return async () => {
              left--;
              throw new Error('injected: Durable Object connection lost');
            };
          }
          // RPC methods of a stub are called on the stub itself (a stub answers any property).
          return (...args: unknown[]) => (target as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[prop](...args);
        },
      });
    },
  };
  return { ...env, ORG_ACCOUNT: flaky as unknown as Env['ORG_ACCOUNT'] };
}

async function reconciled(orgId: string) {
  return (await (await adminFetch(`/reconcile?org_id=${orgId}`)).json()) as { ok: boolean; orgs: { drift_micros: number; open_reservations: number }[] };
}

describe('metering', () => {
  let tenant: Tenant;
  let price: PriceRow;
  beforeAll(async () => {
    tenant = await createTenant({ creditMicros: 1_000_000 });
    price = (await priceAt(database(env.DB), 'k2-tiny', Date.now()))!;
  });

  /** A meter over a request admitted for 2 000 prompt + 2 000 output tokens (as a route admits it). */
  async function meterFor(requestId: string, billingEnv: Env = env) {
    const billing = new RequestBilling(billingEnv, { requestId, orgId: tenant.orgId, keyId: tenant.keyId }, { plan: null, org: wide, key: wide }, () => undefined);
    await billing.admit({ model: 'k2-tiny', promptTokens: 2_000, maxTokens: 2_000, price });
    const meter = new UsageMeter(
      env,
      { requestId, orgId: tenant.orgId, keyId: tenant.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', price, startedAt: Date.now() },
      100,
      billing,
    );
    return { meter, billing };
  }

  const rowOf = (requestId: string) => eventually(async () => (await usageEventsForRequest(env.DB, requestId))[0]);

  it('writes one row and one debit for the same request id, however often it is recorded', async () => {
    const before = await creditBalance(env.DB, tenant.orgId);
    const usage = { prompt_tokens: 1200, cached_tokens: 200, completion_tokens: 300 };
    const { meter: first, billing } = await meterFor('req_same');
    const second = new UsageMeter(env, first.info, 100, billing);
    // The same meter twice (stream end and disconnect racing) and a second meter (a replay).
    const [a, b, c] = await Promise.all([first.finish('completed', 'stop', usage), first.finish('cancelled', 'cancelled'), second.finish('completed', 'stop', usage)]);
    expect(b).toBe(a);
    const cost = costMicros(price, { promptTokens: 1200, cachedTokens: 200, completionTokens: 300 });
    // The replaying meter got the same charge from the object (its settle was a duplicate).
    expect(a.charge).toEqual({ chargedMicros: cost, overrunMicros: 0 });
    expect(c.charge).toEqual(a.charge);
    const row = await rowOf('req_same');
    expect(await usageEventsForRequest(env.DB, 'req_same')).toHaveLength(1);
    expect(row).toMatchObject({ status: 'completed', promptTokens: 1200, cachedTokens: 200, completionTokens: 300, costMicros: cost, priceId: price.id, overrunMicros: 0 });
    await eventually(async () => ((await creditBalance(env.DB, tenant.orgId)) === before - cost ? true : undefined));
  });

  it('recordUsage itself is idempotent on request_id', async () => {
    const event = {
      requestId: 'req_direct',
      orgId: tenant.orgId,
      keyId: tenant.keyId,
      modelId: 'k2-tiny',
      endpoint: 'completions',
      promptTokens: 10,
      cachedTokens: 0,
      completionTokens: 10,
      priceId: price.id,
      costMicros: 31,
      status: 'completed',
      finishReason: 'length',
      startedAt: 1,
      finishedAt: 2,
    };
    const db = database(env.DB);
    expect(await recordUsage(db, event)).toBe(true);
    expect(await recordUsage(db, { ...event, costMicros: 999 })).toBe(false);
    const rows = await usageEventsForRequest(db, 'req_direct');
    expect(rows.map((r) => r.costMicros)).toEqual([31]);
  });

  it('bills a cancelled request for the tokens sent, not the node total', async () => {
    const { meter } = await meterFor('req_cancel');
    meter.started(100, 40);
    meter.sent(3);
    meter.sent(2);
    await meter.finish('cancelled', 'cancelled', { prompt_tokens: 100, cached_tokens: 40, completion_tokens: 9 });
    const row = await rowOf('req_cancel');
    expect(row).toMatchObject({ status: 'cancelled', promptTokens: 100, cachedTokens: 40, completionTokens: 5 });
    expect(row.costMicros).toBe(costMicros(price, { promptTokens: 100, cachedTokens: 40, completionTokens: 5 }));
  });

  it('bills no more than was reserved; the row records the overrun and the books agree', async () => {
    const orgTenant = await createTenant({ creditMicros: 1_000_000 });
    const requestId = `req_overrun_${crypto.randomUUID()}`;
    const billing = new RequestBilling(env, { requestId, orgId: orgTenant.orgId, keyId: orgTenant.keyId }, { plan: null, org: wide, key: wide }, () => undefined);
    // Reserved for 100 prompt + 10 output tokens; the upstream then reports 5 000 prompt tokens.
    await billing.admit({ model: 'k2-tiny', promptTokens: 100, maxTokens: 10, price });
    const meter = new UsageMeter(env, { requestId, orgId: orgTenant.orgId, keyId: orgTenant.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', price, startedAt: Date.now() }, 100, billing);
    await meter.finish('completed', 'stop', { prompt_tokens: 5_000, cached_tokens: 0, completion_tokens: 10 });
    const full = costMicros(price, { promptTokens: 5_000, cachedTokens: 0, completionTokens: 10 });
    const row = await rowOf(requestId);
    expect(row.costMicros).toBe(billing.reservedMicros);
    expect(row.overrunMicros).toBe(full - billing.reservedMicros);
    const report = await reconciled(orgTenant.orgId);
    expect(report.orgs[0]).toMatchObject({ drift_micros: 0, open_reservations: 0 });
    expect(await creditBalance(env.DB, orgTenant.orgId)).toBe(1_000_000 - billing.reservedMicros);
  });

  it('a settle the object does not answer is retried, never remembered as done', async () => {
    const requestId = `req_flaky_${crypto.randomUUID()}`;
    const billing = new RequestBilling(flakySettle(3), { requestId, orgId: tenant.orgId, keyId: tenant.keyId }, { plan: null, org: wide, key: wide }, () => undefined);
    await billing.admit({ model: 'k2-tiny', promptTokens: 10, maxTokens: 10, price });
    // Three lost answers exhaust one call's attempts...
    await expect(billing.settle(7, 5)).rejects.toThrow(/connection lost/);
    // ...and the next call asks the object again instead of replaying the failure.
    expect(await billing.settle(7, 5)).toMatchObject({ status: 'settled', chargedMicros: 7 });
  });

  it('when the request path cannot settle, the usage queue settles and writes the same charge', async () => {
    const orgTenant = await createTenant({ creditMicros: 1_000_000 });
    const requestId = `req_lost_settle_${crypto.randomUUID()}`;
    const billing = new RequestBilling(flakySettle(100), { requestId, orgId: orgTenant.orgId, keyId: orgTenant.keyId }, { plan: null, org: wide, key: wide }, () => undefined);
    await billing.admit({ model: 'k2-tiny', promptTokens: 10, maxTokens: 10, price });
    const meter = new UsageMeter(env, { requestId, orgId: orgTenant.orgId, keyId: orgTenant.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', price, startedAt: Date.now() }, 10, billing);
    const sent = await meter.finish('completed', 'stop', { prompt_tokens: 10, cached_tokens: 0, completion_tokens: 4 });
    expect(sent.charge).toBeNull();
    const row = await rowOf(requestId);
    const cost = costMicros(price, { promptTokens: 10, cachedTokens: 0, completionTokens: 4 });
    expect(row.costMicros).toBe(cost);
    // The object charged it too (the queue's settle), and released the hold: no drift.
    const report = await reconciled(orgTenant.orgId);
    expect(report.orgs[0]).toMatchObject({ drift_micros: 0, open_reservations: 0 });
  });
});
