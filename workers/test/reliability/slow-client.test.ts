/**
 * Backpressure for a slow client, inside workerd (no kernel socket buffers between the client and
 * the worker, unlike the loopback test in test/reliability/): the SSE stream is pull-driven, so while
 * the client does not read, the worker does not read the node either, and nothing piles up in the
 * worker. What is billed when the client finally hangs up is what it was sent, not what the node
 * could have produced meanwhile.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { database } from '../../src/db/queries.ts';
import { usageEventsForRequest } from '../../src/billing/ledger.ts';
import { api, createTenant, eventually, expectReconciled, useTestNode, type Tenant } from '../fixtures.ts';

let tenant: Tenant;

beforeAll(async () => {
  await useTestNode();
  tenant = await createTenant({ creditMicros: 5_000_000 });
});

describe('slow client', () => {
  it('a stalled reader stalls the generation it is billed for', async () => {
    const maxTokens = 400;
    const hangUp = new AbortController();
    const res = await api(
      '/chat/completions',
      tenant.key,
      { model: 'k2-tiny', messages: [{ role: 'user', content: 'Write a long poem about the sea.' }], max_tokens: maxTokens, temperature: 0, stream: true },
      { signal: hangUp.signal },
    );
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The role chunk and three content chunks.
    while ((text.match(/\n\n/g) ?? []).length < 4) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended early');
      text += decoder.decode(value, { stream: true });
    }
    const chunksRead = (text.match(/\n\n/g) ?? []).length;
    // Long enough for the node (~100 tok/s on 2 cores) to produce well over max_tokens / 4 if nothing held it back.
    await new Promise((r) => setTimeout(r, 2500));
    hangUp.abort();
    await reader.cancel().catch(() => undefined);
    const [row] = await eventually(async () => {
      const rows = await usageEventsForRequest(database(env.DB), requestId);
      return rows.length > 0 ? rows : undefined;
    });
    console.log(`slow client: read ${chunksRead} chunks, billed ${row.completionTokens} tokens`);
    expect(row.status).toBe('cancelled');
    // Billed ≈ what was read: one node event per pull, a few tokens of slack for the event in flight.
    expect(row.completionTokens).toBeGreaterThanOrEqual(chunksRead - 1);
    expect(row.completionTokens).toBeLessThan(maxTokens / 4);
    await expectReconciled(tenant.orgId);
  }, 30_000);
});
