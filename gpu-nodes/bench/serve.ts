/**
 * `npm run bench:serve`: serving throughput and latency of a real `k2node serve` process on k2-tiny.
 *
 *   1. Concurrency sweep: 1, 8 and 32 client streams, each sending requests back to back (64-token
 *      prompts, unique per request so the prefix cache does not help, 32 completion tokens, greedy).
 *      Reports output tokens/s over the wall time and TTFT / ITL p50 and p99 as the client sees them.
 *   2. Prefix cache: TTFT of a 2048-token prompt on a miss (fresh cache_salt) and on the immediate
 *      repeat (hit), median of 3 pairs. Target: hit / miss ≤ 0.2.
 *
 * The client runs on the same machine as the node and takes some of its cores; on a 2-core box that
 * shows up as a few ms in every figure. Writes bench-output/serve.md.
 *
 * Options: --backend auto|wasm|webgpu|reference (default auto), --threads N (wasm), --quick (fewer requests).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { GenerateRequest, NodeEvent } from '../../shared/protocol.ts';
import { ensureModel } from '../src/model/make-model.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODEL_DIR = fileURLToPath(new URL('../../models/k2-tiny', import.meta.url));
const { values: opts } = parseArgs({
  options: { backend: { type: 'string', default: 'auto' }, threads: { type: 'string' }, quick: { type: 'boolean', default: false } },
});

const PROMPT_TOKENS = 64;
const MAX_TOKENS = 32;
const LONG_PROMPT = 2048;
const CONCURRENCY = [1, 8, 32];
const REQUESTS_PER_STREAM = opts.quick ? 1 : 2;
const PREFIX_TRIALS = opts.quick ? 1 : 3;

// ── the node under test ────────────────────────────────────────────────────────
ensureModel(MODEL_DIR, 'k2-tiny');
// --insecure-no-auth: this measures the engine behind HTTP on 127.0.0.1; the signed edge hop is timed by bench:load.
const serveArgs = ['gpu-nodes/src/cli.ts', 'serve', MODEL_DIR, '--port', '0', '--backend', opts.backend!, '--max-batch', '32', '--insecure-no-auth'];
if (opts.threads) serveArgs.push('--threads', opts.threads);
const child = spawn(process.execPath, serveArgs, {
  cwd: ROOT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
let log = '';
const base = await new Promise<string>((resolve, reject) => {
  let url = '';
  child.once('exit', (code) => reject(new Error(`k2node exited with ${code}:\n${log}`)));
  child.stdout!.on('data', (chunk: Buffer) => {
    log += chunk.toString();
    url ||= /listening on (http:\/\/[\d.]+:\d+)/.exec(log)?.[1] ?? '';
    if (url && log.includes('k2node: ready')) resolve(url);
  });
});
const backend = /kernels: (?!skipped)(.+)/.exec(log)?.[1] ?? opts.backend!;
process.on('exit', () => child.kill('SIGTERM'));

// ── one request as the edge would send it ──────────────────────────────────────
interface Timing {
  ttftMs: number;
  itlMs: number[];
  completionTokens: number;
  cachedTokens: number;
}

let seq = 0;
function prompt(n: number, seed: number): number[] {
  // Ordinary BPE ids (no specials), different for every seed.
  return Array.from({ length: n }, (_, i) => 1000 + ((seed * 7919 + i * 104729) % 90000));
}

async function generate(tokens: number[], maxTokens: number, salt: string): Promise<Timing> {
  const body: GenerateRequest = {
    version: 1,
    request_id: `bench-${seq++}`,
    model: 'k2-tiny',
    prompt_token_ids: tokens,
    sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
    cache_salt: salt,
  };
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`generate: HTTP ${res.status} ${await res.text()}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const arrivals: number[] = [];
  let buf = '';
  let cachedTokens = 0;
  let completionTokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const e = JSON.parse(buf.slice(0, nl)) as NodeEvent;
      buf = buf.slice(nl + 1);
      if (e.type === 'start') cachedTokens = e.cached_tokens;
      else if (e.type === 'tokens') for (let i = 0; i < e.token_ids.length; i++) arrivals.push(performance.now());
      else if (e.type === 'finish') completionTokens = e.usage.completion_tokens;
      else throw new Error(`generate: ${e.code}: ${e.message}`);
    }
  }
  const itlMs = arrivals.slice(1).map((t, i) => t - arrivals[i]);
  return { ttftMs: arrivals[0] - t0, itlMs, completionTokens, cachedTokens };
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const ms = (x: number) => (x < 10 ? x.toFixed(1) : x.toFixed(0));

// ── 1. concurrency sweep ───────────────────────────────────────────────────────
await generate(prompt(PROMPT_TOKENS, 999_999), 4, 'warmup'); // first-touch costs (JIT, allocation of run state)

interface SweepRow {
  streams: number;
  requests: number;
  tokens: number;
  wallS: number;
  ttft: number[];
  itl: number[];
}
const sweep: SweepRow[] = [];
for (const streams of CONCURRENCY) {
  const timings: Timing[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async (_, s) => {
      for (let r = 0; r < REQUESTS_PER_STREAM; r++) timings.push(await generate(prompt(PROMPT_TOKENS, streams * 1000 + s * 10 + r), MAX_TOKENS, 'sweep'));
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  const row: SweepRow = {
    streams,
    requests: timings.length,
    tokens: timings.reduce((n, t) => n + t.completionTokens, 0),
    wallS,
    ttft: timings.map((t) => t.ttftMs),
    itl: timings.flatMap((t) => t.itlMs),
  };
  sweep.push(row);
  console.log(`streams ${streams}: ${(row.tokens / wallS).toFixed(1)} tok/s, TTFT p50 ${ms(percentile(row.ttft, 50))} ms, ITL p50 ${ms(percentile(row.itl, 50))} ms`);
}

// ── 2. prefix cache hit vs miss ────────────────────────────────────────────────
const misses: Timing[] = [];
const hits: Timing[] = [];
for (let trial = 0; trial < PREFIX_TRIALS; trial++) {
  const p = prompt(LONG_PROMPT, 50_000 + trial);
  const salt = `prefix-${trial}-${Date.now()}`; // a fresh namespace: guaranteed cold
  misses.push(await generate(p, 1, salt));
  hits.push(await generate(p, 1, salt));
}
const missMs = percentile(misses.map((t) => t.ttftMs), 50);
const hitMs = percentile(hits.map((t) => t.ttftMs), 50);
const ratio = hitMs / missMs;
console.log(`prefix ${LONG_PROMPT} tokens: miss ${ms(missMs)} ms, hit ${ms(hitMs)} ms, ratio ${ratio.toFixed(3)}`);

const load = await (await fetch(`${base}/v1/load`)).json();

// ── report ─────────────────────────────────────────────────────────────────────
const lines = [
  '# bench:serve — k2node serving k2-tiny',
  '',
  `${new Date().toISOString()} · backend ${backend} · ${availableParallelism()} cores · client and node on the same machine · greedy`,
  '',
  `## Concurrent streams (${PROMPT_TOKENS}-token unique prompts, ${MAX_TOKENS} completion tokens, ${REQUESTS_PER_STREAM} requests per stream)`,
  '',
  '| streams | requests | output tokens | wall s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...sweep.map(
    (r) =>
      `| ${r.streams} | ${r.requests} | ${r.tokens} | ${r.wallS.toFixed(2)} | ${(r.tokens / r.wallS).toFixed(1)} | ${ms(percentile(r.ttft, 50))} | ${ms(percentile(r.ttft, 99))} | ${ms(percentile(r.itl, 50))} | ${ms(percentile(r.itl, 99))} |`,
  ),
  '',
  `## Prefix cache: ${LONG_PROMPT}-token prompt, median of ${PREFIX_TRIALS}`,
  '',
  '| case | TTFT ms | cached_tokens reported |',
  '|---|---:|---:|',
  `| miss (fresh cache_salt) | ${ms(missMs)} | ${misses.map((t) => t.cachedTokens).join(', ')} |`,
  `| hit (same prompt again) | ${ms(hitMs)} | ${hits.map((t) => t.cachedTokens).join(', ')} |`,
  '',
  `hit / miss = **${ratio.toFixed(3)}** (target ≤ 0.2: ${ratio <= 0.2 ? 'met' : 'NOT met'})`,
  '',
  `Node after the run: ${JSON.stringify(load)}`,
  '',
];
mkdirSync(`${ROOT}/bench-output`, { recursive: true });
writeFileSync(`${ROOT}/bench-output/serve.md`, lines.join('\n'));
console.log(`\nwrote bench-output/serve.md`);
process.exit(0);
