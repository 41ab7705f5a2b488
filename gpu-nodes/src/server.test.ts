import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest, NodeErrorBody, NodeEvent, NodeLoad } from '../../shared/protocol.ts';
import { PROTOCOL_HEADER } from '../../shared/protocol.ts';
import { signNodeRequest } from '../../shared/node-auth.ts';
import { ensureModel } from './model/make-model.ts';
import { createApp } from './server.ts';

// A real `k2node serve` process on a free port, driven over HTTP. One running sequence and one queue
// slot, so the queue-full path is reachable with three requests.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODEL_DIR = fileURLToPath(new URL('../../models/k2-tiny', import.meta.url));

let child: ChildProcess;
let base = '';
const SECRET = 'server-test-secret';

beforeAll(async () => {
  ensureModel(MODEL_DIR, 'k2-tiny');
  child = spawn(process.execPath, ['gpu-nodes/src/cli.ts', 'serve', MODEL_DIR, '--port', '0', '--max-batch', '1', '--max-queue', '1', '--node-id', 'test-node', '--backend', 'reference'], {
    cwd: ROOT,
    env: { ...process.env, K2NODE_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`k2node exited with ${code}: ${out}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) base = m[1];
      if (base && out.includes('k2node: ready')) resolve();
    });
  });
});

afterAll(() => {
  child?.kill('SIGTERM');
});

let nextId = 0;
function request(over: Partial<GenerateRequest> = {}, maxTokens = 3): GenerateRequest {
  return {
    version: 1,
    request_id: `s${nextId++}`,
    model: 'k2-tiny',
    prompt_token_ids: [9906, 11, 1917, 0],
    sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
    ...over,
  };
}

/** POSTs `body` signed as the edge would sign it (shared/node-auth.ts). */
async function post(path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const signed = await signNodeRequest({ method: 'POST', path, body: text, secret: SECRET });
  return fetch(base + path, { method: 'POST', body: text, ...init, headers: { 'content-type': 'application/json', ...signed, ...init.headers } });
}

/** Reads NDJSON events as they arrive; the caller may stop early. */
async function* events(res: Response): AsyncGenerator<NodeEvent> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      yield JSON.parse(buf.slice(0, nl)) as NodeEvent;
      buf = buf.slice(nl + 1);
    }
  }
  expect(buf).toBe(''); // never half a JSON line
}

async function all(res: Response): Promise<NodeEvent[]> {
  const out: NodeEvent[] = [];
  for await (const e of events(res)) out.push(e);
  return out;
}

async function load(): Promise<NodeLoad> {
  const signed = await signNodeRequest({ method: 'GET', path: '/v1/load', body: '', secret: SECRET });
  return (await fetch(base + '/v1/load', { headers: signed })).json() as Promise<NodeLoad>;
}

/** The engine frees at its next step: poll briefly until nothing runs and every block is back. */
async function expectDrained(): Promise<void> {
  let l = await load();
  for (let i = 0; i < 100 && (l.running > 0 || l.queue_depth > 0 || l.kv_blocks_free !== l.kv_blocks_total); i++) {
    await new Promise((r) => setTimeout(r, 50));
    l = await load();
  }
  expect(l).toMatchObject({ running: 0, queue_depth: 0, kv_blocks_free: l.kv_blocks_total });
}

describe('createApp while the model loads', () => {
  it('answers 503 not_ready on the protocol endpoints and says so on /health', async () => {
    const app = createApp(() => undefined, undefined, { auth: { secrets: [SECRET], apiKeys: [], insecureNoAuth: false } });
    const signed = await signNodeRequest({ method: 'POST', path: '/v1/generate', body: '{}', secret: SECRET });
    const res = await app.request('/v1/generate', { method: 'POST', body: '{}', headers: signed });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(((await res.json()) as NodeErrorBody).error.code).toBe('not_ready');
    expect(await (await app.request('/health')).json()).toEqual({ ok: true, version: 1, ready: false });
  });
});

describe('k2node serve', () => {
  it('reports health and load', async () => {
    const health = await fetch(base + '/health');
    expect(await health.json()).toEqual({ ok: true, version: 1, ready: true });
    expect(health.headers.get(PROTOCOL_HEADER)).toBe('1');
    const l = await load();
    expect(l).toMatchObject({ node_id: 'test-node', version: 1, models: ['k2-tiny'], max_batch: 1, max_queue: 1, block_size: 16 });
    expect(l.kv_blocks_total).toBeGreaterThan(0);
  });

  it('streams start, tokens and finish with exact usage', async () => {
    const res = await post('/v1/generate', request({}, 3));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const ev = await all(res);
    expect(ev[0]).toMatchObject({ type: 'start', prompt_tokens: 4, cached_tokens: 0, node_id: 'test-node' });
    const tokens = ev.filter((e) => e.type === 'tokens');
    expect(tokens.flatMap((e) => e.token_ids)).toHaveLength(3);
    expect(ev.at(-1)).toEqual({ type: 'finish', finish_reason: 'length', usage: { prompt_tokens: 4, cached_tokens: 0, completion_tokens: 3 } });
  });

  it('rejects a protocol version mismatch with 400 protocol_mismatch', async () => {
    const byBody = await post('/v1/generate', { ...request(), version: 2 });
    expect(byBody.status).toBe(400);
    expect(((await byBody.json()) as NodeErrorBody).error.code).toBe('protocol_mismatch');
    const byHeader = await post('/v1/generate', request(), { headers: { [PROTOCOL_HEADER]: '2' } });
    expect(byHeader.status).toBe(400);
    expect(((await byHeader.json()) as NodeErrorBody).error.code).toBe('protocol_mismatch');
  });

  it('refuses bad requests with the protocol error codes', async () => {
    const cases: [Partial<GenerateRequest>, number, string][] = [
      [{ prompt_token_ids: [1, 100512] }, 400, 'invalid_request'],
      [{ prompt_token_ids: [] }, 400, 'invalid_request'],
      [{ model: 'gpt-4' }, 404, 'model_not_found'],
      [{ prompt_token_ids: new Array(5000).fill(1) }, 413, 'context_length_exceeded'],
    ];
    for (const [over, status, code] of cases) {
      const res = await post('/v1/generate', request(over));
      expect(res.status).toBe(status);
      expect(((await res.json()) as NodeErrorBody).error.code).toBe(code);
    }
    const notJson = await post('/v1/generate', '{');
    expect(notJson.status).toBe(400);
  });

  it('refuses out-of-range, non-finite and unknown sampling fields with 400 naming the field', async () => {
    const base = request().sampling;
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: 1e308 }, 'temperature'],
      [{ temperature: -0.5 }, 'temperature'],
      [{ temperature: '0.5' }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ presence_penalty: 2.5 }, 'presence_penalty'],
      [{ frequency_penalty: -1e300 }, 'frequency_penalty'],
      [{ max_tokens: 1e300 }, 'max_tokens'],
      [{ logit_bias: { '100512': 1 } }, 'logit_bias'],
      [{ logit_bias: { '5': 101 } }, 'logit_bias'],
      [{ logprobs: 21 }, 'top_logprobs'],
      [{ stop_token_ids: [-1] }, 'stop_token_ids'],
      [{ response_format: { type: 'xml' } }, 'response_format'],
      [{ best_of: 3 }, 'best_of'],
    ];
    for (const [over, param] of cases) {
      const res = await post('/v1/generate', request({ sampling: { ...base, ...over } as GenerateRequest['sampling'] }));
      const body = (await res.json()) as NodeErrorBody;
      expect(res.status, JSON.stringify(over)).toBe(400);
      expect(body.error, JSON.stringify(over)).toMatchObject({ code: 'invalid_request', param });
    }
    const extra = await post('/v1/generate', { ...request(), guided_json: {} });
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as NodeErrorBody).error.param).toBe('guided_json');
    await expectDrained();
  });

  it('answers 429 with Retry-After when the queue is full, and cancels on request and on disconnect', async () => {
    const a = request({ cancel_key: 'edge-a-key' }, 400);
    const resA = await post('/v1/generate', a);
    const streamA = events(resA);
    expect((await streamA.next()).value).toMatchObject({ type: 'start' });
    expect((await streamA.next()).value).toMatchObject({ type: 'tokens' }); // A is running

    const abortB = new AbortController();
    const resB = await post('/v1/generate', request({}, 5), { signal: abortB.signal }); // waits: max_batch 1
    expect(resB.status).toBe(200);
    expect((await load()).queue_depth).toBe(1);

    const resC = await post('/v1/generate', request());
    expect(resC.status).toBe(429);
    expect(resC.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await resC.json()) as NodeErrorBody).error.code).toBe('queue_full');

    abortB.abort(); // the client goes away while queued
    const cancel = await post('/v1/cancel', { version: 1, request_id: a.request_id, cancel_key: 'edge-a-key' });
    expect(await cancel.json()).toEqual({ cancelled: true });
    const rest: NodeEvent[] = [];
    for (let e = await streamA.next(); !e.done; e = await streamA.next()) rest.push(e.value);
    const end = rest.at(-1)!;
    expect(end).toMatchObject({ type: 'finish', finish_reason: 'cancelled' });
    const streamed = 1 + rest.filter((e) => e.type === 'tokens').length;
    expect(end.type === 'finish' && end.usage.completion_tokens).toBe(streamed);
    await expectDrained();
  });

  it('frees a running sequence when its client disconnects mid-stream', async () => {
    const abort = new AbortController();
    const res = await post('/v1/generate', request({}, 400), { signal: abort.signal });
    const stream = events(res);
    await stream.next();
    await stream.next();
    expect((await load()).running).toBe(1);
    const queued = post('/v1/generate', request({}, 2)); // behind it (max_batch 1): must be unaffected
    abort.abort();
    const after = await all(await queued);
    expect(after.at(-1)).toMatchObject({ type: 'finish', finish_reason: 'length', usage: { completion_tokens: 2 } });
    await expectDrained();
  });

  it('cancels only with the cancel_key the request was opened with', async () => {
    const a = request({ cancel_key: 'the-opening-edge' }, 30);
    const stream = events(await post('/v1/generate', a));
    expect((await stream.next()).value).toMatchObject({ type: 'start' });
    // Another signer that knows the request id (it is the client-visible x-request-id) but not the key.
    for (const cancel_key of [undefined, 'a-guess', 'the-opening-edgE']) {
      const res = await post('/v1/cancel', { version: 1, request_id: a.request_id, ...(cancel_key !== undefined ? { cancel_key } : {}) });
      expect(res.status).toBe(403);
      expect(((await res.json()) as NodeErrorBody).error.code).toBe('unauthorized');
    }
    const rest: NodeEvent[] = [];
    for (let e = await stream.next(); !e.done; e = await stream.next()) rest.push(e.value);
    expect(rest.at(-1)).toMatchObject({ type: 'finish', finish_reason: 'length', usage: { completion_tokens: 30 } });
    // A request opened without a key cannot be cancelled by id at all, only by closing its stream.
    const b = request({}, 40);
    const resB = await post('/v1/generate', b);
    const streamB = events(resB);
    expect((await streamB.next()).value).toMatchObject({ type: 'start' });
    expect((await post('/v1/cancel', { version: 1, request_id: b.request_id })).status).toBe(403);
    let lastB: NodeEvent | undefined;
    for (let e = await streamB.next(); !e.done; e = await streamB.next()) lastB = e.value;
    expect(lastB).toMatchObject({ type: 'finish', finish_reason: 'length' });
    await expectDrained();
  });
});
