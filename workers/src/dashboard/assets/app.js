// The dashboard's browser entry: plain DOM + uPlot, no framework, one ES module per view (totals,
// charts, tables, keys, alerts, downloads). Every figure comes from the JSON API (/dashboard/api/*) with the
// session cookie. This module signs in and out, and loads every view for the chosen org and range.
import { api, query, SignedOut } from './api.js';
import { loadBilling, noteCheckoutReturn } from './billing.js';
import { DAY_MS, HOUR_MS } from './format.js';
import { renderCharts } from './charts.js';
import { renderDownloads } from './downloads.js';
import { loadAlerts } from './alerts.js';
import { loadKeys } from './keys.js';
import { guarded, setStatus, showSignIn } from './session.js';
import { $, state } from './state.js';
import { loadRequests, renderBreakdowns } from './tables.js';
import { renderAccount, renderSummary } from './totals.js';

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('sign-in-error').textContent = '';
  const res = await fetch('/dashboard/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: $('token').value.trim() }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    $('sign-in-error').textContent = body.error ? body.error.message : `Sign-in failed (HTTP ${res.status}).`;
    return;
  }
  $('token').value = '';
  await start();
});

$('sign-out').addEventListener('click', async () => {
  await fetch('/dashboard/session', { method: 'DELETE', credentials: 'same-origin' });
  state.me = null;
  showSignIn();
});

async function refresh() {
  setStatus('Loading…');
  const q = query();
  const to = Number(q.get('to'));
  const from = Number(q.get('from'));
  const bucket = state.rangeDays <= 7 ? 'hour' : 'day';
  const admin = state.me.role === 'admin';
  const [summary, ts, byModel, byKey, byOrg, account, latency] = await Promise.all([
    api(`/summary?${q}`),
    api(`/timeseries?${query({ bucket })}`),
    api(`/breakdown?${query({ by: 'model' })}`),
    api(`/breakdown?${query({ by: 'key' })}`),
    admin && !state.org ? api(`/breakdown?${query({ by: 'org' })}`) : null,
    admin && !state.org ? null : api(`/account${state.org ? `?org=${encodeURIComponent(state.org)}` : ''}`),
    api(`/latency?${query({ bucket })}`),
  ]);
  renderSummary(summary);
  renderAccount(account);
  renderCharts(ts, from, to);
  renderBreakdowns(byModel, byKey, byOrg);
  // latency-charts.js is a classic script loaded before this module: it defines window.LatencyCharts.
  window.LatencyCharts.render(latency, from, to, bucket === 'hour' ? HOUR_MS : DAY_MS);
  state.pages = [null];
  await Promise.all([loadRequests(), loadKeys(), loadBilling(), loadAlerts()]);
  renderDownloads();
  setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
  document.body.dataset.loaded = String(Date.now());
}

$('range').addEventListener('change', () => {
  state.rangeDays = Number($('range').value);
  guarded(refresh);
});
$('org').addEventListener('change', () => {
  state.org = $('org').value;
  guarded(refresh);
});
$('refresh').addEventListener('click', () => guarded(refresh));

async function start() {
  try {
    state.me = await api('/me');
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn();
    throw err;
  }
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  const admin = state.me.role === 'admin';
  $('who-label').textContent = admin ? 'Admin · all organizations' : `${state.me.org_id} · key ${state.me.key_id}`;
  $('org-field').hidden = !admin;
  if (admin) {
    $('org').replaceChildren(new Option('All organizations', ''), ...state.me.organizations.map((o) => new Option(`${o.name} (${o.id})`, o.id)));
    $('org').value = state.org;
  }
  await guarded(refresh);
}

noteCheckoutReturn();
start();
