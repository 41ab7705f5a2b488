import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { Limits } from '../billing/limits/plans.ts';
import type { RateLimiter } from './rate-limiter.ts';

const wide: Limits = { rpm: 10_000, tpm: 10_000_000, concurrency: 10_000 };

/** A fresh limiter per test: names are unique, so tests never share an object. */
function limiter(): DurableObjectStub<RateLimiter> {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`key:${crypto.randomUUID()}`));
}

describe('RateLimiter', () => {
  it('admits exactly 10 of 50 concurrent requests against 10 requests per minute', async () => {
    const stub = limiter();
    const limits = { ...wide, rpm: 10 };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stub.acquire(`req-${i}`, 100, limits)));
    const admitted = results.filter((r) => r.ok);
    expect(admitted).toHaveLength(10);
    for (const r of results.filter((r) => !r.ok)) {
      expect(r).toMatchObject({ reason: 'requests', tooLarge: false });
      if (!r.ok) expect(r.retryAfterMs).toBeGreaterThan(0);
    }
    expect(await stub.state(limits)).toMatchObject({ remainingRequests: 0, inFlight: 10 });
  });

  it('admits exactly 10 of 50 concurrent requests against a concurrency of 10, then one per finish', async () => {
    const stub = limiter();
    const limits = { ...wide, concurrency: 10 };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stub.acquire(`req-${i}`, 1, limits)));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.find((r) => !r.ok)).toMatchObject({ reason: 'concurrency' });
    const firstAdmitted = results.findIndex((r) => r.ok);
    expect(await stub.finish(`req-${firstAdmitted}`, 7)).toBe(true);
    const again = await Promise.all([stub.acquire('late-1', 1, limits), stub.acquire('late-2', 1, limits)]);
    expect(again.filter((r) => r.ok)).toHaveLength(1);
  });

  it('admits exactly the token budget under concurrency', async () => {
    const stub = limiter();
    const limits = { ...wide, tpm: 1_000 };
    // 40 requests of 100 tokens each against 1000 tokens per minute: exactly 10 fit.
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => stub.acquire(`req-${i}`, 100, limits)));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.find((r) => !r.ok)).toMatchObject({ reason: 'tokens' });
  });

  it('keeps its window across eviction (state is in storage, not in the isolate)', async () => {
    const stub = limiter();
    const limits = { ...wide, rpm: 3 };
    for (const id of ['a', 'b', 'c']) expect((await stub.acquire(id, 1, limits)).ok).toBe(true);
    await evictDurableObject(stub);
    expect((await stub.acquire('d', 1, limits)).ok).toBe(false);
    expect(await stub.state(limits)).toMatchObject({ remainingRequests: 0, inFlight: 3 });
  });

  it('cancel undoes an admission; a repeated id is not counted twice', async () => {
    const stub = limiter();
    const limits = { ...wide, rpm: 1 };
    expect(await stub.acquire('a', 1, limits)).toMatchObject({ ok: true, duplicate: false });
    expect(await stub.acquire('a', 1, limits)).toMatchObject({ ok: true, duplicate: true });
    expect(await stub.cancel('a')).toBe(true);
    expect((await stub.acquire('b', 1, limits)).ok).toBe(true);
  });

  it('stops counting a crashed request as in flight once its lease expires, and the alarm cleans up', async () => {
    const stub = limiter();
    const limits = { ...wide, concurrency: 1 };
    expect((await stub.acquire('crashed', 1, limits, 1)).ok).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await stub.acquire('next', 1, limits)).ok).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const rows = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql.exec<{ id: string; open: number }>('SELECT id, open FROM leases ORDER BY id').toArray(),
    );
    expect(rows).toEqual([
      { id: 'crashed', open: 0 },
      { id: 'next', open: 1 },
    ]);
  });
});
