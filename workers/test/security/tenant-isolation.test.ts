/**
 * Org A can never read or bill against org B. Every dashboard route that takes an org or an id is
 * tried with A's key naming B; a real generation by A is billed to A alone; a client-chosen request
 * id or org hint changes nothing.
 */
import { env, SELF } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt } from '../../src/db/queries.ts';
import { recordUsage } from '../../src/billing/ledger.ts';
import { adminFetch, api, createTenant, eventually, useTestNode, type Tenant } from '../fixtures.ts';

const BASE = 'https://edge.test';
const MONTH = new Date().toISOString().slice(0, 7);

let a: Tenant;
let b: Tenant;

/** One usage row for the org, through the real metering query; returns its request id. */
async function seedUsage(t: Tenant, tag: string): Promise<string> {
  const db = database(env.DB);
  const price = (await priceAt(db, 'k2-tiny', Date.now()))!;
  const tokens = { promptTokens: 50, cachedTokens: 0, completionTokens: 5 };
  const requestId = `req_${tag}_${t.orgId}`;
  const at = Date.now() - 60_000;
  await recordUsage(db, { requestId, orgId: t.orgId, keyId: t.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', ...tokens, priceId: price.id, costMicros: costMicros(price, tokens), status: 'completed', finishReason: 'stop', startedAt: at - 10, finishedAt: at });
  return requestId;
}

function dash(path: string, key: string, init: RequestInit = {}): Promise<Response> {
  return SELF.fetch(`${BASE}/dashboard/api${path}`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) },
  });
}

async function balance(orgId: string): Promise<number> {
  return ((await (await adminFetch(`/organizations/${orgId}/balance`)).json()) as { balance_micros: number }).balance_micros;
}

beforeAll(async () => {
  a = await createTenant({ scopes: ['models:read', 'chat', 'completions', 'keys:write'] });
  b = await createTenant({ scopes: ['models:read', 'chat', 'completions', 'keys:write'] });
  await seedUsage(a, 'seed');
  await seedUsage(b, 'seed');
});

describe('reading another org', () => {
  const readRoutes = ['/summary', '/timeseries', '/breakdown?by=key', '/requests', '/account', '/usage.csv', `/statements/${MONTH}`, '/keys'];

  it('every dashboard read naming org B answers 403 to org A, in the OpenAI shape', async () => {
    for (const route of readRoutes) {
      const sep = route.includes('?') ? '&' : '?';
      const res = await dash(`${route}${sep}org=${b.orgId}`, a.key);
      expect(res.status, route).toBe(403);
      const body = (await res.json()) as { error: { code: string; type: string } };
      expect(body.error, route).toMatchObject({ type: 'permission_error', code: 'org_forbidden' });
    }
  });

  it('without naming an org, A sees only A (no row, key or org of B anywhere)', async () => {
    for (const route of readRoutes) {
      const res = await dash(route, a.key);
      expect(res.status, route).toBe(200);
      const text = await res.text();
      expect(text, route).not.toContain(b.orgId);
      expect(text, route).not.toContain(b.keyId);
    }
    const requests = (await (await dash('/requests', a.key)).json()) as { data: { org_id: string }[] };
    expect(requests.data.length).toBeGreaterThan(0);
    for (const r of requests.data) expect(r.org_id).toBe(a.orgId);
  });

  it('the /me and breakdown-by-org views do not list other orgs to a key', async () => {
    const me = (await (await dash('/me', a.key)).json()) as { organizations: unknown };
    expect(me.organizations).toBeNull();
    const byOrg = await (await dash('/breakdown?by=org', a.key)).text();
    expect(byOrg).not.toContain(b.orgId);
  });
});

describe('writing to another org', () => {
  it('A cannot create keys in B', async () => {
    const res = await dash('/keys', a.key, { method: 'POST', body: JSON.stringify({ org_id: b.orgId, name: 'sneaky' }) });
    expect(res.status).toBe(403);
    const keys = await env.DB.prepare("SELECT count(*) AS n FROM api_keys WHERE org_id = ? AND name = 'sneaky'").bind(b.orgId).first<{ n: number }>();
    expect(keys!.n).toBe(0);
  });

  it("A cannot revoke B's key, nor learn that it exists", async () => {
    const theirs = await dash(`/keys/${b.keyId}/revoke`, a.key, { method: 'POST' });
    const nobody = await dash('/keys/key_doesnotexist/revoke', a.key, { method: 'POST' });
    expect(theirs.status).toBe(404);
    expect(nobody.status).toBe(404);
    // Same answer shape for "not yours" and "no such key", apart from the id it names.
    const [t, n] = [(await theirs.json()) as { error: { code: string } }, (await nobody.json()) as { error: { code: string } }];
    expect(t.error.code).toBe(n.error.code);
    expect((await api('/models', b.key)).status).toBe(200);
  });

  it('API keys cannot reach the admin routes that take an org or key id', async () => {
    for (const path of [`/admin/organizations/${b.orgId}/balance`, `/admin/organizations/${b.orgId}/account`, `/admin/keys/${b.keyId}/limits`, `/admin/organizations/${b.orgId}/statements/${MONTH}`]) {
      const res = await SELF.fetch(`${BASE}${path}`, { headers: { authorization: `Bearer ${a.key}` } });
      expect(res.status, path).toBe(401);
    }
  });
});

describe('billing', () => {
  it("a generation by A is billed to A only, whatever ids or org hints the client sends", async () => {
    await useTestNode();
    const [aBefore, bBefore] = [await balance(a.orgId), await balance(b.orgId)];
    const bRequest = `req_seed_${b.orgId}`;
    const res = await api(
      '/chat/completions',
      a.key,
      { model: 'k2-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, user: b.orgId },
      // A client-chosen request id would let A collide with (or replay) B's metering key.
      { headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json', 'x-request-id': bRequest, 'openai-organization': b.orgId } },
    );
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id')!;
    expect(id).not.toBe(bRequest);
    const row = await eventually(async () =>
      (await env.DB.prepare('SELECT org_id, key_id, cost_micros FROM usage_events WHERE request_id = ?').bind(id).first<{ org_id: string; key_id: string; cost_micros: number }>()) ?? undefined,
    );
    expect(row).toMatchObject({ org_id: a.orgId, key_id: a.keyId });
    expect(row.cost_micros).toBeGreaterThan(0);
    await eventually(async () => ((await balance(a.orgId)) === aBefore - row.cost_micros ? true : undefined));
    expect(await balance(b.orgId)).toBe(bBefore);
    // B's seeded row is untouched: still one row, still B's.
    const bRows = await env.DB.prepare('SELECT org_id FROM usage_events WHERE request_id = ?').bind(bRequest).all<{ org_id: string }>();
    expect(bRows.results).toEqual([{ org_id: b.orgId }]);
  });

  it("A's spending never draws on B's credit: A with none is refused even while B has plenty", async () => {
    const broke = await createTenant({ creditMicros: 0 });
    await useTestNode();
    const res = await api('/chat/completions', broke.key, { model: 'k2-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('insufficient_quota');
  });
});
