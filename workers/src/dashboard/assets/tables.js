// The tables view: totals per model, key and org, and the paged list of recent requests.
import { api } from './api.js';
import { int, usd, when } from './format.js';
import { guarded } from './session.js';
import { $, state } from './state.js';

const PAGE_SIZE = 20;

/** Rebuilds a table's head and body; cells are text (never HTML) so no data can inject markup. */
export function fillTable(table, columns, rows, empty) {
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

export function renderBreakdowns(byModel, byKey, byOrg) {
  fillTable($('by-model'), [{ label: 'Model', value: (r) => r.model }, ...totalsColumns], byModel.data, 'No requests in this period.');
  fillTable($('by-key'), [{ label: 'Key', value: (r) => r.key }, ...totalsColumns], byKey.data, 'No requests in this period.');
  $('by-org-wrap').hidden = !byOrg;
  if (byOrg) fillTable($('by-org'), [{ label: 'Organization', value: (r) => r.org }, ...totalsColumns], byOrg.data, 'No requests in this period.');
}

export async function loadRequests() {
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
