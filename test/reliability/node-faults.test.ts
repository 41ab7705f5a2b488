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
import { Books } from '../support/books.ts';

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

/** Reads SSE `data:` payloads one at a time. */
function sseReader(res: Response) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    async next(): Promise<string | undefined> {
      for (;;) {
        const end = buffered.indexOf('\n\n');
        if (end >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          return event.replace(/^data: /, '');
        }
        const { value, done } = await reader.read();
        if (done) return undefined;
        buffered += decoder.decode(value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}

/** Content chunks carry at least one token each: a lower bound on the tokens the client got. */
function isContent(data: string): boolean {
  if (data === '[DONE]') return false;
  const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
  return Boolean(chunk.choices?.[0]?.delta?.content);
}

describe('GPU node faults', () => {
  it('node killed mid-stream: the client gets one SSE error event, and only delivered tokens are billed', async () => {
    const maxTokens = 1500;
    const res = await chat({ messages: [{ role: 'user', content: 'Tell me a very long story.' }], max_tokens: maxTokens, stream: true });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const sse = sseReader(res);
    const events: string[] = [];
    let content = 0;
    while (content < 3) {
      const data = await sse.next();
      if (data === undefined) throw new Error('stream ended before the node was killed');
      events.push(data);
      if (isContent(data)) content++;
    }
    // SIGKILL the node's whole process group: no finish event, no goodbye, a torn TCP stream.
    process.kill(-node.pid, 'SIGKILL');
    for (let data = await sse.next(); data !== undefined; data = await sse.next()) {
      events.push(data);
      if (isContent(data)) content++;
    }
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

  it('slow client that stalls then hangs up: cancelled, billed only what was written to it, settled exactly', async () => {
    // More than the node can make during the stall (~100–200 tok/s here), so it is still running at the hang-up.
    const maxTokens = 2000;
    const hangUp = new AbortController();
    const res = await chat({ messages: [{ role: 'user', content: 'Write a long poem.' }], max_tokens: maxTokens, stream: true }, hangUp.signal);
    const requestId = res.headers.get('x-request-id')!;
    const sse = sseReader(res);
    let content = 0;
    expect(res.status).toBe(200);
    while (content < 2) {
      const data = await sse.next();
      if (data === undefined) throw new Error('stream ended early');
      if (isContent(data)) content++;
    }
    // Stall for longer than the node needs to generate everything (~90 tok/s here).
    await new Promise((r) => setTimeout(r, 2500));
    hangUp.abort();
    const event = await expectSettledExactly(requestId);
    expect(event.status).toBe('cancelled');
    // The stream is pull-driven (highWaterMark 0), so the worker holds at most one node event; what
    // it wrote during the stall sits in the loopback socket buffers (hundreds of KiB, more than
    // k2-tiny's whole answer here), and those tokens count as sent. So on loopback the bill is
    // bounded by the answer, not provably by backpressure: see the RELIABILITY section of README.md.
    expect(event.completionTokens).toBeGreaterThanOrEqual(content);
    expect(event.completionTokens).toBeLessThanOrEqual(maxTokens);
  });
});

describe('effective prices under clock skew', () => {
  it('a price row is chosen by the request start on the edge clock, and history cannot be rewritten', async () => {
    const before = (await admin<{ id: number; output: number }>('/prices/k2-tiny')).body;
    // An operator whose clock runs behind the edge's: a back-dated row is refused, not applied to the past.
    const backdated = await admin<{ error: { param: string } }>('/prices', { model: 'k2-tiny', input_cache_miss: 1, input_cache_hit: 1, output: 1, effective_from: Date.now() - 5_000 });
    expect(backdated.status).toBe(400);
    expect(backdated.body.error.param).toBe('effective_from');

    // A new price taking effect in 1.5 s (an operator's clock ahead, or a scheduled change).
    const effectiveFrom = Date.now() + 1500;
    const next = await admin<{ id: number }>('/prices', { model: 'k2-tiny', input_cache_miss: 700_000, input_cache_hit: 200_000, output: 3_000_000, effective_from: effectiveFrom });
    expect(next.status).toBe(201);
    // Started before, still running when the new price takes effect: billed at the old price.
    const res = await chat({ messages: [{ role: 'user', content: 'A story, please.' }], max_tokens: 250, stream: true });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const sse = sseReader(res);
    let data: string | undefined;
    do data = await sse.next();
    while (data !== undefined && data !== '[DONE]');
    const old = await expectSettledExactly(requestId);
    expect(old.startedAt).toBeLessThan(effectiveFrom);
    expect(old.priceId).toBe(before.id);
    // Started after: the new price.
    while (Date.now() < effectiveFrom + 50) await new Promise((r) => setTimeout(r, 100));
    const after = await chat({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(after.status).toBe(200);
    const fresh = await expectSettledExactly(after.headers.get('x-request-id')!);
    expect(fresh.priceId).toBe(next.body.id);
  });
});
