/**
 * POST /v1/billing/checkout — a Stripe Checkout Session to top up the key's organization.
 * Authenticated like every /v1 route (auth()), with scope `billing`: paying is a separate right
 * from spending, so a leaked inference key cannot start payments. Body: `{amount_cents,
 * success_url?, cancel_url?}` (whole USD cents, $5 – $10 000); the return URLs default to the
 * dashboard. Answer: `{id, url, amount_cents, credit_micros, ...}`; send the payer to `url`. The
 * credit arrives with Stripe's webhook (routes/stripe-webhook.ts), not with this call.
 * 501 when STRIPE_SECRET_KEY is not set.
 */
import { Hono } from 'hono';
import { checkoutView, createTopUpSession } from '../billing/stripe.ts';
import type { AppEnv } from '../env.ts';
import { requireScope } from '../middleware/auth.ts';
import { checkout } from '../schemas/billing.ts';
import { jsonBody } from '../schemas/validate.ts';

export const billingCheckout = new Hono<AppEnv>().post('/', requireScope('billing'), jsonBody(checkout), async (c) => {
  const body = c.req.valid('json');
  const { orgId, id: keyId } = c.var.apiKey;
  const dashboard = `${new URL(c.req.url).origin}/dashboard`;
  const session = await createTopUpSession(c.env, {
    orgId,
    amountCents: body.amount_cents,
    successUrl: body.success_url ?? `${dashboard}?topup=success`,
    cancelUrl: body.cancel_url ?? `${dashboard}?topup=cancelled`,
    requestedBy: keyId,
  });
  return c.json(checkoutView(session, orgId, body.amount_cents), 201);
});
