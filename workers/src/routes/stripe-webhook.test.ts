import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant, expectReconciled } from '../../test/fixtures.ts';
import { MAX_TOPUP_CENTS } from '../billing/stripe.ts';
import { claimTopup } from '../db/topups.ts';
import { spend } from '../../test/spend.ts';
import { asyncPaymentSucceeded, callWorker, chargeRefunded, checkoutCompleted, deliver, stripeEnv, topUpSession } from '../../test/stripe-events.ts';

interface LedgerRow {
  amount_micros: number;
  kind: string;
  request_id: string | null;
}

async function ledger(orgId: string): Promise<LedgerRow[]> {
  const { results } = await env.DB.prepare('SELECT amount_micros, kind, request_id FROM credit_ledger WHERE org_id = ? ORDER BY id').bind(orgId).all<LedgerRow>();
  return results;
}

async function balance(orgId: string): Promise<number> {
  return ((await (await adminFetch(`/organizations/${orgId}/balance`)).json()) as { balance_micros: number }).balance_micros;
}

async function receipt(sessionId: string) {
  return env.DB.prepare('SELECT * FROM topups WHERE id = ?').bind(sessionId).first<Record<string, unknown>>();
}

describe('POST /webhooks/stripe', () => {
  it('answers 501 in the API error shape when STRIPE_WEBHOOK_SECRET is not set', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const res = await deliver(checkoutCompleted(topUpSession(orgId, 1_000)), { workerEnv: stripeEnv({ STRIPE_WEBHOOK_SECRET: undefined }) });
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({ error: { code: 'stripe_not_configured', type: 'server_error' } });
    expect(await ledger(orgId)).toEqual([]);
  });

  it('grants a paid top-up exactly once per event: a redelivery and a second event for the same session grant nothing more', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const session = topUpSession(orgId, 2_500);
    const completed = checkoutCompleted(session);
    // The org's object is built now (at 0), so the top-up must reach it as a grant, not through a rebuild.
    expect((await expectReconciled(orgId)).object_micros).toBe(0);

    const first = await deliver(completed);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ received: true, event_id: completed.id, action: 'granted', org_id: orgId, receipt_id: session.id, amount_micros: 25_000_000 });
    const again = await deliver(completed);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ action: 'granted' });
    // Stripe also sends async_payment_succeeded for the same session: its own event id, no second grant.
    const other = await deliver(asyncPaymentSucceeded(session));
    expect(await other.json()).toMatchObject({ action: 'ignored' });

    expect(await ledger(orgId)).toEqual([{ amount_micros: 25_000_000, kind: 'grant', request_id: `stripe:${completed.id}` }]);
    expect(await balance(orgId)).toBe(25_000_000);
    expect(await receipt(session.id)).toMatchObject({ org_id: orgId, event_id: completed.id, payment_intent_id: session.payment_intent, amount_cents: 2_500, amount_micros: 25_000_000 });
    // The org's object got the same credit (the admin grant path): its balance equals the ledger.
    expect((await expectReconciled(orgId)).object_micros).toBe(25_000_000);
  });

  it('grants concurrently redelivered events once', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const completed = checkoutCompleted(topUpSession(orgId, 1_000));
    const answers = await Promise.all(Array.from({ length: 8 }, () => deliver(completed)));
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(await ledger(orgId)).toHaveLength(1);
    expect((await expectReconciled(orgId)).ledger_micros).toBe(10_000_000);
  });

  it('refuses a bad, tampered or missing signature with 400 and grants nothing', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const completed = checkoutCompleted(topUpSession(orgId, 1_000));
    const wrongSecret = await deliver(completed, { secret: 'whsec_someone_else' });
    expect(wrongSecret.status).toBe(400);
    expect(await wrongSecret.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_signature', param: 'Stripe-Signature' } });
    // Signed for 10.00 USD, delivered saying 1000.00 USD.
    const tampered = await deliver(completed, { tamper: (body) => body.replaceAll('"amount_total":1000', '"amount_total":100000') });
    expect(tampered.status).toBe(400);
    const missing = await callWorker(stripeEnv(), '/webhooks/stripe', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(completed) });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: { code: 'invalid_signature' } });
    expect(await ledger(orgId)).toEqual([]);
  });

  it('waits for an unpaid (delayed) session to be paid; ignores sessions it did not create', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const session = topUpSession(orgId, 1_000, { payment_status: 'unpaid' });
    expect(await (await deliver(checkoutCompleted(session))).json()).toMatchObject({ action: 'ignored' });
    expect(await ledger(orgId)).toEqual([]);
    const paid = asyncPaymentSucceeded({ ...session, payment_status: 'paid' });
    expect(await (await deliver(paid)).json()).toMatchObject({ action: 'granted' });
    expect(await ledger(orgId)).toEqual([{ amount_micros: 10_000_000, kind: 'grant', request_id: `stripe:${paid.id}` }]);

    const foreign = topUpSession(orgId, 1_000, { metadata: { order: 'tshirt' } });
    expect(await (await deliver(checkoutCompleted(foreign))).json()).toMatchObject({ action: 'ignored', reason: 'not a top-up session' });
    expect(await ledger(orgId)).toHaveLength(1);
  });

  it('ignores a session above the largest top-up or with fields of the wrong type, and refuses a signed body that is not an event', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    // 2^53 - 1 cents would be 9e19 µ$: past exact integers, the ledger and the org object would drift apart.
    for (const cents of [MAX_TOPUP_CENTS + 1, Number.MAX_SAFE_INTEGER]) {
      const res = await deliver(checkoutCompleted(topUpSession(orgId, cents)));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ action: 'ignored', reason: expect.stringContaining('above the largest top-up') });
    }
    for (const overrides of [{ client_reference_id: { $ne: null } }, { payment_intent: ['pi'] }, { id: 5 }, { metadata: 'prepaid_credit' }]) {
      const res = await deliver(checkoutCompleted(topUpSession(orgId, 1_000, overrides)));
      expect(res.status, JSON.stringify(overrides)).toBe(200);
      expect(await res.json()).toMatchObject({ action: 'ignored', reason: expect.stringContaining('session is malformed') });
    }
    const charge = await deliver(chargeRefunded(topUpSession(orgId, 1_000, { payment_intent: { id: {} } }), 100));
    expect(await charge.json()).toMatchObject({ action: 'ignored', reason: expect.stringContaining('charge is malformed') });
    for (const body of [null, [], { id: 'evt_1', type: 'checkout.session.completed' }]) {
      const res = await deliver(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringContaining('not a Stripe event') } });
    }
    expect(await ledger(orgId)).toEqual([]);
    await expectReconciled(orgId);
  });

  it('a refund debits the growth of the refunded total, once per event, in any order', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const session = topUpSession(orgId, 2_000);
    await deliver(checkoutCompleted(session));

    const partial = chargeRefunded(session, 500); // 5.00 of 20.00 refunded
    expect(await (await deliver(partial)).json()).toMatchObject({ action: 'refunded', requested_micros: 5_000_000, debited_micros: 5_000_000 });
    expect(await balance(orgId)).toBe(15_000_000);
    const full = chargeRefunded(session, 2_000); // then the rest: 15.00 more
    expect(await (await deliver(full)).json()).toMatchObject({ action: 'refunded', requested_micros: 15_000_000, debited_micros: 15_000_000 });
    expect(await balance(orgId)).toBe(0);

    // Replays after the refund, of either event and of the grant, change nothing.
    await deliver(partial);
    await deliver(full);
    await deliver(checkoutCompleted(session));
    expect((await ledger(orgId)).map((r) => [r.kind, r.amount_micros])).toEqual([
      ['grant', 20_000_000],
      ['refund', -5_000_000],
      ['refund', -15_000_000],
    ]);
    // A late delivery of an older total (its own event id) finds nothing new to take.
    const stale = chargeRefunded(session, 500);
    expect(await (await deliver(stale)).json()).toMatchObject({ action: 'refunded', requested_micros: 0, debited_micros: 0 });
    expect(await ledger(orgId)).toHaveLength(3);
    expect(await receipt(session.id)).toMatchObject({ refunded_cents: 2_000, refund_debited_micros: 20_000_000 });
    expect((await expectReconciled(orgId)).object_micros).toBe(0);
  });

  it('a refund of credit already spent takes back only what is left: the balance never goes below zero', async () => {
    const { orgId, keyId } = await createTenant({ creditMicros: 0 });
    const session = topUpSession(orgId, 1_000);
    await deliver(checkoutCompleted(session));
    await spend(orgId, keyId, 7_000_000);
    expect(await balance(orgId)).toBe(3_000_000);

    const refund = chargeRefunded(session, 1_000);
    expect(await (await deliver(refund)).json()).toMatchObject({ requested_micros: 10_000_000, debited_micros: 3_000_000 });
    expect(await balance(orgId)).toBe(0);
    expect(await receipt(session.id)).toMatchObject({ refunded_cents: 1_000, refund_debited_micros: 3_000_000 });
    expect((await expectReconciled(orgId)).object_micros).toBe(0);
  });

  it('a refund arriving before its top-up’s grant is recorded is refused (409, Stripe retries) and applied after it', async () => {
    const { orgId } = await createTenant({ creditMicros: 4_000_000 }); // other credit the refund must not take
    const session = topUpSession(orgId, 1_000);
    const completed = checkoutCompleted(session);
    // The paying event's first delivery stopped after claiming the receipt, before its grant.
    await claimTopup(env.DB, { id: session.id, orgId, eventId: completed.id, paymentIntentId: session.payment_intent, amountCents: 1_000, currency: 'usd', amountMicros: 10_000_000, paidAt: Date.now() });
    const refund = chargeRefunded(session, 1_000);
    const early = await deliver(refund);
    expect(early.status).toBe(409);
    expect(await early.json()).toMatchObject({ error: { code: 'topup_not_granted' } });
    expect(await balance(orgId)).toBe(4_000_000);

    await deliver(completed); // Stripe's retry of the paying event grants
    expect(await balance(orgId)).toBe(14_000_000);
    expect(await (await deliver(refund)).json()).toMatchObject({ action: 'refunded', debited_micros: 10_000_000 }); // and the refund's retry takes it back
    expect(await balance(orgId)).toBe(4_000_000);
    await expectReconciled(orgId);
  });

  it('ignores refunds of payments that are not top-ups, and event types it does not handle', async () => {
    const { orgId } = await createTenant({ creditMicros: 0 });
    const unknown = chargeRefunded(topUpSession(orgId, 1_000), 1_000);
    expect(await (await deliver(unknown)).json()).toMatchObject({ action: 'ignored' });
    const other = { ...checkoutCompleted(topUpSession(orgId, 1_000)), type: 'customer.created' };
    expect(await (await deliver(other)).json()).toMatchObject({ action: 'ignored', reason: 'event type customer.created is not handled' });
    expect(await ledger(orgId)).toEqual([]);
  });
});
