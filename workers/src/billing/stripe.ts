/**
 * Stripe, through its official SDK: the client the Worker uses (fetch transport, Web Crypto for
 * webhook signatures, since workerd has no synchronous Node HMAC), the Checkout Session of a
 * top-up, and webhook verification. Keys come from Worker secrets; a route whose secret is not set
 * answers 501 (StripeNotConfiguredError) instead of failing.
 *
 * Money: Stripe counts USD in cents, the ledger in micro-dollars: 1 cent = 10 000 µ$, exactly.
 */
import Stripe from 'stripe';
import { InvalidRequestError, PaymentProviderError, StripeNotConfiguredError, StripeSignatureError } from '../errors.ts';
import { stripeEventEnvelope } from '../schemas/stripe-event.ts';

export const MICROS_PER_CENT = 10_000;
/** Smallest top-up: $5 (Stripe's own minimum is $0.50; below $5 its fee is a large share). */
export const MIN_TOPUP_CENTS = 500;
/** Largest top-up in one payment: $10 000. Larger amounts go through the operator. */
export const MAX_TOPUP_CENTS = 1_000_000;
/** Set on every session this edge creates, so the webhook tells our top-ups from other payments. */
export const TOPUP_PURPOSE = 'prepaid_credit';

/**
 * The Stripe settings, all optional. They are read here rather than listed in wrangler.toml's
 * `[secrets] required`: that list makes every deploy fail until the secret is set, and a
 * deployment without Stripe is a supported one (its Stripe routes answer 501).
 *   STRIPE_SECRET_KEY       sk_live_… / sk_test_…: creates Checkout Sessions
 *   STRIPE_WEBHOOK_SECRET   whsec_…: verifies POST /webhooks/stripe
 *   STRIPE_API_BASE         e.g. "http://127.0.0.1:12111": send API calls there instead of
 *                           api.stripe.com (stripe-mock, the tests' local stand-in)
 */
interface StripeSettings {
  STRIPE_SECRET_KEY?: string;
  STRIPE_WEBHOOK_SECRET?: string;
  STRIPE_API_BASE?: string;
}

const settings = (env: Env): StripeSettings => env as unknown as StripeSettings;

export function stripeConfigured(env: Env): { checkout: boolean; webhook: boolean } {
  const s = settings(env);
  return { checkout: Boolean(s.STRIPE_SECRET_KEY), webhook: Boolean(s.STRIPE_WEBHOOK_SECRET) };
}

/** The SDK client over `fetch` (Stripe.createFetchHttpClient), pointed at STRIPE_API_BASE when set. */
export function stripeClient(env: Env): Stripe {
  const { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: base } = settings(env);
  if (!key) throw new StripeNotConfiguredError('STRIPE_SECRET_KEY');
  const config: ConstructorParameters<typeof Stripe>[1] = { httpClient: Stripe.createFetchHttpClient(), maxNetworkRetries: 2 };
  if (base) {
    // The SDK's documented host/port/protocol settings (how stripe-mock is used).
    const url = new URL(base);
    config.host = url.hostname;
    config.protocol = url.protocol === 'http:' ? 'http' : 'https';
    config.port = url.port ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
  }
  return new Stripe(key, config);
}

export interface TopUpRequest {
  orgId: string;
  amountCents: number;
  successUrl: string;
  cancelUrl: string;
  /** Who asked: a key id, or "admin"; recorded on the session for Stripe's dashboard. */
  requestedBy: string;
}

/**
 * A Checkout Session charging `amountCents` USD once, for prepaid credit of the org. The org id is
 * the session's client_reference_id and in its metadata (and the PaymentIntent's, for Stripe's
 * dashboard); the webhook grants what the session collected, not what this call asked.
 */
export async function createTopUpSession(env: Env, req: TopUpRequest): Promise<Stripe.Checkout.Session> {
  const stripe = stripeClient(env);
  const metadata = { org_id: req.orgId, purpose: TOPUP_PURPOSE, requested_by: req.requestedBy };
  try {
    return await stripe.checkout.sessions.create({
      mode: 'payment',
      client_reference_id: req.orgId,
      metadata,
      payment_intent_data: { metadata },
      line_items: [
        {
          quantity: 1,
          price_data: { currency: 'usd', unit_amount: req.amountCents, product_data: { name: 'Prepaid inference credit' } },
        },
      ],
      success_url: req.successUrl,
      cancel_url: req.cancelUrl,
    });
  } catch (err) {
    if (err instanceof Stripe.errors.StripeError) throw new PaymentProviderError(err.message);
    throw err;
  }
}

/**
 * The event in a webhook body, after checking its Stripe-Signature against STRIPE_WEBHOOK_SECRET
 * (HMAC-SHA-256 over "<timestamp>.<body>", timestamp within the SDK's 5-minute tolerance).
 */
export async function verifyWebhook(env: Env, payload: string, signature: string | undefined): Promise<Stripe.Event> {
  const secret = settings(env).STRIPE_WEBHOOK_SECRET;
  if (!secret) throw new StripeNotConfiguredError('STRIPE_WEBHOOK_SECRET');
  if (!signature) throw new StripeSignatureError('no Stripe-Signature header');
  let event: Stripe.Event;
  try {
    event = await Stripe.webhooks.constructEventAsync(payload, signature, secret, undefined, Stripe.createSubtleCryptoProvider());
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) throw new StripeSignatureError(err.message);
    // Signed but not JSON: only a holder of the secret can send it, still a client error.
    if (err instanceof SyntaxError) throw new InvalidRequestError(`webhook body is not JSON: ${err.message}`);
    throw err;
  }
  // Signed JSON that is not an event (null, an array, no data.object) is a client error too.
  const envelope = stripeEventEnvelope.safeParse(event);
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    const param = issue.path.length ? issue.path.join('.') : null;
    throw new InvalidRequestError(`webhook body is not a Stripe event: ${param ? `${param}: ` : ''}${issue.message}`, param);
  }
  return event;
}

/** The answer of both checkout routes: where to send the payer, and what paying it grants. */
export function checkoutView(session: Stripe.Checkout.Session, orgId: string, amountCents: number) {
  return {
    object: 'checkout.session' as const,
    id: session.id,
    /** Stripe's hosted payment page: redirect the payer here. */
    url: session.url,
    org_id: orgId,
    amount_cents: amountCents,
    currency: 'usd' as const,
    /** Credit the org receives once Stripe reports the session paid. */
    credit_micros: amountCents * MICROS_PER_CENT,
    expires_at: session.expires_at * 1000,
  };
}
