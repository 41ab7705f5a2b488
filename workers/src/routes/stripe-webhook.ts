/**
 * POST /webhooks/stripe — Stripe's event deliveries (set the endpoint in Stripe's dashboard, or
 * `stripe listen --forward-to <edge>/webhooks/stripe` locally). No API key: the Stripe-Signature
 * header, checked against STRIPE_WEBHOOK_SECRET over the raw body, is the authentication; a bad or
 * missing one is a 400. A verified event is applied (billing/topups.ts) and answered 200 with what
 * it did, so Stripe stops redelivering it; a failure answers 500 and Stripe retries the same event,
 * which applies at most once. 501 when STRIPE_WEBHOOK_SECRET is not set.
 */
import { Hono } from 'hono';
import { verifyWebhook } from '../billing/stripe.ts';
import { applyStripeEvent } from '../billing/topups.ts';
import type { AppEnv } from '../env.ts';
import { bodySize } from '../middleware/body-size.ts';

export const stripeWebhook = new Hono<AppEnv>().post('/', bodySize(), async (c) => {
  // The signature covers the exact bytes Stripe sent: verify the raw text, never re-serialised JSON.
  const event = await verifyWebhook(c.env, await c.req.text(), c.req.header('stripe-signature'));
  const outcome = await applyStripeEvent(c.env, event);
  if (outcome.action === 'ignored') console.log(`stripe event ${event.id} (${event.type}) ignored: ${outcome.reason}`);
  return c.json({ received: true, event_id: event.id, ...outcome });
});
