/**
 * POST /v1/responses driven by the official `openai` SDK, unmodified (its `fetch` option pointed at
 * the worker), against the real GPU node (k2-tiny) and, for the function-call round trip,
 * test/support/fake-upstream.ts as an OpenAI-compatible upstream (the random-weight model never
 * emits a tool call). Every answer's usage is checked against its D1 row.
 */
import { env, SELF } from 'cloudflare:test';
import OpenAI from 'openai';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { k2TinyTokenizer } from '../../../shared/tokenizer/index.ts';
import { ledgerEntryForRequest, usageEventsForRequest } from '../billing/ledger.ts';
import { database, priceAt } from '../db/queries.ts';
import { adminFetch, createTenant, eventually, expectReconciled, useTestNode, type Tenant } from '../../test/fixtures.ts';

type Usage = OpenAI.Responses.ResponseUsage;

/** One usage row, billed exactly what the client was told (input_tokens includes the cached ones). */
async function expectBilled(responseId: string, usage: Usage, model = 'k2-tiny', extra: Record<string, unknown> = {}) {
  const requestId = responseId.replace(/^resp_/, '');
  const db = database(env.DB);
  const rows = await eventually(async () => {
    const r = await usageEventsForRequest(db, requestId);
    return r.length > 0 ? r : undefined;
  });
  expect(rows).toHaveLength(1);
  const counts = { promptTokens: usage.input_tokens, cachedTokens: usage.input_tokens_details.cached_tokens, completionTokens: usage.output_tokens };
  const price = await priceAt(db, model, rows[0].startedAt);
  const cost = costMicros(price!, counts);
  expect(rows[0]).toMatchObject({ ...counts, costMicros: cost, endpoint: 'responses', status: 'completed', ...extra });
  expect(await ledgerEntryForRequest(db, requestId)).toMatchObject({ amountMicros: -cost, kind: 'usage' });
  expect(usage.total_tokens).toBe(usage.input_tokens + usage.output_tokens);
}

let tenant: Tenant;
let openai: OpenAI;

beforeAll(async () => {
  await useTestNode();
  tenant = await createTenant();
  openai = new OpenAI({ apiKey: tenant.key, baseURL: 'http://edge.test/v1', maxRetries: 0, fetch: (url, init) => SELF.fetch(url, init) });
});

describe('Responses API on our node pool', () => {
  it('responses.create answers a Response and bills exactly its usage; nothing is stored', async () => {
    const res = await openai.responses.create({ model: 'k2-tiny', instructions: 'Be brief.', input: 'Hello there', max_output_tokens: 6, temperature: 0, store: true, metadata: { run: 'a' } });
    expect(res).toMatchObject({ object: 'response', model: 'k2-tiny', store: false, instructions: 'Be brief.', metadata: { run: 'a' }, previous_response_id: null });
    expect(['completed', 'incomplete']).toContain(res.status);
    const message = res.output.find((i) => i.type === 'message');
    expect(message).toBeDefined();
    expect(res.output_text).toBe((message as OpenAI.Responses.ResponseOutputMessage).content.map((p) => (p.type === 'output_text' ? p.text : '')).join(''));
    expect(res.usage!.output_tokens).toBeGreaterThan(0);
    expect(res.usage!.output_tokens).toBeLessThanOrEqual(6);
    await expectBilled(res.id, res.usage!);
  });

  it('streams the Responses events in order, numbered, ending in a response that matches the bill', async () => {
    const stream = await openai.responses.create({ model: 'k2-tiny', input: [{ role: 'user', content: 'Count to three.' }], max_output_tokens: 8, temperature: 0, stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const types = events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['response.created', 'response.in_progress']);
    expect(types).toContain('response.output_item.added');
    expect(types).toContain('response.output_item.done');
    const last = events.at(-1)!;
    expect(['response.completed', 'response.incomplete']).toContain(last.type);
    const final = (last as OpenAI.Responses.ResponseCompletedEvent).response;
    const deltas = events.filter((e): e is OpenAI.Responses.ResponseTextDeltaEvent => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    expect(final.output_text ?? deltas).toBe(deltas);
    await expectBilled(final.id, final.usage!);

    // The SDK's stream helper accumulates the same events into the same final response.
    const helped = await openai.responses.stream({ model: 'k2-tiny', input: 'Count to three.', max_output_tokens: 8, temperature: 0 }).finalResponse();
    expect(helped.output_text).toBe(deltas);
    await expectBilled(helped.id, helped.usage!);
  });

  it('honours text.format json_schema on the pool through the chat grammar path', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string', enum: ['Paris'] } }, required: ['city'], additionalProperties: false };
    const answer = await openai.responses.create({ model: 'k2-tiny', input: 'x', max_output_tokens: 32, text: { format: { type: 'json_schema', name: 'city', schema, strict: true } } });
    expect(JSON.parse(answer.output_text)).toEqual({ city: 'Paris' });
    await expectBilled(answer.id, answer.usage!);
  });

  it('refuses what it cannot honour, naming the Responses field', async () => {
    const refused = async (body: Record<string, unknown>) => {
      const err = await openai.responses.create({ model: 'k2-tiny', input: 'x', max_output_tokens: 1, ...body } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      return (err as InstanceType<typeof OpenAI.BadRequestError>).param;
    };
    expect(await refused({ previous_response_id: 'resp_1' })).toBe('previous_response_id');
    expect(await refused({ reasoning: { effort: 'high' } })).toBe('reasoning.effort');
    expect(await refused({ tools: [{ type: 'web_search' }] })).toBe('tools.0.type');
    expect(await refused({ conversation: 'conv_1' })).toBe('conversation');
    expect(await refused({ tools: [{ type: 'function', name: 'f', parameters: { type: 'object' }, strict: true }] })).toBe('tools.0.strict');
    await expectReconciled(tenant.orgId);
  });
});

describe('Responses API through an OpenAI-compatible upstream', () => {
  it('an upstream cut mid-answer ends the stream with response.failed; what was sent is billed once', async () => {
    const tag = `cut${Date.now().toString(36)}`;
    const model = 'kimi-k2-instruct';
    const current = (await (await adminFetch(`/models/${model}/backends`)).json()) as { backends: { name: string }[] };
    for (const b of current.backends) await adminFetch(`/models/${model}/backends/${b.name}`, undefined, 'DELETE');
    await adminFetch(`/models/${model}/backends`, { name: 'cut', kind: 'openai', base_url: `${inject('fakeUpstreamUrl')}/cut/${tag}/v1`, upstream_model: 'up' });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of await openai.responses.create({ model, input: 'x', max_output_tokens: 20, stream: true })) events.push(e);
    const last = events.at(-1) as OpenAI.Responses.ResponseFailedEvent;
    expect(last.type).toBe('response.failed');
    expect(last.response).toMatchObject({ status: 'failed', error: { code: 'server_error' } });
    const text = events.filter((e): e is OpenAI.Responses.ResponseTextDeltaEvent => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    expect(text).toBe('Partial answer');
    const rows = await eventually(async () => {
      const r = await usageEventsForRequest(database(env.DB), last.response.id.replace(/^resp_/, ''));
      return r.length > 0 ? r : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'failed', estimated: 1, endpoint: 'responses', completionTokens: k2TinyTokenizer().encode('Partial answer').length });
  });

  it('a function-call round trip: function_call → function_call_output → answer, each billed once', async () => {
    const tag = `resp${Date.now().toString(36)}`;
    const upstream = `${inject('fakeUpstreamUrl')}/tool-loop/${tag}/v1`;
    const model = 'kimi-k2-instruct';
    const current = (await (await adminFetch(`/models/${model}/backends`)).json()) as { backends: { name: string }[] };
    for (const b of current.backends) await adminFetch(`/models/${model}/backends/${b.name}`, undefined, 'DELETE');
    expect((await adminFetch(`/models/${model}/backends`, { name: 'fake', kind: 'openai', base_url: upstream, upstream_model: 'up' })).status).toBe(201);

    const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];
    const question: OpenAI.Responses.ResponseInputItem = { role: 'user', content: 'Weather in Paris?' };
    const first = await openai.responses.create({ model, tools, input: [question], max_output_tokens: 100 });
    expect(first.output.map((i) => i.type)).toEqual(['reasoning', 'message', 'function_call']);
    const call = first.output.find((i): i is OpenAI.Responses.ResponseFunctionToolCall => i.type === 'function_call')!;
    expect(call).toMatchObject({ call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' });
    expect(first.usage).toMatchObject({ input_tokens: 40, input_tokens_details: { cached_tokens: 32 }, output_tokens: 12 });
    expect(first.usage!.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    await expectBilled(first.id, first.usage!, model, { backend: 'fake' });

    // The same turn streamed: arguments arrive as function_call_arguments deltas.
    const stream = await openai.responses.create({ model, tools, input: [question], max_output_tokens: 100, stream: true });
    const types: string[] = [];
    let done: OpenAI.Responses.Response | undefined;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.completed') done = e.response;
    }
    expect(types).toContain('response.reasoning_text.delta');
    expect(types).toContain('response.function_call_arguments.delta');
    expect(types).toContain('response.function_call_arguments.done');
    expect(done!.output.at(-1)).toMatchObject({ type: 'function_call', call_id: 'call_1', arguments: '{"city":"Paris"}', status: 'completed' });
    await expectBilled(done!.id, done!.usage!, model, { backend: 'fake' });

    // Everything the first response output goes back as input, with the tool's result.
    const answer = await openai.responses.create({
      model,
      tools,
      max_output_tokens: 100,
      input: [question, ...(first.output as OpenAI.Responses.ResponseInputItem[]), { type: 'function_call_output', call_id: call.call_id, output: '21 degrees, sunny' }],
    });
    expect(answer.status).toBe('completed');
    expect(answer.output_text).toBe('Sunny and 21 degrees in Paris.');
    await expectBilled(answer.id, answer.usage!, model, { backend: 'fake' });

    const sent = (await (await fetch(`${inject('fakeUpstreamUrl')}/requests/${tag}`)).json()) as { messages: Record<string, unknown>[] }[];
    expect(sent.at(-1)!.messages.slice(-2)).toEqual([
      { role: 'assistant', content: 'Checking.', reasoning_content: 'The user wants weather.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '21 degrees, sunny' },
    ]);

    // An upstream gets text.format as chat's response_format (it is forwarded, not refused).
    const structured = await openai.responses.create({ model, input: 'Name a city.', max_output_tokens: 20, text: { format: { type: 'json_schema', name: 'city', schema: { type: 'object' } } } });
    expect(structured.status).toBe('completed');
    const forwarded = (await (await fetch(`${inject('fakeUpstreamUrl')}/requests/${tag}`)).json()) as Record<string, unknown>[];
    expect(forwarded.at(-1)).toMatchObject({ response_format: { type: 'json_schema', json_schema: { name: 'city', schema: { type: 'object' } } } });
    await expectReconciled(tenant.orgId);
  });
});
