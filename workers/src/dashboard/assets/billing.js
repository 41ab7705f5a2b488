// The billing view: paying for credit with Stripe Checkout (when the deployment has Stripe and the
// viewer may pay), the org's receipts, and the month's printable statement.
import { api, API, SignedOut } from './api.js';
import { usd, when } from './format.js';
import { showSignIn } from './session.js';
import { fillTable } from './tables.js';
import { $, state } from './state.js';

const orgParam = () => (state.org ? `?org=${encodeURIComponent(state.org)}` : '');

export async function loadBilling() {
  // Everything here is about one org: the admin has to pick one first.
  const needsOrg = state.me.role === 'admin' && !state.org;
  $('billing-note').hidden = !needsOrg;
  $('billing-body').hidden = needsOrg;
  if (needsOrg) return;
  const [billing, receipts] = await Promise.all([api('/billing'), api(`/receipts${orgParam()}`)]);
  $('top-up').hidden = !(billing.stripe_enabled && billing.can_top_up);
  $('top-up-off').hidden = billing.stripe_enabled;
  const amount = $('top-up-amount');
  amount.min = String(billing.min_amount_cents / 100);
  amount.max = String(billing.max_amount_cents / 100);
  fillTable(
    $('receipts-table'),
    [
      { label: 'Paid', value: (r) => when(r.paid_at) },
      { label: 'Amount', num: true, key: 'amount', value: (r) => usd(r.credit_micros) },
      { label: 'Refunded', num: true, value: (r) => (r.refunded_cents ? usd(r.refunded_cents * 10_000) : '') },
      { label: 'Stripe payment', value: (r) => r.stripe_payment_intent_id ?? '' },
      {
        label: 'Receipt',
        value: (r) => {
          const a = document.createElement('a');
          a.href = r.html_url;
          a.target = '_blank';
          a.rel = 'noopener';
          a.textContent = 'View';
          a.setAttribute('aria-label', `Receipt of ${when(r.paid_at)}`);
          return a;
        },
      },
    ],
    receipts.data,
    'No top-ups yet.',
  );
}

/** Whole cents from a "12.34" field, or null when it is not an amount. */
function cents(text) {
  const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(text.trim());
  return m ? Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0')) : null;
}

$('top-up').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('top-up-error').textContent = '';
  const amount = cents($('top-up-amount').value);
  if (amount === null) {
    $('top-up-error').textContent = 'Enter an amount in dollars, such as 25 or 25.50.';
    return;
  }
  const body = { amount_cents: amount };
  if (state.me.role === 'admin') body.org_id = state.org;
  try {
    const session = await api('/billing/checkout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // Stripe's hosted page takes the payment; the credit arrives with Stripe's webhook.
    window.location.assign(session.url);
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('Your session ended. Sign in again.');
    $('top-up-error').textContent = err.message;
  }
});

/** Back from Stripe (?topup=success|cancelled): say so, and drop the marker from the address. */
export function noteCheckoutReturn() {
  const params = new URLSearchParams(window.location.search);
  const outcome = params.get('topup');
  if (!outcome) return;
  $('top-up-result').textContent =
    outcome === 'success' ? 'Payment received by Stripe. The credit appears here once Stripe confirms it, usually within seconds.' : 'Checkout cancelled: nothing was charged.';
  params.delete('topup');
  params.delete('session_id');
  const rest = params.toString();
  window.history.replaceState(null, '', `${window.location.pathname}${rest ? `?${rest}` : ''}`);
}

export const statementPageHref = (month) => `${API}/statements/${month}?format=html${state.org ? `&org=${encodeURIComponent(state.org)}` : ''}`;
