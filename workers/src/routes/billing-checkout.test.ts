import { SELF } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import type { RecordedStripeRequest } from '../../../test/support/fake-stripe.ts';
import { REFUSED_STRIPE_KEY } from '../../../test/support/stripe-test-keys.ts';
import { createTenant } from '../../test/fixtures.ts';
import { callWorker, checkoutCompleted, deliver, SECRET_KEY, stripeEnv, topUpSession } from '../../test/stripe-events.ts';

const BILLING = ['models:read', 'chat', 'billing'];

function checkout(key: string | null, body: unknown, workerEnv = stripeEnv()) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  return callWorker(workerEnv, '/v1/billing/checkout', { method: 'POST', headers, body: JSON.stringify(body) });
}

/** What the local api.stripe.com stand-in received for this org's sessions. */
async function stripeRequestsFor(orgId: string): Promise<RecordedStripeRequest[]> {
  const all = (await (await fetch(`${inject('fakeStripeUrl')}/requests`)).json()) as RecordedStripeRequest[];
  return all.filter((r) => r.form.client_reference_id === orgId);
}

describe('POST /v1/billing/checkout', () => {
  it('creates a Stripe Checkout Session through the SDK for the amount, with the org in its metadata', async () => {
    const { orgId, keyId, key } = await createTenant({ creditMicros: 0, scopes: BILLING });
    const res = await checkout(key, { amount_cents: 2_500 });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; url: string };
    expect(body).toMatchObject({ object: 'checkout.session', org_id: orgId, amount_cents: 2_500, currency: 'usd', credit_micros: 25_000_000 });
    expect(body.url).toBe(`https://checkout.stripe.com/c/pay/${body.id}`);

    const [sent] = await stripeRequestsFor(orgId);
    expect(sent).toMatchObject({ method: 'POST', path: '/v1/checkout/sessions', authorization: `Bearer ${SECRET_KEY}` });
    // The SDK sets an idempotency key on POSTs it may retry.
    expect(sent.idempotencyKey).toBeTruthy();
    expect(sent.form).toMatchObject({
      mode: 'payment',
      client_reference_id: orgId,
      'metadata[org_id]': orgId,
      'metadata[purpose]': 'prepaid_credit',
      'metadata[requested_by]': keyId,
      'payment_intent_data[metadata][org_id]': orgId,
      'line_items[0][quantity]': '1',
      'line_items[0][price_data][currency]': 'usd',
      'line_items[0][price_data][unit_amount]': '2500',
      success_url: 'http://edge.test/dashboard?topup=success',
      cancel_url: 'http://edge.test/dashboard?topup=cancelled',
    });
  });

  it('passes the caller’s return URLs; the paid session’s webhook then grants the credit and a receipt', async () => {
    const { orgId, key } = await createTenant({ creditMicros: 0, scopes: BILLING });
    const res = await checkout(key, { amount_cents: 500, success_url: 'https://app.example.com/paid', cancel_url: 'https://app.example.com/cart' });
    const { id } = (await res.json()) as { id: string };
    const [sent] = await stripeRequestsFor(orgId);
    expect(sent.form).toMatchObject({ success_url: 'https://app.example.com/paid', cancel_url: 'https://app.example.com/cart' });

    await deliver(checkoutCompleted(topUpSession(orgId, 500, { id })));
    const receipts = await callWorker(stripeEnv(), '/dashboard/api/receipts', { headers: { authorization: `Bearer ${key}` } });
    expect(await receipts.json()).toMatchObject({ object: 'list', org_id: orgId, data: [{ object: 'receipt', id, amount_cents: 500, credit_micros: 5_000_000 }] });
  });

  it('validates the amount (whole cents, $5 – $10 000) and the return URLs with 400s naming the field', async () => {
    const { key } = await createTenant({ creditMicros: 0, scopes: BILLING });
    for (const [body, param] of [
      [{ amount_cents: 499 }, 'amount_cents'],
      [{ amount_cents: 1_000_001 }, 'amount_cents'],
      [{ amount_cents: 1_000.5 }, 'amount_cents'],
      [{ amount_cents: '1000' }, 'amount_cents'],
      [{}, 'amount_cents'],
      [{ amount_cents: 1_000, success_url: 'javascript:alert(1)' }, 'success_url'],
      [{ amount_cents: 1_000, cancel_url: 'not a url' }, 'cancel_url'],
    ] as const) {
      const res = await checkout(key, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', param } });
    }
  });

  it('needs a key with the billing scope', async () => {
    const { key } = await createTenant({ creditMicros: 0 });
    const res = await checkout(key, { amount_cents: 1_000 });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: 'insufficient_scope' } });
    expect((await checkout(null, { amount_cents: 1_000 })).status).toBe(401);
  });

  it('answers 501 when STRIPE_SECRET_KEY is not set, 502 when Stripe refuses the call', async () => {
    const { key } = await createTenant({ creditMicros: 0, scopes: BILLING });
    const off = await SELF.fetch('http://edge.test/v1/billing/checkout', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount_cents: 1_000 }),
    });
    expect(off.status).toBe(501);
    expect(await off.json()).toMatchObject({ error: { code: 'stripe_not_configured', message: expect.stringContaining('STRIPE_SECRET_KEY') } });

    const refused = await checkout(key, { amount_cents: 1_000 }, stripeEnv({ STRIPE_SECRET_KEY: REFUSED_STRIPE_KEY }));
    expect(refused.status).toBe(502);
    expect(await refused.json()).toMatchObject({ error: { code: 'payment_provider_error', message: expect.stringContaining('Invalid API Key') } });
  });
});

describe('dashboard top-ups (/dashboard/api/billing)', () => {
  it('says whether Stripe is on and who may pay; a billing key starts a checkout, another key is refused', async () => {
    const payer = await createTenant({ creditMicros: 0, scopes: BILLING });
    const auth = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });
    expect(await (await callWorker(stripeEnv(), '/dashboard/api/billing', { headers: auth(payer.key) })).json()).toMatchObject({
      stripe_enabled: true,
      can_top_up: true,
      min_amount_cents: 500,
      max_amount_cents: 1_000_000,
    });
    expect(await (await SELF.fetch('http://edge.test/dashboard/api/billing', { headers: auth(payer.key) })).json()).toMatchObject({ stripe_enabled: false });

    const started = await callWorker(stripeEnv(), '/dashboard/api/billing/checkout', { method: 'POST', headers: auth(payer.key), body: JSON.stringify({ amount_cents: 1_500 }) });
    expect(started.status).toBe(201);
    expect(await started.json()).toMatchObject({ org_id: payer.orgId, amount_cents: 1_500, url: expect.stringMatching(/^https:\/\/checkout\.stripe\.com\//) });

    const reader = await createTenant({ creditMicros: 0 });
    const refused = await callWorker(stripeEnv(), '/dashboard/api/billing/checkout', { method: 'POST', headers: auth(reader.key), body: JSON.stringify({ amount_cents: 1_500 }) });
    expect(refused.status).toBe(403);
  });
});
