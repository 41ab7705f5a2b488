/**
 * A request with nothing to answer (an empty prompt, no messages, no input) is a 400 in its API's
 * error shape naming the field, refused by the schema before admission: it takes no rate-limit
 * slot, holds no credit and writes no usage row.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminFetch, api, createTenant, expectReconciled, useTestNode, type Tenant } from '../../test/fixtures.ts';

const EMPTY: { path: string; body: Record<string, unknown>; param: string }[] = [
  { path: '/completions', body: { model: 'k2-tiny', prompt: '' }, param: 'prompt' },
  { path: '/completions', body: { model: 'k2-tiny', prompt: [''] }, param: 'prompt' },
  { path: '/completions', body: { model: 'k2-tiny', prompt: [] }, param: 'prompt' },
  { path: '/completions', body: { model: 'k2-tiny', prompt: [[]] }, param: 'prompt' },
  { path: '/completions', body: { model: 'k2-tiny', prompt: [1, 2] }, param: 'prompt' },
  { path: '/chat/completions', body: { model: 'k2-tiny', messages: [] }, param: 'messages' },
  { path: '/chat/completions', body: { model: 'k2-tiny', messages: [], stream: true }, param: 'messages' },
  { path: '/messages', body: { model: 'k2-tiny', messages: [], max_tokens: 4 }, param: 'messages' },
  { path: '/messages', body: { model: 'k2-tiny', messages: [], max_tokens: 4, stream: true }, param: 'messages' },
  { path: '/responses', body: { model: 'k2-tiny', input: '' }, param: 'input' },
  { path: '/responses', body: { model: 'k2-tiny', input: [] }, param: 'input' },
  { path: '/responses', body: { model: 'k2-tiny', input: '', stream: true }, param: 'input' },
];

describe('an empty prompt is refused before admission', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    await useTestNode();
    tenant = await createTenant({ scopes: ['chat', 'completions', 'models:read'] });
    // One request a minute and one at a time: any slot an empty request took would refuse the real one.
    expect((await adminFetch(`/keys/${tenant.keyId}/limits`, { rpm: 1, concurrency: 1 }, 'PUT')).status).toBe(200);
  });

  it.each(EMPTY)('$path $body → 400 naming $param', async ({ path, body, param }) => {
    const res = await api(path, tenant.key, body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const json = (await res.json()) as Record<string, unknown>;
    if (path === '/messages') {
      expect(json).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(new RegExp(`^${param}: `)) } });
    } else {
      expect(json).toEqual({ error: { type: 'invalid_request_error', param, code: null, message: expect.stringMatching(new RegExp(`^${param}: `)) } });
    }
  });

  it('none of them took a slot or held credit: the one request the key may make still runs, and is the only row', async () => {
    const res = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 });
    expect(res.status).toBe(200);
    await res.text();
    // The limit is real: a second request in the same minute is refused.
    expect((await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).status).toBe(429);
    await expectReconciled(tenant.orgId);
    const rows = await env.DB.prepare('SELECT count(*) AS n FROM usage_events WHERE key_id = ?').bind(tenant.keyId).first<{ n: number }>();
    expect(rows!.n).toBe(1);
  });
});
