// The totals view: the period's summary figures and the org's balance and rate-limit meters.
import { int, pct, usd } from './format.js';
import { $ } from './state.js';

export function renderSummary(s) {
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

export function renderAccount(a) {
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
      if (w.tpd !== null) box.append(meter(group, 'Tokens today (UTC)', w.tokens_today, w.tpd));
      return box;
    }),
  );
}
