import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant } from '../../test/fixtures.ts';
import { limitsFor } from '../billing/limits/limit-settings.ts';
import { DEFAULT_PLAN, PLANS } from '../billing/limits/plans.ts';

describe('admin API: rate limits', () => {
  it('starts from the default plan, then applies a plan and per-field overrides for the org and its key', async () => {
    const t = await createTenant({ creditMicros: 0 });
    const initial = await (await adminFetch(`/organizations/${t.orgId}/limits`)).json();
    expect(initial).toEqual({ org_id: t.orgId, plan: null, limits: PLANS[DEFAULT_PLAN] });

    const put = await adminFetch(`/organizations/${t.orgId}/limits`, { plan: 'tier3', rpm: 42 }, 'PUT');
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ org_id: t.orgId, plan: 'tier3', limits: { ...PLANS.tier3, rpm: 42 } });

    // The key inherits the org's plan defaults (not the org's overrides) until it has its own.
    expect(await (await adminFetch(`/keys/${t.keyId}/limits`)).json()).toMatchObject({ limits: PLANS.tier3 });
    const key = await adminFetch(`/keys/${t.keyId}/limits`, { concurrency: 2, tpm: null }, 'PUT');
    expect(await key.json()).toEqual({ key_id: t.keyId, org_id: t.orgId, limits: { ...PLANS.tier3, concurrency: 2 } });

    // What the middleware reads per request.
    expect(await limitsFor(env.DB, t.orgId, t.keyId)).toEqual({
      plan: 'tier3',
      org: { ...PLANS.tier3, rpm: 42 },
      key: { ...PLANS.tier3, concurrency: 2 },
      budget: null,
      allowedModels: null,
      alerts: null,
    });
  });

  it('rejects a bad plan or a negative limit, and unknown orgs and keys', async () => {
    const t = await createTenant({ creditMicros: 0 });
    const badPlan = await adminFetch(`/organizations/${t.orgId}/limits`, { plan: 'platinum' }, 'PUT');
    expect(badPlan.status).toBe(400);
    expect(await badPlan.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'plan' } });
    const negative = await adminFetch(`/keys/${t.keyId}/limits`, { rpm: -1 }, 'PUT');
    expect(negative.status).toBe(400);
    expect((await adminFetch('/organizations/nope/limits', { rpm: 1 }, 'PUT')).status).toBe(404);
    expect((await adminFetch('/keys/nope/limits')).status).toBe(404);
  });

  it('shows the org account held by its Durable Object', async () => {
    const t = await createTenant({ creditMicros: 2_500_000 });
    const res = await adminFetch(`/organizations/${t.orgId}/account`);
    expect(await res.json()).toEqual({
      org_id: t.orgId,
      balance_micros: 2_500_000,
      reserved_micros: 0,
      available_micros: 2_500_000,
      open_reservations: 0,
    });
  });
});
