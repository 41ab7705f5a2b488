import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { creditBalance, database, priceAt, recordUsage, usageEventsForRequest, type PriceRow } from '../db/queries.ts';
import { createTenant, type Tenant } from '../../test/fixtures.ts';
import { UsageMeter } from './meter.ts';

describe('metering', () => {
  let tenant: Tenant;
  let price: PriceRow;
  beforeAll(async () => {
    tenant = await createTenant({ creditMicros: 1_000_000 });
    price = (await priceAt(database(env.DB), 'k2-tiny', Date.now()))!;
  });

  const meterFor = (requestId: string) =>
    new UsageMeter(
      database(env.DB),
      { requestId, orgId: tenant.orgId, keyId: tenant.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', price, startedAt: Date.now() },
      100,
    );

  it('writes one row and one debit for the same request id, however often it is recorded', async () => {
    const db = database(env.DB);
    const before = await creditBalance(db, tenant.orgId);
    const usage = { prompt_tokens: 1200, cached_tokens: 200, completion_tokens: 300 };
    const first = meterFor('req_same');
    const second = meterFor('req_same');
    // The same meter twice (stream end and disconnect racing) and a second meter (a replay).
    const results = await Promise.all([first.finish('completed', 'stop', usage), first.finish('cancelled', 'cancelled'), second.finish('completed', 'stop', usage)]);
    // A meter answers every finish with its first write's result; the replaying meter wrote nothing.
    expect(results).toEqual([true, true, false]);
    const rows = await usageEventsForRequest(db, 'req_same');
    expect(rows).toHaveLength(1);
    const cost = costMicros(price, { promptTokens: 1200, cachedTokens: 200, completionTokens: 300 });
    expect(rows[0]).toMatchObject({ status: 'completed', promptTokens: 1200, cachedTokens: 200, completionTokens: 300, costMicros: cost, priceId: price.id });
    expect(await creditBalance(db, tenant.orgId)).toBe(before - cost);
  });

  it('recordUsage itself is idempotent on request_id', async () => {
    const db = database(env.DB);
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
    expect(await recordUsage(db, event)).toBe(true);
    expect(await recordUsage(db, { ...event, costMicros: 999 })).toBe(false);
    const rows = await usageEventsForRequest(db, 'req_direct');
    expect(rows.map((r) => r.costMicros)).toEqual([31]);
  });

  it('bills a cancelled request for the tokens sent, not the node total', async () => {
    const meter = meterFor('req_cancel');
    meter.started(100, 40);
    meter.sent(3);
    meter.sent(2);
    await meter.finish('cancelled', 'cancelled', { prompt_tokens: 100, cached_tokens: 40, completion_tokens: 9 });
    const [row] = await usageEventsForRequest(database(env.DB), 'req_cancel');
    expect(row).toMatchObject({ status: 'cancelled', promptTokens: 100, cachedTokens: 40, completionTokens: 5 });
    expect(row.costMicros).toBe(costMicros(price, { promptTokens: 100, cachedTokens: 40, completionTokens: 5 }));
  });
});
