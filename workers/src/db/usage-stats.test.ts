import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { recordUsage } from '../billing/ledger.ts';
import { createOrganization, database, priceAt } from './queries.ts';
import { BUCKET_MS, dailyUsageLines, recentRequests, usageBreakdown, usageSummary, usageTimeseries, type Totals } from './usage-stats.ts';

const T0 = Date.UTC(2026, 9, 1);

interface Seeded {
  requestId: string;
  orgId: string;
  keyId: string;
  modelId: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
  finishedAt: number;
  savedPerMillion: number;
}

/** Writes usage rows through the real metering query, spread over hours, days, models and keys. */
async function seed(orgId: string, count: number): Promise<Seeded[]> {
  const db = database(env.DB);
  await createOrganization(db, orgId, orgId);
  const out: Seeded[] = [];
  for (let n = 0; n < count; n++) {
    const modelId = n % 3 === 0 ? 'kimi-k2-thinking' : 'k2-tiny';
    const price = (await priceAt(db, modelId, T0))!;
    const promptTokens = 50 + ((n * 37) % 400);
    const tokens = { promptTokens, cachedTokens: (n * 53) % promptTokens, completionTokens: (n * 11) % 90 };
    const finishedAt = T0 + n * 5 * 3_600_000 + (n % 7) * 60_000;
    const row: Seeded = {
      requestId: `req_${orgId}_${n}`,
      orgId,
      keyId: `key_${orgId}_${n % 2}`,
      modelId,
      ...tokens,
      costMicros: costMicros(price, tokens),
      finishedAt,
      savedPerMillion: price.inputCacheMiss - price.inputCacheHit,
    };
    await recordUsage(db, {
      ...row,
      endpoint: 'chat.completions',
      priceId: price.id,
      status: 'completed',
      finishReason: 'stop',
      startedAt: finishedAt - 500,
    });
    out.push(row);
  }
  return out;
}

function sum(rows: Seeded[]): Totals {
  return {
    requests: rows.length,
    promptTokens: rows.reduce((a, r) => a + r.promptTokens, 0),
    cachedTokens: rows.reduce((a, r) => a + r.cachedTokens, 0),
    completionTokens: rows.reduce((a, r) => a + r.completionTokens, 0),
    costMicros: rows.reduce((a, r) => a + r.costMicros, 0),
  };
}

describe('usage stats over real D1 rows', () => {
  it('sums a range of one org, and of every org, exactly', async () => {
    const a = await seed('stats_a', 30);
    const b = await seed('stats_b', 10);
    const from = a[5].finishedAt;
    const to = a[25].finishedAt; // exclusive
    const inA = a.filter((r) => r.finishedAt >= from && r.finishedAt < to);
    const summary = await usageSummary(env.DB, { orgId: 'stats_a', from, to });
    expect(summary).toMatchObject(sum(inA));
    expect(summary.cacheHitRate).toBeCloseTo(sum(inA).cachedTokens / sum(inA).promptTokens, 12);
    // Saving per price row, rounded down once per row (two models = two price rows here).
    const saved = ['k2-tiny', 'kimi-k2-thinking']
      .map((m) => inA.filter((r) => r.modelId === m))
      .reduce((acc, rows) => acc + (rows.length ? Math.floor((sum(rows).cachedTokens * rows[0].savedPerMillion) / 1e6) : 0), 0);
    expect(summary.savedMicros).toBe(saved);

    const everyone = [...a, ...b].filter((r) => r.finishedAt >= from && r.finishedAt < to);
    expect(await usageSummary(env.DB, { orgId: null, from, to })).toMatchObject(sum(everyone));
  });

  it('buckets by UTC hour and day, and breaks down by model and key', async () => {
    const rows = await seed('stats_c', 24);
    const q = { orgId: 'stats_c', from: T0, to: T0 + 30 * 86_400_000 };
    for (const bucket of ['hour', 'day'] as const) {
      const points = await usageTimeseries(env.DB, q, bucket);
      const expected = new Map<number, Seeded[]>();
      for (const r of rows) {
        const t = Math.floor(r.finishedAt / BUCKET_MS[bucket]) * BUCKET_MS[bucket];
        expected.set(t, [...(expected.get(t) ?? []), r]);
      }
      expect(points.map((p) => p.t)).toEqual([...expected.keys()].sort((x, y) => x - y));
      for (const p of points) expect(p).toMatchObject(sum(expected.get(p.t)!));
    }
    const byModel = await usageBreakdown(env.DB, q, 'model');
    expect(byModel.map((r) => r.group).sort()).toEqual(['k2-tiny', 'kimi-k2-thinking']);
    for (const r of byModel) expect(r).toMatchObject(sum(rows.filter((x) => x.modelId === r.group)));
    const byKey = await usageBreakdown(env.DB, q, 'key');
    for (const r of byKey) expect(r).toMatchObject(sum(rows.filter((x) => x.keyId === r.group)));
    expect(byKey[0].costMicros).toBeGreaterThanOrEqual(byKey[1].costMicros);

    const lines = await dailyUsageLines(env.DB, q);
    expect(lines.reduce((acc, l) => acc + l.costMicros, 0)).toBe(sum(rows).costMicros);
    expect(lines.reduce((acc, l) => acc + l.requests, 0)).toBe(rows.length);
  });

  it('pages requests newest first without repeating or skipping a row', async () => {
    const rows = await seed('stats_d', 23);
    const seen: string[] = [];
    let before = null;
    for (let page = 0; page < 10; page++) {
      const result: Awaited<ReturnType<typeof recentRequests>> = await recentRequests(env.DB, { orgId: 'stats_d', limit: 5, before });
      seen.push(...result.rows.map((r) => r.requestId));
      if (!result.next) break;
      before = result.next;
    }
    const expected = [...rows].sort((x, y) => y.finishedAt - x.finishedAt).map((r) => r.requestId);
    expect(seen).toEqual(expected);
  });
});
