/**
 * `npm run bench:prompt-cache`: prompt caching across a pool of real GPU node processes, with
 * cache-aware routing (ROUTING_POLICY=prefix) against random routing (ROUTING_POLICY=random).
 *
 * Workload: CONVERSATIONS conversations share one SYSTEM_TOKENS-token system prompt; each has TURNS
 * turns (a distinct user message of about USER_TOKENS tokens, then the model's answer, both kept
 * in the history), CONCURRENCY conversations at a time, through the real worker (wrangler's local
 * runtime) to NODES node processes with k2-tiny. Each mode gets fresh nodes (cold caches) and a
 * fresh D1. Per request: TTFT (first streamed text), the cached tokens the node reported, and the
 * cost billed in D1. Writes bench-output/prompt-cache.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { k2TinyTokenizer } from '../../shared/tokenizer/index.ts';
import { ensureTinyModel, localCredential, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker } from '../../scripts/local-worker.ts';

const num = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const NODES = num('NODES', 3);
const CONVERSATIONS = num('CONVERSATIONS', 50);
const TURNS = num('TURNS', 3);
const SYSTEM_TOKENS = num('SYSTEM_TOKENS', 2000);
const USER_TOKENS = num('USER_TOKENS', 60);
const MAX_TOKENS = num('MAX_TOKENS', 8);
const CONCURRENCY = num('CONCURRENCY', 4);
const ADMIN_TOKEN = 'bench-admin-token';

type Mode = 'prefix' | 'random';

interface Sample {
  ttftMs: number;
  promptTokens: number;
  cachedTokens: number;
  costMicros: number;
}

const tok = k2TinyTokenizer();
/** Text of about `tokens` tokens, distinct per `seed` from its first token on. */
function filler(seed: string, tokens: number): string {
  const words = ['alpha', 'river', 'stone', 'cloud', 'maple', 'ember', 'delta', 'quartz', 'harbor', 'lumen'];
  let text = seed;
  for (let i = 0; tok.encode(text, { allowSpecial: false }).length < tokens; i++) text += ` ${words[(i * 7 + seed.length) % words.length]}`;
  return text;
}

async function runMode(mode: Mode): Promise<{ samples: Sample[]; wallMs: number; perNodeBlocks: number[] }> {
  const persistTo = mkdtempSync(join(tmpdir(), `bench-prompt-cache-${mode}-`));
  const nodes: LocalNode[] = [];
  try {
    const secret = localCredential('nsec');
    for (let i = 0; i < NODES; i++) nodes.push(await startLocalNode({ extraArgs: ['--kv-blocks', '4096'], secret }));
    applyLocalMigrations(persistTo);
    const worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: nodes[0].url, nodeSecret: secret, persistTo, vars: { ROUTING_POLICY: mode } });
    try {
      const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
      for (const n of nodes) {
        await fetch(`${worker.url}/admin/nodes`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ pool: 'k2-tiny', url: n.url }) });
      }
      const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'bench', 1_000_000_000);
      const key = tenant.key;
      // The plan's tokens-per-minute would throttle the workload, and throttling is not what we measure.
      const unlimited = JSON.stringify({ rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 1_000 });
      await fetch(`${worker.url}/admin/organizations/bench/limits`, { method: 'PUT', headers: adminHeaders, body: unlimited });
      await fetch(`${worker.url}/admin/keys/${tenant.keyId}/limits`, { method: 'PUT', headers: adminHeaders, body: unlimited });
      const system = filler('You are the support assistant of Example Corp. Policies follow.', SYSTEM_TOKENS);
      const samples: Sample[] = [];
      const requestIds: string[] = [];

      async function conversation(c: number) {
        let history = system;
        for (let t = 0; t < TURNS; t++) {
          const prompt = `${history}\nUser: ${filler(`conversation ${c} turn ${t}:`, USER_TOKENS)}\nAssistant:`;
          const started = performance.now();
          const res = await fetch(`${worker.url}/v1/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'k2-tiny', prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } }),
          });
          if (!res.ok || !res.body) throw new Error(`request failed: ${res.status} ${await res.text()}`);
          let ttftMs = -1;
          let answer = '';
          let body = '';
          const decoder = new TextDecoder();
          for await (const chunk of res.body) {
            body += decoder.decode(chunk, { stream: true });
            if (ttftMs < 0 && /"text":"[^"]/.test(body)) ttftMs = performance.now() - started;
          }
          if (ttftMs < 0) ttftMs = performance.now() - started;
          let usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } | undefined;
          for (const block of body.split('\n\n')) {
            if (!block.startsWith('data: {')) continue;
            const data = JSON.parse(block.slice(6)) as { choices: { text: string }[]; usage?: typeof usage };
            answer += data.choices[0]?.text ?? '';
            if (data.usage) usage = data.usage;
          }
          if (!usage) throw new Error('no usage chunk');
          requestIds.push(res.headers.get('x-request-id')!);
          samples.push({ ttftMs, promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details.cached_tokens, costMicros: 0 });
          history = `${prompt}${answer}`;
        }
      }

      const started = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < CONVERSATIONS) await conversation(next++);
        }),
      );
      const wallMs = performance.now() - started;
      // The cost each request was billed, from its D1 usage row (written just after the response).
      for (let i = 0; i < requestIds.length; i++) {
        for (let tries = 0; ; tries++) {
          const row = await fetch(`${worker.url}/admin/usage/${requestIds[i]}`, { headers: adminHeaders });
          if (row.ok) {
            samples[i].costMicros = ((await row.json()) as { event: { costMicros: number } }).event.costMicros;
            break;
          }
          if (tries > 100) throw new Error(`no usage row for ${requestIds[i]}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const perNodeBlocks = await Promise.all(nodes.map(async (n) => (await n.load()).cached_blocks));
      return { samples, wallMs, perNodeBlocks };
    } finally {
      await worker.stop();
    }
  } finally {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    rmSync(persistTo, { recursive: true, force: true });
  }
}

const pct = (xs: number[], p: number) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

await ensureTinyModel();
const results: Record<Mode, Awaited<ReturnType<typeof runMode>>> = {} as never;
for (const mode of ['prefix', 'random'] as const) {
  console.log(`running ${mode} routing: ${NODES} nodes, ${CONVERSATIONS} conversations × ${TURNS} turns ...`);
  results[mode] = await runMode(mode);
}

const row = (mode: Mode) => {
  const { samples, wallMs, perNodeBlocks } = results[mode];
  const ttft = samples.map((s) => s.ttftMs);
  const hit = sum(samples.map((s) => s.cachedTokens)) / sum(samples.map((s) => s.promptTokens));
  const cost = sum(samples.map((s) => s.costMicros));
  return {
    mode,
    requests: samples.length,
    hitRate: hit,
    p50: pct(ttft, 50),
    p95: pct(ttft, 95),
    mean: sum(ttft) / ttft.length,
    costPerRequest: cost / samples.length,
    cost,
    wallMs,
    perNodeBlocks,
  };
};
const on = row('prefix');
const off = row('random');
const lines = [
  `Prompt caching: cache-aware routing vs random routing (${new Date().toISOString()})`,
  '',
  `Workload: ${CONVERSATIONS} conversations sharing one ${SYSTEM_TOKENS}-token system prompt, ${TURNS} turns each ` +
    `(user message ≈${USER_TOKENS} tokens, answer ≤${MAX_TOKENS} tokens, history kept), ${CONCURRENCY} conversations at a time, ` +
    `through the local worker to ${NODES} k2-tiny node processes on ${availableParallelism()} CPU cores. Fresh nodes and D1 per mode. ` +
    'Cost is what D1 billed (k2-tiny price: miss 0.60, hit 0.15, output 2.50 $/M). TTFT = first streamed text at the client.',
  '',
  '| routing | requests | prompt-token hit rate | TTFT p50 ms | TTFT p95 ms | TTFT mean ms | cost / request µ$ | total cost µ$ | wall s | cached blocks per node |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...[on, off].map(
    (r) =>
      `| ${r.mode} | ${r.requests} | ${(r.hitRate * 100).toFixed(1)}% | ${r.p50.toFixed(0)} | ${r.p95.toFixed(0)} | ${r.mean.toFixed(0)} | ${r.costPerRequest.toFixed(1)} | ${r.cost} | ${(r.wallMs / 1000).toFixed(1)} | ${r.perNodeBlocks.join(' / ')} |`,
  ),
  '',
  `Ratios (random ÷ prefix): cost ${(off.cost / on.cost).toFixed(2)}×, TTFT p50 ${(off.p50 / on.p50).toFixed(2)}×, TTFT mean ${(off.mean / on.mean).toFixed(2)}×, ` +
    `miss tokens ${((1 - off.hitRate) / (1 - on.hitRate)).toFixed(2)}×.`,
  '',
];
mkdirSync('bench-output', { recursive: true });
writeFileSync('bench-output/prompt-cache.md', lines.join('\n'));
console.log(lines.join('\n'));
