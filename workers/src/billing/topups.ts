/**
 * What a Stripe event does to an org's credit. Each event moves money at most once, whatever
 * Stripe redelivers: its ledger row's entry id is "stripe:<event id>" (unique).
 *
 *   checkout.session.completed (paid), checkout.session.async_payment_succeeded
 *     → a grant of what the session collected (cents × 10 000 µ$), through the same grant path as
 *       admin grants (grants.ts), and a receipt (`topups` row). One receipt per session: a second
 *       event paying the same session grants nothing.
 *   charge.refunded
 *     → a debit of the growth of the charge's refunded total, decided by the org's object (capped
 *       by the balance left; refund-book.ts), then written to the ledger under the event's id.
 *
 * A paid session whose grant the credit ceilings refuse (credit-ceilings.ts) grants nothing, keeps
 * no receipt, is logged as an error and answered 200 with action "refused": Stripe stops, an
 * operator refunds it. A refund whose top-up has no recorded grant yet answers 409, so Stripe delivers it again later.
 * Anything else (other event types, sessions not created by this edge, unpaid sessions, charges
 * of other payments) is acknowledged and ignored: Stripe stops retrying an event once it gets a 2xx.
 */
import type Stripe from 'stripe';
import { claimTopup, deleteTopup, setTopupLedgerId, topupByPaymentIntent } from '../db/topups.ts';
import { database, organizationExists } from '../db/queries.ts';
import { CreditCeilingError, TopupNotGrantedError } from '../errors.ts';
import { grantToOrg } from './grants.ts';
import { recordRefund } from './ledger.ts';
import { orgAccount } from './request-billing.ts';
import { firstIssue, paidSessionFields, refundedChargeFields } from '../schemas/stripe-event.ts';
import { MAX_TOPUP_CENTS, MICROS_PER_CENT, TOPUP_PURPOSE } from './stripe.ts';

export type EventOutcome =
  | { action: 'granted'; orgId: string; topupId: string; ledgerId: number; amountMicros: number }
  | { action: 'refunded'; orgId: string; topupId: string; requestedMicros: number; chargedMicros: number }
  /** Paid, but the credit ceilings refused the grant: nothing was granted, no receipt kept. */
  | { action: 'refused'; orgId: string; topupId: string; amountMicros: number; reason: string }
  | { action: 'ignored'; reason: string };

export const entryIdOf = (event: Stripe.Event): string => `stripe:${event.id}`;

export async function applyStripeEvent(env: Env, event: Stripe.Event): Promise<EventOutcome> {
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
      return applyPaidSession(env, event, event.data.object);
    case 'charge.refunded':
      return applyRefund(env, event, event.data.object);
    default:
      return { action: 'ignored', reason: `event type ${event.type} is not handled` };
  }
}

async function applyPaidSession(env: Env, event: Stripe.Event, session: Stripe.Checkout.Session): Promise<EventOutcome> {
  // Fields of the wrong type (only a holder of the webhook secret could send them) are never bound into a query.
  const fields = paidSessionFields.safeParse(session);
  if (!fields.success) return { action: 'ignored', reason: `session is malformed (${firstIssue(fields.error)})` };
  if (session.metadata?.purpose !== TOPUP_PURPOSE) return { action: 'ignored', reason: 'not a top-up session' };
  // A delayed payment method completes the session unpaid; async_payment_succeeded pays it later.
  if (session.payment_status !== 'paid') return { action: 'ignored', reason: `session payment_status is ${session.payment_status}` };
  const orgId = session.client_reference_id ?? session.metadata.org_id;
  if (!orgId || !(await organizationExists(database(env.DB), orgId))) return { action: 'ignored', reason: `organization '${orgId}' does not exist` };
  if (session.currency !== 'usd') return { action: 'ignored', reason: `currency ${session.currency} is not usd` };
  const amountCents = session.amount_total ?? 0;
  if (!Number.isSafeInteger(amountCents) || amountCents <= 0) return { action: 'ignored', reason: `amount_total ${session.amount_total} is not a positive amount` };
  // The edge creates top-up sessions of at most MAX_TOPUP_CENTS; a larger one is not ours, and its
  // micro-dollars (cents × 10 000) could pass 2^53, where sums stop being exact.
  if (amountCents > MAX_TOPUP_CENTS) return { action: 'ignored', reason: `amount_total ${amountCents} is above the largest top-up (${MAX_TOPUP_CENTS} cents)` };

  const amountMicros = amountCents * MICROS_PER_CENT;
  const paymentIntent = typeof session.payment_intent === 'string' ? session.payment_intent : (session.payment_intent?.id ?? null);
  const receipt = await claimTopup(env.DB, {
    id: session.id,
    orgId,
    eventId: event.id,
    paymentIntentId: paymentIntent,
    amountCents,
    currency: session.currency,
    amountMicros,
    customerEmail: session.customer_details?.email ?? null,
    paidAt: event.created * 1000,
  });
  if (receipt.eventId !== event.id) return { action: 'ignored', reason: `session ${session.id} was already paid by event ${receipt.eventId}` };
  // A redelivery of this event (or a retry after a failure below) finds the same ledger row.
  let grant;
  try {
    grant = await grantToOrg(env, orgId, amountMicros, `stripe top-up ${session.id}`, entryIdOf(event));
  } catch (err) {
    if (!(err instanceof CreditCeilingError)) throw err;
    // Paid but not granted: no credit moved, so the receipt goes too (a refund of this payment then
    // takes nothing back). Answered with a 2xx, since a redelivery would be refused the same way;
    // the payment is for an operator to refund or grant by hand.
    await deleteTopup(env.DB, session.id);
    console.error(`stripe event ${event.id}: top-up ${session.id} of ${amountMicros} µ$ for ${orgId} NOT granted: ${err.message}`);
    return { action: 'refused', orgId, topupId: session.id, amountMicros, reason: err.message };
  }
  if (receipt.ledgerId !== grant.ledgerId) await setTopupLedgerId(env.DB, session.id, grant.ledgerId);
  return { action: 'granted', orgId, topupId: session.id, ledgerId: grant.ledgerId, amountMicros };
}

async function applyRefund(env: Env, event: Stripe.Event, charge: Stripe.Charge): Promise<EventOutcome> {
  const fields = refundedChargeFields.safeParse(charge);
  if (!fields.success) return { action: 'ignored', reason: `charge is malformed (${firstIssue(fields.error)})` };
  const paymentIntent = typeof charge.payment_intent === 'string' ? charge.payment_intent : (charge.payment_intent?.id ?? null);
  if (!paymentIntent) return { action: 'ignored', reason: 'charge has no payment_intent' };
  const topup = await topupByPaymentIntent(env.DB, paymentIntent);
  if (!topup) return { action: 'ignored', reason: `no top-up paid by ${paymentIntent}` };
  // Taking back credit before it was granted would take someone else's (or nothing): wait for the grant.
  if (topup.ledgerId === null) throw new TopupNotGrantedError(topup.id);
  const refundedCents = charge.amount_refunded;
  if (!Number.isSafeInteger(refundedCents) || refundedCents < 0) return { action: 'ignored', reason: `amount_refunded ${refundedCents} is not an amount` };

  const entryId = entryIdOf(event);
  // The object decides (serialised per org) how much of the refunded total is new and what the
  // balance still holds; a redelivery gets the same decision back.
  const debit = await orgAccount(env, topup.orgId).refund({
    orgId: topup.orgId,
    entryId,
    paymentId: paymentIntent,
    refundedMicros: Math.min(refundedCents, topup.amountCents) * MICROS_PER_CENT,
  });
  const note =
    debit.chargedMicros === debit.requestedMicros
      ? `stripe refund of ${topup.id}`
      : `stripe refund of ${topup.id}: ${debit.requestedMicros} µ$ refunded, ${debit.chargedMicros} µ$ left to take back`;
  await recordRefund(env.DB, {
    orgId: topup.orgId,
    topupId: topup.id,
    entryId,
    chargedMicros: debit.chargedMicros,
    debitedTotalMicros: debit.debitedTotalMicros,
    refundedCents,
    note,
    // Dated when the balance moved, as grants are (not when Stripe created the event).
    at: Date.now(),
  });
  return { action: 'refunded', orgId: topup.orgId, topupId: topup.id, requestedMicros: debit.requestedMicros, chargedMicros: debit.chargedMicros };
}
