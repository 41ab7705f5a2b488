/**
 * Rolling a node across real processes: a pool of two GPU nodes behind the worker. SIGTERM to the
 * node serving a stream: the stream still runs to its end, the node then exits 0, a request sent
 * after the signal is served by the other node, and the books agree on both requests.
 *
 * The pool has its own secret (Worker secret NODE_SECRET_K2_TINY); the default NODE_SECRET is a
 * value the nodes refuse, so every load poll, generation and cancel here is signed per pool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signNodeRequest } from '../../shared/node-auth.ts';
import type { NodeErrorBody } from '../../shared/protocol.ts';
import { ensureTinyModel, localCredential, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker, type SeededTenant } from '../../scripts/local-worker.ts';
import { Books } from '../support/books.ts';

const ADMIN_TOKEN = 'drain-admin-token';
const ORG = 'drain';

let nodes: LocalNode[] = [];
let worker: LocalWorker;
let tenant: SeededTenant;
let persistTo: string;
let books: Books;
const secret = localCredential('nsec');

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'edge-drain-'));
  await ensureTinyModel();
  nodes = await Promise.all([0, 1].map(() => startLocalNode({ extraArgs: ['--kv-blocks', '512', '--drain-timeout', '60'], secret })));
  applyLocalMigrations(persistTo);
  worker = await startLocalWorker({
    adminToken: ADMIN_TOKEN,
    nodeUrl: nodes[0].url,
    nodeSecret: localCredential('not-this-pools'),
    secrets: { NODE_SECRET_K2_TINY: secret },
    persistTo,
  });
  books = new Books(worker.url, ADMIN_TOKEN, ORG);
  for (const n of nodes) expect((await books.admin('/nodes', { pool: 'k2-tiny', url: n.url })).status).toBeLessThan(300);
  tenant = await seedTenant(worker.url, ADMIN_TOKEN, ORG, 50_000_000);
});

afterAll(async () => {
  await Promise.allSettled([worker?.stop(), ...nodes.map((n) => n.stop())]);
  rmSync(persistTo, { recursive: true, force: true });
});

/** One sample of the node's /metrics (label set ignored: the tiny model is its only model). */
async function metric(node: LocalNode, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

function chat(body: Record<string, unknown>): Promise<Response> {
  return fetch(`${worker.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'k2-tiny', temperature: 0, ...body }),
  });
}

describe('graceful drain', () => {
  it('SIGTERM: the running stream finishes, new requests go to the other node, the node exits 0, the books reconcile', async () => {
    const maxTokens = 300;
    const res = await chat({ messages: [{ role: 'user', content: 'Tell me a long story about a lighthouse.' }], max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const streamId = res.headers.get('x-request-id')!;
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });

    // Which node runs it: the one whose scheduler holds it. /metrics answers while the engine thread
    // computes, so the scrape may come before the step that moves it from waiting to running.
    const held = await Promise.all(nodes.map(async (n) => (await metric(n, 'vllm:num_requests_running')) + (await metric(n, 'vllm:num_requests_waiting'))));
    expect(held.reduce((a, b) => a + b)).toBe(1);
    const serving = nodes[held.indexOf(1)];
    const other = nodes[held.indexOf(0)];
    const otherServedBefore = await metric(other, 'vllm:request_success_total');

    process.kill(serving.pid, 'SIGTERM');
    // Readiness drops at once; liveness stays up while it drains.
    for (let i = 0; (await fetch(`${serving.url}/ready`)).status !== 503; i++) {
      if (i > 50) throw new Error('node never reported draining on /ready');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await fetch(`${serving.url}/health`)).status).toBe(200);
    expect(await metric(serving, 'k2node_draining')).toBe(1);
    // Asked directly (as the edge would with a stale view of the pool), the draining node turns new work away.
    const body = JSON.stringify({ version: 1, request_id: 'after-sigterm', model: 'k2-tiny', prompt_token_ids: [1, 2, 3], sampling: { max_tokens: 2, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] } });
    const refused = await fetch(`${serving.url}/v1/generate`, { method: 'POST', body, headers: await signNodeRequest({ method: 'POST', path: '/v1/generate', body, secret }) });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as NodeErrorBody).error.code).toBe('draining');

    // Sent after the signal: served, and by the other node.
    const after = await chat({ messages: [{ role: 'user', content: 'A short question after the signal.' }], max_tokens: 4 });
    expect(after.status).toBe(200);
    expect(await metric(other, 'vllm:request_success_total')).toBe(otherServedBefore + 1);

    // The first stream runs to its natural end on the draining node.
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
    const data = text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
    expect(data.at(-1)).toBe('[DONE]');
    const usage = (JSON.parse(data.at(-2)!) as { usage: { completion_tokens: number } }).usage;
    expect(usage.completion_tokens).toBe(maxTokens);
    expect(await serving.exited).toBe(0);

    const streamed = await books.expectSettledExactly(streamId);
    expect(streamed).toMatchObject({ status: 'completed', finishReason: 'length', completionTokens: maxTokens });
    const second = await books.expectSettledExactly(after.headers.get('x-request-id')!);
    expect(second.status).toBe('completed');
  });
});
