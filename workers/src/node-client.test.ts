import { env } from 'cloudflare:test';
import { inject, expect, it } from 'vitest';
import { database } from './db/queries.ts';
import { usageEventsForRequest } from './billing/ledger.ts';
import { adminFetch, api, createTenant, eventually } from '../test/fixtures.ts';

const chat = { model: 'k2-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
/** Shorter than one KV block (16 tokens), so routing has no prefix to place and takes the idlest node. */
const shortCompletion = { model: 'k2-tiny', prompt: 'hi', max_tokens: 2 };
/** Port 9 (discard) has no listener here: connecting to it is refused. */
const REFUSING_NODE = 'http://127.0.0.1:9';

/** Registers exactly `urls` as the k2-tiny pool for the duration of `body`, whatever earlier tests left. */
async function withPool(urls: string[], body: () => Promise<void>): Promise<void> {
  for (const url of [inject('nodeUrl'), inject('crashedNodeUrl'), REFUSING_NODE]) await adminFetch('/nodes', { pool: 'k2-tiny', url }, 'DELETE');
  for (const url of urls) expect((await adminFetch('/nodes', { pool: 'k2-tiny', url })).ok).toBe(true);
  try {
    await body();
  } finally {
    for (const url of urls) await adminFetch('/nodes', { pool: 'k2-tiny', url }, 'DELETE');
  }
}

async function crashedNodeAttempts(): Promise<number> {
  const res = await fetch(`${inject('crashedNodeUrl')}/generate-attempts`);
  return ((await res.json()) as { attempts: number }).attempts;
}

it('skips a node that fails on connect and uses the next one in the pool', async () => {
  // The crashed node passes its load poll as the idlest node, so routing tries it first; its
  // generate connection then fails and the request must move on to the live node.
  await withPool([inject('crashedNodeUrl'), inject('nodeUrl')], async () => {
    const { key } = await createTenant();
    const before = await crashedNodeAttempts();
    const res = await api('/completions', key, shortCompletion);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: unknown[] }).choices).toHaveLength(1);
    expect(await crashedNodeAttempts()).toBe(before + 1);
  });
});

it('503 when no node of the pool answers, with a zero-cost failed usage row', async () => {
  await withPool([REFUSING_NODE], async () => {
    const { key } = await createTenant();
    const res = await api('/chat/completions', key, chat);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { type: 'server_error', code: 'upstream_unavailable' } });
    const requestId = res.headers.get('x-request-id')!;
    const [row] = await eventually(async () => {
      const rows = await usageEventsForRequest(database(env.DB), requestId);
      return rows.length ? rows : undefined;
    });
    expect(row).toMatchObject({ status: 'failed', completionTokens: 0, costMicros: 0 });
  });
});

it('503 for a catalogue model whose tokenizer this edge does not bundle', async () => {
  const { key } = await createTenant();
  const res = await api('/chat/completions', key, { ...chat, model: 'kimi-k2-thinking' });
  expect(res.status).toBe(503);
});
