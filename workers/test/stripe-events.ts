/**
 * Stripe in the worker tests, offline: the worker with its Stripe secrets set (the test
 * environment has none, which is the 501 case), webhook deliveries signed by the Stripe SDK's
 * own test-header generator, and events in the shape Stripe sends them.
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import Stripe from 'stripe';
import { inject } from 'vitest';
import worker from '../src/index.ts';

export const WEBHOOK_SECRET = 'whsec_test_edge_inference_webhooks';
export const SECRET_KEY = 'sk_test_edge_inference';

/** The test environment plus Stripe's secrets, with API calls sent to the local stand-in. */
export function stripeEnv(overrides: Record<string, string | undefined> = {}): Env {
  return { ...env, STRIPE_SECRET_KEY: SECRET_KEY, STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_API_BASE: inject('fakeStripeUrl'), ...overrides } as Env;
}

/** One request through the worker's own fetch handler, with `workerEnv` as its bindings. */
export async function callWorker(workerEnv: Env, path: string, init: RequestInit = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`http://edge.test${path}`, init), workerEnv, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** Delivers `event` to POST /webhooks/stripe as Stripe does: the raw JSON and its Stripe-Signature. */
export async function deliver(event: unknown, opts: { secret?: string; workerEnv?: Env; tamper?: (body: string) => string } = {}): Promise<Response> {
  const payload = JSON.stringify(event);
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: opts.secret ?? WEBHOOK_SECRET,
    cryptoProvider: Stripe.createSubtleCryptoProvider(),
  });
  const body = opts.tamper ? opts.tamper(payload) : payload;
  return callWorker(opts.workerEnv ?? stripeEnv(), '/webhooks/stripe', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    body,
  });
}

const rid = (prefix: string) => `${prefix}_test_${crypto.randomUUID().replaceAll('-', '').slice(0, 24)}`;

function event(type: string, object: unknown, id = rid('evt')) {
  return {
    id,
    object: 'event',
    api_version: '2025-11-17.clover',
    created: Math.floor(Date.now() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: rid('req'), idempotency_key: null },
    type,
  };
}

export interface PaidSession {
  id: string;
  orgId: string;
  amountCents: number;
  paymentIntent: string;
}

/** A top-up session as the edge creates it (metadata, client_reference_id), paid. */
export function topUpSession(orgId: string, amountCents: number, overrides: Record<string, unknown> = {}) {
  return {
    id: rid('cs'),
    object: 'checkout.session',
    amount_subtotal: amountCents,
    amount_total: amountCents,
    client_reference_id: orgId,
    currency: 'usd',
    customer_details: { email: 'billing@example.com', name: 'Ada Lovelace' },
    livemode: false,
    metadata: { org_id: orgId, purpose: 'prepaid_credit', requested_by: 'key_test' },
    mode: 'payment',
    payment_intent: rid('pi'),
    payment_status: 'paid',
    status: 'complete',
    ...overrides,
  };
}

export function checkoutCompleted(session: ReturnType<typeof topUpSession>, id?: string) {
  return event('checkout.session.completed', session, id);
}

export function asyncPaymentSucceeded(session: ReturnType<typeof topUpSession>) {
  return event('checkout.session.async_payment_succeeded', session);
}

/** charge.refunded of the session's payment, with Stripe's running total `amountRefunded` (cents). */
export function chargeRefunded(session: ReturnType<typeof topUpSession>, amountRefunded: number) {
  const charge = {
    id: `ch_${String(session.payment_intent).slice(3)}`,
    object: 'charge',
    amount: session.amount_total,
    amount_captured: session.amount_total,
    amount_refunded: amountRefunded,
    currency: 'usd',
    metadata: session.metadata,
    paid: true,
    payment_intent: session.payment_intent,
    refunded: amountRefunded === session.amount_total,
    status: 'succeeded',
  };
  return event('charge.refunded', charge);
}
