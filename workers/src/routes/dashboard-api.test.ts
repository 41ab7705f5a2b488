import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { createTenant } from '../../test/fixtures.ts';
import { database, priceAt } from '../db/queries.ts';
import { recordUsage } from '../billing/ledger.ts';

const BASE = 'https://edge.test';

/** Signs in through the real endpoint; returns the Cookie header value the browser would send back. */
async function signIn(token: string): Promise<{ cookie: string; setCookie: string }> {
  const res = await SELF.fetch(`${BASE}/dashboard/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  expect(res.status).toBe(200);
  const setCookie = res.headers.get('set-cookie')!;
  return { cookie: setCookie.split(';')[0], setCookie };
}

function get(path: string, auth: { cookie?: string; bearer?: string }): Promise<Response> {
  const headers: Record<string, string> = {};
  if (auth.cookie) headers.cookie = auth.cookie;
  if (auth.bearer) headers.authorization = `Bearer ${auth.bearer}`;
  return SELF.fetch(`${BASE}/dashboard/api${path}`, { headers });
}

function post(path: string, cookie: string, body: unknown = {}, origin?: string): Promise<Response> {
  const headers: Record<string, string> = { cookie, 'content-type': 'application/json' };
  if (origin) headers.origin = origin;
  return SELF.fetch(`${BASE}/dashboard/api${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

/** A few usage rows for the tenant, through the real metering query. */
async function seedUsage(orgId: string, keyId: string, n: number): Promise<{ cost: number; prompt: number; cached: number }> {
  const db = database(env.DB);
  const price = (await priceAt(db, 'k2-tiny', Date.now()))!;
  let cost = 0, prompt = 0, cached = 0;
  for (let i = 0; i < n; i++) {
    const tokens = { promptTokens: 100 + i * 10, cachedTokens: i * 7, completionTokens: 20 + i };
    const c = costMicros(price, tokens);
    cost += c;
    prompt += tokens.promptTokens;
    cached += tokens.cachedTokens;
    const at = Date.now() - (i + 1) * 60_000;
    await recordUsage(db, { requestId: `req_${orgId}_${i}`, orgId, keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', ...tokens, priceId: price.id, costMicros: c, status: 'completed', finishReason: 'stop', startedAt: at - 100, finishedAt: at });
  }
  return { cost, prompt, cached };
}

describe('dashboard session', () => {
  it('sets a short-lived HttpOnly, Secure, SameSite=Strict cookie from an API key', async () => {
    const t = await createTenant();
    const { setCookie, cookie } = await signIn(t.key);
    expect(setCookie).toMatch(/^__Host-dashboard_session=/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/Secure/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\//);
    const maxAge = Number(/Max-Age=(\d+)/.exec(setCookie)![1]);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(3600);
    const me = await (await get('/me', { cookie })).json();
    expect(me).toMatchObject({ role: 'key', org_id: t.orgId, key_id: t.keyId });
  });

  it('refuses a wrong key, a forged cookie, and no credentials, with OpenAI-shaped errors', async () => {
    const bad = await SELF.fetch(`${BASE}/dashboard/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'sk-000000000000000000000000' }) });
    expect(bad.status).toBe(401);
    const t = await createTenant();
    const { cookie } = await signIn(t.key);
    const [name, value] = cookie.split('=');
    const forged = `${name}=${value.replace(/^k\.[^.]+/, 'a')}`;
    for (const res of [await get('/me', { cookie: forged }), await get('/me', {})]) {
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_signed_in');
    }
  });

  it('ends a key session as soon as the key is revoked', async () => {
    const t = await createTenant();
    const { cookie } = await signIn(t.key);
    expect((await get('/me', { cookie })).status).toBe(200);
    await SELF.fetch(`${BASE}/admin/keys/${t.keyId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    expect((await get('/me', { cookie })).status).toBe(401);
  });
});

describe('dashboard API', () => {
  it("shows a key only its own org's usage; the admin sees every org", async () => {
    const a = await createTenant();
    const b = await createTenant();
    const usageA = await seedUsage(a.orgId, a.keyId, 4);
    const usageB = await seedUsage(b.orgId, b.keyId, 3);
    const { cookie } = await signIn(a.key);
    const summary = (await (await get('/summary', { cookie })).json()) as Record<string, number>;
    expect(summary).toMatchObject({ requests: 4, cost_micros: usageA.cost, prompt_tokens: usageA.prompt, cached_tokens: usageA.cached });
    expect(summary.uncached_prompt_tokens).toBe(usageA.prompt - usageA.cached);
    const other = await get(`/summary?org=${b.orgId}`, { cookie });
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe('org_forbidden');

    // API users: the same endpoint with a bearer key, and the admin token for any org.
    expect(((await (await get('/summary', { bearer: a.key })).json()) as { cost_micros: number }).cost_micros).toBe(usageA.cost);
    const adminB = (await (await get(`/summary?org=${b.orgId}`, { bearer: env.ADMIN_TOKEN })).json()) as { cost_micros: number };
    expect(adminB.cost_micros).toBe(usageB.cost);
    const byOrg = (await (await get('/breakdown?by=org', { bearer: env.ADMIN_TOKEN })).json()) as { data: { org: string; cost_micros: number }[] };
    expect(byOrg.data.find((r) => r.org === a.orgId)?.cost_micros).toBe(usageA.cost);
    expect(byOrg.data.find((r) => r.org === b.orgId)?.cost_micros).toBe(usageB.cost);

    const page = (await (await get('/requests?limit=3', { cookie })).json()) as { data: { request_id: string }[]; has_more: boolean; next_cursor: string };
    expect(page.data.map((r) => r.request_id)).toEqual([`req_${a.orgId}_0`, `req_${a.orgId}_1`, `req_${a.orgId}_2`]);
    expect(page.has_more).toBe(true);
    const next = (await (await get(`/requests?limit=3&cursor=${page.next_cursor}`, { cookie })).json()) as { data: { request_id: string }[]; has_more: boolean };
    expect(next.data.map((r) => r.request_id)).toEqual([`req_${a.orgId}_3`]);
    expect(next.has_more).toBe(false);

    const account = (await (await get('/account', { cookie })).json()) as Record<string, unknown>;
    expect(account).toMatchObject({ org_id: a.orgId, reserved_micros: 0, open_reservations: 0 });
    expect(((await get('/account', { bearer: env.ADMIN_TOKEN })).status)).toBe(400);
  });

  it('downloads usage and statement CSVs whose totals match the rows', async () => {
    const t = await createTenant();
    const usage = await seedUsage(t.orgId, t.keyId, 5);
    const { cookie } = await signIn(t.key);
    const res = await get('/usage.csv', { cookie });
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(res.headers.get('content-disposition')).toMatch(/attachment; filename="usage-/);
    const [header, ...lines] = (await res.text()).trim().split('\r\n').map((l) => l.split(','));
    const cost = header.indexOf('cost_micros');
    expect(lines.reduce((acc, l) => acc + Number(l[cost]), 0)).toBe(usage.cost);
    const month = new Date().toISOString().slice(0, 7);
    const statement = await get(`/statements/${month}`, { cookie });
    expect(statement.status).toBe(200);
    expect(await statement.text()).toMatch(/^section,model_id,key_id/);
  });

  it('creates and revokes keys only with keys:write, never granting more than the creator holds', async () => {
    const reader = await createTenant();
    const { cookie: readerCookie } = await signIn(reader.key);
    const refused = await post('/keys', readerCookie, { name: 'x' });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('insufficient_scope');

    const manager = await createTenant({ scopes: ['models:read', 'keys:write'] });
    const { cookie } = await signIn(manager.key);
    const escalate = await post('/keys', cookie, { name: 'x', scopes: ['chat'] });
    expect(escalate.status).toBe(400);
    const created = await post('/keys', cookie, { name: 'ci key', scopes: ['models:read'] });
    expect(created.status).toBe(201);
    const key = (await created.json()) as { id: string; key: string; scopes: string[] };
    expect(key.key).toMatch(/^sk-[0-9a-f]{48}$/);
    // The new key works, and the listing shows its prefix, never the key or its hash.
    expect((await SELF.fetch(`${BASE}/v1/models`, { headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);
    const listing = await (await get('/keys', { cookie })).text();
    expect(listing).toContain(key.id);
    expect(listing).not.toContain(key.key);

    // Another org's key is "not found", not revealed; a cross-origin write is refused.
    expect((await post(`/keys/${reader.keyId}/revoke`, cookie)).status).toBe(404);
    expect((await post(`/keys/${key.id}/revoke`, cookie, {}, 'https://evil.test')).status).toBe(403);
    const revoked = await post(`/keys/${key.id}/revoke`, cookie);
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as { revoked_at: number | null }).revoked_at).not.toBeNull();
    expect((await SELF.fetch(`${BASE}/v1/models`, { headers: { authorization: `Bearer ${key.key}` } })).status).toBe(403);
  });
});

describe('dashboard page', () => {
  it('serves the page, its script and uPlot, under a strict content security policy', async () => {
    const page = await SELF.fetch(`${BASE}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<main id="main">');
    for (const [file, type, marker] of [
      ['app.js', 'text/javascript', "from './api.js'"],
      ['uplot.js', 'text/javascript', 'uPlot'],
      ['uplot.css', 'text/css', '.uplot'],
      ['app.css', 'text/css', ':root'],
    ]) {
      expect(html).toContain(`/dashboard/assets/${file}`);
      const res = await SELF.fetch(`${BASE}/dashboard/assets/${file}`);
      expect(res.headers.get('content-type')).toContain(type);
      expect(await res.text()).toContain(marker);
    }
    expect((await SELF.fetch(`${BASE}/dashboard/assets/nope.js`)).status).toBe(404);
  });

  it('serves every module app.js imports, transitively, as JavaScript', async () => {
    const seen = new Set<string>();
    const pending = ['app.js'];
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const res = await SELF.fetch(`${BASE}/dashboard/assets/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/javascript');
      for (const m of (await res.text()).matchAll(/from '\.\/([\w-]+\.js)'/g)) pending.push(m[1]);
    }
    expect([...seen].sort()).toEqual(['alerts.js', 'api.js', 'app.js', 'billing.js', 'charts.js', 'downloads.js', 'format.js', 'key-controls.js', 'keys.js', 'session.js', 'state.js', 'tables.js', 'totals.js']);
  });
});
