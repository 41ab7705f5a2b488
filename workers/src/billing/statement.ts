/**
 * Monthly statement of an organisation: usage by model and by key (cached vs uncached input,
 * output, cost) and the month's credit movements, as JSON and as CSV (and as a printable page,
 * documents/statement-page.ts).
 *
 * Built only by summing the (model, key) lines D1 returns, so every subtotal and the total add
 * up exactly to the usage_events rows. Costs are per-request costs summed: per-class costs are
 * not shown, because a request's cost is rounded once over its classes (shared/pricing.ts) and
 * splitting it would not reconcile.
 */
import { creditEntries, ledgerTotals, usageLines, type CreditEntry, type LedgerTotals, type UsageLine, type UsageTotals } from '../db/statements.ts';

export interface Period {
  /** "YYYY-MM" */
  month: string;
  /** Epoch ms, inclusive (00:00 UTC on the 1st). */
  start: number;
  /** Epoch ms, exclusive (00:00 UTC on the 1st of the next month). */
  end: number;
}

/** The UTC month "YYYY-MM", or null if the string is not one. */
export function parseMonth(month: string): Period | null {
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!match) return null;
  const year = Number(match[1]);
  const index = Number(match[2]) - 1;
  return { month, start: Date.UTC(year, index, 1), end: Date.UTC(year, index + 1, 1) };
}

export interface StatementTotals {
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  uncached_prompt_tokens: number;
  completion_tokens: number;
  cost_micros: number;
}

export interface Statement {
  object: 'statement';
  org_id: string;
  month: string;
  period_start: number;
  period_end: number;
  /** Every amount is integer micro-dollars (1 USD = 1_000_000). */
  currency: 'usd';
  totals: StatementTotals;
  by_model: (StatementTotals & { model_id: string })[];
  by_key: (StatementTotals & { key_id: string })[];
  lines: (StatementTotals & { model_id: string; key_id: string })[];
  /** closing = opening + granted − refunded − usage − expired, each a sum of the month's ledger rows. */
  credits: {
    opening_balance_micros: number;
    granted_micros: number;
    refunded_micros: number;
    usage_micros: number;
    /**
     * Charges of requests whose reservation expired unsettled (their stream's last reported delivered
     * cost, or the reservation when none was reported); each is also an entry below. A request that
     * settles after its expiry is a usage line charged only the rest.
     */
    expired_micros: number;
    closing_balance_micros: number;
    /** The month's grants, refunds and expiry charges, oldest first (usage debits are the usage lines). */
    entries: { ledger_id: number; kind: 'grant' | 'refund' | 'expiry'; amount_micros: number; note: string; created_at: number; receipt_id: string | null }[];
  };
}

/** Reads the month's usage lines and ledger totals from D1 and builds the statement. */
export async function loadStatement(db: D1Database, orgId: string, period: Period): Promise<Statement> {
  const [lines, ledger, entries] = await Promise.all([
    usageLines(db, orgId, period.start, period.end),
    ledgerTotals(db, orgId, period.start, period.end),
    creditEntries(db, orgId, period.start, period.end),
  ]);
  return buildStatement(orgId, period, lines, ledger, entries);
}

export function buildStatement(orgId: string, period: Period, lines: UsageLine[], ledger: LedgerTotals, entries: CreditEntry[] = []): Statement {
  return {
    object: 'statement',
    org_id: orgId,
    month: period.month,
    period_start: period.start,
    period_end: period.end,
    currency: 'usd',
    totals: totalsWire(sum(lines)),
    by_model: groupBy(lines, (l) => l.modelId).map(([model_id, group]) => ({ model_id, ...totalsWire(sum(group)) })),
    by_key: groupBy(lines, (l) => l.keyId).map(([key_id, group]) => ({ key_id, ...totalsWire(sum(group)) })),
    lines: lines.map((l) => ({ model_id: l.modelId, key_id: l.keyId, ...totalsWire(l) })),
    credits: {
      opening_balance_micros: ledger.openingMicros,
      granted_micros: ledger.grantedMicros,
      refunded_micros: ledger.refundedMicros,
      usage_micros: ledger.usageMicros,
      expired_micros: ledger.expiredMicros,
      closing_balance_micros: ledger.closingMicros,
      entries: entries.map((e) => ({
        ledger_id: e.ledgerId,
        kind: e.kind,
        amount_micros: e.amountMicros,
        note: e.note,
        created_at: e.createdAt,
        receipt_id: e.topupId,
      })),
    },
  };
}

const CSV_COLUMNS = [
  'section',
  'model_id',
  'key_id',
  'requests',
  'prompt_tokens',
  'cached_tokens',
  'uncached_prompt_tokens',
  'completion_tokens',
  'amount_micros',
  'amount_usd',
] as const;

/**
 * One CSV table: a row per (model, key) line, per model, per key, the total, then the credit
 * movements (amount columns only). Spreadsheet users filter on `section`.
 */
export function statementCsv(s: Statement): string {
  const rows: string[][] = [[...CSV_COLUMNS]];
  const usage = (section: string, model: string, key: string, t: StatementTotals) => [
    section,
    model,
    key,
    ...[t.requests, t.prompt_tokens, t.cached_tokens, t.uncached_prompt_tokens, t.completion_tokens, t.cost_micros].map(String),
    usd(t.cost_micros),
  ];
  for (const l of s.lines) rows.push(usage('line', l.model_id, l.key_id, l));
  for (const m of s.by_model) rows.push(usage('model', m.model_id, '', m));
  for (const k of s.by_key) rows.push(usage('key', '', k.key_id, k));
  rows.push(usage('total', '', '', s.totals));
  const credit = (section: string, micros: number) => [section, '', '', '', '', '', '', '', String(micros), usd(micros)];
  rows.push(credit('opening_balance', s.credits.opening_balance_micros));
  rows.push(credit('credits_granted', s.credits.granted_micros));
  rows.push(credit('credits_refunded', s.credits.refunded_micros));
  rows.push(credit('usage_debited', s.credits.usage_micros));
  rows.push(credit('expired_reservations', s.credits.expired_micros));
  rows.push(credit('closing_balance', s.credits.closing_balance_micros));
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

function sum(lines: UsageTotals[]): UsageTotals {
  const total: UsageTotals = { requests: 0, promptTokens: 0, cachedTokens: 0, completionTokens: 0, costMicros: 0 };
  for (const l of lines) {
    total.requests += l.requests;
    total.promptTokens += l.promptTokens;
    total.cachedTokens += l.cachedTokens;
    total.completionTokens += l.completionTokens;
    total.costMicros += l.costMicros;
  }
  return total;
}

/** Usage totals in the wire shape of statements and the usage API (uncached prompt tokens derived). */
export function totalsWire(t: UsageTotals): StatementTotals {
  return {
    requests: t.requests,
    prompt_tokens: t.promptTokens,
    cached_tokens: t.cachedTokens,
    uncached_prompt_tokens: t.promptTokens - t.cachedTokens,
    completion_tokens: t.completionTokens,
    cost_micros: t.costMicros,
  };
}

function groupBy<T>(items: T[], key: (item: T) => string): [string, T[]][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Integer micro-dollars as an exact decimal string (no float division). */
export function usd(micros: number): string {
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  return `${sign}${Math.floor(abs / 1_000_000)}.${String(abs % 1_000_000).padStart(6, '0')}`;
}

/** RFC 4180: quote fields holding a comma, quote or line break; double the quotes inside. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
