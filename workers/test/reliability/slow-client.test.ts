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

/** A streamed chat request through the edge, and a reader counting its SSE events. */
async function streamChat(signal: AbortSignal, maxTokens: number) {
  const res = await api(
    '/chat/completions',
    tenant.key,
    { model: 'k2-tiny', messages: [{ role: 'user', content: 'Write a long poem about the sea.' }], max_tokens: maxTokens, temperature: 0, stream: true },
    { signal },
  );
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    requestId: res.headers.get('x-request-id')!,
    reader,
    events: () => (text.match(/\n\n/g) ?? []).length,
    /** Reads until `n` events arrived; false when the stream ended first. */
    async readUntil(n: number): Promise<boolean> {
      while ((text.match(/\n\n/g) ?? []).length < n) {
        const { value, done } = await reader.read();
        if (done) return false;
        text += decoder.decode(value, { stream: true });
      }
      return true;
    },
  };
}

describe('slow client', () => {
  it('a stalled reader stalls the generation it is billed for, while the node serves others', async () => {
    const maxTokens = 400;
    const hangUp = new AbortController();
    const stalled = await streamChat(hangUp.signal, maxTokens);
    // The role chunk and three content chunks.
    expect(await stalled.readUntil(4)).toBe(true);
    const chunksRead = stalled.events();
    // The stall lasts until the node has demonstrably produced PRODUCED_DURING_STALL tokens for a
    // second client that reads as fast as it can: what the stalled request would have been billed
    // had the worker kept reading the node for it. Event-driven, so a slow machine only stretches it.
    const PRODUCED_DURING_STALL = 60;
    const controlDone = new AbortController();
    const control = await streamChat(controlDone.signal, maxTokens);
    // Each content event carries at least one token; +1 for the role chunk.
    expect(await control.readUntil(PRODUCED_DURING_STALL + 1)).toBe(true);
    hangUp.abort();
    await stalled.reader.cancel().catch(() => undefined);
    controlDone.abort();
    await control.reader.cancel().catch(() => undefined);
    const [row] = await eventually(async () => {
      const rows = await usageEventsForRequest(database(env.DB), stalled.requestId);
      return rows.length > 0 ? rows : undefined;
    });
    expect(row.status).toBe('cancelled');
    // Billed ≈ what was read: the worker reads one node event per pull, so at most the event in
    // flight and a few held-back tokens (text a chunk did not show yet) beyond the chunks read.
    const IN_FLIGHT_TOKENS = 8;
    expect(row.completionTokens).toBeGreaterThanOrEqual(chunksRead - 1);
    expect(row.completionTokens).toBeLessThanOrEqual(chunksRead + IN_FLIGHT_TOKENS);
    expect(row.completionTokens).toBeLessThan(PRODUCED_DURING_STALL);
    await expectReconciled(tenant.orgId);
  }, 30_000);
});
