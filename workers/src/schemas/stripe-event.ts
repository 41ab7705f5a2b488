/**
 * zod schema for the envelope of a Stripe webhook event, checked after its signature verifies. Only
 * Stripe (or a holder of the webhook secret) can send one, but a signed body that is not an event
 * (`null`, an array, `data` missing) is still a 400 naming the field, not a crash in the handler.
 * The objects inside are read defensively by billing/topups.ts.
 */
import { z } from 'zod';

export const stripeEventEnvelope = z
  .object({
    id: z.string().min(1),
    type: z.string().min(1),
    data: z.object({ object: z.record(z.string(), z.unknown()) }).loose(),
  })
  .loose();

const id = z.string().min(1);
/** A field Stripe sends as an id, or as the object itself when expanded. */
const expandable = z.union([id, z.object({ id }).loose()]).nullish();

/** The fields of a Checkout Session that a top-up reads (billing/topups.ts), with the types Stripe gives them. */
export const paidSessionFields = z
  .object({
    id,
    client_reference_id: z.string().nullish(),
    metadata: z.record(z.string(), z.string()).nullish(),
    payment_status: z.string().nullish(),
    currency: z.string().nullish(),
    amount_total: z.number().nullish(),
    payment_intent: expandable,
    customer_details: z.object({ email: z.string().nullish() }).loose().nullish(),
  })
  .loose();

/** The fields of a refunded Charge that a refund reads. */
export const refundedChargeFields = z.object({ payment_intent: expandable, amount_refunded: z.number() }).loose();

/** "field: problem" of the first issue, for an ignored event's reason. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue.path.join('.') || 'object'}: ${issue.message}`;
}
