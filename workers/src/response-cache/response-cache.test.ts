import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { PROTOCOL_VERSION, type SamplingParams } from '../../../shared/protocol.ts';
import { samplingParams, type OpenAISampling } from '../inference/sampling.ts';
import { responseCacheKey, type KeyedNodeRequest } from './key.ts';
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

async function ask(tenant: Tenant, body: unknown, headers: Record<string, string> = { 'x-response-cache': 'use' }, path = '/chat/completions') {
  const res = await api(path, tenant.key, body, { headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.key}`, ...headers } });
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

/** A pair of requests that differ in one field: `b` is sent after `a` is cached. */
interface Pair {
  /** The client field that differs. */
  name: string;
  /** Chat body fields over `request()`'s. */
  a: Record<string, unknown>;
  b: Record<string, unknown>;
}

const weather = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
/** Deterministic by seed as well as by temperature 0, so the temperature pair stays cacheable. */
const seeded = { seed: 1 };

/**
 * For every field of the node's SamplingParams, the client fields that set it, each as a pair differing
 * only in that field. Typed over `keyof SamplingParams`: a field added to the protocol fails the
 * typecheck here until it has a pair (or the reason no client field sets it).
 */
const PAIRS: { [K in keyof SamplingParams]-?: Pair[] | { setByEdge: string } } = {
  max_tokens: [{ name: 'max_tokens', a: seeded, b: { ...seeded, max_tokens: 5 } }],
  temperature: [{ name: 'temperature', a: seeded, b: { ...seeded, temperature: 0.7 } }],
  top_p: [{ name: 'top_p', a: seeded, b: { ...seeded, top_p: 0.5 } }],
  seed: [{ name: 'seed', a: seeded, b: { seed: 2 } }],
  stop_token_ids: { setByEdge: 'the edge sets them per endpoint (chat turn end, or EOS); pinned in the key test below' },
  stop: [{ name: 'stop', a: {}, b: { stop: ['zz'] } }],
  presence_penalty: [{ name: 'presence_penalty', a: {}, b: { presence_penalty: 1 } }],
  frequency_penalty: [{ name: 'frequency_penalty', a: {}, b: { frequency_penalty: 1 } }],
  repetition_penalty: [{ name: 'repetition_penalty', a: {}, b: { repetition_penalty: 1.3 } }],
  top_k: [{ name: 'top_k', a: {}, b: { top_k: 3 } }],
  min_p: [{ name: 'min_p', a: {}, b: { min_p: 0.2 } }],
  min_tokens: [{ name: 'min_tokens', a: {}, b: { min_tokens: 2 } }],
  logit_bias: [{ name: 'logit_bias', a: {}, b: { logit_bias: { '100': 5 } } }],
  response_format: [{ name: 'response_format', a: {}, b: { response_format: { type: 'json_object' } } }],
  logprobs: [
    { name: 'logprobs', a: {}, b: { logprobs: true } },
    { name: 'top_logprobs', a: { logprobs: true }, b: { logprobs: true, top_logprobs: 2 } },
  ],
  n: [{ name: 'n', a: seeded, b: { ...seeded, n: 2 } }],
  tool_calls: [
    { name: 'tool_choice', a: { tools: weather, tool_choice: 'auto' }, b: { tools: weather, tool_choice: 'required' } },
    { name: 'parallel_tool_calls', a: { tools: weather, tool_choice: 'required' }, b: { tools: weather, tool_choice: 'required', parallel_tool_calls: false } },
  ],
};

/** The node sampling a chat body asks for (stop ids and max_tokens as the edge would set them for a short prompt). */
function nodeSampling(body: Record<string, unknown>): SamplingParams {
  const maxTokens = (body.max_tokens as number | undefined) ?? 6;
  return { ...samplingParams(body as OpenAISampling, maxTokens, [2]), max_tokens: maxTokens };
}

/** The fields in which two sampling objects differ. */
const differing = (x: object, y: object) =>
  [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => JSON.stringify((x as Record<string, unknown>)[k]) !== JSON.stringify((y as Record<string, unknown>)[k]));

/** What must be equal between an answer and its replay: the choices (or Messages content), without ids, times and usage. */
const answerOf = (text: string) => {
  const body = JSON.parse(text) as { choices?: unknown; content?: unknown; stop_reason?: unknown };
  return body.choices ?? { content: body.content, stop_reason: body.stop_reason };
};

/** Sends `b` once `a` is cached: it must miss, then get its own entry (a later `b` hits with `b`'s answer). */
async function expectOwnEntry(tenant: Tenant, a: { body: unknown; path?: string }, b: { body: unknown; path?: string }) {
  const use = { 'x-response-cache': 'use' };
  expect((await ask(tenant, a.body, use, a.path)).status).toBe('miss');
  await eventually(async () => ((await ask(tenant, a.body, use, a.path)).status === 'hit' ? true : undefined));
  const first = await ask(tenant, b.body, use, b.path);
  expect(first.status).toBe('miss');
  const again = await eventually(async () => {
    const r = await ask(tenant, b.body, use, b.path);
    return r.status === 'hit' ? r : undefined;
  });
  expect(answerOf(again.text)).toEqual(answerOf(first.text));
}

describe('response cache key: the whole request the node is asked', () => {
  let t: Tenant;
  beforeAll(async () => {
    await useTestNode();
    t = await createTenant();
  });

  const pairs = Object.entries(PAIRS).flatMap(([field, rows]) => (Array.isArray(rows) ? rows.map((p) => ({ field, ...p })) : []));

  it.each(pairs)('a request differing only in $name is a miss with its own entry', async ({ field, a, b }) => {
    // The pair really differs in that one node field, and nowhere else.
    expect(differing(nodeSampling(request('', a)), nodeSampling(request('', b)))).toEqual([field]);
    const content = `pair ${crypto.randomUUID()}`;
    await expectOwnEntry(t, { body: request(content, a) }, { body: request(content, b) });
  });

  it('keys the API that asked: the same chat request through the Messages API is a miss with its own entry', async () => {
    const content = `api ${crypto.randomUUID()}`;
    const messages = { model: 'k2-tiny', max_tokens: 6, temperature: 0, messages: [{ role: 'user', content }] };
    await expectOwnEntry(t, { body: request(content) }, { body: messages, path: '/messages' });
  });

  it('replays every choice with its logprobs as SSE too', async () => {
    const body = request(`choices ${crypto.randomUUID()}`, { seed: 3, n: 2, logprobs: true, top_logprobs: 1 });
    const plain = JSON.parse((await ask(t, body)).text) as { choices: { index: number; message: { content: string }; logprobs: { content: { token: string }[] } }[] };
    const streamed = await eventually(async () => {
      const r = await ask(t, { ...body, stream: true });
      return r.status === 'hit' ? r : undefined;
    });
    const content: string[] = [];
    const tokens: string[][] = [];
    for (const line of streamed.text.split('\n\n').filter((l) => l.startsWith('data: {'))) {
      const chunk = JSON.parse(line.slice(6)) as { choices: { index: number; delta: { content?: string }; logprobs: { content: { token: string }[] } | null }[] };
      for (const ch of chunk.choices) {
        content[ch.index] = (content[ch.index] ?? '') + (ch.delta.content ?? '');
        (tokens[ch.index] ??= []).push(...(ch.logprobs?.content.map((l) => l.token) ?? []));
      }
    }
    expect(plain.choices).toHaveLength(2);
    expect(tokens.flat().length).toBeGreaterThan(0);
    expect(content).toEqual(plain.choices.map((ch) => ch.message.content));
    expect(tokens).toEqual(plain.choices.map((ch) => ch.logprobs.content.map((l) => l.token)));
  });

  it('keys the stop ids the edge sets', () => {
    const node: KeyedNodeRequest = { version: PROTOCOL_VERSION, model: 'k2-tiny', prompt_token_ids: [5, 6, 7], sampling: nodeSampling({ temperature: 0 }) };
    const key = (n: KeyedNodeRequest) => responseCacheKey({ orgId: 'org', modelId: 'k2-tiny', pool: 'k2-tiny', api: 'chat.completions', node: n });
    expect(key({ ...node, sampling: { ...node.sampling, stop_token_ids: [3] } })).not.toBe(key(node));
    expect(key({ ...node })).toBe(key(node));
  });

  it('hits for the same request whatever its key order and whitespace', async () => {
    const content = `order ${crypto.randomUUID()}`;
    const compact = JSON.stringify(request(content, { top_k: 3, logit_bias: { '100': 5, '7': 1 } }));
    expect((await ask(t, compact)).status).toBe('miss');
    await eventually(async () => ((await ask(t, compact)).status === 'hit' ? true : undefined));
    const reordered = `{
      "logit_bias": { "7": 1, "100": 5 },
      "temperature": 0, "top_k": 3,
      "max_tokens": 6,
      "messages": [ { "content": ${JSON.stringify(content)}, "role": "user" } ],
      "model": "k2-tiny"
    }`;
    expect((await ask(t, reordered)).status).toBe('hit');
  });

  it("keeps a json_schema's property order: it is the order the answer is generated in", async () => {
    const schema = (...names: string[]) => ({
      type: 'json_schema',
      json_schema: { name: 'pair', strict: true, schema: { type: 'object', properties: Object.fromEntries(names.map((n) => [n, { type: 'integer' }])), required: names } },
    });
    const content = `schema ${crypto.randomUUID()}`;
    await expectOwnEntry(t, { body: request(content, { response_format: schema('a', 'b') }) }, { body: request(content, { response_format: schema('b', 'a') }) });
  });
});
