/**
 * The whole path with real parts: the official `openai` client → the worker (wrangler's local
 * runtime, local D1 with our migrations) → a real GPU node process running k2-tiny → the usage row
 * and ledger debit in D1, which must match the usage the client received.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateObject, generateText } from 'ai';
import OpenAI from 'openai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { costMicros } from '../shared/pricing.ts';
import { k2TinyTokenizer } from '../shared/tokenizer/index.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from '../scripts/local-worker.ts';
import { startTestNode, type TestNode } from './support/test-node.ts';

const ADMIN_TOKEN = 'e2e-admin-token';

interface Recorded {
  event: { promptTokens: number; cachedTokens: number; completionTokens: number; costMicros: number; status: string; priceId: number; startedAt: number };
  debit: { amountMicros: number; kind: string } | null;
}

describe('openai client → worker → GPU node → D1', () => {
  let node: TestNode;
  let worker: LocalWorker;
  let client: OpenAI;
  let persistTo: string;

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'edge-e2e-'));
    node = await startTestNode();
    applyLocalMigrations(persistTo);
    worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret: node.secret, persistTo });
    const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'e2e', 5_000_000);
    client = new OpenAI({ apiKey: tenant.key, baseURL: `${worker.url}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    await Promise.allSettled([worker?.stop(), node?.stop()]);
    rmSync(persistTo, { recursive: true, force: true });
  });

  const admin = async (path: string) => {
    const res = await fetch(`${worker.url}/admin${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  /** Usage is written in waitUntil, just after the response: poll the admin API for the row. */
  async function recorded(requestId: string): Promise<Recorded> {
    for (let i = 0; i < 100; i++) {
      const res = await admin(`/usage/${requestId}`);
      if (res.status === 200) return res.body as Recorded;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no usage row for ${requestId}`);
  }

  async function expectMatches(requestId: string, usage: OpenAI.CompletionUsage) {
    const { event, debit } = await recorded(requestId);
    const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
    expect(event).toMatchObject({ status: 'completed', promptTokens: usage.prompt_tokens, cachedTokens: cached, completionTokens: usage.completion_tokens });
    const price = (await admin(`/prices/k2-tiny?at=${event.startedAt}`)).body as { id: number; inputCacheMiss: number; inputCacheHit: number; output: number };
    expect(event.priceId).toBe(price.id);
    const cost = costMicros(price, { promptTokens: usage.prompt_tokens, cachedTokens: cached, completionTokens: usage.completion_tokens });
    expect(event.costMicros).toBe(cost);
    expect(debit).toMatchObject({ amountMicros: -cost, kind: 'usage' });
  }

  it('completes a chat request, billed exactly as reported', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hello, who are you?' }], max_tokens: 8, temperature: 0 })
      .withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.usage!.completion_tokens).toBeGreaterThan(0);
    expect(data.usage!.total_tokens).toBe(data.usage!.prompt_tokens + data.usage!.completion_tokens);
    await expectMatches(response.headers.get('x-request-id')!, data.usage!);
  });

  it('streams a chat request with include_usage, billed exactly as reported', async () => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'k2-tiny',
        messages: [{ role: 'user', content: 'Count to three.' }],
        max_tokens: 8,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(finish).not.toBeNull();
    expect(usage!.completion_tokens).toBeGreaterThan(0);
    await expectMatches(response.headers.get('x-request-id')!, usage!);
  });

  it('records only the tokens sent when the client hangs up mid-stream', async () => {
    const maxTokens = 64;
    const hangUp = new AbortController();
    const res = await fetch(`${worker.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: maxTokens, temperature: 0, stream: true }),
      signal: hangUp.signal,
    });
    const requestId = res.headers.get('x-request-id')!;
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    // The role chunk and three more, then hang up.
    while ((received.match(/\n\n/g) ?? []).length < 4) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
    }
    hangUp.abort();
    const { event, debit } = await recorded(requestId);
    expect(event.status).toBe('cancelled');
    expect(event.completionTokens).toBeGreaterThanOrEqual(3);
    expect(event.completionTokens).toBeLessThan(maxTokens);
    expect(debit!.amountMicros).toBe(-event.costMicros);
  });

  it('request surface through the openai client: a sampler field is honoured, an unsupported one names itself in param', async () => {
    const [id] = k2TinyTokenizer().encode(' river');
    const forced = await client.completions.create({ model: 'k2-tiny', prompt: 'Once upon', max_tokens: 2, temperature: 0, logit_bias: { [id]: 100 }, presence_penalty: 0.5 });
    expect(forced.choices[0].text).toBe(' river river');
    const refused = await client.chat.completions.create({ model: 'k2-tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 2, n: 9 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('n');
  });

  it('n: 3 returns three choices; the prompt is billed once and every choice\'s output, streamed or not', async () => {
    const ask = { model: 'k2-tiny', messages: [{ role: 'user' as const, content: 'Name a colour.' }], max_tokens: 3, temperature: 1, seed: 4, n: 3 };
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    // The prompt counts once: as many prompt tokens as the same request with one choice.
    const single = await client.chat.completions.create({ ...ask, n: 1, max_tokens: 1 });
    expect(data.usage!.prompt_tokens).toBe(single.usage!.prompt_tokens);
    // Each choice ran to max_tokens (no stop token at random weights in three tokens) or stopped early.
    expect(data.usage!.completion_tokens).toBeGreaterThanOrEqual(3);
    expect(data.usage!.completion_tokens).toBeLessThanOrEqual(9);
    await expectMatches(response.headers.get('x-request-id')!, data.usage!);
    const { data: stream, response: streamed } = await client.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } }).withResponse();
    const texts = ['', '', ''];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const c of chunk.choices) texts[c.index] += c.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(texts).toEqual(data.choices.map((c) => c.message.content));
    expect(usage!.completion_tokens).toBe(data.usage!.completion_tokens);
    await expectMatches(streamed.headers.get('x-request-id')!, usage!);
  });

  it('request surface through the Vercel AI SDK: generateText with sampler settings; generateObject gets a schema-valid object', async () => {
    const provider = createOpenAICompatible({ name: 'edge', baseURL: `${worker.url}/v1`, apiKey: String(client.apiKey), includeUsage: true, supportsStructuredOutputs: true });
    const out = await generateText({ model: provider('k2-tiny'), prompt: 'Say hi.', maxOutputTokens: 3, temperature: 0, topK: 5, frequencyPenalty: 0.5, maxRetries: 0 });
    expect(out.usage.outputTokens).toBeGreaterThan(0);
    expect(out.text.length).toBeGreaterThan(0);
    // The node constrains decoding to the schema by grammar: k2-tiny's random weights cannot produce this by chance.
    const schema = z.object({ city: z.enum(['Paris', 'Rome', 'Oslo']), rank: z.number().int().min(1).max(9), capital: z.boolean() });
    const made = await generateObject({ model: provider('k2-tiny'), schema, prompt: 'Name a city.', maxOutputTokens: 48, temperature: 1, seed: 3, maxRetries: 0 });
    expect(schema.parse(made.object)).toEqual(made.object);
    expect(made.finishReason).toBe('stop');
  });

  it('response_format through the openai client: json_schema honoured; a schema the node cannot compile is a 400 naming response_format', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: 5 } }, required: ['ok', 'n'], additionalProperties: false };
    const res = await client.chat.completions.create({
      model: 'k2-tiny',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 32,
      response_format: { type: 'json_schema', json_schema: { name: 'flag', schema, strict: true } },
    });
    const parsed = JSON.parse(res.choices[0].message.content!) as { ok: unknown; n: unknown };
    expect(Object.keys(parsed).sort()).toEqual(['n', 'ok']);
    expect(typeof parsed.ok).toBe('boolean');
    expect(Number.isInteger(parsed.n) && (parsed.n as number) >= 0 && (parsed.n as number) <= 5).toBe(true);
    const refused = await client.chat.completions
      .create({ model: 'k2-tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 2, response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { type: 'nonsense' } } } })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format');
  });

  it('logprobs through the edge: chat top_logprobs and completions logprobs in OpenAI shapes, streamed and not', async () => {
    const ask = { model: 'k2-tiny', messages: [{ role: 'user' as const, content: 'Say hi.' }], max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2 };
    const res = await client.chat.completions.create(ask);
    const content = res.choices[0].logprobs!.content!;
    expect(content).toHaveLength(res.usage!.completion_tokens);
    for (const e of content) {
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.token).toBe(e.top_logprobs[0].token); // greedy: the top token was chosen
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(Array.isArray(e.bytes)).toBe(true);
    }
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of await client.chat.completions.create({ ...ask, stream: true })) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    const text = await client.completions.create({ model: 'k2-tiny', prompt: 'Once upon', max_tokens: 2, temperature: 0, logprobs: 1 });
    expect(text.choices[0].logprobs!.tokens!.join('')).toBe(text.choices[0].text);
    expect(text.choices[0].logprobs!.token_logprobs).toHaveLength(text.usage!.completion_tokens);
  });

  it('tool_choice through the edge: a named function is called once with schema-valid arguments; an unknown name is a 400 naming tool_choice', async () => {
    const args = z.object({ city: z.enum(['Paris', 'Oslo']) });
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: z.toJSONSchema(args) as Record<string, unknown> } }];
    const messages = [{ role: 'user' as const, content: 'Weather?' }];
    const res = await client.chat.completions.create({ model: 'k2-tiny', messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false, max_tokens: 40, seed: 2 });
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    const calls = res.choices[0].message.tool_calls!;
    expect(calls).toHaveLength(1);
    const call = calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe('get_weather');
    expect(args.safeParse(JSON.parse(call.function.arguments)).success).toBe(true);
    const refused = await client.chat.completions.create({ model: 'k2-tiny', messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } }, max_tokens: 2 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('tool_choice');
  });

  it('maps errors to what the client library expects', async () => {
    await expect(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = new OpenAI({ apiKey: 'sk-wrong-key-000000000000', baseURL: `${worker.url}/v1`, maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
