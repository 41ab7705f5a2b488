/**
 * Prompt caching across a pool of real GPU node processes: the worker (wrangler's local
 * runtime) routes a repeated long prompt to the node that cached it, bills the cached tokens at the
 * cache-hit price, and re-routes the prefix when that node dies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costMicros, type Price } from '../shared/pricing.ts';
import { k2TinyTokenizer } from '../shared/tokenizer/index.ts';
import { ensureTinyModel, localCredential, startLocalNode, type LocalNode } from '../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from '../scripts/local-worker.ts';

const ADMIN_TOKEN = 'prompt-cache-admin-token';
const BLOCK = 16;

interface Completion {
  choices: { text: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

/**
 * A prompt of exactly `tokens` tokens for the k2-tiny vocabulary (the worker tokenizes the same
 * way), so the test knows how many whole blocks the node can serve from its cache.
 */
function promptOf(tokens: number, seed: string): string {
  const tok = k2TinyTokenizer();
  let text = `${seed}:`;
  while (tok.encode(text, { allowSpecial: false }).length < tokens) text += ' lorem';
  while (tok.encode(text, { allowSpecial: false }).length > tokens) text = text.slice(0, -1);
  expect(tok.encode(text, { allowSpecial: false })).toHaveLength(tokens);
  return text;
}

describe('prompt caching across a node pool', () => {
  let nodes: LocalNode[];
  let worker: LocalWorker;
  let key: string;
  let persistTo: string;

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'prompt-cache-'));
    await ensureTinyModel();
    // One pool, one secret.
    const secret = localCredential('nsec');
    nodes = await Promise.all([0, 1].map(() => startLocalNode({ extraArgs: ['--kv-blocks', '512', '--block-size', String(BLOCK)], secret })));
    applyLocalMigrations(persistTo);
    worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: nodes[0].url, nodeSecret: secret, persistTo });
    for (const n of nodes) await admin('POST', '/nodes', { pool: 'k2-tiny', url: n.url });
    key = (await seedTenant(worker.url, ADMIN_TOKEN, 'prompt-cache', 50_000_000)).key;
  });

  afterAll(async () => {
    await Promise.allSettled([worker?.stop(), ...(nodes ?? []).map((n) => n.stop())]);
    rmSync(persistTo, { recursive: true, force: true });
  });

  async function admin(method: string, path: string, body?: unknown) {
    const res = await fetch(`${worker.url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  }

  async function complete(prompt: string): Promise<{ body: Completion; costMicros: number }> {
    const res = await fetch(`${worker.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'k2-tiny', prompt, max_tokens: 4, temperature: 0 }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const body = (await res.json()) as Completion;
    const requestId = res.headers.get('x-request-id')!;
    for (let i = 0; i < 100; i++) {
      const row = await fetch(`${worker.url}/admin/usage/${requestId}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      if (row.ok) {
        const { event } = (await row.json()) as { event: { costMicros: number; cachedTokens: number } };
        expect(event.cachedTokens).toBe(body.usage.prompt_tokens_details.cached_tokens);
        return { body, costMicros: event.costMicros };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no usage row for ${requestId}`);
  }

  /** Full blocks each live node holds in its prefix cache. */
  async function cachedBlocks(): Promise<number[]> {
    return Promise.all(nodes.map(async (n) => (await n.load()).cached_blocks));
  }

  it('routes the same long prompt to the node that cached it; the repeat costs less by exactly the cached tokens × (miss − hit)', async () => {
    // 1601..1616 tokens → 100 full blocks cacheable (the last token is always recomputed) = 1600 cached
    // tokens, and 1600 × (600000 − 150000) µ$/M = 720 µ$ exactly, so rounding cannot blur the difference.
    const prompt = promptOf(1610, 'shared system prompt');
    const first = await complete(prompt);
    expect(first.body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const [a0, b0] = await cachedBlocks();
    // Exactly one node prefilled it.
    expect([a0, b0].filter((b) => b > 0)).toHaveLength(1);

    const second = await complete(prompt);
    const cached = second.body.usage.prompt_tokens_details.cached_tokens;
    // Only the node that prefilled it can report a hit: the caches are per process.
    expect(cached).toBe(1600);
    expect(second.body.usage.prompt_tokens).toBe(1610);
    expect(await cachedBlocks()).toEqual([a0, b0]);
    expect(second.body.usage.completion_tokens).toBe(first.body.usage.completion_tokens);

    const price = (await admin('GET', '/prices/k2-tiny')) as unknown as Price;
    const tokens = { promptTokens: 1610, completionTokens: second.body.usage.completion_tokens };
    expect(first.costMicros).toBe(costMicros(price, { ...tokens, cachedTokens: 0 }));
    expect(second.costMicros).toBe(costMicros(price, { ...tokens, cachedTokens: 1600 }));
    expect(first.costMicros - second.costMicros).toBe((1600 * (price.inputCacheMiss - price.inputCacheHit)) / 1_000_000);
  });

  it('re-routes a prefix whose node died: the request still succeeds (a miss), and the next one hits on the new node', async () => {
    const prompt = promptOf(700, 'prefix of a node about to die');
    const before = await cachedBlocks();
    await complete(prompt);
    const after = await cachedBlocks();
    // The holder is the node whose cache grew by this prompt's blocks.
    const holder = after.findIndex((b, i) => b > before[i]);
    expect(after.filter((b, i) => b > before[i])).toHaveLength(1);
    const repeat = await complete(prompt);
    expect(repeat.body.usage.prompt_tokens_details.cached_tokens).toBe(688);

    await nodes[holder].stop();
    const survivor = nodes[1 - holder];
    nodes = [survivor];
    const moved = await complete(prompt);
    expect(moved.body.usage.prompt_tokens).toBe(700);
    expect(moved.body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const again = await complete(prompt);
    expect(again.body.usage.prompt_tokens_details.cached_tokens).toBe(688);
    expect(again.costMicros).toBeLessThan(moved.costMicros);
  });
});
