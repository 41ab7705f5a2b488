/** The dashboard API's budget, allowlist and alert endpoints: who may change what, and what the keys list shows. */
import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant } from '../../test/fixtures.ts';

const BASE = 'https://edge.test';

function call(method: string, path: string, bearer: string, body?: unknown): Promise<Response> {
  return SELF.fetch(`${BASE}/dashboard/api${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** An org with a manager key (keys:write) and a plain key. */
async function org() {
  const t = await createTenant({ scopes: ['models:read', 'chat', 'keys:write'] });
  const plain = (await (await adminFetch('/keys', { org_id: t.orgId, name: 'worker' })).json()) as { id: string; key: string };
  return { orgId: t.orgId, manager: t, plain };
}

describe('dashboard API: budgets, allowlists and alerts', () => {
  it('a manager key sets another key’s budget and allowlist; the keys list shows them with this period’s spend', async () => {
    const { manager, plain } = await org();
    const put = await call('PUT', `/keys/${plain.id}/budget`, manager.key, { limit_micros: 2_500_000, period: 'weekly', time_zone: 'Europe/Paris' });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ key_id: plain.id, budget: { limit_micros: 2_500_000, period: 'weekly', time_zone: 'Europe/Paris', spent_micros: 0 } });
    const models = await call('PUT', `/keys/${plain.id}/allowed-models`, manager.key, { models: ['k2-tiny'] });
    expect(await models.json()).toMatchObject({ allowed_models: ['k2-tiny'] });

    const list = (await (await call('GET', '/keys', manager.key)).json()) as { data: { id: string; budget: unknown; allowed_models: unknown }[] };
    const row = list.data.find((k) => k.id === plain.id)!;
    expect(row).toMatchObject({ budget: { limit_micros: 2_500_000, spent_micros: 0, remaining_micros: 2_500_000 }, allowed_models: ['k2-tiny'] });
    expect(list.data.find((k) => k.id === manager.keyId)).toMatchObject({ budget: null, allowed_models: null });

    const removed = await call('DELETE', `/keys/${plain.id}/budget`, manager.key);
    expect(await removed.json()).toMatchObject({ budget: null, allowed_models: ['k2-tiny'] });
  });

  it('a key cannot lift its own cap, needs keys:write, and cannot reach another org’s keys', async () => {
    const { manager, plain } = await org();
    const own = await call('PUT', `/keys/${manager.keyId}/budget`, manager.key, { limit_micros: 1, period: 'daily' });
    expect(own.status).toBe(403);
    expect(await own.json()).toMatchObject({ error: { code: 'own_key_controls' } });
    const noScope = await call('PUT', `/keys/${manager.keyId}/budget`, plain.key, { limit_micros: 1, period: 'daily' });
    expect(noScope.status).toBe(403);
    expect(await noScope.json()).toMatchObject({ error: { code: 'insufficient_scope' } });
    const other = await org();
    expect((await call('PUT', `/keys/${other.plain.id}/allowed-models`, manager.key, { models: null })).status).toBe(404);
    const bad = await call('PUT', `/keys/${plain.id}/budget`, manager.key, { limit_micros: 1.5, period: 'daily' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { param: 'limit_micros' } });
  });

  it('alert settings: set by a manager (secret shown), read by any key of the org (secret hidden)', async () => {
    const { manager, plain, orgId } = await org();
    const put = await call('PUT', '/alerts', manager.key, { webhook_url: 'https://hooks.example/edge', balance_below_micros: 5_000_000, key_budget_percent: 80 });
    expect(put.status).toBe(200);
    const saved = (await put.json()) as { webhook_secret: string };
    expect(saved).toMatchObject({ org_id: orgId, enabled: true, balance_below_micros: 5_000_000, key_budget_percent: 80 });
    expect(saved.webhook_secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    // The secret survives an update unless rotated.
    const again = (await (await call('PUT', '/alerts', manager.key, { webhook_url: 'https://hooks.example/edge', key_budget_percent: 90 })).json()) as { webhook_secret: string };
    expect(again.webhook_secret).toBe(saved.webhook_secret);
    const rotated = (await (await call('PUT', '/alerts', manager.key, { webhook_url: 'https://hooks.example/edge', rotate_secret: true })).json()) as { webhook_secret: string };
    expect(rotated.webhook_secret).not.toBe(saved.webhook_secret);

    expect(await (await call('GET', '/alerts', plain.key)).json()).toMatchObject({ enabled: true, webhook_secret: null });
    expect((await call('PUT', '/alerts', plain.key, { webhook_url: 'https://x.example' })).status).toBe(403);
    const badUrl = await call('PUT', '/alerts', manager.key, { webhook_url: 'ftp://x.example' });
    expect(await badUrl.json()).toMatchObject({ error: { param: 'webhook_url' } });
    const badPercent = await call('PUT', '/alerts', manager.key, { webhook_url: 'https://x.example', key_budget_percent: 150 });
    expect(await badPercent.json()).toMatchObject({ error: { param: 'key_budget_percent' } });
    expect(await (await call('GET', '/alerts/events', plain.key)).json()).toMatchObject({ object: 'list', data: [] });
  });
});
