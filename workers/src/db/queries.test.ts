import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch } from '../../test/fixtures.ts';
import { backendRows, insertBackend } from '../upstreams/backends.ts';
import { database, getModel, insertPrice, listModels, modelEntry, priceInForce, nodeUrlsForPool, priceAt, registerNode } from './queries.ts';

describe('prices', () => {
  it('ships the seeded catalogue at Moonshot list prices (µ$ per million tokens)', async () => {
    const db = database(env.DB);
    expect((await listModels(db)).map((m) => m.id)).toEqual(['k2-tiny', 'kimi-k2-instruct', 'kimi-k2-thinking']);
    for (const model of ['k2-tiny', 'kimi-k2-instruct', 'kimi-k2-thinking']) {
      expect(await priceAt(db, model, Date.now())).toMatchObject({ inputCacheMiss: 600_000, inputCacheHit: 150_000, output: 2_500_000 });
    }
  });

  it('uses the row in force at the given time; a change never rewrites the past', async () => {
    const db = database(env.DB);
    const t1 = 1_800_000_000_000;
    const t2 = t1 + 86_400_000;
    await insertPrice(db, { modelId: 'kimi-k2-instruct', inputCacheMiss: 1_150_000, inputCacheHit: 150_000, output: 8_000_000, effectiveFrom: t1 });
    await insertPrice(db, { modelId: 'kimi-k2-instruct', inputCacheMiss: 500_000, inputCacheHit: 100_000, output: 2_000_000, effectiveFrom: t2 });
    expect((await priceAt(db, 'kimi-k2-instruct', t1 - 1))!.output).toBe(2_500_000);
    expect((await priceAt(db, 'kimi-k2-instruct', t1))!.output).toBe(8_000_000);
    expect((await priceAt(db, 'kimi-k2-instruct', t2 - 1))!.output).toBe(8_000_000);
    expect((await priceAt(db, 'kimi-k2-instruct', t2 + 1))!.output).toBe(2_000_000);
    expect(await priceAt(db, 'no-such-model', t2)).toBeUndefined();
  });

  it('admin API schedules future prices and refuses back-dated ones', async () => {
    const future = Date.now() + 3_600_000;
    const body = { model: 'k2-tiny', input_cache_miss: 700_000, input_cache_hit: 200_000, output: 3_000_000 };
    expect((await adminFetch('/prices', { ...body, effective_from: future })).status).toBe(201);
    // Still the old price now, the new one from `future` on.
    expect(await (await adminFetch('/prices/k2-tiny')).json()).toMatchObject({ output: 2_500_000 });
    expect(await (await adminFetch(`/prices/k2-tiny?at=${future}`)).json()).toMatchObject({ output: 3_000_000 });
    const past = await adminFetch('/prices', { ...body, effective_from: Date.now() - 60_000 });
    expect(past.status).toBe(400);
    expect(((await past.json()) as { error: { param: string } }).error.param).toBe('effective_from');
    expect((await adminFetch('/prices', { ...body, model: 'nope' })).status).toBe(404);
    expect((await adminFetch('/prices', { ...body, output: 2.5 })).status).toBe(400);
  });
});

describe('modelEntry (the request path\'s one catalogue round trip)', () => {
  it('returns what the separate reads return: the model, the price in force at `at`, its pool\'s nodes, its backends', async () => {
    const db = database(env.DB);
    const model = (await getModel(db, 'kimi-k2-thinking'))!;
    const t1 = 1_900_000_000_000;
    await insertPrice(db, { modelId: model.id, inputCacheMiss: 900_000, inputCacheHit: 90_000, output: 9_000_000, effectiveFrom: t1 });
    await registerNode(db, model.pool, 'http://node-b:9000');
    await registerNode(db, model.pool, 'http://node-a:9000');
    await registerNode(db, `${model.pool}-other`, 'http://elsewhere:9000');
    const createdAt = Date.now();
    await insertBackend(db, { modelId: model.id, name: 'later', kind: 'openai', priority: 2, baseUrl: 'http://up:1/v1', createdAt });
    await insertBackend(db, { modelId: model.id, name: 'first', kind: 'pool', priority: 1, pool: model.pool, createdAt });
    await insertBackend(db, { modelId: 'k2-tiny', name: 'not-ours', kind: 'pool', priority: 0, pool: 'k2-tiny', createdAt });

    const entry = (await modelEntry(db, model.id))!;
    for (const at of [t1 - 1, t1, t1 + 1]) {
      expect(entry.model).toEqual(model);
      // Exact at the boundary: the new price from effective_from on, never a millisecond early.
      const price = priceInForce(entry.prices, at);
      expect(price).toEqual(await priceAt(db, model.id, at));
      expect(price!.output).toBe(at < t1 ? 2_500_000 : 9_000_000);
      expect(entry.poolNodeUrls).toEqual(await nodeUrlsForPool(db, model.pool));
      expect(entry.poolNodeUrls.slice(-2)).toEqual(['http://node-b:9000', 'http://node-a:9000']);
      expect(entry.poolNodeUrls).not.toContain('http://elsewhere:9000');
      expect(entry.backends).toEqual(await backendRows(db, model.id));
      expect(entry.backends.map((b) => b.name)).toEqual(['first', 'later']);
    }
    expect(await modelEntry(db, 'no-such-model')).toBeUndefined();
  });
});
