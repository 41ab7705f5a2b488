import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant, expectReconciled } from '../../test/fixtures.ts';
import { spend } from '../../test/spend.ts';
import { chargeRefunded, checkoutCompleted, deliver, topUpSession } from '../../test/stripe-events.ts';

const thisMonth = () => new Date().toISOString().slice(0, 7);

/** The exact micro-dollars of the amount inside the element with this id (its data-micros). */
function micros(page: string, id: string): number {
  const match = new RegExp(`id="${id}"[\\s\\S]*?data-micros="(-?\\d+)"`).exec(page);
  if (!match) throw new Error(`no amount for #${id}`);
  return Number(match[1]);
}

/** The amounts of a usage table's rows (tbody) and its total (tfoot), by the row's first cell. */
function tableAmounts(page: string, id: string): { rows: Map<string, number>; total: number } {
  const table = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(page)![1];
  const row = /<tr[^>]*><td>([^<]*)<\/td>[\s\S]*?data-micros="(-?\d+)"[^<]*<\/span><\/td><\/tr>/g;
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(table)![1];
  const rows = new Map([...body.matchAll(row)].map((m) => [m[1], Number(m[2])]));
  const total = Number(/<tfoot>[\s\S]*?data-micros="(-?\d+)"/.exec(table)![1]);
  return { rows, total };
}

async function sql<T>(query: string, ...args: unknown[]): Promise<T> {
  return (await env.DB.prepare(query).bind(...args).first<T>())!;
}

describe('monthly statement page (?format=html)', () => {
  it('its totals equal the sums of usage_events and the ledger, and the reconcile endpoint agrees', async () => {
    const { orgId, keyId, key } = await createTenant({ creditMicros: 3_000_000 }); // an admin grant
    const session = topUpSession(orgId, 2_000);
    await deliver(checkoutCompleted(session)); // a $20 Stripe top-up
    const second = (await (await adminFetch('/keys', { org_id: orgId, name: 'batch jobs' })).json()) as { id: string };
    await spend(orgId, keyId, 1_234_567, 'k2-tiny');
    await spend(orgId, keyId, 2_000_001, 'kimi-k2-thinking');
    await spend(orgId, second.id, 765_432, 'k2-tiny');
    await deliver(chargeRefunded(session, 500)); // $5 refunded

    const month = thisMonth();
    const res = await SELF.fetch(`http://edge.test/admin/organizations/${orgId}/statements/${month}?format=html`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const page = await res.text();
    expect(page).toContain('@media print');

    const [start, end] = [Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5)) - 1, 1), Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5)), 1)];
    const usage = await sql<{ cost: number }>('SELECT coalesce(sum(cost_micros), 0) AS cost FROM usage_events WHERE org_id = ? AND finished_at >= ? AND finished_at < ?', orgId, start, end);
    const byKind = async (kind: string) =>
      (await sql<{ s: number }>('SELECT coalesce(sum(amount_micros), 0) AS s FROM credit_ledger WHERE org_id = ? AND kind = ? AND created_at >= ? AND created_at < ?', orgId, kind, start, end)).s;
    const closing = await sql<{ s: number }>('SELECT coalesce(sum(amount_micros), 0) AS s FROM credit_ledger WHERE org_id = ? AND created_at < ?', orgId, end);

    expect(micros(page, 'granted')).toBe(await byKind('grant'));
    expect(micros(page, 'granted')).toBe(23_000_000);
    expect(micros(page, 'refunded')).toBe(await byKind('refund'));
    expect(micros(page, 'refunded')).toBe(-5_000_000);
    expect(micros(page, 'usage')).toBe(await byKind('usage'));
    expect(-micros(page, 'usage')).toBe(usage.cost);
    expect(usage.cost).toBe(1_234_567 + 2_000_001 + 765_432);
    expect(micros(page, 'opening')).toBe(0);
    expect(micros(page, 'closing')).toBe(closing.s);
    expect(micros(page, 'closing')).toBe(micros(page, 'opening') + micros(page, 'granted') + micros(page, 'refunded') + micros(page, 'usage'));

    const byModel = tableAmounts(page, 'by-model');
    expect(byModel.total).toBe(usage.cost);
    expect(Object.fromEntries(byModel.rows)).toEqual({ 'k2-tiny': 1_234_567 + 765_432, 'kimi-k2-thinking': 2_000_001 });
    const byKey = tableAmounts(page, 'by-key');
    expect([...byKey.rows.values()].reduce((a, b) => a + b, 0)).toBe(usage.cost);
    expect([...byKey.rows.keys()].some((label) => label.startsWith('batch jobs (sk-'))).toBe(true);
    // The top-up's line links to its receipt.
    expect(page).toContain(`/dashboard/api/receipts/${session.id}?format=html&amp;org=${orgId}`);

    // This month holds the whole ledger, so the page's closing balance is the balance now, which the
    // reconcile endpoint finds in both the ledger and the org's object.
    const reconciled = await expectReconciled(orgId);
    expect(reconciled.ledger_micros).toBe(micros(page, 'closing'));
    expect(reconciled.object_micros).toBe(micros(page, 'closing'));

    // The org's own key gets the same page from the dashboard API, and the JSON says the same.
    const own = await SELF.fetch(`http://edge.test/dashboard/api/statements/${month}?format=html`, { headers: { authorization: `Bearer ${key}` } });
    expect(micros(await own.text(), 'closing')).toBe(closing.s);
    const json = (await (await SELF.fetch(`http://edge.test/dashboard/api/statements/${month}?format=json`, { headers: { authorization: `Bearer ${key}` } })).json()) as {
      credits: { refunded_micros: number; closing_balance_micros: number; entries: { kind: string; receipt_id: string | null }[] };
    };
    expect(json.credits.refunded_micros).toBe(5_000_000);
    expect(json.credits.entries.map((e) => [e.kind, e.receipt_id])).toEqual([
      ['grant', null],
      ['grant', session.id],
      ['refund', null],
    ]);
  });
});

describe('receipts', () => {
  it('a top-up’s receipt lists amount, date, Stripe ids and org, as JSON and as a page that escapes what it shows', async () => {
    const org = (await (await adminFetch('/organizations', { name: '<script>alert(1)</script> & Co' })).json()) as { id: string };
    const { key } = (await (await adminFetch('/keys', { org_id: org.id })).json()) as { key: string };
    const session = topUpSession(org.id, 1_250);
    const paid = checkoutCompleted(session);
    await deliver(paid);
    const auth = { authorization: `Bearer ${key}` };

    const json = await (await SELF.fetch(`http://edge.test/dashboard/api/receipts/${session.id}`, { headers: auth })).json();
    expect(json).toMatchObject({
      object: 'receipt',
      id: session.id,
      org_id: org.id,
      amount_cents: 1_250,
      credit_micros: 12_500_000,
      stripe_event_id: paid.id,
      stripe_payment_intent_id: session.payment_intent,
      customer_email: 'billing@example.com',
      paid_at: paid.created * 1000,
    });

    const res = await SELF.fetch(`http://edge.test/dashboard/api/receipts/${session.id}?format=html`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const page = await res.text();
    expect(micros(page, 'amount')).toBe(12_500_000);
    expect(page).toContain('$12.500000');
    for (const text of [paid.id, session.payment_intent, session.id, org.id, new Date(paid.created * 1000).toISOString().slice(0, 16).replace('T', ' ')]) expect(page).toContain(text);
    expect(page).not.toContain('<script>alert(1)</script>');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co');

    // Another org's key cannot see it.
    const other = await createTenant({ creditMicros: 0 });
    const hidden = await SELF.fetch(`http://edge.test/dashboard/api/receipts/${session.id}`, { headers: { authorization: `Bearer ${other.key}` } });
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toMatchObject({ error: { code: 'not_found' } });
  });
});
