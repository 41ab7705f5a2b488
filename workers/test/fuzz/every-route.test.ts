/**
 * Hostile input on every route of the edge, from one table: each route gets an oversized body,
 * malformed JSON, bodies and fields of the wrong type, and out-of-range or non-finite numbers
 * (1e309 parses to Infinity, -0, integers past 2^53, numbers as strings). Every answer must be a
 * 4xx in the route's own error shape with a message (never a 5xx), and the route must still serve a
 * normal request afterwards. At the end the books reconcile: every org's object equals its ledger.
 *
 * Requests go through the worker's fetch handler with Stripe's secrets set (test/stripe-events.ts),
 * so the checkout routes and the Stripe webhook run for real against the local Stripe stand-in.
 */
import { env } from 'cloudflare:test';
import Stripe from 'stripe';
import { beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_MAX_BODY_BYTES, MAX_BODY_BYTES, WEBHOOK_MAX_BODY_BYTES } from '../../src/middleware/body-size.ts';
import { adminFetch, createTenant, eventually, type OrgReconciliation, type Tenant, useTestNode } from '../fixtures.ts';
import { callWorker, chargeRefunded, checkoutCompleted, stripeEnv, topUpSession, WEBHOOK_SECRET } from '../stripe-events.ts';
import { type Answer, readAnswer } from './answer.ts';

type Shape = 'openai' | 'anthropic';
type Auth = 'key' | 'admin' | 'none' | 'stripe';

interface Route {
  method: 'POST' | 'PUT' | 'DELETE';
  /** `:orgId` and `:keyId` are the second tenant's, filled in when sent. */
  path: string;
  auth: Auth;
  shape: Shape;
  limit: number;
  /** A body the route serves (2xx): sent last, to show the route still works. */
  valid: () => Record<string, unknown>;
  /** Fields of `valid` that are numbers, and whether they must be whole. */
  numbers: Record<string, 'int' | 'real'>;
  /** The fields given wrong types (default: every field of `valid`). */
  fields?: string[];
  /** Whether a served body starts a generation on the node. */
  generates?: boolean;
  /** More bodies that may be served or refused, but never with a 5xx. */
  lenient?: () => string[];
}

let tenant: Tenant;
let other: Tenant;
const hi = [{ role: 'user', content: 'hi' }];

const v1 = (path: string, valid: () => Record<string, unknown>, numbers: Route['numbers'] = {}, shape: Shape = 'openai'): Route => ({
  method: 'POST', path: `/v1${path}`, auth: 'key', shape, limit: MAX_BODY_BYTES, valid, numbers,
  generates: 'max_tokens' in valid() || 'max_output_tokens' in valid(),
});
const admin = (method: Route['method'], path: string, valid: () => Record<string, unknown>, numbers: Route['numbers'] = {}): Route => ({
  method, path: `/admin${path}`, auth: 'admin', shape: 'openai', limit: CONTROL_MAX_BODY_BYTES, valid, numbers,
});
const dashboard = (method: Route['method'], path: string, valid: () => Record<string, unknown>, numbers: Route['numbers'] = {}): Route => ({
  method, path: `/dashboard${path}`, auth: 'admin', shape: 'openai', limit: CONTROL_MAX_BODY_BYTES, valid, numbers,
});

/** Every route of the edge that takes a body. The GET-only routes are below, with hostile paths and queries. */
const ROUTES: Route[] = [
  v1('/chat/completions', () => ({ model: 'k2-tiny', messages: hi, max_tokens: 1 }), { max_tokens: 'int', temperature: 'real', top_p: 'real', n: 'int', seed: 'int' }),
  v1('/completions', () => ({ model: 'k2-tiny', prompt: 'hi', max_tokens: 1 }), { max_tokens: 'int', temperature: 'real', logprobs: 'int' }),
  v1('/messages', () => ({ model: 'k2-tiny', messages: hi, max_tokens: 1 }), { max_tokens: 'int', temperature: 'real', top_k: 'int' }, 'anthropic'),
  v1('/messages/count_tokens', () => ({ model: 'k2-tiny', messages: hi }), {}, 'anthropic'),
  v1('/responses', () => ({ model: 'k2-tiny', input: 'hi', max_output_tokens: 1 }), { max_output_tokens: 'int', temperature: 'real', top_logprobs: 'int' }),
  v1('/tokenizers/estimate-token-count', () => ({ model: 'k2-tiny', messages: hi })),
  v1('/billing/checkout', () => ({ amount_cents: 500 }), { amount_cents: 'int' }),
  {
    method: 'POST', path: '/webhooks/stripe', auth: 'stripe', shape: 'openai', limit: WEBHOOK_MAX_BODY_BYTES,
    valid: () => checkoutCompleted(topUpSession(tenant.orgId, 500)) as unknown as Record<string, unknown>,
    numbers: {},
    // The envelope; the rest of an event is Stripe's, not read.
    fields: ['id', 'type', 'data'],
    // Stripe's own objects are acknowledged (200, ignored) when a field is unusable, so Stripe stops
    // redelivering them; a paid session's amount and each field's type are what a forger would bend.
    lenient: () => {
      const marker = '"__hostile_literal__"';
      const withAmount = (literal: string) => JSON.stringify(checkoutCompleted(topUpSession(tenant.orgId, 500, { amount_total: '__hostile_literal__' }))).replace(marker, literal);
      const withObjectField = (field: string, literal: string) => JSON.stringify(checkoutCompleted(topUpSession(tenant.orgId, 500, { [field]: '__hostile_literal__' }))).replace(marker, literal);
      return [
        ...[...NOT_NUMBERS, ...NOT_INTEGERS, ...EDGE_NUMBERS].map(withAmount),
        ...['metadata', 'client_reference_id', 'payment_intent', 'payment_status', 'currency', 'id', 'customer_details'].flatMap((f) => WRONG_FIELD_VALUES.map((l) => withObjectField(f, l))),
        ...WRONG_FIELD_VALUES.map((l) => JSON.stringify(chargeRefunded(topUpSession(tenant.orgId, 500, { payment_intent: '__hostile_literal__' }), 100)).replace(marker, l)),
        ...[...NOT_NUMBERS, ...EDGE_NUMBERS].map((l) => JSON.stringify(chargeRefunded(topUpSession(tenant.orgId, 500), '__hostile_literal__' as unknown as number)).replace(marker, l)),
      ];
    },
  },
  admin('POST', '/organizations', () => ({ name: 'hostile' })),
  admin('POST', '/keys', () => ({ org_id: other.orgId }), { expires_at: 'int' }),
  admin('POST', '/credit', () => ({ org_id: other.orgId, amount_micros: 1 }), { amount_micros: 'int' }),
  admin('POST', '/prices', () => ({ model: 'k2-tiny', input_cache_miss: 600_000, input_cache_hit: 150_000, output: 2_500_000, effective_from: Date.now() + 86_400_000 }), { input_cache_miss: 'int', output: 'int', effective_from: 'int' }),
  admin('POST', '/nodes', () => ({ pool: 'hostile-pool', url: 'http://127.0.0.1:1' })),
  admin('DELETE', '/nodes', () => ({ pool: 'hostile-pool', url: 'http://127.0.0.1:1' })),
  admin('PUT', '/organizations/:orgId/limits', () => ({ rpm: 1000 }), { rpm: 'int', tpm: 'int', concurrency: 'int' }),
  admin('PUT', '/keys/:keyId/limits', () => ({ rpm: 1000 }), { rpm: 'int', tpd: 'int', concurrency: 'int' }),
  admin('PUT', '/keys/:keyId/budget', () => ({ limit_micros: 1_000_000, period: 'monthly' }), { limit_micros: 'int' }),
  admin('PUT', '/keys/:keyId/allowed-models', () => ({ models: ['k2-tiny'] })),
  admin('PUT', '/organizations/:orgId/alerts', () => ({ webhook_url: 'https://example.com/hook', key_budget_percent: 80 }), { balance_below_micros: 'int', key_budget_percent: 'int' }),
  admin('POST', '/models/k2-tiny/backends', () => ({ name: `hostile-${crypto.randomUUID().slice(0, 8)}`, kind: 'pool', pool: 'k2-tiny', priority: 5 }), { priority: 'int', weight: 'int' }),
  { ...dashboard('POST', '/session', () => ({ token: tenant.key })), auth: 'none' },
  dashboard('POST', '/api/keys', () => ({ org_id: other.orgId, name: 'from the dashboard' })),
  dashboard('PUT', '/api/keys/:keyId/budget', () => ({ limit_micros: 2_000_000, period: 'daily' }), { limit_micros: 'int' }),
  dashboard('PUT', '/api/keys/:keyId/allowed-models', () => ({ models: null })),
  dashboard('PUT', '/api/alerts', () => ({ org_id: other.orgId, webhook_url: 'https://example.com/hook', balance_below_micros: 5 }), { balance_below_micros: 'int', key_budget_percent: 'int' }),
  dashboard('POST', '/api/billing/checkout', () => ({ org_id: other.orgId, amount_cents: 500 }), { amount_cents: 'int' }),
];

const MALFORMED = ['', '{', '{"model":', 'nul', '{"a":1}}', "{'model':'k2-tiny'}", '\u0000', '{"model":"\ud800', '[1,2', '{"model":"k2-tiny",}', 'NaN', '{"n":1e309}x'];
const WRONG_BODIES = ['null', '[]', '42', '"text"', 'true', '[{}]', '[null]'];
const WRONG_FIELD_VALUES = ['{}', '[[]]', 'true', '{"$gt":0}'];
/** Never valid for a number field: non-finite, not a number at all. */
const NOT_NUMBERS = ['1e309', '-1e309', '1e400', '"12"', 'true', '[]', '{}', '"Infinity"', '"NaN"'];
/** Never valid for a whole-number field: fractional, or past 2^53 where integers stop being exact. */
const NOT_INTEGERS = ['1.5', '9007199254740993', '1e300', '-1e300', '0.1e1000'];
/** Maybe valid, maybe not (a zero, a negative, the largest safe integer): never a 5xx either way. */
const EDGE_NUMBERS = ['-0', '0', '-1', '9007199254740991', '-9007199254740991', '1e-320', '5e-324'];
/** The same kinds, fewer of them, where a served one costs a generation on the node. */
const EDGE_NUMBERS_GENERATING = ['-0', '9007199254740991', '-9007199254740991', '5e-324'];

function pathOf(route: Route): string {
  return route.path.replace(':orgId', other.orgId).replace(':keyId', other.keyId);
}

async function send(route: Route, body: string | ReadableStream<Uint8Array>): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (route.auth === 'key') headers.authorization = `Bearer ${tenant.key}`;
  if (route.auth === 'admin') headers.authorization = `Bearer ${env.ADMIN_TOKEN}`;
  if (route.auth === 'stripe' && typeof body === 'string') {
    // Signed with the real secret: the hostile body reaches the event handling, not just the signature check.
    headers['stripe-signature'] = await Stripe.webhooks.generateTestHeaderStringAsync({ payload: body, secret: WEBHOOK_SECRET, cryptoProvider: Stripe.createSubtleCryptoProvider() });
  }
  // @ts-expect-error: `duplex` is required for a streamed request body but missing from the lib types.
  const res = await callWorker(stripeEnv(), pathOf(route), { method: route.method, headers, body, duplex: 'half' });
  if (res.ok && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    // A generation that was served: its status is the answer; hanging up cancels it on the node.
    await res.body?.cancel();
    return { status: res.status, body: '(served as a stream; hung up)', contentType: res.headers.get('content-type')! };
  }
  return readAnswer(res);
}

function label(route: Route, sent: string): string {
  return `${route.method} ${pathOf(route)} ← ${sent.slice(0, 120)}`;
}

/** A 4xx in the route's error shape, with a message. */
function expectRefused(route: Route, sent: string, r: Answer) {
  const what = `${label(route, sent)} → ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`;
  expect(r.status, what).toBeGreaterThanOrEqual(400);
  expect(r.status, what).toBeLessThan(500);
  expect(r.contentType, what).toMatch(/^application\/json/);
  if (route.shape === 'anthropic') {
    const body = r.body as { type?: string; error?: { type?: unknown; message?: unknown } };
    expect(body.type, what).toBe('error');
    expect(typeof body.error?.type, what).toBe('string');
    expect(body.error?.message, what).toEqual(expect.stringMatching(/\S/));
  } else {
    const err = (r.body as { error?: Record<string, unknown> }).error;
    expect(err && Object.keys(err).sort(), what).toEqual(['code', 'message', 'param', 'type']);
    expect(err!.message, what).toEqual(expect.stringMatching(/\S/));
  }
}

/** Not a 5xx; and if refused, refused in the route's shape. */
function expectNoServerError(route: Route, sent: string, r: Answer) {
  expect(r.status, `${label(route, sent)} → ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`).toBeLessThan(500);
  if (r.status >= 400) expectRefused(route, sent, r);
}

/**
 * The valid body as JSON text with `field` set to the raw JSON literal `literal` (so 1e309 stays
 * 1e309), and any `extra` fields.
 */
function withField(route: Route, field: string, literal: string, extra: Record<string, unknown> = {}): string {
  const marker = '"__hostile_literal__"';
  return JSON.stringify({ ...route.valid(), ...extra, [field]: '__hostile_literal__' }).replace(marker, literal);
}

function streamOf(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new TextEncoder().encode('{'.repeat(16 * 1024));
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
}

beforeAll(async () => {
  await useTestNode();
  tenant = await createTenant({ creditMicros: 100_000_000, scopes: ['models:read', 'chat', 'completions', 'billing', 'keys:write'] });
  other = await createTenant({ creditMicros: 0 });
  // Hundreds of refused requests with one key: lift its rate limits out of the way.
  await adminFetch(`/keys/${tenant.keyId}/limits`, { rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 1000 }, 'PUT');
  await adminFetch(`/organizations/${tenant.orgId}/limits`, { rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 1000 }, 'PUT');
});

describe('hostile input on every edge route', () => {
  for (const route of ROUTES) {
    it(`${route.method} ${route.path}`, async () => {
      // Oversized, declared and streamed.
      const big = JSON.stringify({ ...route.valid(), pad: 'x'.repeat(route.limit) });
      let r = await send(route, big);
      expectRefused(route, 'oversized', r);
      expect(r.status).toBe(413);
      r = await send(route, streamOf(route.limit + 32 * 1024));
      expectRefused(route, 'oversized stream', r);
      expect(r.status).toBe(413);

      for (const text of [...MALFORMED, ...WRONG_BODIES]) expectRefused(route, text, await send(route, text));
      // An empty object may be valid (every field optional); it must not be a 5xx.
      const edge = ['{}', ...(route.lenient?.() ?? [])];
      for (const field of route.fields ?? Object.keys(route.valid())) {
        for (const literal of WRONG_FIELD_VALUES) {
          const body = withField(route, field, literal);
          expectRefused(route, body, await send(route, body));
        }
      }
      for (const [field, kind] of Object.entries(route.numbers)) {
        for (const literal of kind === 'int' ? [...NOT_NUMBERS, ...NOT_INTEGERS] : NOT_NUMBERS) {
          const body = withField(route, field, literal);
          expectRefused(route, body, await send(route, body));
        }
        // A served generation is streamed and hung up on at once: an accepted max_tokens of 2^53 − 1
        // would otherwise generate to the end of the context.
        const generates = route.generates ?? false;
        edge.push(...(generates ? EDGE_NUMBERS_GENERATING : EDGE_NUMBERS).map((literal) => withField(route, field, literal, generates ? { stream: true } : {})));
      }
      // Maybe served (a generation, a grant): sent together, so the node batches what it runs.
      const answers = await Promise.all(edge.map((body) => send(route, body)));
      edge.forEach((body, i) => expectNoServerError(route, body, answers[i]));

      // Still serving.
      const ok = await send(route, JSON.stringify(route.valid()));
      expect(ok.status, `${label(route, 'valid')} → ${JSON.stringify(ok.body).slice(0, 300)}`).toBeLessThan(300);
    }, 120_000);
  }

  it('GET routes: hostile paths and queries are 4xx in the OpenAI shape, never 5xx', async () => {
    const get = (path: string) => callWorker(env, path, { headers: { authorization: `Bearer ${tenant.key}` } });
    for (const path of ['/v1/models/%ff%fe', `/v1/models/${'x'.repeat(10_000)}`, '/v1/models/..%2f..%2fadmin%2fnodes', '/v1/models/%00', '/v1/models/__proto__', '/v1/key?%zz=%', '/v1/models?limit=1e309', '/dashboard/assets/constructor']) {
      const res = await get(path);
      const r = { status: res.status, body: await res.json().catch(() => null), contentType: res.headers.get('content-type') ?? '' };
      expectNoServerError(ROUTES[0], path, r);
    }
    expect((await get('/v1/models')).status).toBe(200);
    expect((await get('/v1/key')).status).toBe(200);
  });

  it('an org with more keys than D1 binds parameters in one query still lists them', async () => {
    const org = await createTenant({ creditMicros: 0 });
    for (let i = 0; i < 100; i++) expect((await adminFetch('/keys', { org_id: org.orgId })).status).toBe(201);
    const res = await callWorker(env, `/dashboard/api/keys?org=${org.orgId}`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(101);
  }, 60_000);

  it('afterwards the books reconcile: every org object equals its ledger, nothing left reserved', async () => {
    let last: OrgReconciliation[] = [];
    await eventually(async () => {
      last = ((await (await adminFetch('/reconcile')).json()) as { orgs: OrgReconciliation[] }).orgs;
      return last.length > 0 && last.every((o) => o.drift_micros === 0 && o.open_reservations === 0) ? true : undefined;
    }, 20_000).catch(() => {
      throw new Error(`books do not reconcile: ${JSON.stringify(last.filter((o) => o.drift_micros !== 0 || o.open_reservations !== 0))}`);
    });
    expect(last.map((o) => o.org_id)).toEqual(expect.arrayContaining([tenant.orgId, other.orgId]));
  }, 30_000);
});
