// The dashboard's browser script: plain DOM + uPlot, no framework. Every figure comes from the
// JSON API (/dashboard/api/*) with the session cookie; money arrives as integer micro-dollars and
// is formatted here with integer arithmetic only, so the page shows exactly what D1 holds.
'use strict';
(() => {
  const API = '/dashboard/api';
  const DAY_MS = 86_400_000;
  const HOUR_MS = 3_600_000;
  const PAGE_SIZE = 20;
  const $ = (id) => document.getElementById(id);

  const state = {
    me: null,
    /** '' = all organizations (admins only). */
    org: '',
    rangeDays: 30,
    /** Cursors of the pages already seen: [null (page 1), cursor of page 2, ...]. */
    pages: [null],
    charts: [],
  };

  // ── formatting ────────────────────────────────────────────────────────────────────────────
  const int = (n) => Number(n).toLocaleString('en-US');
  /** Integer micro-dollars as "$1,234.56" or "$0.001234": exact, at least 2 decimals, no float math. */
  function usd(micros) {
    const sign = micros < 0 ? '-' : '';
    const abs = Math.abs(micros);
    const dollars = Math.floor(abs / 1_000_000);
    let frac = String(abs % 1_000_000).padStart(6, '0').replace(/0+$/, '');
    if (frac.length < 2) frac = frac.padEnd(2, '0');
    return `${sign}$${int(dollars)}.${frac}`;
  }
  const pct = (rate) => `${(rate * 100).toFixed(1)}%`;
  const when = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  // ── API ───────────────────────────────────────────────────────────────────────────────────
  class SignedOut extends Error {}

  async function api(path, init = {}) {
    const res = await fetch(API + path, { credentials: 'same-origin', ...init });
    if (res.status === 401) throw new SignedOut();
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? body.error.message : `HTTP ${res.status}`);
    return body;
  }

  function query(extra = {}) {
    const to = Date.now();
    const params = new URLSearchParams({ from: String(to - state.rangeDays * DAY_MS), to: String(to), ...extra });
    if (state.org) params.set('org', state.org);
    return params;
  }

  // ── sign in / out ─────────────────────────────────────────────────────────────────────────
  function showSignIn(message = '') {
    $('sign-in').hidden = false;
    $('app').hidden = true;
    $('who').hidden = true;
    $('sign-in-error').textContent = message;
    $('token').focus();
  }

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

  // ── tables ────────────────────────────────────────────────────────────────────────────────
  /** Rebuilds a table's head and body; cells are text (never HTML) so no data can inject markup. */
  function fillTable(table, columns, rows, empty) {
    const caption = table.querySelector('caption');
    table.replaceChildren(...(caption ? [caption] : []));
    const thead = table.createTHead().insertRow();
    for (const col of columns) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = col.label;
      if (col.num) th.className = 'num';
      thead.appendChild(th);
    }
    const tbody = table.createTBody();
    if (rows.length === 0) {
      const cell = tbody.insertRow().insertCell();
      cell.colSpan = columns.length;
      cell.className = 'empty';
      cell.textContent = empty;
      return;
    }
    for (const row of rows) {
      const tr = tbody.insertRow();
      for (const col of columns) {
        const td = tr.insertCell();
        const value = col.value(row);
        if (value instanceof Node) td.appendChild(value);
        else td.textContent = value;
        if (col.num) td.className = 'num';
        if (col.key) td.dataset.col = col.key;
      }
    }
  }

  const totalsColumns = [
    { label: 'Requests', num: true, key: 'requests', value: (r) => int(r.requests) },
    { label: 'Input (uncached)', num: true, key: 'uncached', value: (r) => int(r.uncached_prompt_tokens) },
    { label: 'Cached input', num: true, key: 'cached', value: (r) => int(r.cached_tokens) },
    { label: 'Output', num: true, key: 'output', value: (r) => int(r.completion_tokens) },
    { label: 'Spend', num: true, key: 'spend', value: (r) => usd(r.cost_micros) },
  ];

  // ── sections ──────────────────────────────────────────────────────────────────────────────
  function renderSummary(s) {
    $('stat-spend').textContent = usd(s.cost_micros);
    $('stat-requests').textContent = int(s.requests);
    $('stat-uncached').textContent = int(s.uncached_prompt_tokens);
    $('stat-cached').textContent = int(s.cached_tokens);
    $('stat-output').textContent = int(s.completion_tokens);
    $('stat-hit-rate').textContent = pct(s.cache_hit_rate);
    $('stat-saved').textContent = usd(s.saved_micros);
  }

  function meter(group, label, used, limit) {
    const wrap = document.createElement('div');
    wrap.className = 'meter';
    const id = `meter-${group}-${label.replace(/\W+/g, '-').toLowerCase()}`;
    const text = document.createElement('label');
    text.htmlFor = id;
    text.textContent = `${label}: ${int(used)} of ${int(limit)}`;
    const bar = document.createElement('meter');
    bar.id = id;
    bar.min = 0;
    bar.max = Math.max(1, limit);
    bar.value = Math.min(used, limit);
    bar.high = limit * 0.8;
    bar.optimum = 0;
    wrap.append(text, bar);
    return wrap;
  }

  function renderAccount(a) {
    const orgChosen = a !== null;
    $('account-note').hidden = orgChosen;
    $('account-body').hidden = !orgChosen;
    if (!orgChosen) return;
    $('stat-balance').textContent = usd(a.balance_micros);
    $('stat-reserved').textContent = usd(a.reserved_micros);
    $('stat-available').textContent = usd(a.available_micros);
    $('stat-reservations').textContent = int(a.open_reservations);
    const groups = [['org', 'Organization', a.rate_limits.org]];
    if (a.rate_limits.key) groups.push(['key', 'This key', a.rate_limits.key]);
    $('limits').replaceChildren(
      ...groups.map(([group, title, w]) => {
        const box = document.createElement('div');
        box.className = 'card';
        const h = document.createElement('h3');
        h.textContent = `${title}: last 60 seconds`;
        box.append(
          h,
          meter(group, 'Requests', w.requests_used, w.rpm),
          meter(group, 'Tokens', w.tokens_used, w.tpm),
          meter(group, 'In flight now', w.in_flight, w.concurrency),
        );
        return box;
      }),
    );
  }

  /** Fills missing hours/days with zeros so the x axis is even and a quiet day reads as zero. */
  function series(points, from, to, bucketMs) {
    const byT = new Map(points.map((p) => [p.t, p]));
    const xs = [], spend = [], uncached = [], cached = [], output = [];
    for (let t = Math.floor(from / bucketMs) * bucketMs; t < to; t += bucketMs) {
      const p = byT.get(t);
      xs.push(t / 1000);
      spend.push(p ? p.cost_micros / 1_000_000 : 0); // plotting only; figures shown as text stay exact
      uncached.push(p ? p.uncached_prompt_tokens : 0);
      cached.push(p ? p.cached_tokens : 0);
      output.push(p ? p.completion_tokens : 0);
    }
    return { xs, spend, uncached, cached, output };
  }

  /** Enough decimals to tell ticks `incr` apart (tiny spends are fractions of a cent), at most 6. */
  function decimalsFor(incr) {
    return Math.max(2, Math.min(6, Math.ceil(-Math.log10(incr))));
  }

  function chartWidth(el) {
    return Math.max(260, el.clientWidth - 8);
  }

  function renderCharts(ts, from, to) {
    for (const chart of state.charts) chart.destroy();
    state.charts = [];
    const bucketMs = ts.bucket === 'hour' ? HOUR_MS : DAY_MS;
    const s = series(ts.data, from, to, bucketMs);
    const axes = [{ stroke: '#3b4252', grid: { stroke: '#e5e9f0' } }, { stroke: '#3b4252', grid: { stroke: '#e5e9f0' }, size: 70 }];
    const bars = uPlot.paths.bars({ size: [0.7, 40] });
    const spendEl = $('spend-chart');
    state.charts.push(
      new uPlot(
        {
          width: chartWidth(spendEl),
          height: 220,
          axes: [axes[0], { ...axes[1], size: 80, values: (u, splits, axis, space, incr) => splits.map((v) => `$${v.toFixed(decimalsFor(incr))}`) }],
          series: [{}, { label: 'Spend', stroke: '#1d4ed8', fill: 'rgba(29, 78, 216, 0.35)', paths: bars, value: (u, v) => (v == null ? '–' : `$${v.toFixed(6)}`) }],
        },
        [s.xs, s.spend],
        spendEl,
      ),
    );
    const tokensEl = $('tokens-chart');
    state.charts.push(
      new uPlot(
        {
          width: chartWidth(tokensEl),
          height: 220,
          axes,
          series: [
            {},
            { label: 'Input (uncached)', stroke: '#b45309', width: 2 },
            { label: 'Cached input', stroke: '#047857', width: 2, dash: [6, 3] },
            { label: 'Output', stroke: '#7c3aed', width: 2 },
          ],
        },
        [s.xs, s.uncached, s.cached, s.output],
        tokensEl,
      ),
    );
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    const per = ts.bucket === 'hour' ? 'hour' : 'day';
    $('spend-chart-desc').textContent = `Spend per ${per}; ${ts.data.length} ${per}s with requests.`;
    $('tokens-chart-desc').textContent = `Tokens per ${per}: ${int(sum(s.uncached))} uncached input, ${int(sum(s.cached))} cached input, ${int(sum(s.output))} output in total.`;
  }

  window.addEventListener('resize', () => {
    for (const chart of state.charts) chart.setSize({ width: chartWidth(chart.root.parentElement), height: 220 });
  });

  function renderBreakdowns(byModel, byKey, byOrg) {
    fillTable($('by-model'), [{ label: 'Model', value: (r) => r.model }, ...totalsColumns], byModel.data, 'No requests in this period.');
    fillTable($('by-key'), [{ label: 'Key', value: (r) => r.key }, ...totalsColumns], byKey.data, 'No requests in this period.');
    $('by-org-wrap').hidden = !byOrg;
    if (byOrg) fillTable($('by-org'), [{ label: 'Organization', value: (r) => r.org }, ...totalsColumns], byOrg.data, 'No requests in this period.');
  }

  async function loadRequests() {
    const page = state.pages.length - 1;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.org) params.set('org', state.org);
    const cursor = state.pages[page];
    if (cursor) params.set('cursor', cursor);
    const list = await api(`/requests?${params}`);
    const columns = [
      { label: 'Finished', value: (r) => when(r.finished_at) },
      { label: 'Request', key: 'request-id', value: (r) => r.request_id },
      { label: 'Model', value: (r) => r.model },
      { label: 'Key', value: (r) => r.key_id },
      { label: 'Status', value: (r) => r.status },
      { label: 'Input', num: true, value: (r) => int(r.prompt_tokens) },
      { label: 'Cached', num: true, value: (r) => int(r.cached_tokens) },
      { label: 'Output', num: true, value: (r) => int(r.completion_tokens) },
      { label: 'Cost', num: true, value: (r) => usd(r.cost_micros) },
    ];
    if (!state.org && state.me.role === 'admin') columns.splice(3, 0, { label: 'Org', value: (r) => r.org_id });
    fillTable($('requests'), columns, list.data, 'No requests yet.');
    $('page-label').textContent = `Page ${page + 1}`;
    $('newer').disabled = page === 0;
    $('older').disabled = !list.has_more;
    $('older').dataset.next = list.next_cursor ?? '';
  }

  $('older').addEventListener('click', async () => {
    state.pages.push($('older').dataset.next);
    await guarded(loadRequests);
  });
  $('newer').addEventListener('click', async () => {
    if (state.pages.length > 1) state.pages.pop();
    await guarded(loadRequests);
  });

  const canManageKeys = () => state.me.role === 'admin' || state.me.scopes.includes('keys:write');

  async function loadKeys() {
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
    ];
    if (!state.org && state.me.role === 'admin') columns.splice(2, 0, { label: 'Org', value: (k) => k.org_id });
    if (manage) {
      columns.push({
        label: 'Action',
        value: (k) => {
          if (k.revoked_at) return '';
          const b = document.createElement('button');
          b.type = 'button';
          b.className = 'danger';
          b.textContent = 'Revoke';
          b.setAttribute('aria-label', `Revoke key ${k.name || k.prefix}`);
          b.addEventListener('click', () => revoke(k));
          return b;
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

  function renderDownloads() {
    $('usage-csv').href = `${API}/usage.csv?${query()}`;
    const month = $('statement-month');
    if (!month.value) month.value = new Date().toISOString().slice(0, 7);
    const link = $('statement-csv');
    const needsOrg = state.me.role === 'admin' && !state.org;
    link.setAttribute('aria-disabled', String(needsOrg));
    link.title = needsOrg ? 'Choose an organization first' : '';
    const org = state.org ? `&org=${encodeURIComponent(state.org)}` : '';
    link.href = needsOrg ? '#' : `${API}/statements/${month.value}?format=csv${org}`;
  }
  $('statement-month').addEventListener('change', renderDownloads);

  // ── loading ───────────────────────────────────────────────────────────────────────────────
  function setStatus(text) {
    $('status').textContent = text;
  }

  async function guarded(fn) {
    try {
      await fn();
    } catch (err) {
      if (err instanceof SignedOut) return showSignIn('Your session ended. Sign in again.');
      setStatus(`Could not load: ${err.message}`);
      throw err;
    }
  }

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
    window.LatencyCharts.render(latency, from, to, bucket === 'hour' ? HOUR_MS : DAY_MS);
    renderBreakdowns(byModel, byKey, byOrg);
    state.pages = [null];
    await Promise.all([loadRequests(), loadKeys()]);
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

  start();
})();
