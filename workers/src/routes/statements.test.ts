import { SELF } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { costMicros } from '../../../shared/pricing.ts';
import type { Statement } from '../billing/statement.ts';
import { createOrganization, database, priceAt } from '../db/queries.ts';
import { grantCredit, recordUsage } from '../billing/ledger.ts';

const ADMIN = { authorization: 'Bearer test-admin-token' };
const NOV = Date.UTC(2026, 10, 1);
const DEC = Date.UTC(2026, 11, 1);

interface Event {
  modelId: string;
  keyId: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
  finishedAt: number;
}

/** Writes usage through the real metering query (usage row + ledger debit), as requests do. */
async function seed(orgId: string): Promise<Event[]> {
  const db = database(env.DB);
  await createOrganization(db, orgId, orgId);
  const events: Event[] = [];
  let n = 0;
  for (const modelId of ['k2-tiny', 'kimi-k2-thinking']) {
    const price = (await priceAt(db, modelId, NOV))!;
    for (const keyId of ['key_a', 'key_b', 'key_c']) {
      for (let i = 0; i < 4; i++) {
        n++;
        // Spread over the month, and one event in the last millisecond of October / first of December.
        const finishedAt = i === 0 ? NOV - 1 : i === 3 ? DEC : NOV + n * 3_600_000;
        const promptTokens = 100 + ((n * 37) % 900);
        const tokens = { promptTokens, cachedTokens: (n * 53) % promptTokens, completionTokens: (n * 101) % 700 };
        const { inputCacheMiss, inputCacheHit, output } = price;
        const cost = costMicros({ inputCacheMiss, inputCacheHit, output }, tokens);
        const event = { modelId, keyId, ...tokens, costMicros: cost, finishedAt };
        await recordUsage(db, {
          requestId: `req_${orgId}_${n}`,
          orgId,
          keyId,
          modelId,
          endpoint: 'chat.completions',
          ...tokens,
          priceId: price.id,
          costMicros: event.costMicros,
          status: 'completed',
          finishReason: 'stop',
          startedAt: finishedAt - 1_000,
          finishedAt,
        });
        events.push(event);
      }
    }
  }
  return events;
}

function sumOf(events: Event[]) {
  const s = { requests: 0, prompt_tokens: 0, cached_tokens: 0, uncached_prompt_tokens: 0, completion_tokens: 0, cost_micros: 0 };
  for (const e of events) {
    s.requests++;
    s.prompt_tokens += e.promptTokens;
    s.cached_tokens += e.cachedTokens;
    s.uncached_prompt_tokens += e.promptTokens - e.cachedTokens;
    s.completion_tokens += e.completionTokens;
    s.cost_micros += e.costMicros;
  }
  return s;
}

describe('GET /admin/organizations/:orgId/statements/:month', () => {
  it('statement totals equal the sum of the month’s usage events, by model and by key', async () => {
    const orgId = `org_${crypto.randomUUID().slice(0, 8)}`;
    const events = await seed(orgId);
    await seed(`${orgId}_other`); // another org's usage must not appear
    const inNov = events.filter((e) => e.finishedAt >= NOV && e.finishedAt < DEC);

    const res = await SELF.fetch(`http://x/admin/organizations/${orgId}/statements/2026-11`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const statement: Statement = await res.json();
    expect(statement.totals).toEqual(sumOf(inNov));
    for (const m of statement.by_model) {
      const { model_id, ...totals } = m;
      expect(totals).toEqual(sumOf(inNov.filter((e) => e.modelId === model_id)));
    }
    for (const k of statement.by_key) {
      const { key_id, ...totals } = k;
      expect(totals).toEqual(sumOf(inNov.filter((e) => e.keyId === key_id)));
    }
    expect(statement.by_model.map((m) => m.model_id)).toEqual(['k2-tiny', 'kimi-k2-thinking']);
    expect(statement.by_key.map((k) => k.key_id)).toEqual(['key_a', 'key_b', 'key_c']);
    expect(statement.lines).toHaveLength(6);
  });

  it('credits reconcile: closing = opening + granted − usage, usage = the statement’s cost', async () => {
    const orgId = `org_${crypto.randomUUID().slice(0, 8)}`;
    const events = await seed(orgId);
    // The ledger dates grants now; these tests run after 2026-11 only if the clock says so, so
    // compare against the month the grants actually fall in.
    await grantCredit(database(env.DB), orgId, 5_000_000, 'top-up');
    const now = new Date();
    const month = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
    const statement: Statement = await (
      await SELF.fetch(`http://x/admin/organizations/${orgId}/statements/${month}`, { headers: ADMIN })
    ).json();
    const { opening_balance_micros, granted_micros, usage_micros, closing_balance_micros } = statement.credits;
    expect(closing_balance_micros).toBe(opening_balance_micros + granted_micros - usage_micros);
    expect(usage_micros).toBe(statement.totals.cost_micros);
    expect(granted_micros).toBe(5_000_000);
    const before = events.filter((e) => e.finishedAt < statement.period_start);
    expect(opening_balance_micros).toBe(-before.reduce((s, e) => s + e.costMicros, 0));
  });

  it('serves the same numbers as CSV', async () => {
    const orgId = `org_${crypto.randomUUID().slice(0, 8)}`;
    await seed(orgId);
    const url = `http://x/admin/organizations/${orgId}/statements/2026-11`;
    const json: Statement = await (await SELF.fetch(url, { headers: ADMIN })).json();
    const res = await SELF.fetch(`${url}?format=csv`, { headers: ADMIN });
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    const [header, ...rows] = (await res.text()).trimEnd().split('\r\n').map((l) => l.split(','));
    expect(header).toEqual([
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
    ]);
    const total = rows.find((r) => r[0] === 'total')!;
    expect(total.slice(3, 9).map(Number)).toEqual([
      json.totals.requests,
      json.totals.prompt_tokens,
      json.totals.cached_tokens,
      json.totals.uncached_prompt_tokens,
      json.totals.completion_tokens,
      json.totals.cost_micros,
    ]);
    // amount_usd is the exact decimal of amount_micros.
    expect(total[9]).toBe((json.totals.cost_micros / 1e6).toFixed(6));
    const lineCost = rows.filter((r) => r[0] === 'line').reduce((s, r) => s + Number(r[8]), 0);
    expect(lineCost).toBe(json.totals.cost_micros);
  });

  it('answers OpenAI-shaped errors for a bad month, an unknown org, and without the admin token', async () => {
    const bad = await SELF.fetch('http://x/admin/organizations/org_x/statements/2026-13', { headers: ADMIN });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'month' } });
    const unknown = await SELF.fetch('http://x/admin/organizations/nope/statements/2026-11', { headers: ADMIN });
    expect(unknown.status).toBe(404);
    const anonymous = await SELF.fetch('http://x/admin/organizations/nope/statements/2026-11');
    expect(anonymous.status).toBe(401);
  });
});
