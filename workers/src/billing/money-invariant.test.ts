/**
 * The money invariant as a property (fast-check): for random sequences of admin grants (small, near
 * the ceilings, past them, not whole numbers), Stripe top-ups and refunds through the signed webhook,
 * requests admitted, metered and settled through the real RequestBilling, UsageMeter, OrgAccount and
 * usage queue, and requests abandoned mid-stream that expire, the org's statement, its D1 ledger and
 * its OrgAccount all hold the same balance, equal to a model that applies the documented rules, and
 * every amount in the ledger is a safe integer.
 */
import { env, runDurableObjectAlarm } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt, type PriceRow } from '../db/queries.ts';
import { ApiError } from '../errors.ts';
import { createTenant, expectReconciled } from '../../test/fixtures.ts';
import { chargeRefunded, checkoutCompleted, deliver, topUpSession } from '../../test/stripe-events.ts';
import { MAX_BALANCE_MICROS, MAX_GRANT_MICROS } from './credit-ceilings.ts';
import { grantToOrg } from './grants.ts';
import { grantCredit, ledgerBalance } from './ledger.ts';
import { UsageMeter } from './meter.ts';
import { orgAccount, RequestBilling } from './request-billing.ts';
import { MICROS_PER_CENT } from './stripe.ts';
import { loadStatement, parseMonth } from './statement.ts';

const wide = { rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 10_000 };
/** Long enough that every abandoned request of a run is admitted before the first expires, even on a loaded machine. */
const ABANDONED_TTL_MS = 1_000;

type Op =
  | { kind: 'grant'; amount: number }
  | { kind: 'request'; prompt: number; maxTokens: number; sent: number; status: 'completed' | 'cancelled' }
  | { kind: 'topup'; cents: number }
  | { kind: 'refund'; pick: number; fraction: number };

interface Abandoned {
  prompt: number;
  maxTokens: number;
  sent: number;
  reported: boolean;
}

const grantAmount = fc.oneof(
  fc.integer({ min: 1, max: 10_000_000 }),
  fc.integer({ min: MAX_GRANT_MICROS - 1_000, max: MAX_GRANT_MICROS }),
  fc.integer({ min: MAX_GRANT_MICROS + 1, max: MAX_GRANT_MICROS + 1_000 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 0.5, 0, -1),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  grantAmount.map((amount) => ({ kind: 'grant' as const, amount })),
  fc
    .record({ prompt: fc.integer({ min: 1, max: 3_000 }), maxTokens: fc.integer({ min: 1, max: 3_000 }), ratio: fc.double({ min: 0, max: 1, noNaN: true }), status: fc.constantFrom('completed' as const, 'cancelled' as const) })
    .map(({ prompt, maxTokens, ratio, status }) => ({ kind: 'request' as const, prompt, maxTokens, sent: Math.floor(maxTokens * ratio), status })),
  fc.integer({ min: 500, max: 1_000_000 }).map((cents) => ({ kind: 'topup' as const, cents })),
  fc.record({ pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }).map((r) => ({ kind: 'refund' as const, ...r })),
);
const abandoned: fc.Arbitrary<Abandoned> = fc
  .record({ prompt: fc.integer({ min: 1, max: 3_000 }), maxTokens: fc.integer({ min: 1, max: 3_000 }), ratio: fc.double({ min: 0, max: 1, noNaN: true }), reported: fc.boolean() })
  .map(({ prompt, maxTokens, ratio, reported }) => ({ prompt, maxTokens, sent: Math.floor(maxTokens * ratio), reported }));
/** The ledger balance a run opens with (written before the org's object exists): empty, ordinary, or at the ceiling's edge. */
const opening = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100_000_000 }), fc.integer({ min: MAX_BALANCE_MICROS - 20_000_000, max: MAX_BALANCE_MICROS }));

function currentStatementPeriod() {
  const now = new Date();
  return parseMonth(`${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`)!;
}

async function run(price: PriceRow, openingMicros: number, ops: Op[], dying: Abandoned[]): Promise<void> {
  const t = await createTenant({ creditMicros: 0 });
  const { orgId, keyId } = t;
  if (openingMicros > 0) expect(await grantCredit(env.DB, orgId, openingMicros, 'opening balance')).not.toBeNull();
  /** The model: the object's balance by the documented rules. */
  let balance = openingMicros;
  /** Charges the usage queue may not have written yet: the ledger can be above the object by this much. */
  let unwritten = 0;
  /** Open reservations of the abandoned requests (nothing moves until they expire). */
  let held = 0;
  const topups: { session: ReturnType<typeof topUpSession>; refundedCents: number }[] = [];

  const admit = async (prompt: number, maxTokens: number, ttlMs?: number, progressIntervalMs?: number) => {
    const requestId = `req_${crypto.randomUUID()}`;
    const pending: Promise<unknown>[] = [];
    const billing = new RequestBilling(env, { requestId, orgId, keyId }, { plan: null, org: wide, key: wide }, (p) => pending.push(p), ttlMs, progressIntervalMs);
    const input = { model: 'k2-tiny', promptTokens: prompt, maxTokens, price };
    const reserved = RequestBilling.worstCaseMicros(input);
    try {
      await billing.admit(input);
    } catch (err) {
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(402);
      expect(reserved).toBeGreaterThan(balance - held);
      return null;
    }
    expect(reserved).toBeLessThanOrEqual(balance - held);
    const meter = new UsageMeter(env, { requestId, orgId, keyId, modelId: 'k2-tiny', endpoint: 'chat.completions', price, startedAt: Date.now() }, prompt, billing);
    return { requestId, meter, reserved, reported: () => Promise.all(pending) };
  };
  const costOf = (prompt: number, sent: number) => costMicros(price, { promptTokens: prompt, cachedTokens: 0, completionTokens: sent });

  /** A grant the model says must be refused, must go through, or (within the unwritten debits) may do either. */
  const expectGrant = (amount: number, granted: boolean) => {
    const valid = Number.isSafeInteger(amount) && amount > 0 && amount <= MAX_GRANT_MICROS;
    if (!valid || balance + amount > MAX_BALANCE_MICROS) expect(granted).toBe(false);
    else if (balance + unwritten + amount <= MAX_BALANCE_MICROS) expect(granted).toBe(true);
    if (granted) balance += amount;
  };

  for (const o of ops) {
    if (o.kind === 'grant') {
      const granted = await grantToOrg(env, orgId, o.amount, 'property grant').then(
        () => true,
        (err: unknown) => {
          expect(err).toMatchObject({ status: 400, code: 'credit_ceiling_exceeded' });
          return false;
        },
      );
      expectGrant(o.amount, granted);
    } else if (o.kind === 'request') {
      const request = await admit(o.prompt, o.maxTokens);
      if (!request) continue;
      for (let sent = 0; sent < o.sent; sent += 7) request.meter.sent(Math.min(7, o.sent - sent));
      const message = await request.meter.finish(o.status, o.status === 'completed' ? 'stop' : 'cancelled');
      const charged = Math.min(costOf(o.prompt, o.sent), request.reserved, balance);
      expect(message.charge).toMatchObject({ chargedMicros: charged });
      balance -= charged;
      unwritten += charged;
    } else if (o.kind === 'topup') {
      const session = topUpSession(orgId, o.cents);
      const res = await deliver(checkoutCompleted(session));
      expect(res.status).toBe(200);
      const body = (await res.json()) as { action: string };
      expect(['granted', 'refused']).toContain(body.action);
      expectGrant(o.cents * MICROS_PER_CENT, body.action === 'granted');
      if (body.action === 'granted') topups.push({ session, refundedCents: 0 });
    } else if (topups.length > 0) {
      const topup = topups[o.pick % topups.length];
      const total = topup.refundedCents + Math.floor((topup.session.amount_total - topup.refundedCents) * o.fraction);
      const res = await deliver(chargeRefunded(topup.session, total));
      expect(res.status).toBe(200);
      const debited = Math.min((total - topup.refundedCents) * MICROS_PER_CENT, balance);
      expect(await res.json()).toMatchObject({ action: 'refunded', debited_micros: debited });
      topup.refundedCents = total;
      balance -= debited;
    }
  }

  // Requests whose isolate dies mid-stream: admitted last, so they expire together, in admission order.
  const holds: { reserved: number; delivered: number | null }[] = [];
  for (const d of dying) {
    const request = await admit(d.prompt, d.maxTokens, ABANDONED_TTL_MS, d.reported ? 0 : Number.MAX_SAFE_INTEGER);
    if (!request) continue;
    for (let sent = 0; sent < d.sent; sent += 7) request.meter.sent(Math.min(7, d.sent - sent));
    await request.reported();
    // Only a meter that sent something reported (each token batch reports, unthrottled here).
    holds.push({ reserved: request.reserved, delivered: d.reported && d.sent > 0 ? Math.min(costOf(d.prompt, d.sent), request.reserved) : null });
    held += request.reserved;
  }
  if (holds.length > 0) {
    await new Promise((r) => setTimeout(r, ABANDONED_TTL_MS + 50));
    await runDurableObjectAlarm(orgAccount(env, orgId));
    for (const h of holds) balance -= Math.min(h.delivered ?? h.reserved, h.reserved, balance);
  }

  // Statement == D1 ledger == OrgAccount == the model; every amount a safe integer.
  const report = await expectReconciled(orgId);
  const ledger = (await ledgerBalance(env.DB, orgId)).balanceMicros;
  const statement = await loadStatement(env.DB, orgId, currentStatementPeriod());
  expect(report.object_micros).toBe(ledger);
  expect(ledger).toBe(balance);
  expect(statement.credits.closing_balance_micros).toBe(ledger);
  const c = statement.credits;
  expect(c.opening_balance_micros + c.granted_micros - c.refunded_micros - c.usage_micros - c.expired_micros).toBe(c.closing_balance_micros);
  expect(c.usage_micros).toBe(statement.totals.cost_micros);
  expect(ledger).toBeLessThanOrEqual(MAX_BALANCE_MICROS);
  const { results } = await env.DB.prepare('SELECT amount_micros FROM credit_ledger WHERE org_id = ?').bind(orgId).all<{ amount_micros: number }>();
  for (const r of results) expect(Number.isSafeInteger(r.amount_micros)).toBe(true);
  for (const v of [c.opening_balance_micros, c.granted_micros, c.refunded_micros, c.usage_micros, c.expired_micros, statement.totals.cost_micros]) {
    expect(Number.isSafeInteger(v)).toBe(true);
  }
}

describe('the money invariant', () => {
  it('statement == D1 ledger == OrgAccount == model, for random grants, requests, top-ups, refunds and expiries', async () => {
    const price = (await priceAt(database(env.DB), 'k2-tiny', Date.now()))!;
    await fc.assert(
      fc.asyncProperty(opening, fc.array(op, { minLength: 1, maxLength: 12 }), fc.array(abandoned, { maxLength: 3 }), (o, ops, dying) => run(price, o, ops, dying)),
      // Bounded: 30 sequences (about 30 s); a failure is reported as found, without shrinking (each try waits on the queue).
      { numRuns: 30, endOnFailure: true },
    );
  }, 600_000);
});
