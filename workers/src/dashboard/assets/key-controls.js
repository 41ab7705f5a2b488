// The key limits form: a key's budget (USD, period, time zone) and its model allowlist.
import { api, SignedOut } from './api.js';
import { parseUsd, usd } from './format.js';
import { showSignIn } from './session.js';
import { $ } from './state.js';

let editing = null;
let onSaved = async () => {};

/** Opens the form for key `k` (a row of GET /keys); `saved` reloads the keys view afterwards. */
export function editKeyControls(k, saved) {
  editing = k;
  onSaved = saved;
  $('key-controls-name').textContent = k.name || `${k.prefix}…`;
  $('budget-usd').value = k.budget ? usd(k.budget.limit_micros).slice(1) : '';
  $('budget-period').value = k.budget ? k.budget.period : 'monthly';
  $('budget-tz').value = k.budget ? k.budget.time_zone : 'UTC';
  $('allowed-models').value = k.allowed_models ? k.allowed_models.join(', ') : '';
  $('key-controls-error').textContent = '';
  $('key-controls').hidden = false;
  $('budget-usd').focus();
}

$('key-controls-cancel').addEventListener('click', () => {
  $('key-controls').hidden = true;
  editing = null;
});

$('key-controls').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!editing) return;
  $('key-controls-error').textContent = '';
  const id = encodeURIComponent(editing.id);
  const json = { 'content-type': 'application/json' };
  const budgetText = $('budget-usd').value.trim();
  const limit = budgetText === '' ? null : parseUsd(budgetText);
  if (budgetText !== '' && limit === null) {
    $('key-controls-error').textContent = 'Budget: enter an amount in USD, e.g. 25 or 0.50.';
    return;
  }
  const models = $('allowed-models').value.split(',').map((m) => m.trim()).filter(Boolean);
  try {
    if (limit === null) await api(`/keys/${id}/budget`, { method: 'DELETE' });
    else {
      const body = { limit_micros: limit, period: $('budget-period').value, time_zone: $('budget-tz').value.trim() || 'UTC' };
      await api(`/keys/${id}/budget`, { method: 'PUT', headers: json, body: JSON.stringify(body) });
    }
    await api(`/keys/${id}/allowed-models`, { method: 'PUT', headers: json, body: JSON.stringify({ models: models.length ? models : null }) });
    $('key-controls').hidden = true;
    editing = null;
    await onSaved();
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('Your session ended. Sign in again.');
    $('key-controls-error').textContent = err.message;
  }
});
