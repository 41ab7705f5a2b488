/**
 * The frame of the printable customer documents (receipts, monthly statements): one HTML page
 * with its styles inline, no script, and a print stylesheet (A4, no screen-only parts, rows never
 * split across pages). Built with hono/html, whose template escapes every interpolated value, so
 * org names, notes and key names cannot inject markup. Every amount carries its exact integer
 * micro-dollars in `data-micros`, so a program (or a test) can read the figures without parsing
 * the formatted text.
 */
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { usd } from '../billing/statement.ts';

/** No script, no outside resource, no framing: the page is data only. */
export const DOCUMENT_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'private, no-store',
};

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #111; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 2px solid #111; margin-bottom: 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1.5rem; margin: 0; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; white-space: nowrap; }
tfoot td { font-weight: 600; border-top: 2px solid #111; }
.muted { color: #555; } .no-print { margin-top: 2rem; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .no-print { display: none; }
  a { color: inherit; text-decoration: none; }
  tr, dl.facts { break-inside: avoid; }
  thead { display: table-header-group; }
}
`;

export type Markup = HtmlEscapedString | Promise<HtmlEscapedString>;

export function documentPage(title: string, body: Markup): Markup {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${raw(CSS)}</style>
</head>
<body>
${body}
<p class="no-print muted">Print this page or save it as PDF from your browser's print dialog. <a href="/dashboard">Back to the dashboard</a></p>
</body>
</html>`;
}

/** "$1.234567" or "−$0.500000": exact to the micro-dollar, with the integer in data-micros. */
export function money(micros: number): Markup {
  const text = micros < 0 ? `−$${usd(-micros)}` : `$${usd(micros)}`;
  return html`<span class="money" data-micros="${micros}">${text}</span>`;
}

/** "2026-11-03 14:05 UTC" */
export function utcTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
