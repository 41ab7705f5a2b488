import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { database } from '../db/queries.ts';
import { usageEventsForRequest } from '../billing/ledger.ts';
import { adminFetch, api, createTenant, useTestNode, type Tenant } from '../../test/fixtures.ts';

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'How many tokens is this?' },
];

describe('POST /v1/tokenizers/estimate-token-count', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    await useTestNode();
    tenant = await createTenant();
  });

  it('counts what the same chat request is billed for as prompt_tokens, and bills nothing itself', async () => {
    const balance = async () => ((await (await adminFetch(`/organizations/${tenant.orgId}/balance`)).json()) as { balance_micros: number }).balance_micros;
    const before = await balance();
    const res = await api('/tokenizers/estimate-token-count', tenant.key, { model: 'k2-tiny', messages });
    expect(res.status).toBe(200);
    const { data } = (await res.json()) as { data: { total_tokens: number; estimated: boolean } };
    expect(data.estimated).toBe(false);
    expect(await usageEventsForRequest(database(env.DB), res.headers.get('x-request-id')!)).toHaveLength(0);
    expect(await balance()).toBe(before);
    const chat = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages, max_tokens: 1 });
    expect(((await chat.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens).toBe(data.total_tokens);
  });

  it('marks the count estimated for a model whose tokenizer the edge does not bundle', async () => {
    const res = await api('/tokenizers/estimate-token-count', tenant.key, { model: 'kimi-k2-instruct', messages });
    expect(((await res.json()) as { data: { estimated: boolean; total_tokens: number } }).data).toMatchObject({ estimated: true });
  });

  it('answers unknown models and fields in OpenAI error shape', async () => {
    const unknown = await api('/tokenizers/estimate-token-count', tenant.key, { model: 'no-such-model', messages });
    expect(unknown.status).toBe(404);
    const extra = await api('/tokenizers/estimate-token-count', tenant.key, { model: 'k2-tiny', messages, temperature: 1 });
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });
});
