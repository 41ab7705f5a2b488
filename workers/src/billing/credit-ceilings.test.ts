import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant, expectReconciled } from '../../test/fixtures.ts';
import { chargeRefunded, checkoutCompleted, deliver, topUpSession } from '../../test/stripe-events.ts';
import { MAX_BALANCE_MICROS, MAX_GRANT_MICROS } from './credit-ceilings.ts';
import { grantToOrg } from './grants.ts';
import { grantCredit } from './ledger.ts';
import { orgAccount } from './request-billing.ts';

async function ledgerRows(orgId: string): Promise<{ amount_micros: number; kind: string }[]> {
  const { results } = await env.DB.prepare('SELECT amount_micros, kind FROM credit_ledger WHERE org_id = ? ORDER BY id').bind(orgId).all<{ amount_micros: number; kind: string }>();
  return results;
}

/** A tenant whose ledger already holds `micros` (one row, written before its object is built). */
async function tenantHolding(micros: number): Promise<string> {
  const { orgId } = await createTenant({ creditMicros: 0 });
  expect(await grantCredit(env.DB, orgId, micros, 'opening balance')).not.toBeNull();
  return orgId;
}

/** Grants `MAX_BALANCE_MICROS` in whole-ceiling grants: the org is then exactly at the balance ceiling. */
async function fillToCeiling(orgId: string): Promise<void> {
  for (let granted = 0; granted < MAX_BALANCE_MICROS; granted += MAX_GRANT_MICROS) {
    const res = await adminFetch('/credit', { org_id: orgId, amount_micros: MAX_GRANT_MICROS });
    expect(res.status).toBe(201);
  }
}

describe('credit ceilings', () => {
  it('two admin grants of 2^53 − 1 µ$ are refused with 400 in the API error shape; nothing is written', async () => {
    const { orgId } = await createTenant({ creditMicros: 5_000 });
    for (let i = 0; i < 2; i++) {
      const res = await adminFetch('/credit', { org_id: orgId, amount_micros: Number.MAX_SAFE_INTEGER });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'amount_micros', message: expect.stringContaining('1,000,000') } });
    }
    // Past the safe integers entirely: still a 400, never a rounded grant.
    const unsafe = await adminFetch('/credit', { org_id: orgId, amount_micros: 2 ** 60 });
    expect(unsafe.status).toBe(400);
    expect(await ledgerRows(orgId)).toEqual([{ amount_micros: 5_000, kind: 'grant' }]);
    expect(await expectReconciled(orgId)).toMatchObject({ ledger_micros: 5_000, object_micros: 5_000 });
  });

  it('grants up to the balance ceiling exactly; one µ$ more is refused with 400 and leaves no ledger row', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    await fillToCeiling(orgId);
    const over = await adminFetch('/credit', { org_id: orgId, amount_micros: 1 });
    expect(over.status).toBe(400);
    expect(await over.json()).toMatchObject({
      error: { type: 'invalid_request_error', code: 'credit_ceiling_exceeded', param: 'amount_micros', message: expect.stringContaining(`${MAX_BALANCE_MICROS}`) },
    });
    expect(await ledgerRows(orgId)).toHaveLength(MAX_BALANCE_MICROS / MAX_GRANT_MICROS);
    expect(await expectReconciled(orgId)).toMatchObject({ ledger_micros: MAX_BALANCE_MICROS, object_micros: MAX_BALANCE_MICROS });
  });

  it('two concurrent grants that fit the ceiling one at a time, not together: exactly one is written', async () => {
    const orgId = await tenantHolding(MAX_BALANCE_MICROS - MAX_GRANT_MICROS - 1_000);
    const results = await Promise.allSettled([
      grantToOrg(env, orgId, MAX_GRANT_MICROS, 'a', `grant:a-${orgId}`),
      grantToOrg(env, orgId, MAX_GRANT_MICROS, 'b', `grant:b-${orgId}`),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ status: 400, code: 'credit_ceiling_exceeded' });
    expect(await ledgerRows(orgId)).toHaveLength(2);
    expect(await expectReconciled(orgId)).toMatchObject({ ledger_micros: MAX_BALANCE_MICROS - 1_000 });
  });

  it('a retried grant at the ceiling returns its first row (idempotent), not a refusal', async () => {
    const orgId = await tenantHolding(MAX_BALANCE_MICROS - 2_000);
    const first = await grantToOrg(env, orgId, 2_000, 'last room', `grant:retry-${orgId}`);
    const again = await grantToOrg(env, orgId, 2_000, 'last room', `grant:retry-${orgId}`);
    expect(again).toEqual(first);
    expect(first.balanceMicros).toBe(MAX_BALANCE_MICROS);
  });

  it("the org's object refuses a grant past the ceiling by itself and applies nothing", async () => {
    const orgId = await tenantHolding(MAX_BALANCE_MICROS - 10);
    const stub = orgAccount(env, orgId);
    expect((await stub.account(orgId)).balanceMicros).toBe(MAX_BALANCE_MICROS - 10);
    // A ledger row id the object has never seen, for more than the room left.
    expect(await stub.grant(orgId, Number.MAX_SAFE_INTEGER, 11)).toMatchObject({ balanceMicros: MAX_BALANCE_MICROS - 10, refusal: expect.stringContaining('balance is at most') });
    expect(await stub.grant(orgId, Number.MAX_SAFE_INTEGER, 0.5)).toMatchObject({ refusal: expect.stringContaining('whole number') });
    expect((await stub.account(orgId)).balanceMicros).toBe(MAX_BALANCE_MICROS - 10);
    expect((await stub.mirror(orgId)).grantIds).toEqual([]);
  });

  it('a Stripe top-up past the balance ceiling: answered 200 "refused" (no retries), nothing granted, no receipt kept', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    await fillToCeiling(orgId);
    const session = topUpSession(orgId, 1_000);
    const completed = checkoutCompleted(session);
    for (let delivery = 0; delivery < 2; delivery++) {
      const res = await deliver(completed);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ received: true, event_id: completed.id, action: 'refused', org_id: orgId, receipt_id: session.id, amount_micros: 10_000_000, reason: expect.stringContaining('balance is at most') });
    }
    expect(await env.DB.prepare('SELECT 1 FROM topups WHERE id = ?').bind(session.id).first()).toBeNull();
    // The operator refunds the payment in Stripe: nothing was granted, so nothing is taken back (and no 409 loop).
    const refund = await deliver(chargeRefunded(session, 1_000));
    expect(refund.status).toBe(200);
    expect(await refund.json()).toMatchObject({ action: 'ignored' });
    expect(await ledgerRows(orgId)).toHaveLength(MAX_BALANCE_MICROS / MAX_GRANT_MICROS);
    expect(await expectReconciled(orgId)).toMatchObject({ ledger_micros: MAX_BALANCE_MICROS, object_micros: MAX_BALANCE_MICROS });
  });
});
