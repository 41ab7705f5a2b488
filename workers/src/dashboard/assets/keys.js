// The keys view: the org's keys with their budgets and allowed models, creating one (shown once),
// revoking one, editing another key's limits (key-controls.js).
import { api, SignedOut } from './api.js';
import { usd, when } from './format.js';
import { editKeyControls } from './key-controls.js';
import { guarded, setStatus, showSignIn } from './session.js';
import { fillTable } from './tables.js';
import { $, state } from './state.js';

const canManageKeys = () => state.me.role === 'admin' || state.me.scopes.includes('keys:write');

export async function loadKeys() {
  const params = state.org ? `?org=${encodeURIComponent(state.org)}` : '';
  const keys = await api(`/keys${params}`);
  const manage = canManageKeys();
  const columns = [
    { label: 'Name', value: (k) => k.name || '(unnamed)' },
    { label: 'Key', key: 'prefix', value: (k) => `${k.prefix}…` },
    { label: 'ID', key: 'key-id', value: (k) => k.id },
    { label: 'Scopes', value: (k) => k.scopes.join(' ') },
    { label: 'Created', value: (k) => when(k.created_at) },
    { label: 'Status', key: 'status', value: (k) => (k.revoked_at ? 'revoked' : k.expires_at && k.expires_at <= Date.now() ? 'expired' : 'active') },
    { label: 'Budget', key: 'budget', value: (k) => (k.budget ? `${usd(k.budget.limit_micros)} / ${k.budget.period}` : 'none') },
    {
      label: 'Spent this period',
      key: 'spent',
      value: (k) => (k.budget ? `${usd(k.budget.spent_micros)}${k.budget.resets_at ? ` · resets ${when(k.budget.resets_at)}` : ''}` : '–'),
    },
    { label: 'Models', key: 'models', value: (k) => (k.allowed_models ? k.allowed_models.join(', ') : 'all') },
  ];
  if (!state.org && state.me.role === 'admin') columns.splice(2, 0, { label: 'Org', value: (k) => k.org_id });
  if (manage) {
    columns.push({
      label: 'Action',
      value: (k) => {
        if (k.revoked_at) return '';
        const cell = document.createElement('span');
        cell.className = 'row-actions';
        // A key cannot change its own limits (the API refuses it too).
        if (!(state.me.role === 'key' && k.id === state.me.key_id)) {
          const edit = document.createElement('button');
          edit.type = 'button';
          edit.className = 'secondary';
          edit.textContent = 'Limits';
          edit.setAttribute('aria-label', `Edit budget and models of key ${k.name || k.prefix}`);
          edit.addEventListener('click', () => editKeyControls(k, loadKeys));
          cell.append(edit);
        }
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'danger';
        b.textContent = 'Revoke';
        b.setAttribute('aria-label', `Revoke key ${k.name || k.prefix}`);
        b.addEventListener('click', () => revoke(k));
        cell.append(b);
        return cell;
      },
    });
  }
  fillTable($('keys-table'), columns, keys.data, 'No keys.');
  // Creating needs the right scope and, for the admin, one organization to put the key in.
  $('new-key').hidden = !manage || (state.me.role === 'admin' && !state.org);
  if (state.me.role === 'key') {
    for (const box of document.querySelectorAll('#new-key input[name=scopes]')) {
      box.disabled = !state.me.scopes.includes(box.value);
      if (box.disabled) box.checked = false;
    }
  }
}

async function revoke(k) {
  if (!window.confirm(`Revoke key "${k.name || k.prefix}"? Requests using it will fail from now on.`)) return;
  await guarded(async () => {
    await api(`/keys/${encodeURIComponent(k.id)}/revoke`, { method: 'POST' });
    setStatus(`Key ${k.prefix}… revoked.`);
    if (state.me.role === 'key' && k.id === state.me.key_id) return showSignIn('You revoked the key this session used.');
    await loadKeys();
  });
}

$('new-key').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('new-key-error').textContent = '';
  const scopes = [...document.querySelectorAll('#new-key input[name=scopes]:checked')].map((b) => b.value);
  const body = { name: $('new-key-name').value.trim(), scopes };
  if (state.me.role === 'admin') body.org_id = state.org;
  try {
    const created = await api('/keys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    $('created-key-value').textContent = created.key;
    $('created-key').hidden = false;
    $('created-key').focus();
    $('new-key-name').value = '';
    await loadKeys();
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('Your session ended. Sign in again.');
    $('new-key-error').textContent = err.message;
  }
});

$('copy-key').addEventListener('click', async () => {
  await navigator.clipboard.writeText($('created-key-value').textContent);
  setStatus('Key copied to the clipboard.');
});
