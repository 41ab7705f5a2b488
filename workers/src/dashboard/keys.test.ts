import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant, eventually } from '../../test/fixtures.ts';
import { keyById } from '../db/dashboard-keys.ts';

const BASE = 'https://edge.test';
const MANAGER = ['models:read', 'keys:write'];

interface Created {
  id: string;
  key: string;
  expires_at: number | null;
  parent_key_id: string | null;
}

/** POST /dashboard/api/keys as `bearer` (an API key or the admin token). */
function createKey(bearer: string, body: Record<string, unknown>): Promise<Response> {
  return SELF.fetch(`${BASE}/dashboard/api/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function created(bearer: string, body: Record<string, unknown>): Promise<Created> {
  const res = await createKey(bearer, body);
  expect(res.status).toBe(201);
  return (await res.json()) as Created;
}

function revoke(bearer: string, keyId: string): Promise<Response> {
  return SELF.fetch(`${BASE}/dashboard/api/keys/${keyId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
}

/** The status `key` gets on /v1 (models:read is enough), with the error code when refused. */
async function onV1(key: string): Promise<{ status: number; code: string | null }> {
  const res = await SELF.fetch(`${BASE}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
  const code = res.ok ? null : ((await res.json()) as { error: { code: string } }).error.code;
  return { status: res.status, code };
}

describe('a key created by a key session cannot outlive it', () => {
  it("gets the parent's expiry when it asks for none, and its own when it asks for an earlier one", async () => {
    const parentExpiry = Date.now() + 3_600_000;
    const parent = await createTenant({ scopes: MANAGER, expiresAt: parentExpiry });

    const unasked = await created(parent.key, { name: 'ci', scopes: ['models:read'] });
    expect(unasked).toMatchObject({ expires_at: parentExpiry, parent_key_id: parent.keyId });
    expect(await keyById(env.DB, unasked.id)).toMatchObject({ expiresAt: parentExpiry, parentKeyId: parent.keyId });

    const earlier = parentExpiry - 60_000;
    const sooner = await created(parent.key, { scopes: ['models:read'], expires_at: earlier });
    expect(sooner).toMatchObject({ expires_at: earlier, parent_key_id: parent.keyId });
    expect((await keyById(env.DB, sooner.id))?.expiresAt).toBe(earlier);
  });

  it("refuses an expiry later than the parent's (or in the past) with a 400 naming expires_at, creating nothing", async () => {
    const parentExpiry = Date.now() + 3_600_000;
    const parent = await createTenant({ scopes: MANAGER, expiresAt: parentExpiry });
    const later = await createKey(parent.key, { scopes: ['models:read'], expires_at: parentExpiry + 1 });
    expect(later.status).toBe(400);
    const body = (await later.json()) as { error: { message: string; type: string; param: string; code: string } };
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: 'expires_at', code: 'expiry_beyond_parent' });
    expect(body.error.message).toContain(String(parentExpiry));

    const past = await createKey(parent.key, { scopes: ['models:read'], expires_at: Date.now() - 1000 });
    expect(past.status).toBe(400);
    expect(((await past.json()) as { error: { param: string } }).error.param).toBe('expires_at');

    const list = (await (await SELF.fetch(`${BASE}/dashboard/api/keys`, { headers: { authorization: `Bearer ${parent.key}` } })).json()) as { data: { id: string }[] };
    expect(list.data.map((k) => k.id)).toEqual([parent.keyId]);
  });

  it('stops working when its parent expires', async () => {
    const parentExpiry = Date.now() + 2_000;
    const parent = await createTenant({ scopes: MANAGER, expiresAt: parentExpiry });
    const child = await created(parent.key, { scopes: ['models:read'] });
    expect(await onV1(child.key)).toEqual({ status: 200, code: null });
    const expired = await eventually(async () => {
      const r = await onV1(child.key);
      return r.status === 200 ? undefined : r;
    }, 5_000);
    expect(expired).toEqual({ status: 403, code: 'key_expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(parentExpiry);
  });

  it("a key without expiry creates keys with the expiry they ask for, or none; the admin's keys have no parent", async () => {
    const parent = await createTenant({ scopes: MANAGER });
    const asked = Date.now() + 86_400_000;
    expect(await created(parent.key, { scopes: ['models:read'], expires_at: asked })).toMatchObject({ expires_at: asked, parent_key_id: parent.keyId });
    expect(await created(parent.key, { scopes: ['models:read'] })).toMatchObject({ expires_at: null, parent_key_id: parent.keyId });
    const byAdmin = await created(env.ADMIN_TOKEN, { org_id: parent.orgId, scopes: ['models:read'] });
    expect(byAdmin).toMatchObject({ expires_at: null, parent_key_id: null });
  });
});

describe('revoking a key revokes the keys it created, transitively', () => {
  it('refuses the children and grandchildren on /v1 at once, and leaves every other key working', async () => {
    const root = await createTenant({ scopes: MANAGER });
    const child = await created(root.key, { scopes: MANAGER });
    const grandchild = await created(child.key, { scopes: ['models:read'] });
    const sibling = await created(root.key, { scopes: ['models:read'] });
    const byAdmin = (await (await adminFetch('/keys', { org_id: root.orgId, scopes: ['models:read'] })).json()) as { id: string; key: string };
    const other = await createTenant({ scopes: MANAGER });
    // Every key works first, so each one's row is in this isolate's key cache.
    for (const k of [root.key, child.key, grandchild.key, sibling.key, byAdmin.key, other.key]) expect((await onV1(k)).status).toBe(200);

    const res = await revoke(root.key, child.id);
    expect(res.status).toBe(200);
    const revoked = (await res.json()) as { id: string; revoked_at: number | null; revoked_key_ids: string[] };
    expect(revoked.revoked_at).not.toBeNull();
    expect(revoked.revoked_key_ids).toEqual([child.id, grandchild.id].sort());
    expect(await onV1(child.key)).toEqual({ status: 403, code: 'key_revoked' });
    expect(await onV1(grandchild.key)).toEqual({ status: 403, code: 'key_revoked' });
    for (const k of [root.key, sibling.key, byAdmin.key, other.key]) expect((await onV1(k)).status).toBe(200);

    // Through the admin API too: the root takes its remaining child with it, never a key it did not create.
    const adminRevoke = (await (await adminFetch(`/keys/${root.keyId}/revoke`, {})).json()) as { revoked_key_ids: string[] };
    expect(adminRevoke.revoked_key_ids).toEqual([root.keyId, child.id, grandchild.id, sibling.id].sort());
    expect(await onV1(sibling.key)).toEqual({ status: 403, code: 'key_revoked' });
    // The child keeps the time it was first revoked.
    expect((await keyById(env.DB, child.id))?.revokedAt).toBe(revoked.revoked_at);
    for (const k of [byAdmin.key, other.key]) expect((await onV1(k)).status).toBe(200);
  });
});
