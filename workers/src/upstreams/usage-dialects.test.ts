/**
 * Upstream usage in each dialect, end to end: the worker with a real local D1 relays the scripted
 * upstream (test/support/fake-upstream.ts) and bills one row. OpenAI's cached_tokens and DeepSeek's
 * prompt_cache_hit_tokens are billed at the hit price; vLLM's `prompt_tokens_details: null` is billed
 * at the miss price with the row marked estimated; the upstream's own detail fields reach the client.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt } from '../db/queries.ts';
import { usageEventsForRequest } from '../billing/ledger.ts';
import { adminFetch, api, createTenant, eventually, type Tenant } from '../../test/fixtures.ts';

const MODEL = 'kimi-k2-instruct';
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

interface ClientUsage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details?: { reasoning_tokens: number };
}

let tenant: Tenant;
beforeAll(async () => {
  tenant = await createTenant();
});

async function useUpstream(scenario: string) {
  const current = (await (await adminFetch(`/models/${MODEL}/backends`)).json()) as { backends: { name: string }[] };
  for (const b of current.backends) await adminFetch(`/models/${MODEL}/backends/${b.name}`, undefined, 'DELETE');
  const tag = `dialect${Date.now().toString(36)}${scenario}`;
  const res = await adminFetch(`/models/${MODEL}/backends`, { name: 'up', kind: 'openai', base_url: `${inject('fakeUpstreamUrl')}/${scenario}/${tag}/v1`, upstream_model: 'up-model' });
  if (res.status !== 201) throw new Error(`adding backend: ${res.status} ${await res.text()}`);
}

async function row(requestId: string) {
  const rows = await eventually(async () => {
    const r = await usageEventsForRequest(database(env.DB), requestId);
    return r.length > 0 ? r : undefined;
  });
  expect(rows).toHaveLength(1);
  return rows[0];
}

/** The usage a request reported to the client, streamed (include_usage) or not. */
async function ask(stream: boolean): Promise<{ requestId: string; usage: ClientUsage }> {
  const res = await api('/chat/completions', tenant.key, { model: MODEL, messages, max_tokens: 50, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) });
  expect(res.status).toBe(200);
  const requestId = res.headers.get('x-request-id')!;
  if (!stream) return { requestId, usage: ((await res.json()) as { usage: ClientUsage }).usage };
  const events = (await res.text()).split('\n\n').filter((b) => b.startsWith('data: {'));
  const last = JSON.parse(events.at(-1)!.slice(6)) as { usage: ClientUsage };
  return { requestId, usage: last.usage };
}

const cases = [
  { scenario: 'ok', cached: 32, estimated: 0 },
  { scenario: 'usage-deepseek', cached: 32, estimated: 0 },
  // The hits are unknown, not zero: billed at the miss price, and the row says it is an estimate.
  { scenario: 'usage-vllm', cached: 0, estimated: 1, reasoning: 5 },
];

describe('upstream usage dialects', () => {
  for (const { scenario, cached, estimated, reasoning } of cases) {
    for (const stream of [false, true]) {
      it(`${scenario}, ${stream ? 'streamed' : 'whole'}: bills ${cached} cached tokens${estimated ? ', marked estimated' : ''}`, async () => {
        await useUpstream(scenario);
        const { requestId, usage } = await ask(stream);
        expect(usage.prompt_tokens).toBe(40);
        expect(usage.completion_tokens).toBe(12);
        expect(usage.prompt_tokens_details.cached_tokens).toBe(cached);
        if (reasoning !== undefined) expect(usage.completion_tokens_details?.reasoning_tokens).toBe(reasoning);
        const r = await row(requestId);
        const price = await priceAt(database(env.DB), MODEL, r.startedAt);
        expect(r).toMatchObject({ promptTokens: 40, cachedTokens: cached, completionTokens: 12, estimated });
        expect(r.costMicros).toBe(costMicros(price!, { promptTokens: 40, cachedTokens: cached, completionTokens: 12 }));
      });
    }
  }
});
