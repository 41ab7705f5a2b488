import { evictDurableObject, runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import { ledgerBalance, reservationRecord } from './ledger.ts';
import { createOrganization, database } from '../db/queries.ts';
import { grantCredit } from './ledger.ts';
import type { Limits } from './limits/plans.ts';
import type { OrgAccount } from './org-account.ts';

const wide: Limits = { rpm: 10_000, tpm: 10_000_000, concurrency: 10_000 };
const limits = { org: wide, key: wide };

/** An admission as request-billing.ts makes it: wide limits unless given, 10 tokens. */
function reserve(
  stub: DurableObjectStub<OrgAccount>,
  input: { orgId: string; requestId: string; keyId: string; amountMicros: number; ttlMs?: number },
) {
  return stub.admit({ ...input, tokens: 10, limits });
}

/** A real org row in D1 with `grantMicros` of credit in the ledger, and its account object. */
async function newOrg(grantMicros: number) {
  const orgId = `org-${crypto.randomUUID()}`;
  await createOrganization(database(env.DB), orgId, orgId);
  if (grantMicros > 0) await grantCredit(database(env.DB), orgId, grantMicros, 'test top-up');
  const stub: DurableObjectStub<OrgAccount> = env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(orgId));
  return { orgId, stub };
}

describe('OrgAccount', () => {
  it('100 concurrent reservations against a balance for 30: exactly 30 succeed, never below zero', async () => {
    const { orgId, stub } = await newOrg(30 * 1_000);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => reserve(stub, { orgId, requestId: `r${i}`, keyId: 'k', amountMicros: 1_000 })),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(30);
    for (const r of results) {
      // Every state any caller saw kept the reservations covered by the balance.
      expect(r.account.balanceMicros).toBeGreaterThanOrEqual(r.account.reservedMicros);
      if (!r.ok) expect(r).toMatchObject({ error: 'insufficient_credit', requiredMicros: 1_000 });
    }
    expect(await stub.account(orgId)).toMatchObject({ balanceMicros: 30_000, reservedMicros: 30_000, availableMicros: 0 });
  });

  it('100 concurrent requests that reserve, run and settle at full cost: at most 30 complete, balance ends at 0', async () => {
    const { orgId, stub } = await newOrg(30 * 1_000);
    const balancesSeen: number[] = [];
    const complete = async (i: number): Promise<boolean> => {
      const requestId = `req-${i}`;
      const reserved = await reserve(stub, { orgId, requestId, keyId: 'k', amountMicros: 1_000 });
      balancesSeen.push(reserved.account.balanceMicros);
      if (!reserved.ok) return false;
      const settled = await stub.settle({ orgId, requestId, costMicros: 1_000, tokens: 10 });
      balancesSeen.push(settled.account.balanceMicros);
      return settled.chargedMicros === 1_000;
    };
    const completed = (await Promise.all(Array.from({ length: 100 }, (_, i) => complete(i)))).filter(Boolean);
    expect(completed.length).toBeLessThanOrEqual(30);
    expect(Math.min(...balancesSeen)).toBeGreaterThanOrEqual(0);
    const account = await stub.account(orgId);
    expect(account.balanceMicros).toBe(30_000 - completed.length * 1_000);
    expect(account).toMatchObject({ reservedMicros: 0, openReservations: 0 });
  });

  it('settles to the real cost and releases the rest of the reservation', async () => {
    const { orgId, stub } = await newOrg(10_000);
    expect((await reserve(stub, { orgId, requestId: 'a', keyId: 'k', amountMicros: 8_000 })).ok).toBe(true);
    expect(await stub.account(orgId)).toMatchObject({ availableMicros: 2_000 });
    const settled = await stub.settle({ orgId, requestId: 'a', costMicros: 1_234, tokens: 50 });
    expect(settled).toMatchObject({ status: 'settled', reservedMicros: 8_000, chargedMicros: 1_234, overrunMicros: 0 });
    expect(settled.account).toMatchObject({ balanceMicros: 8_766, reservedMicros: 0, availableMicros: 8_766 });
  });

  it('never bills a request id twice: repeated settle and reuse of the id', async () => {
    const { orgId, stub } = await newOrg(10_000);
    await reserve(stub, { orgId, requestId: 'a', keyId: 'k', amountMicros: 5_000 });
    expect(await reserve(stub, { orgId, requestId: 'a', keyId: 'k', amountMicros: 5_000 })).toMatchObject({
      ok: false,
      error: 'duplicate_request',
      status: 'in_flight',
    });
    const settles = await Promise.all([1, 2, 3].map(() => stub.settle({ orgId, requestId: 'a', costMicros: 700, tokens: 9 })));
    expect(settles.map((s) => s.status).sort()).toEqual(['duplicate', 'duplicate', 'settled']);
    expect(settles.every((s) => s.chargedMicros === 700)).toBe(true);
    expect(await reserve(stub, { orgId, requestId: 'a', keyId: 'k', amountMicros: 5_000 })).toMatchObject({
      ok: false,
      error: 'duplicate_request',
      status: 'settled',
    });
    expect((await stub.account(orgId)).balanceMicros).toBe(9_300);
  });

  it('charges a stale reservation what it reported delivered on its alarm; a late settle charges the rest, once', async () => {
    const { orgId, stub } = await newOrg(10_000);
    expect(await reserve(stub, { orgId, requestId: 'hung', keyId: 'k', amountMicros: 9_000, ttlMs: 100 })).toMatchObject({ ok: true });
    expect(await stub.progress({ orgId, requestId: 'hung', deliveredMicros: 300 })).toMatchObject({ status: 'recorded', deliveredMicros: 300 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    // The alarm may already have fired on its own; otherwise run it now. No call to the object in
    // between, so only the alarm can have released the hold.
    await runDurableObjectAlarm(stub);
    expect(await stub.getReservation('hung')).toBeNull();
    expect(await stub.account(orgId)).toMatchObject({ balanceMicros: 9_700, reservedMicros: 0, availableMicros: 9_700 });
    // The alarm writes the expiry to D1 after charging it; it may still be on its way.
    await vi.waitFor(async () => expect(await reservationRecord(env.DB, 'hung')).toMatchObject({ status: 'expired', chargedMicros: 300, amountMicros: 9_000, keyId: 'k' }));
    // The request did finish, late, having cost 400: the expiry took 300 of it, the settle the other 100.
    expect(await stub.settle({ orgId, requestId: 'hung', costMicros: 400, tokens: 3 })).toMatchObject({
      status: 'settled',
      reservedMicros: 9_000,
      chargedMicros: 100,
    });
    expect(await stub.settle({ orgId, requestId: 'hung', costMicros: 400, tokens: 3 })).toMatchObject({ status: 'duplicate', chargedMicros: 100 });
    expect((await stub.account(orgId)).balanceMicros).toBe(9_600);
  });

  it('never charges above the reservation: the overrun is reported, not billed', async () => {
    const { orgId, stub } = await newOrg(10_000);
    await reserve(stub, { orgId, requestId: 'a', keyId: 'k', amountMicros: 1_000 });
    // An upstream that counted more tokens than the edge reserved for: the balance could pay it,
    // but the rule is min(cost, reserved), the same number the ledger will debit.
    expect(await stub.settle({ orgId, requestId: 'a', costMicros: 1_500, tokens: 3 })).toMatchObject({
      chargedMicros: 1_000,
      overrunMicros: 500,
      account: { balanceMicros: 9_000 },
    });
    // Replayed (the usage queue asking again), the same charge.
    expect(await stub.settle({ orgId, requestId: 'a', costMicros: 1_500, tokens: 3 })).toMatchObject({ status: 'duplicate', chargedMicros: 1_000, overrunMicros: 500 });
  });

  it('a settle after expiry charges within what was reserved and what is left, never below zero', async () => {
    const { orgId, stub } = await newOrg(1_000);
    await reserve(stub, { orgId, requestId: 'late', keyId: 'k', amountMicros: 1_000, ttlMs: 100 });
    await stub.progress({ orgId, requestId: 'late', deliveredMicros: 100 });
    await new Promise((r) => setTimeout(r, 150));
    await runDurableObjectAlarm(stub);
    // The expiry charged the 100 reported; the hold is gone: another request takes most of the rest.
    await reserve(stub, { orgId, requestId: 'other', keyId: 'k', amountMicros: 800 });
    await stub.settle({ orgId, requestId: 'other', costMicros: 800, tokens: 1 });
    // 900 cost − 100 already charged = 800 due, of which the balance holds 100.
    expect(await stub.settle({ orgId, requestId: 'late', costMicros: 900, tokens: 1 })).toMatchObject({
      chargedMicros: 100,
      overrunMicros: 700,
      account: { balanceMicros: 0 },
    });
  });

  it('mirrors the D1 ledger once, then applies each later grant exactly once', async () => {
    const { orgId, stub } = await newOrg(5_000);
    await grantCredit(database(env.DB), orgId, 2_000, 'second top-up');
    expect((await stub.account(orgId)).balanceMicros).toBe(7_000);
    const ledgerId = (await grantCredit(database(env.DB), orgId, 3_000, 'after the mirror was built'))!;
    await stub.grant(orgId, ledgerId, 3_000);
    await stub.grant(orgId, ledgerId, 3_000);
    // A row the mirror already summed is not added again.
    await stub.grant(orgId, ledgerId - 1, 2_000);
    expect((await stub.account(orgId)).balanceMicros).toBe(10_000);
    expect((await ledgerBalance(env.DB, orgId)).balanceMicros).toBe(10_000);
  });

  it('keeps balance and reservations across eviction', async () => {
    const { orgId, stub } = await newOrg(10_000);
    await reserve(stub, { orgId, requestId: 'a', keyId: 'k', amountMicros: 4_000 });
    await stub.settle({ orgId, requestId: 'a', costMicros: 1_000, tokens: 1 });
    await reserve(stub, { orgId, requestId: 'b', keyId: 'k', amountMicros: 3_000 });
    await evictDurableObject(stub);
    expect(await stub.account(orgId)).toMatchObject({ balanceMicros: 9_000, reservedMicros: 3_000, openReservations: 1 });
    expect(await stub.settle({ orgId, requestId: 'a', costMicros: 1_000, tokens: 1 })).toMatchObject({ status: 'duplicate' });
  });

  describe('admit (org limits + credit in one step)', () => {
    it('exactly 10 of 50 concurrent admissions against an org limit of 10 rpm', async () => {
      const { orgId, stub } = await newOrg(1_000_000);
      const orgLimits = { org: { ...wide, rpm: 10 }, key: wide };
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          stub.admit({ orgId, requestId: `r${i}`, keyId: `k${i % 5}`, amountMicros: 100, limits: orgLimits, tokens: 10 }),
        ),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(results.find((r) => !r.ok)).toMatchObject({ error: 'rate_limited', admission: { reason: 'requests' } });
      // A refused request holds no credit.
      expect(await stub.account(orgId)).toMatchObject({ reservedMicros: 1_000, openReservations: 10 });
    });

    it('a request refused for credit does not use a rate slot', async () => {
      const { orgId, stub } = await newOrg(1_000);
      const tight = { org: { ...wide, rpm: 1 }, key: { ...wide, rpm: 1 } };
      expect(
        await stub.admit({ orgId, requestId: 'rich', keyId: 'k', amountMicros: 5_000, limits: tight, tokens: 1 }),
      ).toMatchObject({ ok: false, error: 'insufficient_credit' });
      const ok = await stub.admit({ orgId, requestId: 'ok', keyId: 'k', amountMicros: 500, limits: tight, tokens: 1 });
      expect(ok).toMatchObject({ ok: true, rates: [{ remainingRequests: 0 }, { remainingRequests: 0 }] });
    });

    it('a key refused by its own limit takes no org slot; an org refusal gives the key slot back', async () => {
      const { orgId, stub } = await newOrg(1_000_000);
      const keyTight = { org: { ...wide, rpm: 2 }, key: { ...wide, rpm: 1 } };
      expect(await stub.admit({ orgId, requestId: 'k1', keyId: 'a', amountMicros: 1, limits: keyTight, tokens: 1 })).toMatchObject({ ok: true });
      expect(await stub.admit({ orgId, requestId: 'k2', keyId: 'a', amountMicros: 1, limits: keyTight, tokens: 1 })).toMatchObject({ ok: false, scope: 'key' });
      // The org's second slot is still free for another key...
      expect(await stub.admit({ orgId, requestId: 'k3', keyId: 'b', amountMicros: 1, limits: keyTight, tokens: 1 })).toMatchObject({ ok: true });
      // ...and now the org is full: key c is refused by the org and keeps its own slot for later.
      expect(await stub.admit({ orgId, requestId: 'k4', keyId: 'c', amountMicros: 1, limits: keyTight, tokens: 1 })).toMatchObject({ ok: false, scope: 'organization' });
      const windows = await stub.rateState(keyTight, 'c');
      expect(windows.key).toMatchObject({ remainingRequests: 1, inFlight: 0 });
    });

    it('an admission the object cannot decide takes nothing: no key lease, no org lease, no hold', async () => {
      const { orgId, stub } = await newOrg(1_000_000);
      const one = { org: { ...wide, concurrency: 1 }, key: { ...wide, concurrency: 1 } };
      // A worst case past 2^53 µ$ is not a number the ledger can hold: the object refuses to decide.
      expect(await stub.admit({ orgId, requestId: 'huge', keyId: 'k', amountMicros: 2 ** 60, limits: one, tokens: 1 })).toMatchObject({ ok: false, error: 'unreservable' });
      expect(await stub.admit({ orgId, requestId: 'next', keyId: 'k', amountMicros: 1, limits: one, tokens: 1 })).toMatchObject({ ok: true });
      expect(await stub.account(orgId)).toMatchObject({ reservedMicros: 1, openReservations: 1 });
    });
  });
});
