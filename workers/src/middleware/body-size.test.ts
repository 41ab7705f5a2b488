/**
 * Every route family has a body limit, applied before anything authenticates or reads the body:
 * a body over it is a 413 in that family's error shape, whether it declares its length
 * (Content-Length) or streams without one (counted as it arrives). A body under it still works.
 */
import { env, SELF } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminFetch, createTenant, type Tenant } from '../../test/fixtures.ts';
import { checkoutCompleted, deliver, topUpSession } from '../../test/stripe-events.ts';
import { CONTROL_MAX_BODY_BYTES, MAX_BODY_BYTES, WEBHOOK_MAX_BODY_BYTES } from './body-size.ts';

const BASE = 'https://edge.test';

let tenant: Tenant;
beforeAll(async () => {
  tenant = await createTenant({ creditMicros: 0 });
});

type Shape = 'openai' | 'anthropic';

interface Family {
  name: string;
  method: string;
  path: string;
  limit: number;
  shape: Shape;
  headers: () => Record<string, string>;
}

const admin = () => ({ authorization: `Bearer ${env.ADMIN_TOKEN}` });
const apiKey = () => ({ authorization: `Bearer ${tenant.key}` });

/** One write route per family; the limit is the family's, whichever route of it is called. */
const FAMILIES: Family[] = [
  { name: 'OpenAI API', method: 'POST', path: '/v1/chat/completions', limit: MAX_BODY_BYTES, shape: 'openai', headers: apiKey },
  { name: 'Anthropic API', method: 'POST', path: '/v1/messages', limit: MAX_BODY_BYTES, shape: 'anthropic', headers: apiKey },
  { name: 'dashboard sign-in (anonymous)', method: 'POST', path: '/dashboard/session', limit: CONTROL_MAX_BODY_BYTES, shape: 'openai', headers: () => ({}) },
  { name: 'dashboard API', method: 'POST', path: '/dashboard/api/keys', limit: CONTROL_MAX_BODY_BYTES, shape: 'openai', headers: admin },
  { name: 'dashboard API (PUT)', method: 'PUT', path: `/dashboard/api/alerts`, limit: CONTROL_MAX_BODY_BYTES, shape: 'openai', headers: admin },
  { name: 'admin API', method: 'POST', path: '/admin/organizations', limit: CONTROL_MAX_BODY_BYTES, shape: 'openai', headers: admin },
  { name: 'admin API (PUT)', method: 'PUT', path: '/admin/keys/nokey/limits', limit: CONTROL_MAX_BODY_BYTES, shape: 'openai', headers: admin },
  { name: 'Stripe webhook (unsigned)', method: 'POST', path: '/webhooks/stripe', limit: WEBHOOK_MAX_BODY_BYTES, shape: 'openai', headers: () => ({ 'stripe-signature': 't=1,v1=00' }) },
  { name: 'an unknown route', method: 'POST', path: '/nowhere', limit: CONTROL_MAX_BODY_BYTES, shape: 'openai', headers: () => ({}) },
];

/** A JSON-looking body of exactly `bytes` bytes. */
function jsonOf(bytes: number): string {
  const frame = '{"pad":""}';
  return `{"pad":"${'a'.repeat(bytes - frame.length)}"}`;
}

/** `bytes` or more bytes streamed in 16 KiB chunks, with no Content-Length (chunked on the wire). */
function streamOf(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new TextEncoder().encode('a'.repeat(16 * 1024));
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
}

async function send(f: Family, body: string | ReadableStream<Uint8Array>): Promise<Response> {
  return SELF.fetch(`${BASE}${f.path}`, {
    method: f.method,
    headers: { 'content-type': 'application/json', ...f.headers() },
    body,
    // @ts-expect-error: `duplex` is required for a streamed request body but missing from the lib types.
    duplex: 'half',
    signal: AbortSignal.timeout(20_000),
  });
}

async function expectTooLarge(f: Family, res: Response) {
  expect(res.status, f.name).toBe(413);
  expect(res.headers.get('content-type'), f.name).toMatch(/^application\/json/);
  const body = (await res.json()) as Record<string, unknown>;
  if (f.shape === 'anthropic') {
    expect(body, f.name).toEqual({ type: 'error', error: { type: 'request_too_large', message: expect.stringContaining(`at most ${f.limit} bytes`) } });
  } else {
    expect(body, f.name).toEqual({ error: { type: 'invalid_request_error', code: 'request_too_large', param: null, message: expect.stringContaining(`at most ${f.limit} bytes`) } });
  }
}

describe('body limit on every route family', () => {
  it('the families get their own limits: large prompts for inference, a Stripe event, small control bodies', () => {
    expect(MAX_BODY_BYTES).toBe(4 * 1024 * 1024);
    expect(WEBHOOK_MAX_BODY_BYTES).toBeLessThan(MAX_BODY_BYTES);
    expect(CONTROL_MAX_BODY_BYTES).toBeLessThan(WEBHOOK_MAX_BODY_BYTES);
  });

  for (const f of FAMILIES) {
    it(`${f.name}: a declared length one byte over the limit is a 413 in its shape`, async () => {
      await expectTooLarge(f, await send(f, jsonOf(f.limit + 1)));
    }, 30_000);

    it(`${f.name}: a streamed body with no length is counted and cut off at the limit`, async () => {
      await expectTooLarge(f, await send(f, streamOf(f.limit + 64 * 1024)));
    }, 30_000);
  }

  it('the limit comes before authentication: a bad admin token with a huge body is a 413, not a 401', async () => {
    const f = { ...FAMILIES.find((x) => x.path === '/admin/organizations')!, headers: () => ({ authorization: 'Bearer wrong' }) };
    await expectTooLarge(f, await send(f, jsonOf(f.limit + 1)));
  });
});

describe('bodies under the limit still work', () => {
  it('dashboard sign-in, streamed or not', async () => {
    const f = FAMILIES.find((x) => x.path === '/dashboard/session')!;
    const token = JSON.stringify({ token: tenant.key });
    expect(await (await send(f, token)).json()).toEqual({ role: 'key', org_id: tenant.orgId, key_id: tenant.keyId });
    const streamed = await send(f, new Blob([token]).stream());
    expect(streamed.status).toBe(200);
  });

  it('dashboard API and admin API writes', async () => {
    const dash = await send(FAMILIES.find((x) => x.path === '/dashboard/api/keys')!, JSON.stringify({ org_id: tenant.orgId, name: 'n'.repeat(200) }));
    expect(dash.status).toBe(201);
    expect((await adminFetch('/organizations', { name: 'o'.repeat(200) })).status).toBe(201);
    // Near the limit: the largest admin body (a 200-model allowlist) fits, is read and validated.
    const models = Array.from({ length: 200 }, (_, i) => `${i}`.padEnd(200, 'm'));
    expect(JSON.stringify({ models }).length).toBeLessThan(CONTROL_MAX_BODY_BYTES);
    const allow = await adminFetch(`/keys/${tenant.keyId}/allowed-models`, { models }, 'PUT');
    expect(allow.status).toBe(400);
    expect(await allow.json()).toMatchObject({ error: { code: 'model_not_found', param: 'models.0' } });
  });

  it('a signed Stripe event', async () => {
    const res = await deliver(checkoutCompleted(topUpSession(tenant.orgId, 100)));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ received: true, action: 'granted' });
  });

  it('a prompt over the control limit on the inference API reaches validation (400, not 413)', async () => {
    const res = await SELF.fetch(`${BASE}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...apiKey() },
      body: JSON.stringify({ model: 'k2-tiny', messages: 'x'.repeat(CONTROL_MAX_BODY_BYTES * 2) }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { param: 'messages' } });
  });
});
