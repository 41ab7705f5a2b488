import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { createTenant } from '../../test/fixtures.ts';
import { recordUsage } from '../billing/ledger.ts';
import { database, priceAt } from './queries.ts';

const HOUR = 3_600_000;

interface Row {
  backend: string | null;
  status: 'completed' | 'failed' | 'cancelled';
  ttftMs: number | null;
}

/** Usage rows with known TTFTs, all finished inside one UTC hour, through the real metering query. */
async function seed(orgId: string, keyId: string, hourStart: number, rows: Row[]): Promise<void> {
  const db = database(env.DB);
  const price = (await priceAt(db, 'k2-tiny', Date.now()))!;
  for (const [i, r] of rows.entries()) {
    const finishedAt = hourStart + 60_000 + i * 1000;
    await recordUsage(db, {
      requestId: `lat_${crypto.randomUUID()}`,
      orgId,
      keyId,
      modelId: 'k2-tiny',
      endpoint: 'chat.completions',
      promptTokens: 10,
      cachedTokens: 0,
      completionTokens: r.ttftMs === null ? 0 : 5,
      priceId: price.id,
      costMicros: 0,
      status: r.status,
      finishReason: r.status === 'completed' ? 'stop' : null,
      startedAt: finishedAt - 500,
      finishedAt,
      backend: r.backend,
      ttftMs: r.ttftMs,
    });
  }
}

describe('GET /dashboard/api/latency', () => {
  it('gives TTFT p50/p95 (nearest rank) and errors per model, backend and hour, for the caller org only', async () => {
    const t = await createTenant();
    const other = await createTenant();
    const hour = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
    // Pool: TTFTs 10..100 ms in shuffled order, plus two failures that sent nothing and one cancel.
    const pool: Row[] = [70, 10, 100, 40, 20, 90, 30, 60, 80, 50].map((ttftMs) => ({ backend: null, status: 'completed', ttftMs }));
    pool.push({ backend: null, status: 'failed', ttftMs: null }, { backend: null, status: 'failed', ttftMs: null }, { backend: null, status: 'cancelled', ttftMs: 15 });
    await seed(t.orgId, t.keyId, hour, pool);
    await seed(t.orgId, t.keyId, hour, [300, 5, 7].map((ttftMs) => ({ backend: 'vllm-a', status: 'completed' as const, ttftMs })));
    await seed(t.orgId, t.keyId, hour + HOUR, [{ backend: 'vllm-a', status: 'failed', ttftMs: null }]);
    // Another org's slow requests in the same hour must not move this org's figures.
    await seed(other.orgId, other.keyId, hour, [{ backend: null, status: 'completed', ttftMs: 9999 }]);

    const res = await SELF.fetch(`https://edge.test/dashboard/api/latency?bucket=hour&from=${hour}&to=${hour + 2 * HOUR}`, { headers: { authorization: `Bearer ${t.key}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; bucket: string; data: unknown[] };
    expect(body).toMatchObject({ object: 'usage.latency', bucket: 'hour' });
    expect(body.data).toEqual([
      // 11 TTFTs (10..100 and the cancel's 15): rank ⌈5.5⌉ = 6 → 50, rank ⌈10.45⌉ = 11 → 100.
      { t: hour, model: 'k2-tiny', backend: 'pool', requests: 13, errors: 2, ttft_p50_ms: 50, ttft_p95_ms: 100 },
      { t: hour, model: 'k2-tiny', backend: 'vllm-a', requests: 3, errors: 0, ttft_p50_ms: 7, ttft_p95_ms: 300 },
      { t: hour + HOUR, model: 'k2-tiny', backend: 'vllm-a', requests: 1, errors: 1, ttft_p50_ms: null, ttft_p95_ms: null },
    ]);
  });

  it('refuses another org and a bad bucket in the API error shape', async () => {
    const t = await createTenant();
    const other = await createTenant();
    const forbidden = await SELF.fetch(`https://edge.test/dashboard/api/latency?org=${other.orgId}`, { headers: { authorization: `Bearer ${t.key}` } });
    expect(forbidden.status).toBe(403);
    const bad = await SELF.fetch('https://edge.test/dashboard/api/latency?bucket=minute', { headers: { authorization: `Bearer ${t.key}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('bucket');
  });
});
