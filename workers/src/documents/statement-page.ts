/**
 * The monthly statement as an invoice-style page: the balance movement of the month (opening +
 * credits − refunds − usage = closing), usage by model and by key, every (model, key) line, and
 * each credit movement with a link to its receipt. Every figure is a field of the JSON statement
 * (billing/statement.ts), itself a sum over usage_events and the credit ledger: the page adds no
 * arithmetic of its own, so it reconciles exactly as the JSON does.
 */
import { html, raw } from 'hono/html';
import { listKeys } from '../db/dashboard-keys.ts';
import { database, organizationName } from '../db/queries.ts';
import type { Statement, StatementTotals } from '../billing/statement.ts';
import { documentPage, money, utcTime, type Markup } from './page-shell.ts';

export interface StatementPageContext {
  orgName: string;
  /** Key id → "name (sk-abc12345…)", for the keys still listed; others show their id. */
  keyLabels: Map<string, string>;
  /** Where a receipt's page is, given its id. */
  receiptHref: (receiptId: string) => string;
}

const num = (n: number) => n.toLocaleString('en-US');

function usageRow(label: Markup | string, t: StatementTotals, total = false): Markup {
  return html`<tr${total ? raw(' class="total"') : ''}><td>${label}</td><td class="num">${num(t.requests)}</td><td class="num">${num(t.uncached_prompt_tokens)}</td><td class="num">${num(t.cached_tokens)}</td><td class="num">${num(t.completion_tokens)}</td><td class="num">${money(t.cost_micros)}</td></tr>`;
}

function usageTable(id: string, caption: string, first: string, rows: Markup[], total: StatementTotals): Markup {
  return html`<table id="${id}"><caption class="muted">${caption}</caption>
<thead><tr><th>${first}</th><th class="num">Requests</th><th class="num">Input tokens</th><th class="num">Cached input tokens</th><th class="num">Output tokens</th><th class="num">Amount</th></tr></thead>
<tbody>${rows}</tbody>
<tfoot>${usageRow('Total', total, true)}</tfoot>
</table>`;
}

export function statementPage(s: Statement, ctx: StatementPageContext): Markup {
  const key = (id: string) => ctx.keyLabels.get(id) ?? id;
  const c = s.credits;
  const entries = c.entries.map(
    (e) =>
      html`<tr><td>${utcTime(e.created_at)}</td><td>${e.kind === 'grant' ? 'Credit' : e.kind === 'refund' ? 'Refund' : 'Unsettled request'}</td><td>${e.note}</td><td>${
        e.receipt_id ? html`<a href="${ctx.receiptHref(e.receipt_id)}">receipt</a>` : '—'
      }</td><td class="num">${money(e.amount_micros)}</td></tr>`,
  );
  return documentPage(
    `Statement ${s.month} · ${ctx.orgName}`,
    html`<header><h1>Statement ${s.month}</h1><span class="muted">Edge Inference · prepaid usage</span></header>
<dl class="facts">
  <dt>Organization</dt><dd>${ctx.orgName} (<code>${s.org_id}</code>)</dd>
  <dt>Period</dt><dd>${utcTime(s.period_start)} – ${utcTime(s.period_end)} (end exclusive)</dd>
  <dt>Currency</dt><dd>USD, exact to the micro-dollar</dd>
</dl>

<h2>Balance</h2>
<table id="balance">
<tbody>
<tr id="opening"><td>Opening balance</td><td class="num">${money(c.opening_balance_micros)}</td></tr>
<tr id="granted"><td>Credits added</td><td class="num">${money(c.granted_micros)}</td></tr>
<tr id="refunded"><td>Refunds taken back</td><td class="num">${money(-c.refunded_micros)}</td></tr>
<tr id="usage"><td>Usage</td><td class="num">${money(-c.usage_micros)}</td></tr>
<tr id="expired"><td>Requests that never settled</td><td class="num">${money(-c.expired_micros)}</td></tr>
</tbody>
<tfoot><tr id="closing"><td>Closing balance</td><td class="num">${money(c.closing_balance_micros)}</td></tr></tfoot>
</table>

<h2>Usage by model</h2>
${usageTable('by-model', 'Input tokens are those not served from the prompt cache.', 'Model', s.by_model.map((m) => usageRow(m.model_id, m)), s.totals)}

<h2>Usage by key</h2>
${usageTable('by-key', 'Keys are named as they are now; a deleted name shows the key id.', 'Key', s.by_key.map((k) => usageRow(key(k.key_id), k)), s.totals)}

<h2>Lines</h2>
${usageTable('lines', 'One line per model and key.', 'Model · key', s.lines.map((l) => usageRow(`${l.model_id} · ${key(l.key_id)}`, l)), s.totals)}

<h2>Credits and refunds</h2>
${
  entries.length
    ? html`<table id="credit-entries"><thead><tr><th>Date</th><th>Kind</th><th>Note</th><th>Receipt</th><th class="num">Amount</th></tr></thead><tbody>${entries}</tbody></table>`
    : html`<p class="muted">No credit was added or refunded this month.</p>`
}`,
  );
}

/** The page of a loaded statement, with the org's name and its keys' names read from D1. */
export async function renderStatementPage(db: D1Database, s: Statement, receiptHref: (receiptId: string) => string): Promise<Markup> {
  const [orgName, keys] = await Promise.all([organizationName(database(db), s.org_id), listKeys(db, s.org_id)]);
  const keyLabels = new Map(keys.map((k) => [k.id, k.name ? `${k.name} (${k.prefix}…)` : `${k.prefix}…`]));
  return statementPage(s, { orgName: orgName ?? s.org_id, keyLabels, receiptHref });
}
