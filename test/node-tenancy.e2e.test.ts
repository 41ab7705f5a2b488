/**
 * What a shared GPU node learns about the organizations behind requests, and how the edge treats a
 * node it cannot get an answer from, across real processes: the worker (wrangler's local runtime,
 * local D1) → a recording proxy → a real node running k2-tiny with a batch of one sequence.
 *
 *   - the signed hop carries opaque per-org ids (tenant, cache salt), never the org id, and a fresh
 *     cancel_key per request;
 *   - a generation cancelled on the node ends the client's stream with an error event, billed for the
 *     tokens delivered;
 *   - a request the node cannot start within NODE_START_WAIT_MS is answered 429 with Retry-After,
 *     billed nothing, and does not stay queued on the node.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signNodeRequest } from '../shared/node-auth.ts';
import { ensureTinyModel, startLocalNode, type LocalNode } from '../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker, type SeededTenant } from '../scripts/local-worker.ts';
import { Books } from './support/books.ts';
import { ChatStream } from './support/chat-stream.ts';
import { startRecordingProxy, type RecordingProxy } from './support/recording-proxy.ts';

const ADMIN_TOKEN = 'tenancy-admin-token';
const START_WAIT_MS = 1500;

let node: LocalNode;
let proxy: RecordingProxy;
let worker: LocalWorker;
let persistTo: string;
let orgA: SeededTenant;
let orgB: SeededTenant;

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'edge-tenancy-'));
  await ensureTinyModel();
  node = await startLocalNode({ extraArgs: ['--max-batch', '1', '--kv-blocks', '512'] });
  proxy = await startRecordingProxy(node.url);
  applyLocalMigrations(persistTo);
  worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: proxy.url, nodeSecret: node.secret, persistTo, vars: { NODE_START_WAIT_MS: String(START_WAIT_MS) } });
  orgA = await seedTenant(worker.url, ADMIN_TOKEN, 'tenancy-a', 20_000_000);
  orgB = await seedTenant(worker.url, ADMIN_TOKEN, 'tenancy-b', 20_000_000);
});

afterAll(async () => {
  await Promise.allSettled([worker?.stop(), proxy?.stop(), node?.stop()]);
  rmSync(persistTo, { recursive: true, force: true });
});

function chat(org: SeededTenant, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${worker.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${org.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'k2-tiny', temperature: 0, messages: [{ role: 'user', content: 'Tell me a long story about the sea.' }], ...body }),
    signal,
  });
}

/** The node has nothing running or queued (it frees at its next step, so poll briefly). */
async function expectNodeIdle(): Promise<void> {
  for (let i = 0; ; i++) {
    const load = await node.load();
    if (load.running === 0 && load.queue_depth === 0) return;
    if (i > 200) throw new Error(`node still busy: ${JSON.stringify(load)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the edge → node hop for a shared node', () => {
  it('carries opaque per-org tenant and cache-salt ids, never the org id, and a fresh cancel_key per request', async () => {
    const before = proxy.generated.length;
    for (const org of [orgA, orgA, orgB]) {
      const res = await chat(org, { max_tokens: 1 });
      expect(res.status).toBe(200);
      await res.json();
    }
    const [a1, a2, b1] = proxy.generated.slice(before);
    for (const sent of [a1, a2, b1]) {
      const text = JSON.stringify(sent);
      expect(text).not.toContain(orgA.orgId);
      expect(text).not.toContain(orgB.orgId);
      expect(sent.tenant).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(sent.cache_salt).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(sent.cancel_key).toMatch(/^[0-9a-f-]{36}$/);
    }
    // Stable per org (cache affinity, one fair-share bucket), distinct across orgs and purposes.
    expect(a2.tenant).toBe(a1.tenant);
    expect(a2.cache_salt).toBe(a1.cache_salt);
    expect(b1.tenant).not.toBe(a1.tenant);
    expect(b1.cache_salt).not.toBe(a1.cache_salt);
    expect(a1.cache_salt).not.toBe(a1.tenant);
    expect(new Set([a1.cancel_key, a2.cancel_key, b1.cancel_key]).size).toBe(3);
    // Knowing org A's salt gets a direct caller of the node's OpenAI routes nothing but a 400.
    const probe = await fetch(`${node.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Tell me a long story about the sea.' }], max_tokens: 1, cache_salt: a1.cache_salt }),
    });
    expect(probe.status).toBe(400);
    expect(((await probe.json()) as { error: { param: string } }).error.param).toBe('cache_salt');
  });

  it('ends the client stream of a generation cancelled on the node with an error event, billing what was delivered', async () => {
    const before = proxy.generated.length;
    const res = await chat(orgA, { max_tokens: 300, stream: true });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const stream = new ChatStream(res);
    await stream.readContent(3);
    // Cancel on the node with the opening edge's own key, as the edge would.
    const sent = proxy.generated[before];
    const body = JSON.stringify({ version: 1, request_id: sent.request_id, cancel_key: sent.cancel_key });
    const cancel = await fetch(`${node.url}/v1/cancel`, { method: 'POST', headers: { 'content-type': 'application/json', ...(await signNodeRequest({ method: 'POST', path: '/v1/cancel', body, secret: node.secret })) }, body });
    expect(await cancel.json()).toEqual({ cancelled: true });
    await stream.readToEnd();
    const { events, content } = stream;
    const last = JSON.parse(events.at(-1)!) as { error?: { message: string; type: string; code: string } };
    expect(last.error).toMatchObject({ type: 'server_error', message: expect.stringContaining('cancelled') });
    expect(events).not.toContain('[DONE]');
    for (const data of events.slice(0, -1)) {
      const chunk = JSON.parse(data) as { choices: { finish_reason: string | null }[] };
      expect(chunk.choices.every((c) => c.finish_reason === null)).toBe(true);
    }
    const event = await new Books(worker.url, ADMIN_TOKEN, orgA.orgId).expectSettledExactly(requestId);
    expect(event.status).toBe('cancelled');
    expect(event.completionTokens).toBeGreaterThanOrEqual(content);
    expect(event.completionTokens).toBeLessThan(300);
    await expectNodeIdle();
  });

  it('answers 429 with Retry-After, billed nothing, when the node cannot start a request within NODE_START_WAIT_MS', async () => {
    // Org A's long generation holds the node's only batch slot.
    const aggressor = new AbortController();
    const busy = await chat(orgA, { max_tokens: 3000, stream: true }, aggressor.signal);
    await new ChatStream(busy).readContent(1);
    const t0 = Date.now();
    const victim = await chat(orgB, { max_tokens: 1 });
    const waited = Date.now() - t0;
    expect(victim.status).toBe(429);
    expect(Number(victim.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const { error } = (await victim.json()) as { error: { type: string; code: string; message: string } };
    expect(error).toMatchObject({ type: 'rate_limit_error', code: 'overloaded' });
    // Held for about the bound, not for the aggressor's whole generation.
    expect(waited).toBeGreaterThanOrEqual(START_WAIT_MS);
    const row = await new Books(worker.url, ADMIN_TOKEN, orgB.orgId).expectSettledExactly(victim.headers.get('x-request-id')!);
    expect(row).toMatchObject({ costMicros: 0, completionTokens: 0 });
    // The victim's queued copy was cancelled on the node: once the aggressor leaves, nothing remains.
    aggressor.abort();
    await expectNodeIdle();
  });
});
