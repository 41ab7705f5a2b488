// The node's two doors on the real app with the real engine (k2-tiny, reference kernels): the signed
// token-batch routes refuse every forgery the edge's signature is meant to stop, and accept the
// genuine request with the current or the previous secret.
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { NODE_AUTH_HEADERS, signNodeRequest } from '../../shared/node-auth.ts';
import type { GenerateRequest, NodeErrorBody, NodeEvent } from '../../shared/protocol.ts';
import type { Engine } from './engine/engine.ts';
import { loadEngine } from './engine/load-engine.ts';
import { selectKernels } from './kernels/select.ts';
import { ensureModel } from './model/make-model.ts';
import { NonceWindow, type NodeAuthConfig } from './request-auth.ts';
import { createApp } from './server.ts';

const MODEL_DIR = fileURLToPath(new URL('../../models/k2-tiny', import.meta.url));
const CURRENT = 'current-pool-secret';
const PREVIOUS = 'previous-pool-secret';
const auth: NodeAuthConfig = { secrets: [CURRENT, PREVIOUS], apiKeys: [], insecureNoAuth: false };

let engine: Engine;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  ensureModel(MODEL_DIR, 'k2-tiny');
  engine = await loadEngine(MODEL_DIR, { kernels: await selectKernels({ backend: 'reference' }), kvBlocks: 64, log: () => {} });
  app = createApp(() => engine, undefined, { auth });
});

let nextId = 0;
const body = () =>
  JSON.stringify({
    version: 1,
    request_id: `auth-${nextId++}`,
    model: 'k2-tiny',
    prompt_token_ids: [9906, 11, 1917, 0],
    sampling: { max_tokens: 2, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
  } satisfies GenerateRequest);

const generate = (text: string, headers: Record<string, string>) =>
  app.request('/v1/generate', { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...headers } });

async function expectRefused(res: Response, reason: RegExp): Promise<void> {
  expect(res.status).toBe(401);
  const err = ((await res.json()) as NodeErrorBody).error;
  expect(err.code).toBe('unauthorized');
  expect(err.message).toMatch(reason);
}

async function expectServed(res: Response): Promise<void> {
  expect(res.status).toBe(200);
  const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as NodeEvent);
  expect(events.at(-1)).toMatchObject({ type: 'finish', usage: { completion_tokens: 2 } });
}

describe('signed token-batch requests', () => {
  it('serves a request signed with the current secret', async () => {
    const text = body();
    await expectServed(await generate(text, await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: CURRENT })));
  });

  it('refuses an unsigned request', async () => {
    await expectRefused(await generate(body(), {}), /not signed/);
    await expectRefused(await app.request('/v1/load'), /not signed/);
    await expectRefused(await app.request('/v1/cancel', { method: 'POST', body: '{"version":1,"request_id":"x"}' }), /not signed/);
  });

  it('refuses a request signed with another secret', async () => {
    const text = body();
    await expectRefused(await generate(text, await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: 'not-the-pool-secret' })), /bad signature/);
  });

  it('refuses a stale or future timestamp (beyond ±30 s)', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const at of [now - 31, now + 31]) {
      const text = body();
      await expectRefused(await generate(text, await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: CURRENT, now: at })), /timestamp/);
    }
    // Inside the window is fine (clock drift between edge and node).
    const text = body();
    await expectServed(await generate(text, await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: CURRENT, now: now - 20 })));
  });

  it('refuses a replayed request (same nonce)', async () => {
    const text = body();
    const headers = await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: CURRENT });
    await expectServed(await generate(text, headers));
    await expectRefused(await generate(text, headers), /replayed/);
  });

  it('refuses a body swapped after signing, and a signature moved to another path', async () => {
    const signedText = body();
    const headers = await signNodeRequest({ method: 'POST', path: '/v1/generate', body: signedText, secret: CURRENT });
    const swapped = signedText.replace('"max_tokens":2', '"max_tokens":200');
    expect(swapped).not.toBe(signedText);
    await expectRefused(await generate(swapped, headers), /bad signature/);
    const cancel = '{"version":1,"request_id":"x"}';
    const forGenerate = await signNodeRequest({ method: 'POST', path: '/v1/generate', body: cancel, secret: CURRENT });
    await expectRefused(await app.request('/v1/cancel', { method: 'POST', body: cancel, headers: forGenerate }), /bad signature/);
  });

  it('accepts the previous secret during a rotation, and nothing once it is dropped', async () => {
    const text = body();
    await expectServed(await generate(text, await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: PREVIOUS })));
    const rotated = createApp(() => engine, undefined, { auth: { ...auth, secrets: [CURRENT] } });
    const again = body();
    const res = await rotated.request('/v1/generate', { method: 'POST', body: again, headers: await signNodeRequest({ method: 'POST', path: '/v1/generate', body: again, secret: PREVIOUS }) });
    await expectRefused(res, /bad signature/);
  });

  it('refuses everything when the node has no secret, unless started with --insecure-no-auth', async () => {
    const text = body();
    const headers = await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: CURRENT });
    const closed = createApp(() => engine, undefined, { auth: { secrets: [], apiKeys: [], insecureNoAuth: false } });
    await expectRefused(await closed.request('/v1/generate', { method: 'POST', body: text, headers }), /no signing secret/);
    const open = createApp(() => engine, undefined, { auth: { secrets: [], apiKeys: [], insecureNoAuth: true } });
    await expectServed(await open.request('/v1/generate', { method: 'POST', body: body() }));
  });

  it('refuses a malformed signature header without a 500', async () => {
    const text = body();
    const headers = await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: CURRENT });
    await expectRefused(await generate(text, { ...headers, [NODE_AUTH_HEADERS.signature]: '%%%' }), /malformed signature/);
    await expectRefused(await generate(text, { ...headers, [NODE_AUTH_HEADERS.timestamp]: 'soon' }), /malformed/);
  });
});

describe('NonceWindow', () => {
  it('forgets a nonce once its window has passed, and refuses new ones when full of live ones', () => {
    const w = new NonceWindow(2);
    expect(w.admit('a', 1000)).toBe('ok');
    expect(w.admit('a', 1010)).toBe('replayed');
    expect(w.admit('b', 1010)).toBe('ok');
    expect(w.admit('c', 1010)).toBe('full');
    // 'a' expires 60 s after it was seen (a timestamp up to 30 s ahead, valid 30 s after that).
    expect(w.admit('c', 1061)).toBe('ok');
    expect(w.size).toBe(2);
  });
});
