import { serve } from '@hono/node-server';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signNodeRequest } from '../../shared/node-auth.ts';
import type { Tokenizer } from '../../shared/tokenizer/bpe.ts';
import type { Engine } from './engine/engine.ts';
import { loadEngine } from './engine/load-engine.ts';
import { selectKernels } from './kernels/select.ts';
import { NodeMetrics } from './metrics.ts';
import { ensureModel } from './model/make-model.ts';
import { loadTokenizer } from './model/tokenizer.ts';
import { createApp, MAX_BODY_BYTES } from './server.ts';

// Every route of the real node app (real engine on k2-tiny, real HTTP server) gets what a hostile
// caller would send: bodies past the limit (declared and streamed), malformed JSON, wrong types. No
// answer may be a 5xx, every refusal is in its route's error shape, and the node keeps serving.
const MODEL_DIR = fileURLToPath(new URL('../../models/k2-tiny', import.meta.url));
const SECRET = 'hostile-input-secret';
const API_KEY = 'hostile-input-key';

let engine: Engine;
let tokenizer: Tokenizer;
let port = 0;
let close: () => Promise<void>;

beforeAll(async () => {
  ensureModel(MODEL_DIR, 'k2-tiny');
  const kernels = await selectKernels({ backend: 'reference' });
  [engine, tokenizer] = await Promise.all([loadEngine(MODEL_DIR, { kernels, kvBlocks: 256, log: () => {} }), loadTokenizer(MODEL_DIR)]);
  const metrics = new NodeMetrics();
  metrics.instrument(engine);
  const app = createApp(() => engine, () => tokenizer, { auth: { secrets: [SECRET], apiKeys: [API_KEY], insecureNoAuth: false }, metrics });
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((ok) => server.once('listening', ok));
  port = (server.address() as AddressInfo).port;
  close = () => new Promise<void>((ok) => server.close(() => ok()));
});

afterAll(() => close?.());

type Shape = 'node' | 'openai';
interface Route {
  method: 'GET' | 'POST';
  path: string;
  auth: 'signed' | 'key' | 'none';
  shape: Shape;
}

const ROUTES: Route[] = [
  { method: 'GET', path: '/health', auth: 'none', shape: 'node' },
  { method: 'GET', path: '/ready', auth: 'none', shape: 'node' },
  { method: 'GET', path: '/metrics', auth: 'none', shape: 'node' },
  { method: 'GET', path: '/v1/load', auth: 'signed', shape: 'node' },
  { method: 'POST', path: '/v1/generate', auth: 'signed', shape: 'node' },
  { method: 'POST', path: '/v1/cancel', auth: 'signed', shape: 'node' },
  { method: 'POST', path: '/v1/chat/completions', auth: 'key', shape: 'openai' },
  { method: 'POST', path: '/v1/completions', auth: 'key', shape: 'openai' },
  { method: 'POST', path: '/no/such/route', auth: 'none', shape: 'node' },
];

interface Answer {
  status: number;
  body: string;
}

/**
 * One raw HTTP exchange. `bytes` of body are streamed in 1 MiB chunks, with Content-Length `declared`
 * when given (else chunked). Resolves with the answer as soon as it arrives: a server that refuses
 * on the header answers before the body is sent, and the rest is then not sent at all.
 */
function exchange(route: Route, headers: Record<string, string>, bytes: number, declared?: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, agent: false, method: route.method, path: route.path, headers: { ...headers, ...(declared !== undefined ? { 'content-length': String(declared) } : {}) } });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body });
        req.destroy();
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(new Error(`${route.method} ${route.path} (${bytes} bytes, declared ${declared}): ${err.message}`));
    });
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (!answered && sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      if (!answered && declared === undefined) req.end();
    };
    pump();
  });
}

/** A body exchange with the route's credentials (signed over exactly these bytes). */
async function send(route: Route, body: string): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (route.auth === 'key') headers.authorization = `Bearer ${API_KEY}`;
  if (route.auth === 'signed') Object.assign(headers, await signNodeRequest({ method: route.method, path: route.path, body, secret: SECRET }));
  const res = await fetch(`http://127.0.0.1:${port}${route.path}`, { method: route.method, headers, body: route.method === 'GET' ? undefined : body });
  return { status: res.status, body: await res.text() };
}

/** The route's error shape: the token-batch protocol's {error: {code, message, param?}} or OpenAI's {error: {message, type, param, code}}. */
function expectErrorShape(route: Route, answer: Answer, status: number): { message: string; param?: string | null } {
  expect(answer.status, `${route.path}: ${answer.body}`).toBe(status);
  const { error } = JSON.parse(answer.body) as { error: Record<string, unknown> };
  if (route.shape === 'openai') expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  // The token-batch shape names the field at fault when there is one.
  else expect(Object.keys(error).filter((k) => k !== 'param').sort()).toEqual(['code', 'message']);
  expect(typeof error.message).toBe('string');
  return error as { message: string; param?: string | null };
}

async function expectStillServing(): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${port}/health`);
  expect(await health.json()).toEqual({ ok: true, version: 1, ready: true });
  await engine.idle();
}

describe('hostile input on every node route', () => {
  const withBody = ROUTES.filter((r) => r.method === 'POST');

  it('refuses a body past the limit with 413 in the route\'s shape: declared (400 MB) or streamed without a length', async () => {
    for (const route of withBody) {
      const headers = { 'content-type': 'application/json', ...(route.auth === 'key' ? { authorization: `Bearer ${API_KEY}` } : {}) };
      // Content-Length says 400 MB: refused on the header, before the body is read.
      expectErrorShape(route, await exchange(route, headers, 1024 * 1024, 400 * 1024 * 1024), 413);
      // Chunked, no length: counted while read, cut off just past the limit.
      expectErrorShape(route, await exchange(route, headers, MAX_BODY_BYTES + 1024 * 1024), 413);
    }
    // A body on a GET route is never read: the route answers as usual, the body is discarded.
    for (const route of ROUTES.filter((r) => r.method === 'GET')) {
      const answer = await exchange(route, {}, 2 * MAX_BODY_BYTES, 2 * MAX_BODY_BYTES);
      expect(answer.status, route.path).toBeLessThan(500);
    }
    await expectStillServing();
  });

  it('refuses malformed JSON and non-object bodies with 400 in the route\'s shape', async () => {
    for (const route of withBody.filter((r) => r.path.startsWith('/v1/'))) {
      for (const body of ['{', '{"model": "k2-tiny",', 'not json', '\u0000\u0001', '']) {
        expectErrorShape(route, await send(route, body), 400);
      }
      for (const body of ['null', '[]', '42', '"a string"', 'true']) {
        expectErrorShape(route, await send(route, body), 400);
      }
    }
    await expectStillServing();
  });

  it('refuses wrong types field by field with a 400, never a 5xx', async () => {
    const generate = { version: 1, request_id: 'hostile-1', model: 'k2-tiny', prompt_token_ids: [1, 2, 3], sampling: { max_tokens: 2, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] } };
    const generateCases: Record<string, unknown>[] = [
      { ...generate, version: '1' },
      { ...generate, request_id: 7 },
      { ...generate, request_id: '' },
      { ...generate, model: ['k2-tiny'] },
      { ...generate, prompt_token_ids: 'hello' },
      { ...generate, prompt_token_ids: [1, '2'] },
      { ...generate, prompt_token_ids: [1.5] },
      { ...generate, sampling: 'greedy' },
      { ...generate, sampling: null },
      { ...generate, sampling: { ...generate.sampling, max_tokens: '2' } },
      { ...generate, sampling: { ...generate.sampling, stop_token_ids: 'x' } },
      { ...generate, sampling: { ...generate.sampling, stop: [1] } },
      { ...generate, sampling: { ...generate.sampling, logit_bias: 'x' } },
      { ...generate, cache_salt: 5 },
      { ...generate, tenant: { org: 'a' } },
      { ...generate, cancel_key: 12 },
    ];
    const route = (path: string) => ROUTES.find((r) => r.path === path)!;
    for (const body of generateCases) expectErrorShape(route('/v1/generate'), await send(route('/v1/generate'), JSON.stringify(body)), 400);

    const cancelCases = [{ version: 1 }, { version: 1, request_id: 5 }, { version: 1, request_id: 'x', cancel_key: 5 }, { request_id: 'x' }];
    for (const body of cancelCases) expectErrorShape(route('/v1/cancel'), await send(route('/v1/cancel'), JSON.stringify(body)), 400);

    const messages = [{ role: 'user', content: 'Hi' }];
    const chatCases: [Record<string, unknown>, string | null][] = [
      [{ model: 'k2-tiny', messages: 'Hi' }, 'messages'],
      [{ model: 'k2-tiny', messages: {} }, 'messages'],
      [{ model: 'k2-tiny', messages, max_tokens: '5' }, 'max_tokens'],
      [{ model: 'k2-tiny', messages, temperature: 'hot' }, 'temperature'],
      [{ model: 'k2-tiny', messages, top_p: [1] }, 'top_p'],
      [{ model: 'k2-tiny', messages, seed: 'lucky' }, 'seed'],
      [{ model: 'k2-tiny', messages, stop: 5 }, 'stop'],
      [{ model: 'k2-tiny', messages, cache_salt: 'org_other' }, 'cache_salt'],
    ];
    for (const [body, param] of chatCases) {
      const error = expectErrorShape(route('/v1/chat/completions'), await send(route('/v1/chat/completions'), JSON.stringify(body)), 400);
      expect(error.param).toBe(param);
    }
    const completionCases: [Record<string, unknown>, string | null][] = [
      [{ model: 'k2-tiny', prompt: 5 }, 'prompt'],
      [{ model: 'k2-tiny', prompt: { text: 'x' } }, 'prompt'],
      [{ model: 'k2-tiny', prompt: 'Once', max_tokens: null, temperature: '0' }, 'temperature'],
      [{ model: 'k2-tiny', prompt: 'Once', tenant: 'someone' }, 'tenant'],
    ];
    for (const [body, param] of completionCases) {
      const error = expectErrorShape(route('/v1/completions'), await send(route('/v1/completions'), JSON.stringify(body)), 400);
      expect(error.param).toBe(param);
    }
    await expectStillServing();
    // And it still generates.
    const ok = await send(route('/v1/completions'), JSON.stringify({ model: 'k2-tiny', prompt: 'Once upon a time', max_tokens: 2 }));
    expect(ok.status).toBe(200);
  });
  it('refuses non-finite, out-of-range and inexact numbers with a 4xx in the route\'s shape, never a 5xx', async () => {
    const route = (path: string) => ROUTES.find((r) => r.path === path)!;
    const marker = '"__hostile_literal__"';
    /** `body` as JSON with the value at `path` (dot-separated) replaced by the raw JSON literal: 1e309 stays 1e309. */
    const withLiteral = (body: Record<string, unknown>, path: string, literal: string) => {
      const copy = structuredClone(body);
      const keys = path.split('.');
      let at: Record<string, unknown> = copy;
      for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
      at[keys.at(-1)!] = '__hostile_literal__';
      return JSON.stringify(copy).replace(marker, literal);
    };
    const NOT_NUMBERS = ['1e309', '-1e309', '"12"', 'true', '{}'];
    const NOT_INTEGERS = ['1.5', '9007199254740993', '1e300'];
    const generate = { version: 1, request_id: 'hostile-n', model: 'k2-tiny', prompt_token_ids: [1, 2, 3], sampling: { max_tokens: 2, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] } };
    const cases: [Route, Record<string, unknown>, Record<string, 'int' | 'real'>][] = [
      [route('/v1/generate'), generate, { version: 'int', 'prompt_token_ids.0': 'int', 'sampling.max_tokens': 'int', 'sampling.temperature': 'real', 'sampling.top_p': 'real' }],
      [route('/v1/chat/completions'), { model: 'k2-tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }, { max_tokens: 'int', temperature: 'real', top_p: 'real', seed: 'int' }],
      [route('/v1/completions'), { model: 'k2-tiny', prompt: 'Once', max_tokens: 2 }, { max_tokens: 'int', temperature: 'real', top_p: 'real', seed: 'int' }],
    ];
    for (const [r, body, fields] of cases) {
      for (const [field, kind] of Object.entries(fields)) {
        for (const literal of kind === 'int' ? [...NOT_NUMBERS, ...NOT_INTEGERS] : NOT_NUMBERS) {
          const answer = await send(r, withLiteral(body, field, literal));
          expect(answer.status, `${r.path} ${field}=${literal}: ${answer.body}`).toBeGreaterThanOrEqual(400);
          expectErrorShape(r, answer, answer.status);
        }
      }
    }
    // Out of range: a token id past the vocabulary or negative, a max_tokens of 0 or past the context, a negative temperature.
    const outOfRange: [Route, string][] = [
      [route('/v1/generate'), withLiteral(generate, 'prompt_token_ids.0', String(tokenizer.vocabSize + 10))],
      [route('/v1/generate'), withLiteral(generate, 'prompt_token_ids.0', '-1')],
      [route('/v1/generate'), JSON.stringify({ ...generate, prompt_token_ids: [] })],
      [route('/v1/generate'), withLiteral(generate, 'sampling.max_tokens', '0')],
      [route('/v1/generate'), withLiteral(generate, 'sampling.max_tokens', '9007199254740991')],
      [route('/v1/generate'), withLiteral(generate, 'sampling.temperature', '-1')],
      [route('/v1/chat/completions'), JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: -1 })],
      [route('/v1/chat/completions'), JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 9007199254740991 })],
      [route('/v1/completions'), JSON.stringify({ model: 'k2-tiny', prompt: 'Once', temperature: -1 })],
      [route('/v1/completions'), JSON.stringify({ model: 'k2-tiny', prompt: 'Once', top_p: 0 })],
    ];
    for (const [r, text] of outOfRange) {
      const answer = await send(r, text);
      expect(answer.status, `${r.path} ${text}: ${answer.body}`).toBeGreaterThanOrEqual(400);
      expect(answer.status, `${r.path} ${text}: ${answer.body}`).toBeLessThan(500);
      expectErrorShape(r, answer, answer.status);
    }
    // Maybe served, maybe refused, never a 5xx: -0, the smallest positive double, the largest safe seed.
    const lenient: [Route, string][] = [
      [route('/v1/generate'), withLiteral(generate, 'sampling.temperature', '-0')],
      [route('/v1/generate'), withLiteral(generate, 'sampling.top_p', '5e-324')],
      [route('/v1/completions'), JSON.stringify({ model: 'k2-tiny', prompt: 'Once', max_tokens: 2, temperature: -0, seed: Number.MAX_SAFE_INTEGER })],
      [route('/v1/chat/completions'), JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, seed: -Number.MAX_SAFE_INTEGER })],
    ];
    for (const [r, text] of lenient) {
      const answer = await send(r, text);
      expect(answer.status, `${r.path} ${text}: ${answer.body}`).toBeLessThan(500);
      if (answer.status >= 400) expectErrorShape(r, answer, answer.status);
    }
    await expectStillServing();
  });
});
