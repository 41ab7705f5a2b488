/**
 * Upstream engines end to end inside workerd: the worker with a real local D1, talking to the real
 * GPU node's OpenAI endpoint (the healthy upstream) and to test/support/fake-upstream.ts (the faults).
 * kimi-k2-instruct is the model under test: its tokenizer is not bundled at the edge, which is the
 * case upstream engines exist for.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { k2TinyTokenizer } from '../../../shared/tokenizer/index.ts';
import { database, priceAt } from '../db/queries.ts';
import { ledgerEntryForRequest, reservationRecord, usageEventsForRequest } from '../billing/ledger.ts';
import { adminFetch, api, createTenant, eventually, expectReconciled, useTestNode, type Tenant } from '../../test/fixtures.ts';
import { BREAKER_DEFAULTS } from './circuit-breaker.ts';
import { RETRY_DEFAULTS } from './failover.ts';

const MODEL = 'kimi-k2-instruct';
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
/** Nothing listens on port 1: connect fails at once. */
const CLOSED_PORT = 'http://127.0.0.1:1/v1';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

let tenant: Tenant;
let tagSeq = 0;

/** A fresh tag per use, so fake-upstream counters and circuit breakers never leak between tests. */
const fake = (scenario: string) => {
  const tag = `t${Date.now().toString(36)}${tagSeq++}`;
  return { tag, url: `${inject('fakeUpstreamUrl')}/${scenario}/${tag}/v1` };
};
const received = async (tag: string) => (await (await fetch(`${inject('fakeUpstreamUrl')}/requests/${tag}`)).json()) as Record<string, unknown>[];

/** Replaces the model's backends with `list` (each test file starts from a fresh database, tests within it do not). */
async function setBackends(list: Record<string, unknown>[], model = MODEL) {
  const current = (await (await adminFetch(`/models/${model}/backends`)).json()) as { backends: { name: string }[] };
  for (const b of current.backends) await adminFetch(`/models/${model}/backends/${b.name}`, undefined, 'DELETE');
  for (const b of list) {
    const res = await adminFetch(`/models/${model}/backends`, b);
    if (res.status !== 201) throw new Error(`adding backend: ${res.status} ${await res.text()}`);
  }
}
const nodeBackend = (over: Record<string, unknown> = {}) => ({
  name: 'node',
  kind: 'openai',
  base_url: `${inject('nodeUrl')}/v1`,
  upstream_model: 'k2-tiny',
  // The node's OpenAI routes take a bearer key; this Worker binding holds it (vitest.config.ts).
  api_key_secret: 'NODE_API_KEY',
  priority: 1,
  ...over,
});

async function recorded(requestId: string) {
  const db = database(env.DB);
  const rows = await eventually(async () => {
    const r = await usageEventsForRequest(db, requestId);
    return r.length > 0 ? r : undefined;
  });
  return { rows, debit: await ledgerEntryForRequest(db, requestId) };
}

async function sseEvents(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

/** The row must bill exactly `usage` at our price for the model, once. */
async function expectBilledOnce(requestId: string, usage: Usage, extra: Record<string, unknown>) {
  const { rows, debit } = await recorded(requestId);
  expect(rows).toHaveLength(1);
  const [row] = rows;
  const price = await priceAt(database(env.DB), MODEL, row.startedAt);
  const cost = costMicros(price!, { promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details.cached_tokens, completionTokens: usage.completion_tokens });
  expect(row).toMatchObject({ promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details.cached_tokens, completionTokens: usage.completion_tokens, costMicros: cost, ...extra });
  expect(debit).toMatchObject({ amountMicros: -cost, kind: 'usage' });
  return row;
}

beforeAll(async () => {
  tenant = await createTenant();
});

describe('backends admin API', () => {
  it('adds, lists in priority order, rejects bad ones, and removes', async () => {
    await setBackends([nodeBackend({ name: 'b', priority: 2 }), { name: 'a', kind: 'pool', pool: 'k2-tiny', priority: 1 }]);
    const list = (await (await adminFetch(`/models/${MODEL}/backends`)).json()) as { backends: { name: string; kind: string }[] };
    expect(list.backends.map((b) => b.name)).toEqual(['a', 'b']);
    const bad = await adminFetch(`/models/${MODEL}/backends`, { name: 'x', kind: 'openai', base_url: 'ftp://nope', upstream_model: 'm' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const dup = await adminFetch(`/models/${MODEL}/backends`, { name: 'a', kind: 'pool', pool: 'k2-tiny' });
    expect(dup.status).toBe(400);
    expect((await adminFetch(`/models/${MODEL}/backends/a`, undefined, 'DELETE')).status).toBe(200);
    expect((await adminFetch(`/models/${MODEL}/backends/a`, undefined, 'DELETE')).status).toBe(404);
    expect((await adminFetch(`/models/no-such-model/backends`)).status).toBe(404);
  });
});

describe('serving through upstream engines', () => {
  it('falls back to the next backend when the first is down, and says which one served', async () => {
    await setBackends([{ name: 'dead', kind: 'openai', base_url: CLOSED_PORT, upstream_model: 'k2-tiny', timeout_ms: 2000, priority: 0 }, nodeBackend()]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 4, temperature: 0 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-backend')).toBe('node');
    const body = (await res.json()) as { id: string; model: string; usage: Usage; choices: { message: { role: string } }[] };
    const requestId = res.headers.get('x-request-id')!;
    expect(body.id).toBe(`chatcmpl-${requestId}`);
    expect(body.model).toBe(MODEL);
    expect(body.choices[0].message.role).toBe('assistant');
    // The node rendered the same K2 template with the same vocabulary the edge estimated with.
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    await expectBilledOnce(requestId, body.usage, { status: 'completed', backend: 'node', estimated: 0 });
  });

  it('retries a 429 with backoff on the same backend: one reservation, one row, one debit', async () => {
    const flaky = fake(`flaky-${RETRY_DEFAULTS.retries}`);
    await setBackends([{ name: 'flaky', kind: 'openai', base_url: flaky.url, upstream_model: 'up-model' }]);
    const before = (await (await adminFetch(`/organizations/${tenant.orgId}/balance`)).json()) as { balance_micros: number };
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 50, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-backend')).toBe('flaky');
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe('[DONE]');
    const sent = await received(flaky.tag);
    expect(sent).toHaveLength(RETRY_DEFAULTS.retries + 1);
    // The upstream gets its own model name, our max_tokens (what was reserved) and a usage request.
    expect(sent[0]).toMatchObject({ model: 'up-model', max_tokens: 50, stream: true, stream_options: { include_usage: true } });
    const chunks = events.slice(0, -1) as { id: string; model: string; choices: { delta: Record<string, unknown> }[]; usage: Usage | null }[];
    const requestId = res.headers.get('x-request-id')!;
    expect(chunks.every((c) => c.id === `chatcmpl-${requestId}` && c.model === MODEL)).toBe(true);
    const usage = chunks.at(-1)!.usage!;
    expect(usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    const row = await expectBilledOnce(requestId, usage, { status: 'completed', backend: 'flaky', estimated: 0 });
    await eventually(async () => {
      const after = (await (await adminFetch(`/organizations/${tenant.orgId}/balance`)).json()) as { balance_micros: number };
      return after.balance_micros === before.balance_micros - row.costMicros ? true : undefined;
    });
  });

  it('passes reasoning_content and tool_calls through in OpenAI shape', async () => {
    const ok = fake('ok');
    await setBackends([{ name: 'ok', kind: 'openai', base_url: ok.url, upstream_model: 'up-model' }]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 50, stream: true });
    const chunks = (await sseEvents(res)).slice(0, -1) as { choices: { delta: Record<string, unknown>; finish_reason: string | null }[]; usage?: unknown }[];
    const deltas = chunks.map((c) => c.choices[0].delta);
    expect(deltas.map((d) => d.reasoning_content ?? '').join('')).not.toBe('');
    const toolStart = deltas.find((d) => Array.isArray(d.tool_calls)) as { tool_calls: { id: string; type: string; function: { name: string } }[] };
    expect(toolStart.tool_calls[0]).toMatchObject({ type: 'function' });
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('tool_calls');
    // The client did not ask for usage, so no usage field and no usage chunk.
    expect(chunks.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
    const json = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 50 });
    const body = (await json.json()) as { choices: { message: { tool_calls: unknown[]; reasoning_content: string } }[]; usage: Usage };
    expect(body.choices[0].message.tool_calls).toHaveLength(1);
    expect(body.choices[0].message.reasoning_content).toBeTruthy();
    await expectBilledOnce(json.headers.get('x-request-id')!, body.usage, { status: 'completed' });
  });

  it('estimates usage with our tokenizer, and marks the row, when the upstream stream omits it', async () => {
    await setBackends([nodeBackend({ stream_usage: false })]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const chunks = (await sseEvents(res)).slice(0, -1) as { choices: { delta: { content?: string } }[]; usage: Usage | null }[];
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const usage = chunks.at(-1)!.usage!;
    const tokenizer = k2TinyTokenizer();
    expect(usage.completion_tokens).toBe(text ? tokenizer.encode(text).length : 0);
    expect(usage.prompt_tokens_details.cached_tokens).toBe(0);
    await expectBilledOnce(res.headers.get('x-request-id')!, usage, { status: 'completed', backend: 'node', estimated: 1 });
  });

  it('bills only what was sent, as an estimate, when the client disconnects mid-stream', async () => {
    await setBackends([nodeBackend()]);
    const maxTokens = 48;
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: maxTokens, temperature: 0, stream: true });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let got = '';
    // Role chunk + three content chunks, then hang up.
    while ((got.match(/\n\n/g) ?? []).length < 4) {
      const { value, done } = await reader.read();
      if (done) break;
      got += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
    const { rows } = await recorded(res.headers.get('x-request-id')!);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'cancelled', estimated: 1, backend: 'node' });
    expect(rows[0].completionTokens).toBeGreaterThan(0);
    expect(rows[0].completionTokens).toBeLessThan(maxTokens);
  });

  it('serves the legacy completions endpoint through an upstream', async () => {
    await setBackends([nodeBackend()]);
    const res = await api('/completions', tenant.key, { model: MODEL, prompt: 'Once upon a time', max_tokens: 3, temperature: 0 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { id: string; object: string; model: string; usage: Usage };
    expect(body).toMatchObject({ object: 'text_completion', model: MODEL, id: `cmpl-${res.headers.get('x-request-id')}` });
    expect(body.usage.prompt_tokens).toBe(k2TinyTokenizer().encode('Once upon a time').length);
    await expectBilledOnce(res.headers.get('x-request-id')!, body.usage, { status: 'completed', backend: 'node' });
  });

  it('skips a pool backend where the edge lacks the model tokenizer, and falls back', async () => {
    await setBackends([{ name: 'pool', kind: 'pool', pool: 'k2-tiny', priority: 0 }, nodeBackend()]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 3 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-backend')).toBe('node');
    await res.arrayBuffer();
  });

  it('falls back from a dead upstream to our own node pool, which streams through the token-batch path', async () => {
    await useTestNode();
    await setBackends([{ name: 'dead', kind: 'openai', base_url: CLOSED_PORT, upstream_model: 'x', timeout_ms: 2000, priority: 0 }, { name: 'pool', kind: 'pool', pool: 'k2-tiny', priority: 1 }], 'k2-tiny');
    const res = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages, max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-backend')).toBe('pool');
    const chunks = (await sseEvents(res)).slice(0, -1) as { usage: Usage | null }[];
    const { rows } = await recorded(res.headers.get('x-request-id')!);
    expect(rows).toHaveLength(1);
    // The node's own usage (exact, with its prefix-cache hits), not an estimate.
    const usage = chunks.at(-1)!.usage!;
    expect(rows[0]).toMatchObject({ backend: 'pool', estimated: 0, promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, cachedTokens: usage.prompt_tokens_details.cached_tokens });
    await setBackends([], 'k2-tiny');
  });

  it('sends the key from the Worker secret the backend names, and skips a backend whose secret is missing', async () => {
    const unset = fake('ok');
    const keyed = fake('ok');
    await setBackends([
      { name: 'unset', kind: 'openai', base_url: unset.url, upstream_model: 'm', api_key_secret: 'NO_SUCH_SECRET', priority: 0 },
      // ADMIN_TOKEN is the one secret the test worker has; any secret name works the same way.
      { name: 'keyed', kind: 'openai', base_url: keyed.url, upstream_model: 'm', api_key_secret: 'ADMIN_TOKEN', priority: 1 },
    ]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 5 });
    expect(res.headers.get('x-backend')).toBe('keyed');
    await res.arrayBuffer();
    expect(await received(unset.tag)).toHaveLength(0);
    const [sent] = await received(keyed.tag);
    expect(sent._authorization).toBe(`Bearer ${env.ADMIN_TOKEN}`);
  });

  it('never retries once output started: a cut stream ends with one error event and one failed row', async () => {
    const cut = fake('cut');
    const spare = fake('ok');
    await setBackends([
      { name: 'cut', kind: 'openai', base_url: cut.url, upstream_model: 'm', priority: 0 },
      { name: 'spare', kind: 'openai', base_url: spare.url, upstream_model: 'm', priority: 1 },
    ]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 20, stream: true });
    expect(res.status).toBe(200);
    const events = await sseEvents(res);
    expect((events[0] as { choices: { delta: { content: string } }[] }).choices[0].delta.content).toBe('Partial answer');
    expect(events.at(-1)).toMatchObject({ error: { type: 'server_error' } });
    expect(await received(cut.tag)).toHaveLength(1);
    expect(await received(spare.tag)).toHaveLength(0);
    const { rows } = await recorded(res.headers.get('x-request-id')!);
    expect(rows).toHaveLength(1);
    // What reached the client is billed, as our estimate.
    expect(rows[0]).toMatchObject({ status: 'failed', estimated: 1, completionTokens: k2TinyTokenizer().encode('Partial answer').length });
  });

  it('answers 503 in OpenAI shape when every backend fails, with one zero-cost row', async () => {
    const down = fake('fail-503');
    await setBackends([{ name: 'down', kind: 'openai', base_url: down.url, upstream_model: 'm' }]);
    const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 5 });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { message: string; type: string; code: string; param: null } };
    expect(body.error).toMatchObject({ type: 'server_error', code: 'upstream_unavailable', param: null });
    expect(body.error.message).toContain('down: HTTP 503');
    expect(await received(down.tag)).toHaveLength(RETRY_DEFAULTS.retries + 1);
    const { rows, debit } = await recorded(res.headers.get('x-request-id')!);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'failed', costMicros: 0 });
    // -0 as the ledger writes it: zero either way.
    expect(debit!.amountMicros === 0).toBe(true);
  });

  it('an upstream that reports more tokens than were reserved is billed the reservation, in both stores', async () => {
    // The fake reports 40 prompt + 12 completion tokens whatever it is asked: more than our count of
    // this prompt and more than max_tokens 2, so its cost is above the worst case we reserved.
    const ok = fake('ok');
    await setBackends([{ name: 'counts-more', kind: 'openai', base_url: ok.url, upstream_model: 'm' }]);
    const body = { model: MODEL, messages, max_tokens: 2 };
    const probe = await createTenant();
    const probeRes = await api('/chat/completions', probe.key, body);
    await probeRes.arrayBuffer();
    const reserved = (await eventually(() => reservationRecord(env.DB, probeRes.headers.get('x-request-id')!).then((r) => r ?? undefined))).amountMicros;
    // Credit for the reservation and a little more, but not for what the upstream will report.
    const t = await createTenant({ creditMicros: reserved + 5 });
    const res = await api('/chat/completions', t.key, body);
    expect(res.status).toBe(200);
    const { usage } = (await res.json()) as { usage: Usage };
    const { rows } = await recorded(res.headers.get('x-request-id')!);
    const price = (await priceAt(database(env.DB), MODEL, Date.now()))!;
    const full = costMicros(price, { promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details.cached_tokens, completionTokens: usage.completion_tokens });
    expect(full).toBeGreaterThan(reserved + 5);
    expect(rows[0]).toMatchObject({ costMicros: reserved, overrunMicros: full - reserved });
    // Neither store went below zero, and they agree.
    expect((await expectReconciled(t.orgId)).ledger_micros).toBe(5);
  });

  it('opens the circuit after repeated failures and stops calling that backend', async () => {
    const down = fake('fail-503');
    const spare = fake('ok');
    await setBackends([
      { name: 'down', kind: 'openai', base_url: down.url, upstream_model: 'm', priority: 0 },
      { name: 'spare', kind: 'openai', base_url: spare.url, upstream_model: 'm', priority: 1 },
    ]);
    const requestsToOpen = Math.ceil(BREAKER_DEFAULTS.threshold / (RETRY_DEFAULTS.retries + 1));
    for (let i = 0; i < requestsToOpen + 2; i++) {
      const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 5 });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-backend')).toBe('spare');
      await res.arrayBuffer();
    }
    // Exactly `threshold` failed attempts reached it; after that the open circuit skipped it.
    expect(await received(down.tag)).toHaveLength(BREAKER_DEFAULTS.threshold);
    expect(await received(spare.tag)).toHaveLength(requestsToOpen + 2);
  });

  it('after every fault above, the shared tenant\'s object and ledger agree', async () => {
    await expectReconciled(tenant.orgId);
  });
});
