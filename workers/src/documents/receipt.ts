/**
 * The receipt of a paid top-up, as JSON (`receiptView`) and as a printable page (`receiptPage`).
 * Everything on it comes from its `topups` row: what Stripe collected, when, the Stripe ids to
 * look it up by (event, Checkout Session, PaymentIntent), the ledger row that granted the credit,
 * and what refunds took back.
 */
import { html } from 'hono/html';
import type { Topup } from '../db/topups.ts';
import { documentPage, money, utcTime, type Markup } from './page-shell.ts';

export interface ReceiptView {
  object: 'receipt';
  /** The Checkout Session id. */
  id: string;
  org_id: string;
  org_name: string;
  amount_cents: number;
  currency: string;
  /** Credit granted, integer micro-dollars. */
  credit_micros: number;
  paid_at: number;
  stripe_event_id: string;
  stripe_payment_intent_id: string | null;
  customer_email: string | null;
  ledger_id: number | null;
  refunded_cents: number;
  /** What refunds took from the balance (less than refunded when the credit was already spent). */
  refund_debited_micros: number;
  /** The printable page, for the session that asked (the dashboard's cookie or a bearer key). */
  html_url: string;
}

/** Receipt pages live in the dashboard API, reachable with the dashboard session or a bearer key. */
export function receiptHref(orgId: string): (receiptId: string) => string {
  return (id) => `/dashboard/api/receipts/${encodeURIComponent(id)}?format=html&org=${encodeURIComponent(orgId)}`;
}

export function receiptView(t: Topup, orgName: string): ReceiptView {
  return {
    object: 'receipt',
    id: t.id,
    org_id: t.orgId,
    org_name: orgName,
    amount_cents: t.amountCents,
    currency: t.currency,
    credit_micros: t.amountMicros,
    paid_at: t.paidAt,
    stripe_event_id: t.eventId,
    stripe_payment_intent_id: t.paymentIntentId,
    customer_email: t.customerEmail,
    ledger_id: t.ledgerId,
    refunded_cents: t.refundedCents,
    refund_debited_micros: t.refundDebitedMicros,
    html_url: receiptHref(t.orgId)(t.id),
  };
}

export function receiptPage(r: ReceiptView): Markup {
  const refund =
    r.refunded_cents > 0
      ? html`<dt>Refunded</dt><dd>${money(r.refunded_cents * 10_000)} (taken back from the balance: ${money(r.refund_debited_micros)})</dd>`
      : '';
  return documentPage(
    `Receipt ${r.id}`,
    html`<header><h1>Receipt</h1><span class="muted">Edge Inference · prepaid credit</span></header>
<dl class="facts">
  <dt>Organization</dt><dd>${r.org_name} (<code>${r.org_id}</code>)</dd>
  <dt>Paid</dt><dd><time datetime="${new Date(r.paid_at).toISOString()}">${utcTime(r.paid_at)}</time></dd>
  <dt>Amount paid</dt><dd id="amount">${money(r.amount_cents * 10_000)} ${r.currency.toUpperCase()}</dd>
  <dt>Credit added</dt><dd id="credit">${money(r.credit_micros)}</dd>
  ${refund}
  <dt>Billed to</dt><dd>${r.customer_email ?? '—'}</dd>
  <dt>Stripe payment</dt><dd><code>${r.stripe_payment_intent_id ?? '—'}</code></dd>
  <dt>Stripe checkout session</dt><dd><code>${r.id}</code></dd>
  <dt>Stripe event</dt><dd><code>${r.stripe_event_id}</code></dd>
  <dt>Ledger entry</dt><dd>${r.ledger_id ?? 'pending'}</dd>
</dl>`,
  );
}
