/**
 * The agent APIs across real processes: the official `@anthropic-ai/sdk` and `openai` clients,
 * unmodified → the worker (wrangler's local runtime, local D1 with our migrations) → a real GPU node
 * process running k2-tiny, or test/support/fake-upstream.ts as an OpenAI-compatible upstream for
 * the tool round trips (the random-weight model never calls a tool) → the usage row and ledger
 * debit in D1, which must match the usage each client received.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../shared/pricing.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from '../scripts/local-worker.ts';
import { startFakeUpstream, type FakeUpstream } from './support/fake-upstream.ts';
import { startTestNode, type TestNode } from './support/test-node.ts';

const ADMIN_TOKEN = 'agent-sdks-admin-token';
/** Served by the fake upstream in these tests (its backend is set in beforeAll). */
const UPSTREAM_MODEL = 'kimi-k2-instruct';

interface Recorded {
  event: { promptTokens: number; cachedTokens: number; completionTokens: number; costMicros: number; status: string; endpoint: string; startedAt: number; modelId: string };
  debit: { amountMicros: number; kind: string } | null;
}

describe('Anthropic and OpenAI agent SDKs → worker → GPU node / upstream → D1', () => {
  let node: TestNode;
  let upstream: FakeUpstream;
  let worker: LocalWorker;
  let anthropic: Anthropic;
  let openai: OpenAI;
  let persistTo: string;

  const admin = async (path: string, body?: unknown) => {
    const res = await fetch(`${worker.url}/admin${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'agent-sdks-'));
    [node, upstream] = await Promise.all([startTestNode(), startFakeUpstream()]);
    applyLocalMigrations(persistTo);
    worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret: node.secret, persistTo });
    const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'agents', 5_000_000);
    // Both clients send the key as Authorization: Bearer (this Anthropic SDK does; Claude Code may send x-api-key, covered in workers/src/routes/messages.test.ts).
    anthropic = new Anthropic({ apiKey: tenant.key, baseURL: worker.url, maxRetries: 0 });
    openai = new OpenAI({ apiKey: tenant.key, baseURL: `${worker.url}/v1`, maxRetries: 0 });
    const added = await admin(`/models/${UPSTREAM_MODEL}/backends`, { name: 'fake', kind: 'openai', base_url: `${upstream.url}/tool-loop/e2e/v1`, upstream_model: 'up' });
    expect(added.status).toBe(201);
  });

  afterAll(async () => {
    await Promise.allSettled([worker?.stop(), node?.stop(), upstream?.stop()]);
    rmSync(persistTo, { recursive: true, force: true });
  });

  /** Usage is written in waitUntil, just after the response: poll the admin API for the row. */
  async function expectBilled(requestId: string, endpoint: string, counts: { promptTokens: number; cachedTokens: number; completionTokens: number }) {
    let recorded: Recorded | undefined;
    for (let i = 0; i < 100 && !recorded; i++) {
      const res = await admin(`/usage/${requestId}`);
      if (res.status === 200) recorded = res.body as Recorded;
      else await new Promise((r) => setTimeout(r, 100));
    }
    if (!recorded) throw new Error(`no usage row for ${requestId}`);
    const { event, debit } = recorded;
    expect(event).toMatchObject({ status: 'completed', endpoint, ...counts });
    const price = (await admin(`/prices/${event.modelId}?at=${event.startedAt}`)).body as { inputCacheMiss: number; inputCacheHit: number; output: number };
    const cost = costMicros(price, counts);
    expect(event.costMicros).toBe(cost);
    expect(debit).toMatchObject({ amountMicros: -cost, kind: 'usage' });
  }
  const anthropicCounts = (u: Anthropic.Usage) => ({ promptTokens: u.input_tokens + (u.cache_read_input_tokens ?? 0), cachedTokens: u.cache_read_input_tokens ?? 0, completionTokens: u.output_tokens });
  const responsesCounts = (u: OpenAI.Responses.ResponseUsage) => ({ promptTokens: u.input_tokens, cachedTokens: u.input_tokens_details.cached_tokens, completionTokens: u.output_tokens });

  it('anthropic: messages.create and countTokens on the node pool', async () => {
    const prompt = { model: 'k2-tiny', system: 'Be brief.', messages: [{ role: 'user' as const, content: 'Hello, who are you?' }] };
    const counted = await anthropic.messages.countTokens(prompt);
    const { data: msg, response } = await anthropic.messages.create({ ...prompt, max_tokens: 8 }).withResponse();
    expect(msg.type).toBe('message');
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
    expect(msg.usage.input_tokens + (msg.usage.cache_read_input_tokens ?? 0)).toBe(counted.input_tokens);
    await expectBilled(response.headers.get('x-request-id')!, 'messages', anthropicCounts(msg.usage));
  });

  it('anthropic: messages.stream on the node pool', async () => {
    const msg = await anthropic.messages.stream({ model: 'k2-tiny', max_tokens: 8, messages: [{ role: 'user', content: 'Count to three.' }] }).finalMessage();
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
    await expectBilled(msg.id.replace(/^msg_/, ''), 'messages', anthropicCounts(msg.usage));
  });

  it('anthropic: a tool round trip through an upstream (tool_use → tool_result → answer)', async () => {
    const tools: Anthropic.Tool[] = [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }];
    const question: Anthropic.MessageParam = { role: 'user', content: 'Weather in Paris?' };
    const first = await anthropic.messages.stream({ model: UPSTREAM_MODEL, max_tokens: 64, tools, messages: [question] }).finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!;
    expect(call.input).toEqual({ city: 'Paris' });
    await expectBilled(first.id.replace(/^msg_/, ''), 'messages', anthropicCounts(first.usage));
    const answer = await anthropic.messages.create({
      model: UPSTREAM_MODEL,
      max_tokens: 64,
      tools,
      messages: [question, { role: 'assistant', content: first.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '21 degrees' }] }],
    });
    expect(answer.content).toEqual([{ type: 'text', text: 'Sunny and 21 degrees in Paris.' }]);
    await expectBilled(answer.id.replace(/^msg_/, ''), 'messages', anthropicCounts(answer.usage));
  });

  it('openai: responses.create, streamed and not, on the node pool', async () => {
    const res = await openai.responses.create({ model: 'k2-tiny', input: 'Hello there', max_output_tokens: 8 });
    expect(res.object).toBe('response');
    expect(res.usage!.output_tokens).toBeGreaterThan(0);
    await expectBilled(res.id.replace(/^resp_/, ''), 'responses', responsesCounts(res.usage!));

    let completed: OpenAI.Responses.Response | undefined;
    let text = '';
    for await (const e of await openai.responses.create({ model: 'k2-tiny', input: 'Count to three.', max_output_tokens: 8, stream: true })) {
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed' || e.type === 'response.incomplete') completed = e.response;
    }
    expect(completed!.output_text ?? text).toBe(text);
    await expectBilled(completed!.id.replace(/^resp_/, ''), 'responses', responsesCounts(completed!.usage!));
  });

  it('openai: a function-call round trip through an upstream', async () => {
    const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];
    const first = await openai.responses.create({ model: UPSTREAM_MODEL, tools, input: 'Weather in Paris?', max_output_tokens: 64 });
    const call = first.output.find((i): i is OpenAI.Responses.ResponseFunctionToolCall => i.type === 'function_call')!;
    expect(JSON.parse(call.arguments)).toEqual({ city: 'Paris' });
    await expectBilled(first.id.replace(/^resp_/, ''), 'responses', responsesCounts(first.usage!));
    const answer = await openai.responses
      .stream({ model: UPSTREAM_MODEL, tools, max_output_tokens: 64, input: [{ role: 'user', content: 'Weather in Paris?' }, ...(first.output as OpenAI.Responses.ResponseInputItem[]), { type: 'function_call_output', call_id: call.call_id, output: '21 degrees' }] })
      .finalResponse();
    expect(answer.output_text).toBe('Sunny and 21 degrees in Paris.');
    await expectBilled(answer.id.replace(/^resp_/, ''), 'responses', responsesCounts(answer.usage!));
  });
});
