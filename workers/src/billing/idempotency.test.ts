import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, api, createTenant, expectReconciled } from '../../test/fixtures.ts';
import { creditBalance, grantCredit } from './ledger.ts';

async function fetchWithKey(path: string, body: unknown, idempotencyKey?: string): Promise<Response> {
  return SELF.fetch(`http://edge.test/admin${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${env.ADMIN_TOKEN}`,
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: JSON.stringify(body),
  });
}

async function grantRows(orgId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM credit_ledger WHERE org_id = ? AND kind = 'grant'").bind(orgId).first<{ n: number }>();
  return row!.n;
}

describe('Idempotency-Key on admin writes', () => {
  it('a credit grant retried with the same key and body is applied once and answers the same', async () => {
    const t = await createTenant({ creditMicros: 0 });
    const key = `grant-${crypto.randomUUID()}`;
    const body = { org_id: t.orgId, amount_micros: 5_000, note: 'top-up' };
    const first = await fetchWithKey('/credit', body, key);
    expect(first.status).toBe(201);
    const firstBody = await first.json();
    const again = await fetchWithKey('/credit', body, key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(firstBody);
    expect(await grantRows(t.orgId)).toBe(1);
    expect(await creditBalance(env.DB, t.orgId)).toBe(5_000);
    expect((await expectReconciled(t.orgId)).object_micros).toBe(5_000);
  });

  it('the same key with a different body is a 409 naming the header', async () => {
    const t = await createTenant({ creditMicros: 0 });
    const key = `grant-${crypto.randomUUID()}`;
    expect((await fetchWithKey('/credit', { org_id: t.orgId, amount_micros: 1_000 }, key)).status).toBe(201);
    const res = await fetchWithKey('/credit', { org_id: t.orgId, amount_micros: 9_000 }, key);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { param: string; code: string } }).error).toMatchObject({ param: 'Idempotency-Key', code: 'idempotency_key_conflict' });
    expect(await creditBalance(env.DB, t.orgId)).toBe(1_000);
  });

  it('a grant whose first attempt wrote D1 but never reached the org object is completed by the retry, not doubled', async () => {
    const t = await createTenant({ creditMicros: 0 });
    // The org's object exists, built from the ledger as it is now (0).
    expect((await (await adminFetch(`/organizations/${t.orgId}/account`)).json()) as object).toMatchObject({ balance_micros: 0 });
    const key = `grant-${crypto.randomUUID()}`;
    // What the first attempt left behind when the object call failed: the ledger row, and the key
    // marked failed (its answer was a 500).
    await grantCredit(env.DB, t.orgId, 7_000, 'top-up', `grant:${key}`);
    const body = { org_id: t.orgId, amount_micros: 7_000, note: 'top-up' };
    const retry = await fetchWithKey('/credit', body, key);
    expect(retry.status).toBe(201);
    expect(await grantRows(t.orgId)).toBe(1);
    expect((await expectReconciled(t.orgId)).object_micros).toBe(7_000);
  });

  it('a key created under an Idempotency-Key is the same key on retry; the secret is not stored', async () => {
    const t = await createTenant({ creditMicros: 1_000 });
    const key = `mint-${crypto.randomUUID()}`;
    const body = { org_id: t.orgId, name: 'ci' };
    const first = (await (await fetchWithKey('/keys', body, key)).json()) as { id: string; key: string };
    const second = await fetchWithKey('/keys', body, key);
    expect(second.status).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await second.json()).toEqual(first);
    const rows = await env.DB.prepare('SELECT count(*) AS n FROM api_keys WHERE org_id = ? AND name = ?').bind(t.orgId, 'ci').first<{ n: number }>();
    expect(rows!.n).toBe(1);
    const stored = await env.DB.prepare('SELECT response_body FROM idempotency_keys WHERE key = ?').bind(key).first<{ response_body: string }>();
    expect(stored!.response_body).not.toContain(first.key);
    // The minted key works.
    expect((await api('/models', first.key)).status).toBe(200);
  });
});
