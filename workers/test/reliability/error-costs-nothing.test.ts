/**
 * A response the client receives as an error costs nothing. The k2-tiny pool here is one real node
 * behind test/support/failing-node.ts, whose engine fails every generation after a few tokens (the
 * node's error event; or, for one test, whose generations are cancelled on the node after a few
 * tokens): a non-streamed request then ends in an error, and its usage row records the tokens the node
 * produced (for observability) with a charge of 0 and the whole reservation released. A stream is
 * still billed the tokens it delivered before its error event.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ledgerEntryForRequest, usageEventsForRequest } from '../../src/billing/ledger.ts';
import { database } from '../../src/db/queries.ts';
import { adminFetch, api, createTenant, eventually, expectReconciled, type Tenant } from '../fixtures.ts';

const CREDIT = 5_000_000;
let tenant: Tenant;

beforeAll(async () => {
  const res = await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('failingNodeUrl') });
  expect(res.status).toBe(201);
  tenant = await createTenant({ creditMicros: CREDIT });
});

async function usageRow(requestId: string) {
  const [row] = await eventually(async () => {
    const rows = await usageEventsForRequest(database(env.DB), requestId);
    return rows.length > 0 ? rows : undefined;
  });
  return row;
}

const chatBody = { model: 'k2-tiny', messages: [{ role: 'user', content: 'Write a long poem about the sea.' }], max_tokens: 200, temperature: 0 };

describe('an answer the client receives as an error', () => {
  it('a non-streamed request whose node fails mid-generation: 502, a row with the tokens, charged 0, books reconciled', async () => {
    const res = await api('/chat/completions', tenant.key, chatBody);
    const body = (await res.json()) as { error: { type: string; code: string; param: unknown; message: string } };
    expect(res.status, JSON.stringify(body)).toBe(502);
    expect(body.error).toMatchObject({ type: 'server_error', code: 'upstream_error', param: null });
    const requestId = res.headers.get('x-request-id')!;

    const row = await usageRow(requestId);
    expect(row.status).toBe('failed');
    // The node did generate: the row keeps that for observability...
    expect(row.completionTokens).toBeGreaterThan(0);
    expect(row.completionTokens).toBeLessThan(chatBody.max_tokens);
    // ...but the client got no answer, so nothing is charged.
    expect(row.costMicros).toBe(0);
    const debit = await ledgerEntryForRequest(database(env.DB), requestId);
    expect(debit === undefined || debit === null || debit.amountMicros === 0).toBe(true);
    const books = await expectReconciled(tenant.orgId);
    expect(books.ledger_micros).toBe(CREDIT);
    expect(books.object_micros).toBe(CREDIT);
  }, 30_000);

  it('the same on the Messages API: its 500 api_error (Anthropic\'s status for a failed generation), charged 0', async () => {
    const before = (await expectReconciled(tenant.orgId)).ledger_micros;
    const res = await api('/messages', tenant.key, { model: 'k2-tiny', max_tokens: 200, messages: [{ role: 'user', content: 'Write a long poem about the sea.' }] });
    const body = (await res.json()) as { type: string; error: { type: string } };
    expect(res.status, JSON.stringify(body)).toBe(500);
    expect(body).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    const row = await usageRow(res.headers.get('x-request-id')!);
    expect(row).toMatchObject({ status: 'failed', endpoint: 'messages', costMicros: 0 });
    expect(row.completionTokens).toBeGreaterThan(0);
    expect((await expectReconciled(tenant.orgId)).ledger_micros).toBe(before);
  }, 30_000);

  it('a non-streamed request cancelled on the node mid-generation: an error, charged 0', async () => {
    const before = (await expectReconciled(tenant.orgId)).ledger_micros;
    await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('failingNodeUrl') }, 'DELETE');
    await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('cancellingNodeUrl') });
    try {
      const res = await api('/chat/completions', tenant.key, chatBody);
      const body = (await res.json()) as { error: { type: string; code: string } };
      expect(res.status, JSON.stringify(body)).toBe(502);
      expect(body.error).toMatchObject({ type: 'server_error', code: 'upstream_error' });
      const row = await usageRow(res.headers.get('x-request-id')!);
      expect(row).toMatchObject({ status: 'cancelled', costMicros: 0 });
      expect(row.completionTokens).toBeGreaterThan(0);
      expect((await expectReconciled(tenant.orgId)).ledger_micros).toBe(before);
    } finally {
      await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('cancellingNodeUrl') }, 'DELETE');
      await adminFetch('/nodes', { pool: 'k2-tiny', url: inject('failingNodeUrl') });
    }
  }, 30_000);

  it('a stream whose node fails mid-generation is billed the tokens it delivered before its error event', async () => {
    const before = (await expectReconciled(tenant.orgId)).ledger_micros;
    const res = await api('/chat/completions', tenant.key, { ...chatBody, stream: true });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('"upstream_error"');
    expect(text).not.toContain('[DONE]');
    const row = await usageRow(res.headers.get('x-request-id')!);
    expect(row.status).toBe('failed');
    expect(row.completionTokens).toBeGreaterThan(0);
    expect(row.costMicros).toBeGreaterThan(0);
    const books = await expectReconciled(tenant.orgId);
    expect(books.ledger_micros).toBe(before - row.costMicros);
  }, 30_000);
});
