import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt } from '../db/queries.ts';
import { ledgerEntryForRequest, usageEventsForRequest } from '../billing/ledger.ts';
import { api, createTenant, eventually, useTestNode, type Tenant } from '../../test/fixtures.ts';

const messages = [{ role: 'user', content: 'Say something short.' }];

interface OpenAIUsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details?: { reasoning_tokens: number };
  cost?: number;
}

/** Parses an SSE body into its data payloads ("[DONE]" kept as a string). */
async function sseEvents(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

/** The usage row and ledger debit of a request, once waitUntil has written them. */
async function recorded(requestId: string) {
  const db = database(env.DB);
  const [event] = await eventually(async () => {
    const rows = await usageEventsForRequest(db, requestId);
    return rows.length > 0 ? rows : undefined;
  });
  const debit = await ledgerEntryForRequest(db, requestId);
  return { event, debit, rows: await usageEventsForRequest(db, requestId) };
}

async function expectBilled(requestId: string, usage: OpenAIUsageBody) {
  const { event, debit, rows } = await recorded(requestId);
  expect(rows).toHaveLength(1);
  expect(event).toMatchObject({
    promptTokens: usage.prompt_tokens,
    cachedTokens: usage.prompt_tokens_details.cached_tokens,
    completionTokens: usage.completion_tokens,
    status: 'completed',
  });
  const price = await priceAt(database(env.DB), 'k2-tiny', event.startedAt);
  const expected = costMicros(price!, {
    promptTokens: usage.prompt_tokens,
    cachedTokens: usage.prompt_tokens_details.cached_tokens,
    completionTokens: usage.completion_tokens,
  });
  expect(expected).toBeGreaterThan(0);
  expect(event.costMicros).toBe(expected);
  expect(debit).toMatchObject({ amountMicros: -expected, kind: 'usage', orgId: event.orgId });
  // usage.cost (OpenRouter's convention): the row's cost, in dollars, from the same integer computation.
  expect(usage.cost).toBe(expected / 1_000_000);
  expect(usage.completion_tokens_details?.reasoning_tokens).toBeGreaterThanOrEqual(0);
}

describe('POST /v1/chat/completions', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    await useTestNode();
    tenant = await createTenant();
  });

  it('answers a chat completion and bills exactly its usage', async () => {
    const res = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages, max_tokens: 5, temperature: 0 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { id: string; object: string; model: string; choices: { message: { role: string; content: string | null }; finish_reason: string }[]; usage: OpenAIUsageBody };
    expect(body).toMatchObject({ object: 'chat.completion', model: 'k2-tiny' });
    expect(body.choices[0].message.role).toBe('assistant');
    expect(['stop', 'length', 'tool_calls']).toContain(body.choices[0].finish_reason);
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(5);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    const requestId = res.headers.get('x-request-id')!;
    expect(body.id).toBe(`chatcmpl-${requestId}`);
    await expectBilled(requestId, body.usage);
  });

  it('streams SSE chunks, ends with [DONE] and a usage chunk when asked', async () => {
    const res = await api('/chat/completions', tenant.key, {
      model: 'k2-tiny',
      messages,
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as { object: string; choices: { delta: Record<string, unknown>; finish_reason: string | null }[]; usage: OpenAIUsageBody | null }[];
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage!.completion_tokens).toBeGreaterThan(0);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-2)!.choices[0].finish_reason).not.toBeNull();
    await expectBilled(res.headers.get('x-request-id')!, usageChunk.usage!);
  });

  it('records usage for a stream even when the client did not ask for it', async () => {
    const res = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages, max_tokens: 4, temperature: 0, stream: true });
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.some((e) => typeof e === 'object' && e !== null && 'usage' in e)).toBe(false);
    const { event } = await recorded(res.headers.get('x-request-id')!);
    expect(event.status).toBe('completed');
    expect(event.completionTokens).toBeGreaterThan(0);
    expect(event.costMicros).toBeGreaterThan(0);
  });

  it('records only the tokens sent when the client disconnects mid-stream', async () => {
    const maxTokens = 48;
    const res = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages, max_tokens: maxTokens, temperature: 0, stream: true });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    // Role chunk + three content chunks, then hang up.
    while ((received.match(/\n\n/g) ?? []).length < 4) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
    const { event, debit } = await recorded(res.headers.get('x-request-id')!);
    expect(event.status).toBe('cancelled');
    expect(event.completionTokens).toBeGreaterThanOrEqual(3);
    expect(event.completionTokens).toBeLessThan(maxTokens);
    expect(event.costMicros).toBe(
      costMicros((await priceAt(database(env.DB), 'k2-tiny', event.startedAt))!, event),
    );
    expect(debit!.amountMicros).toBe(-event.costMicros);
  });
});

describe('chat request errors', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    tenant = await createTenant();
  });

  const errorOf = async (res: Response) => ({ status: res.status, ...((await res.json()) as { error: Record<string, unknown> }).error });

  it('400 for a body that is not JSON', async () => {
    const err = await errorOf(await api('/chat/completions', tenant.key, '{"model": "k2-tiny", '));
    expect(err).toMatchObject({ status: 400, type: 'invalid_request_error' });
  });

  it('400 naming the field for a schema violation', async () => {
    expect(await errorOf(await api('/chat/completions', tenant.key, { model: 'k2-tiny' }))).toMatchObject({ status: 400, param: 'messages' });
    const hot = await errorOf(await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages, temperature: 7 }));
    expect(hot).toMatchObject({ status: 400, param: 'temperature', type: 'invalid_request_error' });
    const badRole = await errorOf(await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages: [{ role: 'wizard', content: 'x' }] }));
    expect(badRole.status).toBe(400);
  });

  it('404 for an unknown model', async () => {
    const err = await errorOf(await api('/chat/completions', tenant.key, { model: 'gpt-9', messages }));
    expect(err).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
  });

  it('402 when the organization has no credit', async () => {
    const broke = await createTenant({ creditMicros: 0 });
    const err = await errorOf(await api('/chat/completions', broke.key, { model: 'k2-tiny', messages }));
    expect(err).toMatchObject({ status: 402, code: 'insufficient_quota' });
    // Listing models stays free.
    expect((await api('/models', broke.key)).status).toBe(200);
  });

  it('n choices hold n × max_tokens of output: credit for one choice admits n: 1 and refuses n: 2 with 402', async () => {
    const count = await api('/tokenizers/estimate-token-count', tenant.key, { model: 'k2-tiny', messages });
    const promptTokens = ((await count.json()) as { data: { total_tokens: number } }).data.total_tokens;
    const price = await priceAt(database(env.DB), 'k2-tiny', Date.now());
    const oneChoice = costMicros(price!, { promptTokens, cachedTokens: 0, completionTokens: 4 });
    const exact = await createTenant({ creditMicros: oneChoice });
    const two = await errorOf(await api('/chat/completions', exact.key, { model: 'k2-tiny', messages, max_tokens: 4, n: 2 }));
    expect(two).toMatchObject({ status: 402, code: 'insufficient_quota' });
    const one = await api('/chat/completions', exact.key, { model: 'k2-tiny', messages, max_tokens: 4, n: 1 });
    expect(one.status, await one.clone().text()).toBe(200);
  });

  it('400 when the prompt exceeds the context length', async () => {
    const long = 'lorem ipsum '.repeat(3000);
    const err = await errorOf(await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages: [{ role: 'user', content: long }] }));
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded' });
  });
});
