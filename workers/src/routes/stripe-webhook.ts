/**
 * POST /webhooks/stripe — Stripe's event deliveries (set the endpoint in Stripe's dashboard, or
 * `stripe listen --forward-to <edge>/webhooks/stripe` locally). No API key: the Stripe-Signature
 * header, checked against STRIPE_WEBHOOK_SECRET over the raw body, is the authentication; a bad or
 * missing one is a 400. A verified event is applied (billing/topups.ts) and answered 200 with what
 * it did, so Stripe stops redelivering it (a top-up the credit ceilings refuse included: action
 * "refused", nothing granted); a failure answers 500 and Stripe retries the same event, which
 * applies at most once. 501 when STRIPE_WEBHOOK_SECRET is not set. A body over
 * WEBHOOK_MAX_BODY_BYTES is a 413 before any of this (middleware/body-size.ts, mounted app-wide).
 */
import { Hono } from 'hono';
import { verifyWebhook } from '../billing/stripe.ts';
import { applyStripeEvent, type EventOutcome } from '../billing/topups.ts';
import type { AppEnv } from '../env.ts';

export const stripeWebhook = new Hono<AppEnv>().post('/', async (c) => {
  // The signature covers the exact bytes Stripe sent: verify the raw text, never re-serialised JSON.
  const event = await verifyWebhook(c.env, await c.req.text(), c.req.header('stripe-signature'));
  const outcome = await applyStripeEvent(c.env, event);
  if (outcome.action === 'ignored') console.log(`stripe event ${event.id} (${event.type}) ignored: ${outcome.reason}`);
  return c.json({ received: true, event_id: event.id, ...outcomeWire(outcome) });
});

function outcomeWire(o: EventOutcome) {
  switch (o.action) {
    case 'granted':
      return { action: o.action, org_id: o.orgId, receipt_id: o.topupId, ledger_id: o.ledgerId, amount_micros: o.amountMicros };
    case 'refunded':
      return { action: o.action, org_id: o.orgId, receipt_id: o.topupId, requested_micros: o.requestedMicros, debited_micros: o.chargedMicros };
    case 'refused':
      return { action: o.action, org_id: o.orgId, receipt_id: o.topupId, amount_micros: o.amountMicros, reason: o.reason };
    case 'ignored':
      return { action: o.action, reason: o.reason };
  }
}
