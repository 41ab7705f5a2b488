import { env } from 'cloudflare:test';
import { inject, expect, it } from 'vitest';
import { database } from './db/queries.ts';
import { usageEventsForRequest } from './billing/ledger.ts';
import { adminFetch, api, createTenant, eventually } from '../test/fixtures.ts';

const chat = { model: 'k2-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };

it('skips an unreachable node and uses the next one in the pool', async () => {
  // Port 9 (discard) has no listener here: the connect fails and the live node answers.
  await adminFetch('/nodes', { pool: 'k2-tiny', url: 'http://127.0.0.1:9' });
  await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('nodeUrl') });
  const { key } = await createTenant();
  const res = await api('/chat/completions', key, chat);
  expect(res.status).toBe(200);
  await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('nodeUrl') }, 'DELETE');
});

it('503 when no node of the pool answers, with a zero-cost failed usage row', async () => {
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

it('503 for a catalogue model whose tokenizer this edge does not bundle', async () => {
  const { key } = await createTenant();
  const res = await api('/chat/completions', key, { ...chat, model: 'kimi-k2-thinking' });
  expect(res.status).toBe(503);
});
