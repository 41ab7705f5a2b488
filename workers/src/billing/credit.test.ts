/**
 * Limits and prepaid credit through the whole worker: OpenAI-shaped requests → auth → rateLimit →
 * credit → chat completions → the test GPU node → usage rows, ledger debits, the org's object.
 */
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { adminFetch, api, createTenant, eventually, expectReconciled, useTestNode, type Tenant } from '../../test/fixtures.ts';
import { ledgerBalance, reservationRecord } from './ledger.ts';
import { database, priceAt } from '../db/queries.ts';
import { recordUsage, usageEventsForRequest } from './ledger.ts';
import type { Statement } from './statement.ts';

const messages = [{ role: 'user', content: 'Count to three.' }];
const chat = (t: Tenant, body: Record<string, unknown>) =>
  api('/chat/completions', t.key, { model: 'k2-tiny', messages, temperature: 0, ...body });

function account(orgId: string) {
  return env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(orgId)).account(orgId);
}

async function usageRow(requestId: string) {
  return eventually(async () => (await usageEventsForRequest(database(env.DB), requestId))[0]);
}

/** The org's object and the D1 ledger agree once every settlement has landed; returns the balance. */
async function settledBalance(orgId: string): Promise<number> {
  return vi.waitFor(
    async () => {
      const a = await account(orgId);
      expect(a.openReservations).toBe(0);
      expect(a.balanceMicros).toBe((await ledgerBalance(env.DB, orgId)).balanceMicros);
      return a.balanceMicros;
    },
    { timeout: 20_000, interval: 50 },
  );
}

// A hundred requests through auth, D1, both objects and the node take a few seconds on 2 cores.
describe('limits and credit through the worker', { timeout: 30_000 }, () => {
  beforeAll(async () => {
    await useTestNode();
  });

  it('50 concurrent requests against a limit of 10 per minute: exactly 10 pass, 40 get 429 with headers', async () => {
    const t = await createTenant();
    await adminFetch(`/keys/${t.keyId}/limits`, { rpm: 10 }, 'PUT');
    const responses = await Promise.all(Array.from({ length: 50 }, () => chat(t, { max_tokens: 1 })));
    const ok = responses.filter((r) => r.status === 200);
    const limited = responses.filter((r) => r.status === 429);
    expect(ok).toHaveLength(10);
    expect(limited).toHaveLength(40);
    for (const r of ok) {
      expect(r.headers.get('x-ratelimit-limit-requests')).toBe('10');
      await r.json();
    }
    const body = (await limited[0].json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_requests', param: null });
    expect(Number(limited[0].headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited[0].headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(limited[0].headers.get('x-ratelimit-reset-tokens')).toMatch(/s$/);
    await Promise.all(limited.slice(1).map((r) => r.json()));
    await settledBalance(t.orgId);
  });

  it('100 concurrent requests against a balance for 30: 30 admitted, 70 get 402, never below zero', async () => {
    // The prompt's size decides the worst case; measure it once with another tenant.
    const probe = await createTenant();
    const probed = (await (await chat(probe, { max_tokens: 1 })).json()) as { usage: { prompt_tokens: number } };
    const maxTokens = 4;
    const price = (await priceAt(database(env.DB), 'k2-tiny', Date.now()))!;
    const worst = costMicros(price, { promptTokens: probed.usage.prompt_tokens, cachedTokens: 0, completionTokens: maxTokens });

    const t = await createTenant({ creditMicros: 30 * worst });
    await adminFetch(`/organizations/${t.orgId}/limits`, { plan: 'tier5' }, 'PUT');
    // Streams: a 200 means admitted, and nothing settles until a body is read to its end, so the
    // count of admissions does not depend on how fast the node answers.
    const responses = await Promise.all(Array.from({ length: 100 }, () => chat(t, { max_tokens: maxTokens, stream: true })));
    expect(responses.filter((r) => r.status === 200)).toHaveLength(30);
    const refused = responses.filter((r) => r.status === 402);
    expect(refused).toHaveLength(70);
    expect(await refused[0].json()).toMatchObject({ error: { type: 'insufficient_quota', code: 'insufficient_quota' } });
    await Promise.all(refused.slice(1).map((r) => r.text()));
    expect((await account(t.orgId)).availableMicros).toBe(0);

    const completed = responses.filter((r) => r.status === 200);
    await Promise.all(completed.map((r) => r.text()));
    const rows = await Promise.all(completed.map((r) => usageRow(r.headers.get('x-request-id')!)));
    const charged = rows.reduce((sum, row) => sum + row.costMicros, 0);
    expect(charged).toBeLessThanOrEqual(30 * worst);
    expect(await settledBalance(t.orgId)).toBe(30 * worst - charged);

    // The month's statement reconciles with these very rows.
    const month = new Date().toISOString().slice(0, 7);
    const statement = (await (await adminFetch(`/organizations/${t.orgId}/statements/${month}`)).json()) as Statement;
    expect(statement.totals).toMatchObject({
      requests: 30,
      cost_micros: charged,
      completion_tokens: rows.reduce((s, r) => s + r.completionTokens, 0),
      cached_tokens: rows.reduce((s, r) => s + r.cachedTokens, 0),
    });
    expect(statement.credits.closing_balance_micros).toBe(30 * worst - charged);
    // The object and the ledger agree once everything settled.
    await expectReconciled(t.orgId);
  });

  it('a stream cancelled after N tokens is billed for those N, and the rest of the hold is released', async () => {
    const grant = 10_000_000;
    const t = await createTenant({ creditMicros: grant });
    const maxTokens = 48;
    const res = await chat(t, { max_tokens: maxTokens, stream: true });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    while ((received.match(/\n\n/g) ?? []).length < 4) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
    const requestId = res.headers.get('x-request-id')!;
    const row = await usageRow(requestId);
    expect(row.status).toBe('cancelled');
    expect(row.completionTokens).toBeGreaterThanOrEqual(3);
    expect(row.completionTokens).toBeLessThan(maxTokens);
    expect(await settledBalance(t.orgId)).toBe(grant - row.costMicros);
    const record = await vi.waitFor(async () => {
      const r = await reservationRecord(env.DB, requestId);
      expect(r?.status).toBe('settled');
      return r!;
    });
    expect(record.chargedMicros).toBe(row.costMicros);
    expect(record.amountMicros).toBeGreaterThan(row.costMicros);
    await expectReconciled(t.orgId);
  });

  it('replaying a finished request id (settle and usage write) never bills twice', async () => {
    const grant = 10_000_000;
    const t = await createTenant({ creditMicros: grant });
    const res = await chat(t, { max_tokens: 3 });
    expect(res.status).toBe(200);
    await res.json();
    const requestId = res.headers.get('x-request-id')!;
    const row = await usageRow(requestId);
    const before = await settledBalance(t.orgId);
    expect(before).toBe(grant - row.costMicros);

    const { id: _id, ...event } = row;
    const stub = env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(t.orgId));
    const replays = await Promise.all([
      stub.settle({ orgId: t.orgId, requestId, costMicros: row.costMicros, tokens: row.promptTokens + row.completionTokens }),
      recordUsage(database(env.DB), event),
    ]);
    expect(replays[0].status).toBe('duplicate');
    expect(replays[1]).toBe(false);
    expect(await settledBalance(t.orgId)).toBe(before);
    await expectReconciled(t.orgId);
  });
});
