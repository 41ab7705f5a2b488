// The downloads view: the usage CSV for the range shown and the monthly statement (CSV and printable page).
import { API, query } from './api.js';
import { statementPageHref } from './billing.js';
import { $, state } from './state.js';

export function renderDownloads() {
  $('usage-csv').href = `${API}/usage.csv?${query()}`;
  const month = $('statement-month');
  if (!month.value) month.value = new Date().toISOString().slice(0, 7);
  const link = $('statement-csv');
  const needsOrg = state.me.role === 'admin' && !state.org;
  link.setAttribute('aria-disabled', String(needsOrg));
  link.title = needsOrg ? 'Choose an organization first' : '';
  const org = state.org ? `&org=${encodeURIComponent(state.org)}` : '';
  link.href = needsOrg ? '#' : `${API}/statements/${month.value}?format=csv${org}`;
  const page = $('statement-page');
  page.setAttribute('aria-disabled', String(needsOrg));
  page.title = link.title;
  page.href = needsOrg ? '#' : statementPageHref(month.value);
}
$('statement-month').addEventListener('change', renderDownloads);
