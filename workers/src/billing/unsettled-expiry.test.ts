/**
 * A request whose edge isolate dies mid-stream never settles: its reservation expires. These tests
 * run the real meter, RequestBilling, OrgAccount, usage queue and D1, and check that the expiry
 * charges what the meter last reported delivered (the whole reservation when it never reported),
 * that reports keep a live request from expiring, and that a late settle never charges twice.
 */
import { env, runDurableObjectAlarm } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt, type PriceRow } from '../db/queries.ts';
import { createTenant, eventually, expectReconciled, type Tenant } from '../../test/fixtures.ts';
import { ledgerBalance, reservationRecord, usageEventsForRequest } from './ledger.ts';
import { UsageMeter } from './meter.ts';
import { orgAccount, RequestBilling } from './request-billing.ts';
import { loadStatement, parseMonth } from './statement.ts';

const wide = { rpm: 10_000, tpm: 10_000_000, concurrency: 10_000 };
/** Short enough to wait out in a test, long enough that a report made right after admission is in time. */
const TTL_MS = 1_000;
const PROMPT = 2_000;
const MAX_TOKENS = 2_000;

let price: PriceRow;
beforeAll(async () => {
  price = (await priceAt(database(env.DB), 'k2-tiny', Date.now()))!;
});

/** A request admitted as a route admits it, with a meter reporting on every token batch (no throttle). */
async function admitted(tenant: Tenant, requestId = `req_${crypto.randomUUID()}`) {
  const pending: Promise<unknown>[] = [];
  const billing = new RequestBilling(
    env,
    { requestId, orgId: tenant.orgId, keyId: tenant.keyId },
    { plan: null, org: wide, key: wide },
    (p) => pending.push(p),
    TTL_MS,
    0,
  );
  await billing.admit({ model: 'k2-tiny', promptTokens: PROMPT, maxTokens: MAX_TOKENS, price });
  const meter = new UsageMeter(
    env,
    { requestId, orgId: tenant.orgId, keyId: tenant.keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', price, startedAt: Date.now() },
    PROMPT,
    billing,
  );
  /** Every progress report sent so far has been answered. */
  const reported = () => Promise.all(pending);
  return { requestId, billing, meter, reported };
}

const deliveredCost = (completionTokens: number) => costMicros(price, { promptTokens: PROMPT, cachedTokens: 0, completionTokens });

/** Waits out the TTL with no call to the object, then runs its alarm (if it has not fired already). */
async function expireNow(orgId: string): Promise<void> {
  await new Promise((r) => setTimeout(r, TTL_MS + 50));
  await runDurableObjectAlarm(orgAccount(env, orgId));
}

/** ledger == object (reconciled, nothing open) == this month's statement closing balance. */
async function expectOneBalance(orgId: string): Promise<number> {
  const report = await expectReconciled(orgId);
  const ledger = (await ledgerBalance(env.DB, orgId)).balanceMicros;
  const now = new Date();
  const month = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  const statement = await loadStatement(env.DB, orgId, parseMonth(month)!);
  expect(report.object_micros).toBe(ledger);
  expect(statement.credits.closing_balance_micros).toBe(ledger);
  const c = statement.credits;
  expect(c.closing_balance_micros).toBe(c.opening_balance_micros + c.granted_micros - c.refunded_micros - c.usage_micros - c.expired_micros);
  expect(c.usage_micros).toBe(statement.totals.cost_micros);
  return ledger;
}

async function expiryEntries(orgId: string) {
  const { results } = await env.DB.prepare("SELECT amount_micros, request_id FROM credit_ledger WHERE org_id = ? AND kind = 'expiry'").bind(orgId).all<{ amount_micros: number; request_id: string }>();
  return results;
}

describe('a reservation that expires unsettled', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    tenant = await createTenant({ creditMicros: 100_000_000 });
  });

  it('is charged what the meter last reported delivered; ledger, object and statement agree', async () => {
    const t = await createTenant({ creditMicros: 10_000_000 });
    const { requestId, meter, billing, reported } = await admitted(t);
    for (let i = 0; i < 5; i++) meter.sent(40);
    await reported();
    // The isolate dies here: the meter never finishes, nothing settles.
    await expireNow(t.orgId);
    const charged = deliveredCost(200);
    expect(charged).toBeLessThan(billing.reservedMicros);
    await eventually(async () => (await reservationRecord(env.DB, requestId))?.status === 'expired' || undefined);
    expect(await reservationRecord(env.DB, requestId)).toMatchObject({ status: 'expired', chargedMicros: charged, amountMicros: billing.reservedMicros });
    expect(await expiryEntries(t.orgId)).toEqual([{ amount_micros: -charged, request_id: `expiry:${requestId}` }]);
    expect(await expectOneBalance(t.orgId)).toBe(10_000_000 - charged);
  });

  it('with no report it is charged its whole reservation; a report of 0 delivered charges 0', async () => {
    const t = await createTenant({ creditMicros: 10_000_000 });
    const silent = await admitted(t);
    const nothing = await admitted(t);
    // (The meter's own reports include the prompt's cost: a stream's cost is its prompt plus what it sent.)
    expect(await orgAccount(env, t.orgId).progress({ orgId: t.orgId, requestId: nothing.requestId, deliveredMicros: 0 })).toMatchObject({ status: 'recorded', deliveredMicros: 0 });
    await expireNow(t.orgId);
    await eventually(async () => ((await expiryEntries(t.orgId)).length === 1 ? true : undefined));
    expect(await expiryEntries(t.orgId)).toEqual([{ amount_micros: -silent.billing.reservedMicros, request_id: `expiry:${silent.requestId}` }]);
    expect(await eventually(() => reservationRecord(env.DB, nothing.requestId))).toMatchObject({ status: 'expired', chargedMicros: 0 });
    expect(await expectOneBalance(t.orgId)).toBe(10_000_000 - silent.billing.reservedMicros);
  });

  it('a progress report pushes the expiry back by the TTL: a request that keeps reporting never expires', async () => {
    const { requestId, meter, billing, reported } = await admitted(tenant);
    const stub = orgAccount(env, tenant.orgId);
    const firstExpiry = (await stub.getReservation(requestId))!.expiresAt;
    // Past the admission's expiry, reporting every half TTL.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, TTL_MS / 2));
      meter.sent(10);
      await reported();
    }
    expect(Date.now()).toBeGreaterThan(firstExpiry);
    await runDurableObjectAlarm(stub);
    const open = await stub.getReservation(requestId);
    expect(open).toMatchObject({ deliveredMicros: deliveredCost(30) });
    expect(open!.expiresAt).toBeGreaterThan(firstExpiry);
    // Still open, so the finish settles it normally: the real cost, once.
    const message = await meter.finish('completed', 'stop');
    expect(message.charge).toMatchObject({ chargedMicros: deliveredCost(30) });
    expect(billing.reservedMicros).toBeGreaterThan(deliveredCost(30));
    expect(await expiryEntries(tenant.orgId)).toEqual([]);
  });

  it('a late settle after an expiry that charged X charges only the rest of the real cost, never twice', async () => {
    const t = await createTenant({ creditMicros: 10_000_000 });
    const { requestId, meter, reported } = await admitted(t);
    meter.sent(100);
    await reported();
    await expireNow(t.orgId);
    const expired = deliveredCost(100);
    // The request was not dead after all: it finishes with 150 tokens delivered.
    meter.sent(50);
    const message = await meter.finish('completed', 'stop');
    const real = deliveredCost(150);
    expect(message.charge).toEqual({ chargedMicros: real - expired, overrunMicros: 0 });
    // A second settle (the usage queue asking again) changes nothing.
    expect(await orgAccount(env, t.orgId).settle({ orgId: t.orgId, requestId, costMicros: real, tokens: PROMPT + 150 })).toMatchObject({
      status: 'duplicate',
      chargedMicros: real - expired,
    });
    const row = await eventually(async () => (await usageEventsForRequest(env.DB, requestId))[0]);
    expect(row).toMatchObject({ costMicros: real - expired, completionTokens: 150 });
    expect(await expiryEntries(t.orgId)).toEqual([{ amount_micros: -expired, request_id: `expiry:${requestId}` }]);
    // In all: exactly the real cost, once.
    expect(await expectOneBalance(t.orgId)).toBe(10_000_000 - real);
  });

  it('a late settle after an expiry that charged the whole reservation charges nothing more', async () => {
    const t = await createTenant({ creditMicros: 10_000_000 });
    const { meter, billing } = await admitted(t);
    await expireNow(t.orgId);
    meter.sent(10);
    const message = await meter.finish('completed', 'stop');
    expect(message.charge).toEqual({ chargedMicros: 0, overrunMicros: 0 });
    expect(await expectOneBalance(t.orgId)).toBe(10_000_000 - billing.reservedMicros);
  });
});
