/**
 * POST /v1/messages and /v1/messages/count_tokens driven by the official `@anthropic-ai/sdk`,
 * unmodified (its `fetch` option pointed at the worker), against the real GPU node (k2-tiny) and,
 * for the tool round trip, test/support/fake-upstream.ts as an OpenAI-compatible upstream (the
 * random-weight model never emits a tool call). Every answer's usage is checked against its D1 row.
 */
import Anthropic from '@anthropic-ai/sdk';
import { env, SELF } from 'cloudflare:test';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { k2TinyTokenizer } from '../../../shared/tokenizer/index.ts';
import { ledgerEntryForRequest, usageEventsForRequest } from '../billing/ledger.ts';
import { database, priceAt } from '../db/queries.ts';
import { adminFetch, createTenant, eventually, expectReconciled, useTestNode, type Tenant } from '../../test/fixtures.ts';

/** Greedy sampling. The SDK's types no longer list temperature (newer Claude models take none), but it sends it, and we honour it. */
const greedy = { temperature: 0 } as object;

const client = (apiKey: string) => new Anthropic({ apiKey, baseURL: 'http://edge.test', maxRetries: 0, fetch: (url, init) => SELF.fetch(url, init) });

/** The request id behind a message id (`msg_<request id>`). */
const requestIdOf = (messageId: string) => messageId.replace(/^msg_/, '');

/** One usage row, billed exactly what the client was told: input_tokens + cache reads = the prompt. */
async function expectBilled(messageId: string, usage: Anthropic.Usage, model = 'k2-tiny', extra: Record<string, unknown> = {}) {
  const requestId = requestIdOf(messageId);
  const db = database(env.DB);
  const rows = await eventually(async () => {
    const r = await usageEventsForRequest(db, requestId);
    return r.length > 0 ? r : undefined;
  });
  expect(rows).toHaveLength(1);
  const cached = usage.cache_read_input_tokens ?? 0;
  const counts = { promptTokens: usage.input_tokens + cached, cachedTokens: cached, completionTokens: usage.output_tokens };
  const price = await priceAt(db, model, rows[0].startedAt);
  const cost = costMicros(price!, counts);
  expect(rows[0]).toMatchObject({ ...counts, costMicros: cost, endpoint: 'messages', status: 'completed', ...extra });
  expect(await ledgerEntryForRequest(db, requestId)).toMatchObject({ amountMicros: -cost, kind: 'usage' });
}

let tenant: Tenant;
let anthropic: Anthropic;

beforeAll(async () => {
  await useTestNode();
  tenant = await createTenant();
  anthropic = client(tenant.key);
});

describe('Messages API on our node pool', () => {
  it('messages.create answers in Anthropic shape and bills exactly the usage it reports', async () => {
    const msg = await anthropic.messages.create({ model: 'k2-tiny', max_tokens: 6, ...greedy, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello there' }] });
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', model: 'k2-tiny', stop_sequence: null });
    expect(['end_turn', 'max_tokens']).toContain(msg.stop_reason);
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
    expect(msg.usage.output_tokens).toBeLessThanOrEqual(6);
    expect(msg.content.every((b) => ['text', 'thinking', 'tool_use'].includes(b.type))).toBe(true);
    await expectBilled(msg.id, msg.usage);
  });

  it('messages.stream delivers the event sequence; the final message matches the bill', async () => {
    const stream = anthropic.messages.stream({ model: 'k2-tiny', max_tokens: 8, ...greedy, messages: [{ role: 'user', content: 'Count to three.' }] });
    const types: string[] = [];
    stream.on('streamEvent', (e) => types.push(e.type));
    const msg = await stream.finalMessage();
    expect(types[0]).toBe('message_start');
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(types).toContain('content_block_start');
    expect(types.filter((t) => t === 'content_block_start').length).toBe(types.filter((t) => t === 'content_block_stop').length);
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
    const text = msg.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    expect(text.length + msg.content.filter((b) => b.type !== 'text').length).toBeGreaterThan(0);
    await expectBilled(msg.id, msg.usage);
  });

  it('countTokens is the prompt a create with the same prompt is billed', async () => {
    const prompt = { model: 'k2-tiny', system: 'You answer in French.', messages: [{ role: 'user' as const, content: 'What is the capital of Italy?' }] };
    const counted = await anthropic.messages.countTokens(prompt);
    const msg = await anthropic.messages.create({ ...prompt, max_tokens: 1, ...greedy });
    expect(counted.input_tokens).toBeGreaterThan(10);
    expect(msg.usage.input_tokens + (msg.usage.cache_read_input_tokens ?? 0)).toBe(counted.input_tokens);
    // The same prompt as a chat request: K2's template renders the system prompt and the turn identically.
    const chat = await SELF.fetch('http://edge.test/v1/tokenizers/estimate-token-count', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.key}` },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'system', content: prompt.system }, ...prompt.messages] }),
    });
    expect(((await chat.json()) as { data: { total_tokens: number } }).data.total_tokens).toBe(counted.input_tokens);
  });

  it('a repeated long prompt is read from the prefix cache and billed at the hit price', async () => {
    const prompt = { model: 'k2-tiny', max_tokens: 1, ...greedy, system: 'A long and unchanging system prompt. '.repeat(12), messages: [{ role: 'user' as const, content: 'Hi' }] };
    await anthropic.messages.create(prompt);
    const again = await anthropic.messages.create(prompt);
    expect(again.usage.cache_read_input_tokens).toBeGreaterThan(0);
    await expectBilled(again.id, again.usage);
  });

  it('errors come in Anthropic shape with its statuses, and x-api-key or Bearer both authenticate', async () => {
    const noKey = await SELF.fetch('http://edge.test/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    // Anthropic's own header (Claude Code sends its key this way).
    const viaHeader = await SELF.fetch('http://edge.test/v1/messages/count_tokens', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': tenant.key, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(viaHeader.status).toBe(200);
    await expect(client('sk-wrong-key-0000000000000000').messages.create({ model: 'k2-tiny', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);

    const unknown = await anthropic.messages.create({ model: 'k2-tiny', max_tokens: 1, messages: [{ role: 'user', content: 'x' }], container: 'c1' } as never).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(Anthropic.BadRequestError);
    expect((unknown as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect((unknown as Error).message).toContain('container');

    const noMax = await SELF.fetch('http://edge.test/v1/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.key}`, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(noMax.status).toBe(400);
    expect(await noMax.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } });

    const image = await anthropic.messages
      .create({ model: 'k2-tiny', max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } }] }] })
      .catch((e: unknown) => e);
    expect(image).toBeInstanceOf(Anthropic.BadRequestError);

    const missingModel = await anthropic.messages.create({ model: 'no-such-model', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(missingModel).toBeInstanceOf(Anthropic.NotFoundError);
    expect((missingModel as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ error: { type: 'not_found_error' } });

    const broke = await createTenant({ creditMicros: 0 });
    const unpaid = await client(broke.key).messages.create({ model: 'k2-tiny', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(unpaid).toBeInstanceOf(Anthropic.APIError);
    expect((unpaid as InstanceType<typeof Anthropic.APIError>).status).toBe(402);
    expect((unpaid as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'billing_error' } });

    // tool_choice "any" is enforced by the node's tool-call grammar: a schema that admits only {} makes the call whole.
    const forced = await anthropic.messages.create({
      model: 'k2-tiny',
      max_tokens: 64,
      tools: [{ name: 'f', input_schema: { type: 'object', properties: {}, additionalProperties: false } }],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(forced.stop_reason).toBe('tool_use');
    expect(forced.content.filter((b) => b.type === 'tool_use')).toMatchObject([{ type: 'tool_use', name: 'f', input: {} }]);
    await expectReconciled(tenant.orgId);
  });
});

describe('Messages streams that end early', () => {
  it('a client that hangs up mid-stream is billed only the tokens sent', async () => {
    const maxTokens = 48;
    const res = await SELF.fetch('http://edge.test/v1/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': tenant.key, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'k2-tiny', max_tokens: maxTokens, temperature: 0, stream: true, messages: [{ role: 'user', content: 'Tell me a long story.' }] }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    // message_start, the block start and a few text deltas, then hang up.
    while ((received.match(/event: content_block_delta/g) ?? []).length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
    const requestId = res.headers.get('x-request-id')!;
    const db = database(env.DB);
    const [row] = await eventually(async () => {
      const r = await usageEventsForRequest(db, requestId);
      return r.length > 0 ? r : undefined;
    });
    expect(row).toMatchObject({ status: 'cancelled', endpoint: 'messages' });
    expect(row.completionTokens).toBeGreaterThanOrEqual(3);
    expect(row.completionTokens).toBeLessThan(maxTokens);
    expect(row.costMicros).toBe(costMicros((await priceAt(db, 'k2-tiny', row.startedAt))!, row));
    expect((await ledgerEntryForRequest(db, requestId))!.amountMicros).toBe(-row.costMicros);
  });

  it('an upstream cut mid-answer ends the stream with an Anthropic error event; what was sent is billed once', async () => {
    const tag = `cut${Date.now().toString(36)}`;
    const model = 'kimi-k2-instruct';
    const current = (await (await adminFetch(`/models/${model}/backends`)).json()) as { backends: { name: string }[] };
    for (const b of current.backends) await adminFetch(`/models/${model}/backends/${b.name}`, undefined, 'DELETE');
    await adminFetch(`/models/${model}/backends`, { name: 'cut', kind: 'openai', base_url: `${inject('fakeUpstreamUrl')}/cut/${tag}/v1`, upstream_model: 'up' });
    const stream = anthropic.messages.stream({ model, max_tokens: 20, messages: [{ role: 'user', content: 'x' }] });
    let text = '';
    stream.on('text', (t) => (text += t));
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(text).toBe('Partial answer');
    const requestId = stream.currentMessage!.id.replace(/^msg_/, '');
    const rows = await eventually(async () => {
      const r = await usageEventsForRequest(database(env.DB), requestId);
      return r.length > 0 ? r : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'failed', estimated: 1, endpoint: 'messages', completionTokens: k2TinyTokenizer().encode('Partial answer').length });
    await expectReconciled(tenant.orgId);
  });
});

describe('Messages API through an OpenAI-compatible upstream', () => {
  it('a tool round trip: tool_use → tool_result → answer, each billed once', async () => {
    const upstream = `${inject('fakeUpstreamUrl')}/tool-loop/msg${Date.now().toString(36)}/v1`;
    const model = 'kimi-k2-instruct';
    const current = (await (await adminFetch(`/models/${model}/backends`)).json()) as { backends: { name: string }[] };
    for (const b of current.backends) await adminFetch(`/models/${model}/backends/${b.name}`, undefined, 'DELETE');
    expect((await adminFetch(`/models/${model}/backends`, { name: 'fake', kind: 'openai', base_url: upstream, upstream_model: 'up' })).status).toBe(201);

    const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
    const question: Anthropic.MessageParam = { role: 'user', content: 'Weather in Paris?' };
    const first = await anthropic.messages.create({ model, max_tokens: 100, tools, messages: [question] });
    expect(first.stop_reason).toBe('tool_use');
    const thinking = first.content.find((b) => b.type === 'thinking');
    expect(thinking).toMatchObject({ thinking: 'The user wants weather.' });
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!;
    expect(call).toMatchObject({ id: 'call_1', name: 'get_weather', input: { city: 'Paris' } });
    expect(first.usage).toMatchObject({ input_tokens: 8, cache_read_input_tokens: 32, output_tokens: 12 });
    await expectBilled(first.id, first.usage, model, { backend: 'fake' });

    // The same turn streamed: the tool input arrives as input_json_delta and parses to the same object.
    const streamed = await anthropic.messages.stream({ model, max_tokens: 100, tools, messages: [question] }).finalMessage();
    expect(streamed.content.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
    expect(streamed.content[2]).toMatchObject({ id: 'call_1', input: { city: 'Paris' } });
    expect(streamed.stop_reason).toBe('tool_use');
    await expectBilled(streamed.id, streamed.usage, model, { backend: 'fake' });

    const answer = await anthropic.messages.create({
      model,
      max_tokens: 100,
      tools,
      messages: [question, { role: 'assistant', content: first.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '21 degrees, sunny' }] }],
    });
    expect(answer.stop_reason).toBe('end_turn');
    expect(answer.content).toEqual([{ type: 'text', text: 'Sunny and 21 degrees in Paris.' }]);
    await expectBilled(answer.id, answer.usage, model, { backend: 'fake' });

    // What the upstream received: the tool result as a chat tool message after the assistant's call.
    const sent = (await (await fetch(`${upstream.replace(/\/tool-loop\/(\w+)\/v1$/, '/requests/$1')}`)).json()) as { messages: Record<string, unknown>[]; tools: unknown[] }[];
    expect(sent.at(-1)!.messages.slice(-2)).toEqual([
      { role: 'assistant', content: 'Checking.', reasoning_content: 'The user wants weather.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '21 degrees, sunny' },
    ]);
    expect(sent[0].tools).toEqual([{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: tools[0].input_schema } }]);
    await expectReconciled(tenant.orgId);
  });
});
