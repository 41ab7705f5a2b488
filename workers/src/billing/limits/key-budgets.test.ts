/**
 * KeyBudgets on a real Durable Object's SQLite storage, driven with explicit instants so period
 * boundaries can be crossed: a charge counts in the period its request was admitted in, and a new
 * period (at midnight in the budget's time zone) starts from zero.
 */
import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { KeyBudgets, type KeyBudget } from './key-budgets.ts';

const at = (iso: string) => Date.parse(iso);

/** A fresh object's storage (its own tables created by KeyBudgets, as OrgAccount does). */
function withStorage(fn: (sql: SqlStorage) => void | Promise<void>) {
  const stub = env.ORG_ACCOUNT.get(env.ORG_ACCOUNT.idFromName(`budgets-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_instance, state) => fn(state.storage.sql));
}

describe('KeyBudgets', () => {
  it('a request admitted before midnight is charged to that day; the next day starts from zero', () =>
    withStorage((sql) => {
      const budgets = new KeyBudgets(sql);
      const budget: KeyBudget = { limitMicros: 1_000, period: 'daily', timeZone: 'Europe/Paris' };
      // 22:59 UTC on 5 Dec is 23:59 in Paris.
      const late = at('2026-12-05T22:59:00Z');
      expect(budgets.tryHold('a', 'k', budget, 800, late)).toMatchObject({ ok: true, state: { heldMicros: 800, resetsAt: at('2026-12-05T23:00:00Z') } });
      // Two minutes later it is the 6th in Paris: the new day has its whole budget.
      const next = at('2026-12-05T23:01:00Z');
      expect(budgets.tryHold('b', 'k', budget, 1_000, next)).toMatchObject({ ok: true, state: { spentMicros: 0, heldMicros: 1_000, periodStart: at('2026-12-05T23:00:00Z') } });
      // 'a' finishes after midnight: it counts on the 5th, not against the 6th.
      expect(budgets.settle('a', 800)).toMatchObject({ spentMicros: 800, periodStart: at('2026-12-04T23:00:00Z') });
      expect(budgets.state('k', budget, next)).toMatchObject({ spentMicros: 0, heldMicros: 1_000 });
      expect(budgets.state('k', budget, late)).toMatchObject({ spentMicros: 800, heldMicros: 0, remainingMicros: 200 });
    }));

  it('a cancelled hold frees its room; changing only the limit keeps the spend, changing the period starts afresh', () =>
    withStorage((sql) => {
      const budgets = new KeyBudgets(sql);
      const now = at('2026-12-05T12:00:00Z');
      const monthly: KeyBudget = { limitMicros: 1_000, period: 'monthly', timeZone: 'UTC' };
      expect(budgets.tryHold('a', 'k', monthly, 600, now).ok).toBe(true);
      budgets.cancel('a');
      expect(budgets.state('k', monthly, now)).toMatchObject({ heldMicros: 0, remainingMicros: 1_000 });
      budgets.tryHold('b', 'k', monthly, 600, now);
      budgets.settle('b', 600);
      expect(budgets.state('k', { ...monthly, limitMicros: 2_000 }, now)).toMatchObject({ spentMicros: 600, remainingMicros: 1_400 });
      expect(budgets.state('k', { ...monthly, period: 'weekly' }, now)).toMatchObject({ spentMicros: 0 });
      // Another key of the org has its own spend.
      expect(budgets.state('k2', monthly, now)).toMatchObject({ spentMicros: 0 });
    }));

  it('survives a restart: holds and spend are read back from storage', () =>
    withStorage((sql) => {
      const now = at('2026-12-05T12:00:00Z');
      const budget: KeyBudget = { limitMicros: 1_000, period: 'total', timeZone: 'UTC' };
      const first = new KeyBudgets(sql);
      first.tryHold('a', 'k', budget, 300, now);
      first.tryHold('b', 'k', budget, 300, now);
      first.settle('a', 250);
      const reloaded = new KeyBudgets(sql);
      expect(reloaded.state('k', budget, now)).toMatchObject({ spentMicros: 250, heldMicros: 300, remainingMicros: 450, resetsAt: null });
      expect(reloaded.room('b')).toBe(750);
    }));
});
