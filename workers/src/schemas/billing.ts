/** zod schemas of the top-up routes (routes/billing-checkout.ts, routes/dashboard-billing.ts). */
import { z } from 'zod';
import { MAX_TOPUP_CENTS, MIN_TOPUP_CENTS } from '../billing/stripe.ts';

const amountCents = z
  .number()
  .int('amount_cents must be a whole number of cents')
  .min(MIN_TOPUP_CENTS, `amount_cents must be at least ${MIN_TOPUP_CENTS} ($${MIN_TOPUP_CENTS / 100})`)
  .max(MAX_TOPUP_CENTS, `amount_cents must be at most ${MAX_TOPUP_CENTS} ($${MAX_TOPUP_CENTS / 100})`);

/** Where Stripe sends the payer back: http(s) only. */
const returnUrl = z.url({ protocol: /^https?$/ }).max(2048).optional();

/** POST /v1/billing/checkout */
export const checkout = z.object({ amount_cents: amountCents, success_url: returnUrl, cancel_url: returnUrl });

/** POST /dashboard/api/billing/checkout: the dashboard's own return URLs; admins name the org. */
export const dashboardCheckout = z.object({ amount_cents: amountCents, org_id: z.string().min(1).max(64).optional() });

export const receipt = z.object({ org: z.string().min(1).max(64).optional(), format: z.enum(['json', 'html']).default('json') });
