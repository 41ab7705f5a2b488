/**
 * Following one request across both logs: a client sends a W3C `traceparent`; the edge's JSON
 * request log line and the GPU node's line for the same generation carry its trace id, the edge's
 * line has the request's final figures (the same as its usage row) and no secret or prompt text,
 * and the usage row has the time to first token.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureTinyModel, startLocalNode, type LocalNode } from '../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker, type SeededTenant } from '../scripts/local-worker.ts';
import { Books } from './support/books.ts';

const ADMIN_TOKEN = 'trace-admin-token';
const nodeLines: string[] = [];
/** Everything the worker printed (wrangler relays the worker's console through ours). */
const workerLines: string[] = [];

let node: LocalNode;
let worker: LocalWorker;
let tenant: SeededTenant;
let books: Books;
let persistTo: string;

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'request-trace-'));
  await ensureTinyModel();
  node = await startLocalNode({ extraArgs: ['--kv-blocks', '256'], log: (l) => nodeLines.push(l) });
  applyLocalMigrations(persistTo);
  const capture = (...args: unknown[]) => void workerLines.push(args.map(String).join(' '));
  vi.spyOn(console, 'log').mockImplementation(capture);
  vi.spyOn(console, 'info').mockImplementation(capture);
  worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret: node.secret, persistTo });
  books = new Books(worker.url, ADMIN_TOKEN, 'trace');
  tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'trace', 10_000_000);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.allSettled([worker?.stop(), node?.stop()]);
  rmSync(persistTo, { recursive: true, force: true });
});

/** The JSON objects among `lines` (log lines may carry a prefix before the JSON). */
function jsonLines(lines: string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    const at = l.indexOf('{');
    if (at < 0) return [];
    try {
      return [JSON.parse(l.slice(at)) as Record<string, unknown>];
    } catch {
      return []; // not a JSON log line (wrangler's own lines)
    }
  });
}

async function waitFor<T>(find: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const found = find();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never saw ${what}`);
}

describe('request log and trace propagation', () => {
  it('the edge and the node log the same trace id; the edge line matches the usage row and leaks nothing', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const prompt = 'A secret-free but recognisable prompt about walruses.';
    const res = await fetch(`${worker.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: prompt }], max_tokens: 5, temperature: 0, stream: true }),
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    await res.text();

    const edge = await waitFor(() => jsonLines(workerLines).find((l) => l.msg === 'request' && l.request_id === requestId), 'the edge request log line');
    const nodeLine = await waitFor(() => jsonLines(nodeLines).find((l) => l.msg === 'generate' && l.trace_id === traceId), 'the node log line with the trace id');
    expect(edge.trace_id).toBe(traceId);
    expect(nodeLine.request_id).toBe(requestId);

    const { event } = await books.recorded(requestId);
    const row = event as typeof event & { ttftMs: number | null; finishedAt: number; keyId: string };
    expect(row.ttftMs).toBeGreaterThan(0);
    expect(edge).toMatchObject({
      org_id: 'trace',
      key_id: tenant.keyId,
      model: 'k2-tiny',
      backend: 'pool',
      node: node.url,
      status: 'completed',
      prompt_tokens: event.promptTokens,
      cached_tokens: event.cachedTokens,
      output_tokens: event.completionTokens,
      cost_micros: event.costMicros,
      ttft_ms: row.ttftMs,
      total_ms: row.finishedAt - event.startedAt,
    });
    expect(nodeLine.output_tokens).toBe(event.completionTokens);
    const text = JSON.stringify(edge);
    expect(text).not.toContain(tenant.key);
    expect(text).not.toContain('walruses');
    expect(JSON.stringify(nodeLine)).not.toContain('walruses');
  });

  it('starts a trace when the client sent none, and still hands it to the node', async () => {
    const res = await fetch(`${worker.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json', traceparent: 'not-a-traceparent' },
      body: JSON.stringify({ model: 'k2-tiny', prompt: 'Once', max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const edge = await waitFor(() => jsonLines(workerLines).find((l) => l.msg === 'request' && l.request_id === requestId), 'the edge request log line');
    expect(edge.trace_id).toMatch(/^[0-9a-f]{32}$/);
    const nodeLine = await waitFor(() => jsonLines(nodeLines).find((l) => l.msg === 'generate' && l.request_id === requestId), 'the node log line');
    expect(nodeLine.trace_id).toBe(edge.trace_id);
  });
});
