/**
 * Spend control through the worker: a key's budget (402 key_budget_exceeded with its reset, spend
 * shown by GET /v1/key), its model allowlist (403 model_not_allowed, nothing taken), and tokens
 * per day (429 with the day's headers). Real D1, real OrgAccount, the test GPU node.
 */
import { env, SELF } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { usageEventsForRequest } from '../billing/ledger.ts';
import { costMicros } from '../../../shared/pricing.ts';
import { database, priceAt } from '../db/queries.ts';
import { adminFetch, api, createTenant, eventually, expectReconciled, useTestNode } from '../../test/fixtures.ts';

const chat = (model = 'k2-tiny') => ({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0 });
const DAY_MS = 86_400_000;

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

describe('spend control through the API', () => {
  beforeAll(async () => {
    await useTestNode();
  });

  it('a key over its budget gets 402 key_budget_exceeded saying when it resets; GET /v1/key shows the spend', async () => {
    const t = await createTenant();
    const put = await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: 1_000_000, period: 'daily' }, 'PUT');
    expect(put.status).toBe(200);
    const midnight = Date.now() - (Date.now() % DAY_MS) + DAY_MS;
    expect(await put.json()).toMatchObject({ budget: { limit_micros: 1_000_000, period: 'daily', time_zone: 'UTC', spent_micros: 0, resets_at: midnight } });

    const ok = await api('/chat/completions', t.key, chat());
    expect(ok.status).toBe(200);
    await ok.json();
    const [row] = await eventually(async () => {
      const rows = await usageEventsForRequest(database(env.DB), ok.headers.get('x-request-id')!);
      return rows.length > 0 ? rows : undefined;
    });
    const view = await (await api('/key', t.key)).json();
    expect(view).toMatchObject({ object: 'key', id: t.keyId, org_id: t.orgId, budget: { limit_micros: 1_000_000, spent_micros: row.costMicros, held_micros: 0, resets_at: midnight } });

    // Lower the cap under what one more request's worst case needs.
    await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: row.costMicros + 1, period: 'daily', time_zone: 'UTC' }, 'PUT');
    const refused = await api('/chat/completions', t.key, chat());
    expect(refused.status).toBe(402);
    const body = (await refused.json()) as ErrorBody;
    expect(body.error).toMatchObject({ type: 'insufficient_quota', code: 'key_budget_exceeded' });
    expect(body.error.message).toContain(`resets at ${new Date(midnight).toISOString()}`);
    expect(refused.headers.get('x-key-budget-resets-at')).toBe(new Date(midnight).toISOString());
    // Nothing held for the refused request; the org's balance was charged the one request only.
    expect(await (await adminFetch(`/organizations/${t.orgId}/account`)).json()).toMatchObject({ open_reservations: 0, balance_micros: 10_000_000 - row.costMicros });

    // Removing the budget lets the key spend again.
    expect((await adminFetch(`/keys/${t.keyId}/budget`, undefined, 'DELETE')).status).toBe(200);
    const again = await api('/chat/completions', t.key, chat());
    expect(again.status).toBe(200);
    await again.json();
  });

  it('100 concurrent requests on a key with a budget for 10: 10 admitted, 90 get 402, charges within the cap', async () => {
    // The prompt's size decides the worst case; measure it once with another tenant.
    const probe = await createTenant();
    const probed = (await (await api('/chat/completions', probe.key, { ...chat(), max_tokens: 1 })).json()) as { usage: { prompt_tokens: number } };
    const price = (await priceAt(database(env.DB), 'k2-tiny', Date.now()))!;
    const worst = costMicros(price, { promptTokens: probed.usage.prompt_tokens, cachedTokens: 0, completionTokens: 4 });

    // The org could pay for all of them; the key's cap admits 10.
    const t = await createTenant({ creditMicros: 1_000 * worst });
    await adminFetch(`/organizations/${t.orgId}/limits`, { plan: 'tier5' }, 'PUT');
    await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: 10 * worst, period: 'monthly' }, 'PUT');
    // Streams: a 200 means admitted, and nothing settles until its body is read, so the count of
    // admissions does not depend on how fast the node answers.
    const responses = await Promise.all(Array.from({ length: 100 }, () => api('/chat/completions', t.key, { ...chat(), stream: true })));
    const admitted = responses.filter((r) => r.status === 200);
    const refused = responses.filter((r) => r.status === 402);
    expect(admitted).toHaveLength(10);
    expect(refused).toHaveLength(90);
    for (const r of refused) expect(((await r.json()) as ErrorBody).error.code).toBe('key_budget_exceeded');
    await Promise.all(admitted.map((r) => r.text()));
    const rows = await Promise.all(
      admitted.map((r) =>
        eventually(async () => (await usageEventsForRequest(database(env.DB), r.headers.get('x-request-id')!))[0]),
      ),
    );
    const charged = rows.reduce((sum, row) => sum + row.costMicros, 0);
    expect(charged).toBeLessThanOrEqual(10 * worst);
    const reconciled = await expectReconciled(t.orgId);
    expect(reconciled.ledger_micros).toBe(1_000 * worst - charged);
    expect(await (await api('/key', t.key)).json()).toMatchObject({ budget: { spent_micros: charged, held_micros: 0, remaining_micros: 10 * worst - charged } });
  });

  it('budgets in a time zone reset at its midnight; bad budgets are a 400 naming the field', async () => {
    const t = await createTenant({ creditMicros: 0 });
    const tokyo = await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: 5, period: 'monthly', time_zone: 'Asia/Tokyo' }, 'PUT');
    const b = ((await tokyo.json()) as { budget: { period_start: number; resets_at: number } }).budget;
    // Months in Tokyo (UTC+9) start at 15:00 UTC the day before the 1st.
    expect(new Date(b.period_start).toISOString()).toMatch(/T15:00:00\.000Z$/);
    expect(new Date(b.resets_at).toISOString()).toMatch(/T15:00:00\.000Z$/);
    const badZone = await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: 5, period: 'daily', time_zone: 'Mars/Base' }, 'PUT');
    expect(badZone.status).toBe(400);
    expect(await badZone.json()).toMatchObject({ error: { param: 'time_zone' } });
    const badPeriod = await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: 5, period: 'hourly' }, 'PUT');
    expect(await badPeriod.json()).toMatchObject({ error: { param: 'period' } });
    const negative = await adminFetch(`/keys/${t.keyId}/budget`, { limit_micros: -1, period: 'daily' }, 'PUT');
    expect(await negative.json()).toMatchObject({ error: { param: 'limit_micros' } });
    expect((await adminFetch('/keys/nope/budget', { limit_micros: 5, period: 'daily' }, 'PUT')).status).toBe(404);
    expect(await (await adminFetch(`/keys/${t.keyId}/budget`)).json()).toMatchObject({ budget: { limit_micros: 5, period: 'monthly', time_zone: 'Asia/Tokyo' } });
  });

  it('a model off the key’s allowlist is a 403 naming it, before any rate slot or credit is taken', async () => {
    const t = await createTenant();
    // One request per minute: a refusal that took the slot would make the allowed request a 429.
    await adminFetch(`/keys/${t.keyId}/limits`, { rpm: 1 }, 'PUT');
    const put = await adminFetch(`/keys/${t.keyId}/allowed-models`, { models: ['kimi-k2-instruct'] }, 'PUT');
    expect(await put.json()).toMatchObject({ allowed_models: ['kimi-k2-instruct'] });
    for (let i = 0; i < 2; i++) {
      const refused = await api('/chat/completions', t.key, chat('k2-tiny'));
      expect(refused.status).toBe(403);
      const body = (await refused.json()) as ErrorBody;
      expect(body.error).toMatchObject({ type: 'permission_error', code: 'model_not_allowed', param: 'model' });
      expect(body.error.message).toContain("'k2-tiny'");
    }
    // GET /v1/models lists only what the key may use.
    const listed = (await (await api('/models', t.key)).json()) as { data: { id: string }[] };
    expect(listed.data.map((m) => m.id)).toEqual(['kimi-k2-instruct']);
    expect((await api('/models/k2-tiny', t.key)).status).toBe(403);

    await adminFetch(`/keys/${t.keyId}/allowed-models`, { models: ['k2-tiny', 'kimi-k2-instruct'] }, 'PUT');
    const ok = await api('/chat/completions', t.key, chat('k2-tiny'));
    expect(ok.status).toBe(200);
    await ok.json();
    expect(await (await api('/key', t.key)).json()).toMatchObject({ allowed_models: ['k2-tiny', 'kimi-k2-instruct'] });

    const unknown = await adminFetch(`/keys/${t.keyId}/allowed-models`, { models: ['k2-tiny', 'gpt-9'] }, 'PUT');
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ error: { param: 'models.1', code: 'model_not_found' } });
    expect(await (await adminFetch(`/keys/${t.keyId}/allowed-models`)).json()).toMatchObject({ key_id: t.keyId, allowed_models: ['k2-tiny', 'kimi-k2-instruct'] });
    const cleared = await adminFetch(`/keys/${t.keyId}/allowed-models`, { models: null }, 'PUT');
    expect(await cleared.json()).toMatchObject({ allowed_models: null });
    expect((await adminFetch('/keys/nope/allowed-models')).status).toBe(404);
  });

  it('tokens per day: a key past its TPD gets 429 rate_limit_tokens_per_day until the UTC day ends', async () => {
    const t = await createTenant();
    const set = await adminFetch(`/keys/${t.keyId}/limits`, { tpd: 200 }, 'PUT');
    expect(await set.json()).toMatchObject({ limits: { tpd: 200 } });
    const ok = await api('/chat/completions', t.key, chat());
    expect(ok.status).toBe(200);
    expect(Number(ok.headers.get('x-ratelimit-limit-tokens-day'))).toBe(200);
    const remaining = Number(ok.headers.get('x-ratelimit-remaining-tokens-day'));
    expect(remaining).toBeLessThan(200);
    await ok.json();
    // Ask for more than is left today.
    const refused = await api('/chat/completions', t.key, { ...chat(), max_tokens: 190 });
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_tokens_per_day' } });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((DAY_MS - (Date.now() % DAY_MS)) / 1000) + 1);
    expect(refused.headers.get('x-ratelimit-limit-tokens-day')).toBe('200');
    // The dashboard's account view shows the day beside the minute windows.
    const account = await SELF.fetch('https://edge.test/dashboard/api/account', { headers: { authorization: `Bearer ${t.key}` } });
    const view = (await account.json()) as { rate_limits: { key: { tpd: number; tokens_today: number }; org: { tpd: number } } };
    expect(view.rate_limits).toMatchObject({ key: { tpd: 200 }, org: { tpd: 10_000_000 } });
    // The worst case until the request settles, then its real count (never more).
    expect(view.rate_limits.key.tokens_today).toBeGreaterThan(0);
    expect(view.rate_limits.key.tokens_today).toBeLessThanOrEqual(200 - remaining);
  });
});
