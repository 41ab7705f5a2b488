// One load poll per node per isolate: concurrent requests routing over the same pool share the poll
// in flight. The pool is the real test node under two URLs, one of them through a proxy that counts
// every call the edge makes to it (test/support/counting-proxy.ts), so the polls are counted at a
// real HTTP server, and the requests are real completions that the real node serves.
import { inject, expect, it } from 'vitest';
import { adminFetch, api, createTenant } from '../../test/fixtures.ts';

const CONCURRENT = 8;
/** Shorter than one KV block: routing takes the least-loaded node, which needs both nodes' loads. */
const completion = { model: 'k2-tiny', prompt: 'hi', max_tokens: 1 };

async function loadPolls(): Promise<number> {
  const hits = (await (await fetch(`${inject('countingNodeUrl')}/proxy-hits`)).json()) as Record<string, number>;
  return hits['GET /v1/load'] ?? 0;
}

it(`${CONCURRENT} concurrent requests over a cold pool poll each node once`, async () => {
  const pool = [inject('nodeUrl'), inject('countingNodeUrl')];
  for (const url of [inject('crashedNodeUrl'), 'http://127.0.0.1:9']) await adminFetch('/nodes', { pool: 'k2-tiny', url }, 'DELETE');
  for (const url of pool) expect((await adminFetch('/nodes', { pool: 'k2-tiny', url })).ok).toBe(true);
  try {
    const { key } = await createTenant();
    const before = await loadPolls();
    const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => api('/completions', key, completion)));
    expect(answers.map((r) => r.status)).toEqual(Array(CONCURRENT).fill(200));
    await Promise.all(answers.map((r) => r.arrayBuffer()));
    // No other test uses this URL, so this isolate had no result for it: exactly one poll, shared by all.
    expect(await loadPolls()).toBe(before + 1);
  } finally {
    await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('countingNodeUrl') }, 'DELETE');
  }
});
