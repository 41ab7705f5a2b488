/**
 * Faults across real processes: the worker (wrangler's local runtime, local D1) in front of a real
 * GPU node process running k2-tiny, which these tests kill and restart. Checked after each fault:
 * what the client saw, and that the D1 usage row, the ledger debit and the org's Durable Object
 * agree on exactly the tokens delivered, with no reservation left open.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyModel, freePort, localCredential, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker, type SeededTenant } from '../../scripts/local-worker.ts';
import { SseReader } from '../../workers/src/upstreams/sse.ts';
import { Books } from '../support/books.ts';
import { ChatStream } from '../support/chat-stream.ts';

const ADMIN_TOKEN = 'reliability-admin-token';

let port: number;
let node: LocalNode;
let worker: LocalWorker;
let tenant: SeededTenant;
let persistTo: string;
let books: Books;
/** Kept across restarts: a restarted node holds the pool's secret again. */
const nodeSecret = localCredential('nsec');

/** The real node on a fixed port, so a restart comes back at the same URL. */
async function startNode(): Promise<LocalNode> {
  return startLocalNode({ port, extraArgs: ['--kv-blocks', '512'], secret: nodeSecret });
}

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'edge-faults-'));
  port = await freePort();
  await ensureTinyModel();
  node = await startNode();
  applyLocalMigrations(persistTo);
  worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret, persistTo });
  books = new Books(worker.url, ADMIN_TOKEN, 'faults');
  tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'faults', 50_000_000);
});

afterAll(async () => {
  await Promise.allSettled([worker?.stop(), node?.stop()]);
  rmSync(persistTo, { recursive: true, force: true });
});

const admin = <T>(path: string, body?: unknown) => books.admin<T>(path, body);
const expectSettledExactly = (requestId: string) => books.expectSettledExactly(requestId);

function chat(body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${worker.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'k2-tiny', temperature: 0, ...body }),
    signal,
  });
}

function completions(body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${worker.url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

describe('GPU node faults', () => {
  it('node killed mid-stream: the client gets one SSE error event, and only delivered tokens are billed', async () => {
    const maxTokens = 1500;
    const res = await chat({ messages: [{ role: 'user', content: 'Tell me a very long story.' }], max_tokens: maxTokens, stream: true });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const stream = new ChatStream(res);
    await stream.readContent(3);
    // SIGKILL the node's whole process group: no finish event, no goodbye, a torn TCP stream.
    process.kill(-node.pid, 'SIGKILL');
    await stream.readToEnd();
    const { events, content } = stream;
    const last = JSON.parse(events.at(-1)!) as { error?: { message: string; type: string; param: unknown; code: string } };
    expect(last.error).toEqual({ message: expect.any(String), type: 'server_error', param: null, code: 'upstream_error' });
    expect(events).not.toContain('[DONE]');

    const event = await expectSettledExactly(requestId);
    expect(event.status).toBe('failed');
    // Billed: the tokens that reached the client, at least one per content chunk, far below max_tokens.
    expect(event.completionTokens).toBeGreaterThanOrEqual(content);
    expect(event.completionTokens).toBeLessThan(maxTokens / 2);
  });

  it('while the node is down: 503 in the OpenAI shape, a zero-cost row; after a restart: served again', async () => {
    try {
      const down = await chat({ messages: [{ role: 'user', content: 'anyone there?' }], max_tokens: 4 });
      const body = (await down.json()) as { error: { type: string; code: string; param: unknown; message: string } };
      expect(down.status, JSON.stringify(body)).toBe(503);
      expect(body.error).toMatchObject({ type: 'server_error', code: 'upstream_unavailable', param: null });
      const failed = await expectSettledExactly(down.headers.get('x-request-id')!);
      expect(failed).toMatchObject({ status: 'failed', completionTokens: 0, costMicros: 0 });
    } finally {
      // Restarted whatever happened above, so one failure does not take the later tests down with it.
      node = await startNode();
    }
    const up = await chat({ messages: [{ role: 'user', content: 'hello again' }], max_tokens: 4 });
    expect(up.status).toBe(200);
    const { usage } = (await up.json()) as { usage: { completion_tokens: number } };
    const event = await expectSettledExactly(up.headers.get('x-request-id')!);
    expect(event).toMatchObject({ status: 'completed', completionTokens: usage.completion_tokens });
  });

  it('client that reads 100 chunks and hangs up: cancelled, billed what it received plus at most the in-flight window, settled exactly', async () => {
    // Far more than the client reads, so an edge that kept generating after the hang-up, or billed
    // max_tokens, would bill hundreds of tokens over what the client got.
    const maxTokens = 2000;
    const readChunks = 100;
    const body = { model: 'k2-tiny', temperature: 0, prompt: 'Once upon a time', max_tokens: maxTokens };
    const hangUp = new AbortController();
    const res = await completions({ ...body, stream: true }, hangUp.signal);
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const sse = new SseReader(res.body!);
    let received = '';
    for (let chunks = 0; chunks < readChunks; ) {
      const data = await sse.next();
      if (data === undefined || data === '[DONE]') throw new Error('stream ended before the client hung up');
      const text = (JSON.parse(data) as { choices: { text: string }[] }).choices[0].text;
      if (text) chunks++;
      received += text;
    }
    hangUp.abort();
    const event = await expectSettledExactly(requestId);
    expect(event.status).toBe('cancelled');
    // Each text chunk carries at least one token: never billed less than the client got.
    expect(event.completionTokens).toBeGreaterThanOrEqual(readChunks);
    // Billed tokens the client did not read are the in-flight window: tokens the worker wrote
    // between the client's last read and its seeing the hang-up (loopback socket buffers and the
    // client's own receive buffer hold them). At k2-tiny's ~100–200 tok/s here, a window of
    // IN_FLIGHT_TOKENS is ≥ 250 ms of generation. Greedy decoding is deterministic, so the same
    // request cut at (billed − window) tokens must be text the client had already received.
    const IN_FLIGHT_TOKENS = 48;
    expect(event.completionTokens).toBeLessThan(maxTokens / 2);
    const upTo = event.completionTokens - IN_FLIGHT_TOKENS;
    const replay = await completions({ ...body, max_tokens: Math.max(1, upTo) });
    const replayed = (await replay.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
    expect(replayed.usage.completion_tokens).toBe(Math.max(1, upTo));
    expect(received.startsWith(replayed.choices[0].text)).toBe(true);
  });
});

describe('effective prices under clock skew', () => {
  it('a price row is chosen by the request start on the edge clock, and history cannot be rewritten', async () => {
    const before = (await admin<{ id: number; output: number }>('/prices/k2-tiny')).body;
    // An operator whose clock runs behind the edge's: a back-dated row is refused, not applied to the past.
    const backdated = await admin<{ error: { param: string } }>('/prices', { model: 'k2-tiny', input_cache_miss: 1, input_cache_hit: 1, output: 1, effective_from: Date.now() - 5_000 });
    expect(backdated.status).toBe(400);
    expect(backdated.body.error.param).toBe('effective_from');

    // A price scheduled an hour ahead exists before the request starts: the lookup must pass over it.
    const later = await admin<{ id: number }>('/prices', { model: 'k2-tiny', input_cache_miss: 9_000_000, input_cache_hit: 9_000_000, output: 9_000_000, effective_from: Date.now() + 3_600_000 });
    expect(later.status).toBe(201);
    // A request starts: its first event means the edge has fixed its start time and its price.
    const res = await chat({ messages: [{ role: 'user', content: 'A story, please.' }], max_tokens: 250, stream: true });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const sse = new SseReader(res.body!);
    expect(await sse.next()).toBeDefined();
    // Then a new price is scheduled (an operator's clock ahead, or a planned change). The request
    // started before this line runs, so it precedes effective_from whatever the machine's load; the
    // 1.5 s lead is only the margin for this POST to reach the edge, or it is refused as back-dated.
    const effectiveFrom = Date.now() + 1500;
    const next = await admin<{ id: number }>('/prices', { model: 'k2-tiny', input_cache_miss: 700_000, input_cache_hit: 200_000, output: 3_000_000, effective_from: effectiveFrom });
    expect(next.status).toBe(201);
    // The request stays open (the stream is pull-driven, it waits for this reader) until the new
    // price is in force, then finishes: started before, still running after, billed at the old price.
    while (Date.now() < effectiveFrom + 50) await new Promise((r) => setTimeout(r, 100));
    let data: string | undefined;
    do data = await sse.next();
    while (data !== undefined && data !== '[DONE]');
    const old = await expectSettledExactly(requestId);
    expect(old.startedAt).toBeLessThan(effectiveFrom);
    expect(old.priceId).toBe(before.id);
    // Started after (this line runs past effective_from): the new price.
    const after = await chat({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(after.status).toBe(200);
    const fresh = await expectSettledExactly(after.headers.get('x-request-id')!);
    expect(fresh.priceId).toBe(next.body.id);
  });
});
