import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, api, createTenant, eventually } from '../../test/fixtures.ts';
import { bumpReadCacheVersion, ReadCache, readCacheTtlMs } from './read-cache.ts';

describe('ReadCache', () => {
  it('serves a load until its TTL, then loads again', async () => {
    const cache = new ReadCache<number>();
    let loads = 0;
    const load = async () => ++loads;
    expect(await cache.get('k', 1_000, load, 0)).toBe(1);
    expect(await cache.get('k', 1_000, load, 999)).toBe(1);
    expect(await cache.get('k', 1_000, load, 1_000)).toBe(2);
  });

  it('a version bump (an admin write in this isolate) drops every entry at once', async () => {
    const cache = new ReadCache<number>();
    let loads = 0;
    const load = async () => ++loads;
    await cache.get('k', 60_000, load, 0);
    bumpReadCacheVersion();
    expect(await cache.get('k', 60_000, load, 1)).toBe(2);
  });

  it('never keeps a miss or a failure, and shares one load between concurrent callers', async () => {
    const cache = new ReadCache<number | undefined>();
    let loads = 0;
    expect(await cache.get('missing', 60_000, async () => (loads++, undefined), 0)).toBeUndefined();
    expect(await cache.get('missing', 60_000, async () => ++loads, 1)).toBe(2);
    await expect(cache.get('broken', 60_000, async () => { throw new Error('D1 down'); }, 0)).rejects.toThrow('D1 down');
    expect(await cache.get('broken', 60_000, async () => 7, 1)).toBe(7);
    let shared = 0;
    const slow = () => new Promise<number>((r) => setTimeout(() => r(++shared), 10));
    expect(await Promise.all([cache.get('s', 60_000, slow, 0), cache.get('s', 60_000, slow, 0)])).toEqual([1, 1]);
  });
});

describe('revocation with cached keys', () => {
  it('a key revoked through the admin API is refused on the very next request', async () => {
    const t = await createTenant();
    expect((await api('/models', t.key)).status).toBe(200);
    expect((await adminFetch(`/keys/${t.keyId}/revoke`, {})).status).toBe(200);
    expect((await api('/models', t.key)).status).toBe(403);
  });

  it('a key revoked elsewhere (another isolate wrote D1) is refused within the cache TTL', async () => {
    const t = await createTenant();
    expect((await api('/models', t.key)).status).toBe(200);
    const ttl = readCacheTtlMs(env);
    // The write another isolate's admin route makes; this isolate's version stamp is not bumped.
    await env.DB.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').bind(Date.now(), t.keyId).run();
    const revokedAt = Date.now();
    // Still cached here: this isolate has not seen the write.
    expect((await api('/models', t.key)).status).toBe(200);
    // The stated bound: refused once the TTL has run out (plus scheduling margin on a loaded machine).
    await eventually(async () => ((await api('/models', t.key)).status === 403 ? true : undefined), ttl + 3_000);
    expect(Date.now() - revokedAt).toBeGreaterThanOrEqual(ttl - 50);
  }, 20_000);
});
