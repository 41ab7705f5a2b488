/**
 * A D1 write failure at settle: the usage row + ledger debit is retried until it lands, exactly once,
 * and the org's balance is charged once.
 *
 * The failure is real, not mocked: a SQLite trigger on usage_events (created in this test's D1 only)
 * aborts every insert while a fault window is open, so the batch in recordUsage fails as a D1 write
 * would (the whole transaction rolls back, ledger debit included). The window is wall-clock time,
 * read by SQLite itself (the test closes it by deleting the row), so nothing in the worker knows a
 * fault is being injected.
 */
import { env } from 'cloudflare:test';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { database } from '../../src/db/queries.ts';
import { recordUsage, usageEventsForRequest } from '../../src/billing/ledger.ts';
import { adminFetch, api, createTenant, eventually, expectReconciled, useTestNode, type Tenant } from '../fixtures.ts';

let tenant: Tenant;

beforeAll(async () => {
  await useTestNode();
  tenant = await createTenant({ creditMicros: 5_000_000 });
  await env.DB.batch([
    env.DB.prepare('CREATE TABLE IF NOT EXISTS test_fault_window (until_ms INTEGER NOT NULL)'),
    env.DB.prepare(`CREATE TRIGGER IF NOT EXISTS test_usage_write_fault BEFORE INSERT ON usage_events
      WHEN (SELECT coalesce(max(until_ms), 0) FROM test_fault_window) > CAST(unixepoch('subsec') * 1000 AS INTEGER)
      BEGIN SELECT RAISE(ABORT, 'injected D1 write failure (test_usage_write_fault)'); END`),
  ]);
});

afterEach(async () => {
  await env.DB.prepare('DELETE FROM test_fault_window').run();
});

async function openFaultWindow(ms: number): Promise<number> {
  const until = Date.now() + ms;
  await env.DB.prepare('INSERT INTO test_fault_window (until_ms) VALUES (?)').bind(until).run();
  return until;
}

async function account(orgId: string) {
  return (await (await adminFetch(`/organizations/${orgId}/account`)).json()) as { balance_micros: number; open_reservations: number };
}

async function ledgerBalance(orgId: string): Promise<number> {
  return ((await (await adminFetch(`/organizations/${orgId}/balance`)).json()) as { balance_micros: number }).balance_micros;
}

describe('D1 write failure at settle', () => {
  it('the trigger really makes the usage write fail', async () => {
    await openFaultWindow(60_000);
    const event = { requestId: 'req_fault_probe', orgId: tenant.orgId, keyId: tenant.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', promptTokens: 1, cachedTokens: 0, completionTokens: 1, priceId: 1, costMicros: 3, status: 'completed', finishReason: 'stop', startedAt: 0, finishedAt: 0 };
    await expect(recordUsage(database(env.DB), event)).rejects.toThrow(/injected D1 write failure/);
    // The batch is one transaction: the ledger debit rolled back with the row.
    const debits = await env.DB.prepare('SELECT count(*) AS n FROM credit_ledger WHERE request_id = ?').bind('req_fault_probe').first<{ n: number }>();
    expect(debits!.n).toBe(0);
  });

  it('is retried until it lands: one row, one debit, charged once, no reservation left open', async () => {
    const before = await account(tenant.orgId);
    expect(await ledgerBalance(tenant.orgId)).toBe(before.balance_micros);
    // Opened before the request: a non-streamed answer is metered (first attempt issued) before its
    // response is sent. Closed only after we have seen that nothing landed, however slow the machine.
    await openFaultWindow(60_000);
    const res = await api('/chat/completions', tenant.key, { model: 'k2-tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const { usage } = (await res.json()) as { usage: { completion_tokens: number } };
    await new Promise((r) => setTimeout(r, 300));
    expect(await usageEventsForRequest(database(env.DB), requestId)).toHaveLength(0);
    const closedAt = Date.now();
    await env.DB.prepare('DELETE FROM test_fault_window').run();

    const [row] = await eventually(async () => {
      const rows = await usageEventsForRequest(database(env.DB), requestId);
      return rows.length > 0 ? rows : undefined;
    }, 15_000);
    // The row was formed (finished_at) while writes were failing, and landed after: a retry wrote it.
    expect(row.finishedAt).toBeLessThan(closedAt);
    expect(row).toMatchObject({ status: 'completed', completionTokens: usage.completion_tokens });
    const debits = await env.DB.prepare('SELECT amount_micros FROM credit_ledger WHERE request_id = ?').bind(requestId).all<{ amount_micros: number }>();
    expect(debits.results).toEqual([{ amount_micros: -row.costMicros }]);

    // The org's object charged the same cost once, and its D1 mirror agrees with the ledger.
    const after = await eventually(async () => {
      const a = await account(tenant.orgId);
      return a.open_reservations === 0 ? a : undefined;
    });
    expect(after.balance_micros).toBe(before.balance_micros - row.costMicros);
    expect(await ledgerBalance(tenant.orgId)).toBe(after.balance_micros);
    const reservation = await env.DB.prepare('SELECT status, charged_micros FROM credit_reservations WHERE request_id = ?').bind(requestId).first();
    expect(reservation).toEqual({ status: 'settled', charged_micros: row.costMicros });

    // A replay of the same write (a second retry racing the first) changes nothing.
    expect(await recordUsage(database(env.DB), { ...row, id: undefined })).toBe(false);
    expect(await usageEventsForRequest(database(env.DB), requestId)).toHaveLength(1);
    expect(await ledgerBalance(tenant.orgId)).toBe(after.balance_micros);
    await expectReconciled(tenant.orgId);
  }, 30_000);
});
