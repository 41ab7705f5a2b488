// The alerts view: the org's webhook and thresholds, and its recent alerts with their delivery.
import { api, SignedOut } from './api.js';
import { parseUsd, usd, when } from './format.js';
import { showSignIn } from './session.js';
import { fillTable } from './tables.js';
import { $, state } from './state.js';

const canManage = () => state.me.role === 'admin' || state.me.scopes.includes('keys:write');
const orgQuery = () => (state.org ? `?org=${encodeURIComponent(state.org)}` : '');

function describe(e) {
  if (e.type === 'balance.below_threshold') return `Balance ${usd(e.data.balance_micros)} below ${usd(e.data.threshold_micros)}`;
  if (e.type === 'key.budget_threshold') return `Key ${e.data.key_id} spent ${usd(e.data.spent_micros)} of ${usd(e.data.limit_micros)} (≥ ${e.data.percent}%)`;
  return e.type;
}

export async function loadAlerts() {
  // The admin sees one organization's alerts at a time.
  const orgChosen = state.me.role === 'key' || state.org !== '';
  $('alerts-note').hidden = orgChosen;
  $('alerts-body').hidden = !orgChosen;
  if (!orgChosen) return;
  const [settings, events] = await Promise.all([api(`/alerts${orgQuery()}`), api(`/alerts/events${orgQuery()}`)]);
  $('alert-url').value = settings.webhook_url ?? '';
  $('alert-balance').value = settings.balance_below_micros === null ? '' : usd(settings.balance_below_micros).slice(1);
  $('alert-key-percent').value = settings.key_budget_percent ?? '';
  $('alert-secret').textContent = settings.webhook_secret ?? (settings.enabled ? '(hidden: needs keys:write)' : '(made when alerts are saved)');
  for (const el of $('alert-settings').querySelectorAll('input, button')) el.disabled = !canManage();
  fillTable(
    $('alerts-table'),
    [
      { label: 'When', value: (e) => when(e.created_at) },
      { label: 'Alert', key: 'alert-type', value: (e) => e.type },
      { label: 'Details', value: describe },
      { label: 'Delivery', key: 'delivery', value: (e) => (e.delivered_at ? `delivered (${e.attempts} attempt${e.attempts === 1 ? '' : 's'})` : `pending: ${e.last_error ?? 'not tried yet'}`) },
    ],
    events.data,
    'No alerts yet.',
  );
}

$('alert-settings').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('alert-error').textContent = '';
  const balanceText = $('alert-balance').value.trim();
  const balance = balanceText === '' ? null : parseUsd(balanceText);
  if (balanceText !== '' && balance === null) {
    $('alert-error').textContent = 'Balance: enter an amount in USD, e.g. 10 or 2.50.';
    return;
  }
  const percentText = $('alert-key-percent').value.trim();
  const body = { webhook_url: $('alert-url').value.trim(), balance_below_micros: balance, key_budget_percent: percentText === '' ? null : Number(percentText) };
  if (state.me.role === 'admin') body.org_id = state.org;
  try {
    await api('/alerts', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await loadAlerts();
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('Your session ended. Sign in again.');
    $('alert-error').textContent = err.message;
  }
});
