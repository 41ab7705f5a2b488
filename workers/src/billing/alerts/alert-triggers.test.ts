/**
 * Alert crossings on a real Durable Object's storage: one event per crossing, re-armed only on the
 * safe side of the threshold, and written to the outbox (sent to ALERT_QUEUE by flush()).
 */
import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AlertTriggers, type AlertMessage } from './alert-triggers.ts';

function withTriggers(fn: (triggers: AlertTriggers, outbox: () => AlertMessage[]) => void | Promise<void>) {
  const stub = env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(`alerts-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_instance, state) => {
    const sql = state.storage.sql;
    const outbox = () =>
      sql
        .exec<{ message: string }>('SELECT message FROM alert_outbox ORDER BY created_at, rowid')
        .toArray()
        .map((r) => JSON.parse(r.message) as AlertMessage);
    return fn(new AlertTriggers(sql, env.ALERT_QUEUE), outbox);
  });
}

describe('AlertTriggers', () => {
  it('balance: one event when it falls below, none while it stays below, another after a top-up re-arms it', () =>
    withTriggers(async (t, outbox) => {
      t.configure({ balanceBelowMicros: 1_000, keyBudgetPercent: null }, 'org', 5_000, 1);
      t.balanceChanged('org', 1_200, 2);
      expect(outbox()).toHaveLength(0);
      t.balanceChanged('org', 900, 3);
      t.balanceChanged('org', 500, 4);
      t.balanceChanged('org', 0, 5);
      expect(outbox()).toHaveLength(1);
      expect(JSON.parse(outbox()[0].payload)).toMatchObject({ type: 'balance.below_threshold', org_id: 'org', data: { balance_micros: 900, threshold_micros: 1_000 } });
      t.balanceChanged('org', 1_000, 6); // at the threshold: re-armed
      t.balanceChanged('org', 999, 7);
      const events = outbox();
      expect(events).toHaveLength(2);
      expect(events[0].eventId).not.toBe(events[1].eventId);
      // Changing only the key percentage does not re-fire the balance alert.
      t.configure({ balanceBelowMicros: 1_000, keyBudgetPercent: 80 }, 'org', 999, 8);
      expect(outbox()).toHaveLength(2);
      // The queue takes the outbox; it is then empty.
      await t.flush();
      expect(outbox()).toHaveLength(0);
      expect(t.pending()).toBe(false);
    }));

  it('a new balance threshold already above the balance is a crossing at once', () =>
    withTriggers((t, outbox) => {
      t.configure({ balanceBelowMicros: 1_000_000, keyBudgetPercent: null }, 'org', 10, 1);
      expect(outbox()).toHaveLength(1);
    }));

  it('key budget: once per key, period and limit at the percentage', () =>
    withTriggers((t, outbox) => {
      t.configure({ balanceBelowMicros: null, keyBudgetPercent: 80 }, 'org', 0, 1);
      const charge = (spentMicros: number, limitMicros = 1_000, periodStart = 100, keyId = 'k') => t.keySpent('org', { keyId, periodStart, limitMicros, spentMicros }, 2);
      charge(799);
      expect(outbox()).toHaveLength(0);
      charge(800);
      charge(950);
      expect(outbox()).toHaveLength(1);
      expect(JSON.parse(outbox()[0].payload)).toMatchObject({ type: 'key.budget_threshold', data: { key_id: 'k', spent_micros: 800, limit_micros: 1_000, percent: 80 } });
      charge(900, 1_000, 200); // the next period
      charge(950, 2_000); // a raised limit: 950 is under 80 % of it
      charge(1_600, 2_000);
      charge(800, 1_000, 100, 'k2'); // another key
      expect(outbox().map((m) => m.keyId)).toEqual(['k', 'k', 'k', 'k2']);
    }));
});
