import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt } from '../db/queries.ts';
import { ledgerEntryForRequest, usageEventsForRequest } from '../billing/ledger.ts';
import { api, createTenant, eventually, useTestNode, type Tenant } from '../../test/fixtures.ts';

interface ChatBody {
  choices: { message: { content: string | null } }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

const request = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'k2-tiny',
  messages: [{ role: 'user', content }],
  max_tokens: 6,
  temperature: 0,
  ...extra,
});

async function ask(tenant: Tenant, body: unknown, headers: Record<string, string> = { 'x-response-cache': 'use' }) {
  const res = await api('/chat/completions', tenant.key, body, { headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.key}`, ...headers } });
  expect(res.status).toBe(200);
  return { res, status: res.headers.get('x-response-cache-status'), requestId: res.headers.get('x-request-id')!, text: await res.text() };
}

async function billed(requestId: string) {
  const db = database(env.DB);
  const [event] = await eventually(async () => {
    const rows = await usageEventsForRequest(db, requestId);
    return rows.length > 0 ? rows : undefined;
  });
  return { event, debit: await ledgerEntryForRequest(db, requestId), price: (await priceAt(db, 'k2-tiny', event.startedAt))! };
}

describe('opt-in response cache', () => {
  let a: Tenant;
  let b: Tenant;
  beforeAll(async () => {
    await useTestNode();
    [a, b] = await Promise.all([createTenant(), createTenant()]);
  });

  it('answers a repeated deterministic request from the cache, billed at the cache-hit input price only', async () => {
    const body = request(`cache me ${crypto.randomUUID()}`);
    const first = await ask(a, body);
    expect(first.status).toBe('miss');
    const firstBody = JSON.parse(first.text) as ChatBody;
    // The store is written after the response (waitUntil): poll until the repeat hits.
    const second = await eventually(async () => {
      const r = await ask(a, body);
      return r.status === 'hit' ? r : undefined;
    });
    const hit = JSON.parse(second.text) as ChatBody;
    expect(hit.choices[0].message.content).toBe(firstBody.choices[0].message.content);
    const n = firstBody.usage.prompt_tokens;
    expect(hit.usage).toMatchObject({ prompt_tokens: n, completion_tokens: 0, prompt_tokens_details: { cached_tokens: n } });

    const { event, debit, price } = await billed(second.requestId);
    const expected = costMicros(price, { promptTokens: n, cachedTokens: n, completionTokens: 0 });
    expect(event).toMatchObject({ promptTokens: n, cachedTokens: n, completionTokens: 0, status: 'completed', costMicros: expected });
    expect(debit).toMatchObject({ amountMicros: -expected });
    const missCost = (await billed(first.requestId)).event.costMicros;
    expect(expected).toBeLessThan(missCost);
  });

  it('never serves one org the answer cached for another', async () => {
    const body = request(`shared words ${crypto.randomUUID()}`);
    expect((await ask(a, body)).status).toBe('miss');
    await eventually(async () => ((await ask(a, body)).status === 'hit' ? true : undefined));
    // Same prompt, same params, other org: its own (empty) cache.
    expect((await ask(b, body)).status).toBe('miss');
  });

  it('replays a hit as SSE for a streaming request', async () => {
    const body = request(`stream me ${crypto.randomUUID()}`);
    const plain = JSON.parse((await ask(a, body)).text) as ChatBody;
    const streamed = await eventually(async () => {
      const r = await ask(a, { ...body, stream: true });
      return r.status === 'hit' ? r : undefined;
    });
    const content = streamed.text
      .split('\n\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => (JSON.parse(l.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe(plain.choices[0].message.content);
    expect(streamed.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('bypasses requests that did not opt in or are not deterministic', async () => {
    const body = request(`no cache ${crypto.randomUUID()}`);
    expect((await ask(a, body, {})).status).toBeNull();
    expect((await ask(a, { ...body, temperature: 0.8 })).status).toBe('bypass');
    expect((await ask(a, { ...body, temperature: 0.8 })).status).toBe('bypass');
    // A seed makes sampling reproducible, so it may be cached.
    expect((await ask(a, { ...body, temperature: 0.8, seed: 7 })).status).toBe('miss');
  });
});
