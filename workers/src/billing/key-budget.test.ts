/**
 * Per-key budgets and tokens per day, decided by the org's OrgAccount at admission (limits/
 * key-budgets.ts, limits/daily-tokens.ts): exact under concurrency, charges never above the cap.
 */
import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { createOrganization, database } from '../db/queries.ts';
import { grantCredit } from './ledger.ts';
import type { KeyBudget } from './limits/key-budgets.ts';
import type { Limits } from './limits/plans.ts';
import type { OrgAccount } from './org-account.ts';

const wide: Limits = { rpm: 10_000, tpm: 10_000_000, concurrency: 10_000, tpd: null };
const DAY_MS = 86_400_000;

async function newOrg(grantMicros: number) {
  const orgId = `org-${crypto.randomUUID()}`;
  await createOrganization(database(env.DB), orgId, orgId);
  await grantCredit(database(env.DB), orgId, grantMicros, 'test top-up');
  const stub: DurableObjectStub<OrgAccount> = env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(orgId));
  return { orgId, stub };
}

const daily = (limitMicros: number): KeyBudget => ({ limitMicros, period: 'daily', timeZone: 'UTC' });

describe('key budgets in OrgAccount', () => {
  it('100 concurrent requests on a key with a budget for 30: no overshoot, the rest refused with the reset time', async () => {
    // The org could pay for all 100; only the key's cap stops them.
    const { orgId, stub } = await newOrg(1_000_000);
    const budget = daily(30_000);
    const run = async (i: number) => {
      const requestId = `b${i}`;
      const admitted = await stub.admit({ orgId, requestId, keyId: 'k', amountMicros: 1_000, tokens: 10, limits: { org: wide, key: wide }, budget });
      if (!admitted.ok) return { admitted, charged: 0 };
      const settled = await stub.settle({ orgId, requestId, costMicros: 1_000, tokens: 10 });
      return { admitted, charged: settled.chargedMicros };
    };
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => run(i)));
    const charged = results.reduce((a, r) => a + r.charged, 0);
    expect(charged).toBeLessThanOrEqual(30_000);
    expect(charged).toBe(30_000);
    const refused = results.filter((r) => !r.admitted.ok).map((r) => r.admitted);
    expect(refused).toHaveLength(70);
    const midnight = Date.now() - (Date.now() % DAY_MS) + DAY_MS;
    for (const r of refused) expect(r).toMatchObject({ ok: false, error: 'key_budget_exceeded', requiredMicros: 1_000, budget: { limitMicros: 30_000, resetsAt: midnight } });
    expect(await stub.keyBudget(orgId, 'k', budget)).toMatchObject({ spentMicros: 30_000, heldMicros: 0, remainingMicros: 0, periodStart: midnight - DAY_MS });
    // The org's balance paid exactly the key's charges; another key of the org is not affected.
    expect((await stub.account(orgId)).balanceMicros).toBe(1_000_000 - 30_000);
    expect((await stub.admit({ orgId, requestId: 'other', keyId: 'k2', amountMicros: 1_000, tokens: 10, limits: { org: wide, key: wide } })).ok).toBe(true);
  });

  it('holds the worst case while in flight and frees what a request did not spend', async () => {
    const { orgId, stub } = await newOrg(1_000_000);
    const budget = daily(10_000);
    const admit = (requestId: string, amountMicros: number) =>
      stub.admit({ orgId, requestId, keyId: 'k', amountMicros, tokens: 10, limits: { org: wide, key: wide }, budget });
    expect(await admit('a', 8_000)).toMatchObject({ ok: true, budget: { heldMicros: 8_000, remainingMicros: 2_000 } });
    expect(await admit('b', 3_000)).toMatchObject({ ok: false, error: 'key_budget_exceeded', budget: { spentMicros: 0, heldMicros: 8_000 } });
    await stub.settle({ orgId, requestId: 'a', costMicros: 1_500, tokens: 10 });
    expect(await admit('b', 3_000)).toMatchObject({ ok: true, budget: { spentMicros: 1_500, heldMicros: 3_000, remainingMicros: 5_500 } });
    // A budget refusal takes no rate slot and no credit.
    expect(await stub.account(orgId)).toMatchObject({ reservedMicros: 3_000, openReservations: 1 });
  });

  it('a late settle after its hold expired cannot push the key past its cap', async () => {
    const { orgId, stub } = await newOrg(1_000_000);
    const budget = daily(10_000);
    const limits = { org: wide, key: wide };
    expect((await stub.admit({ orgId, requestId: 'hung', keyId: 'k', amountMicros: 8_000, tokens: 10, limits, budget, ttlMs: 100 })).ok).toBe(true);
    await stub.progress({ orgId, requestId: 'hung', deliveredMicros: 1_000 });
    await new Promise((r) => setTimeout(r, 150));
    await runDurableObjectAlarm(stub);
    // The expiry charged the 1 000 reported, in the key's period too.
    expect(await stub.keyBudget(orgId, 'k', budget)).toMatchObject({ spentMicros: 1_000 });
    // The expired hold's room went to another request, which spent 8 000 of the 9 000 left.
    expect((await stub.admit({ orgId, requestId: 'next', keyId: 'k', amountMicros: 8_000, tokens: 10, limits, budget })).ok).toBe(true);
    expect((await stub.settle({ orgId, requestId: 'next', costMicros: 8_000, tokens: 10 })).chargedMicros).toBe(8_000);
    // The hung request settles at 8 000: 7 000 more is due, the 1 000 left is charged, the rest is overrun.
    expect(await stub.settle({ orgId, requestId: 'hung', costMicros: 8_000, tokens: 10 })).toMatchObject({ chargedMicros: 1_000, overrunMicros: 6_000 });
    expect(await stub.keyBudget(orgId, 'k', budget)).toMatchObject({ spentMicros: 10_000 });
  });

  it('a total budget never resets; a key without a budget is not limited by one', async () => {
    const { orgId, stub } = await newOrg(1_000_000);
    const budget: KeyBudget = { limitMicros: 1_000, period: 'total', timeZone: 'UTC' };
    const refused = await stub.admit({ orgId, requestId: 'x', keyId: 'k', amountMicros: 1_001, tokens: 10, limits: { org: wide, key: wide }, budget });
    expect(refused).toMatchObject({ ok: false, error: 'key_budget_exceeded', budget: { resetsAt: null, periodStart: 0 } });
  });
});

describe('tokens per day in OrgAccount', () => {
  it('100 concurrent requests against a key TPD for 30: exactly 30 admitted, refused until the next UTC midnight', async () => {
    const { orgId, stub } = await newOrg(1_000_000);
    const key = { ...wide, tpd: 300 };
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => stub.admit({ orgId, requestId: `t${i}`, keyId: 'k', amountMicros: 1, tokens: 10, limits: { org: wide, key } })),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(30);
    const refused = results.find((r) => !r.ok)!;
    expect(refused).toMatchObject({ ok: false, error: 'rate_limited', scope: 'key', admission: { reason: 'tokens_per_day', tooLarge: false }, daily: [{ limit: 300, remaining: 0 }] });
    if (!refused.ok && refused.error === 'rate_limited') {
      expect(refused.admission.retryAfterMs).toBeGreaterThan(0);
      expect(refused.admission.retryAfterMs).toBeLessThanOrEqual(DAY_MS - (Date.now() % DAY_MS) + 1_000);
    }
    // Nothing refused took a credit hold.
    expect(await stub.account(orgId)).toMatchObject({ openReservations: 30, reservedMicros: 30 });
  });

  it('counts the worst case, then the real tokens; the org day is shared by its keys', async () => {
    const { orgId, stub } = await newOrg(1_000_000);
    const org = { ...wide, tpd: 1_000 };
    const admit = (requestId: string, keyId: string, tokens: number) => stub.admit({ orgId, requestId, keyId, amountMicros: 1, tokens, limits: { org, key: wide } });
    expect(await admit('a', 'k1', 900)).toMatchObject({ ok: true, daily: [{ limit: 1_000, remaining: 100 }] });
    expect(await admit('b', 'k2', 200)).toMatchObject({ ok: false, scope: 'organization', admission: { reason: 'tokens_per_day' } });
    await stub.settle({ orgId, requestId: 'a', costMicros: 1, tokens: 50 });
    expect(await admit('b', 'k2', 200)).toMatchObject({ ok: true, daily: [{ remaining: 750 }] });
    expect(await admit('c', 'k2', 5_000)).toMatchObject({ ok: false, admission: { reason: 'tokens_per_day', tooLarge: true } });
  });
});
