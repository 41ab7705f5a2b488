/**
 * `npm run bench:serve`: serving throughput and latency of real `k2node serve` processes on k2-tiny.
 *
 *   1. One stream: 12 requests one after another (64-token unique prompts, 64 output tokens, greedy).
 *      Per request, its decode rate (tokens after the first over the time from its first token to its
 *      last, as the client sees them) and TTFT; reported as median with p25–p75 and min–max.
 *   2. Concurrency sweep: 8 and 32 client streams, each sending requests back to back (64-token
 *      prompts, unique per request so the prefix cache does not help, 32 completion tokens, greedy).
 *      Reports output tokens/s over the wall time and TTFT / ITL p50 and p99 as the client sees them.
 *   3. Prefix cache: TTFT of a 2048-token prompt on a miss (fresh cache_salt) and on the immediate
 *      repeat (hit), median of 3 pairs. Target: hit / miss ≤ 0.2.
 *
 * Our node runs at 1 thread and at --threads (one process each; the idle one's workers sleep), and so
 * does llama.cpp on the same model in the same run (./llama-cpp-model.ts): the checkpoint is converted
 * to GGUF by ./k2-to-gguf.ts, llama.cpp's logits are checked against our float reference first (no
 * column if they disagree), then each workload runs on our node (over HTTP) and right after on
 * llama.cpp (in-process, same prompts and lengths), and the 2048-token prompt is prefilled by both.
 * Each side is credited with its better thread count per row; ratios are ours / llama.cpp of those.
 *
 * The client runs on the same machine as the node and takes some of its cores; on a 2-core box that
 * shows up as a few ms in every figure. Writes bench-output/serve.md with the load average before and
 * after the run.
 *
 * Options: --backend auto|wasm|webgpu|reference (default auto), --threads N (wasm; default the cores,
 * for llama.cpp too), --quick (fewer requests), --no-llama (skip the llama.cpp column), --lm-head int8|bf16|int4
 * (the node's lm_head format; llama.cpp keeps BF16).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { GenerateRequest } from '../../shared/protocol.ts';
import { ensureModel } from '../src/model/make-model.ts';
import { convertToGguf } from './k2-to-gguf.ts';
import { LlamaCppModel, logitsCheck, type LogitsCheck, type RequestRate } from './llama-cpp-model.ts';
import { NodeEventReader } from '../../shared/node-event-reader.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODEL_DIR = fileURLToPath(new URL('../../models/k2-tiny', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    threads: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-llama': { type: 'boolean', default: false },
    'lm-head': { type: 'string', default: 'int8' },
  },
});
const THREADS = opts.threads ? Number(opts.threads) : availableParallelism();
/**
 * Both sides run at 1 thread and at THREADS and each is credited with its better figure per row: llama.cpp's
 * spinning threads collapse on a busy machine (see llama-cpp-model.ts), and our pool's two threads wait
 * for each other every op too, so one descheduled thread stalls a step.
 */
const THREAD_COUNTS = [...new Set([1, THREADS])];
/**
 * A thread count (of either side) that reaches under a quarter of its side's better tok/s in a row is
 * collapsing on a busy machine (waiting threads); it is not run again (at 32 streams it would take minutes).
 */
const COLLAPSED = 0.25;
const peerDropped = new Set<number>();

const PROMPT_TOKENS = 64;
const MAX_TOKENS = 32;
const LONG_PROMPT = 2048;
const SWEEP_STREAMS = [8, 32];
/** The 1-stream figure: this many requests one after another, each timed on its own. */
const SINGLE_REQUESTS = opts.quick ? 4 : 12;
const SINGLE_TOKENS = 64;
const REQUESTS_PER_STREAM = opts.quick ? 1 : 2;
const PREFIX_TRIALS = opts.quick ? 1 : 3;

// ── the node under test ────────────────────────────────────────────────────────
ensureModel(MODEL_DIR, 'k2-tiny');

// ── the peer: llama.cpp on the same weights, checked before it is timed ───────────
// Its logits are compared with our reference kernels' at every position of a prompt. llama.cpp rounds
// activations to bf16 for its BF16 matmuls (on CPUs with native BF16 dot products) and to q8_0 for
// Q4_0, which moves a position's logits by ~1 % of their range; now and then that flips a near-tied
// expert choice and one position differs by more. A wrong conversion (rope, routing, scales) moves every
// position by far more and changes the argmax, so: median per-position difference ≤ 3 %, top-1 ≥ 90 %.
const LOGITS_MEDIAN_REL_DIFF = 0.03;
const LOGITS_TOP1 = 0.9;
let peer: LlamaCppModel | null = null;
let check: LogitsCheck | null = null;
let peerSkipped = opts['no-llama'] ? 'skipped (--no-llama)' : '';
if (!peerSkipped) {
  const gguf = join(MODEL_DIR, '..', 'k2-tiny.gguf');
  convertToGguf(MODEL_DIR, gguf);
  peer = await LlamaCppModel.load(gguf);
  check = await logitsCheck(peer, MODEL_DIR, prompt(48, 424_242));
  const summary = `top-1 ${check.top1Agree}/${check.positions}, max |diff| / max |logit| per position: median ${check.medianRelDiff.toExponential(2)}, worst ${check.maxRelDiff.toExponential(2)}`;
  console.log(`llama.cpp logits check: ${summary}`);
  if (check.top1Agree < LOGITS_TOP1 * check.positions || check.medianRelDiff > LOGITS_MEDIAN_REL_DIFF) {
    peerSkipped = `left out: its logits differ from ours (${summary})`;
    await peer.close();
    peer = null;
  }
}

// ── our node: one `k2node serve` process per thread count, each idle (workers asleep) while the other runs ──
interface OurNode {
  threads: number;
  base: string;
  backend: string;
}
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGTERM')));
async function startNode(threads: number): Promise<OurNode> {
  // --insecure-no-auth: this measures the engine behind HTTP on 127.0.0.1; the signed edge hop is timed by bench:load.
  const args = ['gpu-nodes/src/cli.ts', 'serve', MODEL_DIR, '--port', '0', '--backend', opts.backend!, '--max-batch', '32', '--insecure-no-auth'];
  args.push('--threads', String(threads), '--lm-head', opts['lm-head']!);
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
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
  return { threads, base, backend: /kernels: (?!skipped)(.+)/.exec(log)?.[1] ?? opts.backend! };
}
const nodes: OurNode[] = [];
for (const threads of THREAD_COUNTS) nodes.push(await startNode(threads));

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

async function generate(node: OurNode, tokens: number[], maxTokens: number, salt: string): Promise<Timing> {
  const body: GenerateRequest = {
    version: 1,
    request_id: `bench-${seq++}`,
    model: 'k2-tiny',
    prompt_token_ids: tokens,
    sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
    cache_salt: salt,
  };
  const t0 = performance.now();
  const res = await fetch(`${node.base}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`generate: HTTP ${res.status} ${await res.text()}`);
  const events = new NodeEventReader(res.body!);
  const arrivals: number[] = [];
  let cachedTokens = 0;
  let completionTokens = 0;
  for (let e = await events.next(); e; e = await events.next()) {
    if (e.type === 'start') cachedTokens = e.cached_tokens;
    else if (e.type === 'tokens') for (let i = 0; i < e.token_ids.length; i++) arrivals.push(performance.now());
    else if (e.type === 'finish') completionTokens = e.usage.completion_tokens;
    else throw new Error(`generate: ${e.code}: ${e.message}`);
  }
  const itlMs = arrivals.slice(1).map((t, i) => t - arrivals[i]);
  return { ttftMs: arrivals[0] - t0, itlMs, completionTokens, cachedTokens };
}

/** The largest of the measured figures (null: not measured). */
function bestOf(xs: (number | null)[]): number {
  return Math.max(...xs.filter((x): x is number => x !== null));
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const ms = (x: number) => (x < 10 ? x.toFixed(1) : x.toFixed(0));

/**
 * After a row, a thread count (of either side) that reached under COLLAPSED of its side's better
 * figure is dropped from the later rows.
 */
function dropCollapsed(figures: (number | null)[], dropped: Set<number>): void {
  const best = bestOf(figures);
  figures.forEach((x, i) => x !== null && x < COLLAPSED * best && dropped.add(THREAD_COUNTS[i]));
}
const oursDropped = new Set<number>();
const loadBefore = loadavg();

for (const node of nodes) await generate(node, prompt(PROMPT_TOKENS, 999_999), 4, 'warmup'); // first-touch costs (JIT, allocation of run state)

// ── 1. one stream: requests one after another, each timed on its own ──────────────
// A single request's decode rate (tokens after the first over the time from the first to the last) is
// what one user sees; its median over SINGLE_REQUESTS requests, with p25–p75, is the 1-stream figure.
interface SingleRow {
  threads: number;
  rates: RequestRate[];
}
const singlePrompts = Array.from({ length: SINGLE_REQUESTS }, (_, r) => prompt(PROMPT_TOKENS, 777_000 + r));
const oursSingle: (SingleRow | null)[] = [];
for (const node of nodes) {
  const rates: RequestRate[] = [];
  for (const p of singlePrompts) {
    const t = await generate(node, p, SINGLE_TOKENS, 'single');
    const decodeMs = t.itlMs.reduce((a, b) => a + b, 0);
    rates.push({ tokens: t.itlMs.length + 1, ttftMs: t.ttftMs, decodeTokS: t.itlMs.length / (decodeMs / 1000) });
  }
  oursSingle.push({ threads: node.threads, rates });
}
const peerSingle: (SingleRow | null)[] = [];
for (const threads of peer ? THREAD_COUNTS : []) peerSingle.push({ threads, rates: await peer!.sequential(threads, singlePrompts, SINGLE_TOKENS) });
const singleMedian = (r: SingleRow | null) => (r ? percentile(r.rates.map((x) => x.decodeTokS), 50) : null);
dropCollapsed(oursSingle.map(singleMedian), oursDropped);
if (peer) dropCollapsed(peerSingle.map(singleMedian), peerDropped);
const spread = (r: SingleRow | null) => {
  if (!r) return 'dropped';
  const xs = r.rates.map((x) => x.decodeTokS);
  return `${percentile(xs, 50).toFixed(1)} (${percentile(xs, 25).toFixed(0)}–${percentile(xs, 75).toFixed(0)})`;
};
console.log(`1 stream, ${SINGLE_REQUESTS} requests × ${SINGLE_TOKENS} tokens, decode tok/s median (p25–p75): ours ${oursSingle.map((r, i) => `${spread(r)} at ${THREAD_COUNTS[i]} thread(s)`).join(', ')}${peer ? `; llama.cpp ${peerSingle.map((r, i) => `${spread(r)} at ${THREAD_COUNTS[i]} thread(s)`).join(', ')}` : ''}`);

// ── 2. concurrency sweep ───────────────────────────────────────────────────────
interface SweepRow {
  streams: number;
  /** Per THREAD_COUNTS entry, our node's run (null: dropped). */
  ours: ({ requests: number; tokens: number; wallS: number; ttft: number[]; itl: number[] } | null)[];
  /** llama.cpp's output tok/s on the same streams, requests and lengths, per THREAD_COUNTS entry (null: dropped); empty without the peer. */
  peerTokS: (number | null)[];
}
const tokS = (o: SweepRow['ours'][number]) => (o ? o.tokens / o.wallS : null);
const sweep: SweepRow[] = [];
const sweepPrompt = (streams: number, s: number, r: number) => prompt(PROMPT_TOKENS, streams * 1000 + s * 10 + r);
for (const streams of SWEEP_STREAMS) {
  const row: SweepRow = { streams, ours: [], peerTokS: [] };
  for (const node of nodes) {
    if (oursDropped.has(node.threads)) {
      row.ours.push(null);
      continue;
    }
    const timings: Timing[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: streams }, async (_, s) => {
        for (let r = 0; r < REQUESTS_PER_STREAM; r++) timings.push(await generate(node, sweepPrompt(streams, s, r), MAX_TOKENS, 'sweep'));
      }),
    );
    const wallS = (performance.now() - t0) / 1000;
    row.ours.push({
      requests: timings.length,
      tokens: timings.reduce((n, t) => n + t.completionTokens, 0),
      wallS,
      ttft: timings.map((t) => t.ttftMs),
      itl: timings.flatMap((t) => t.itlMs),
    });
  }
  for (const threads of peer ? THREAD_COUNTS : []) {
    if (peerDropped.has(threads)) {
      row.peerTokS.push(null);
      continue;
    }
    const p = await peer!.sweep(threads, streams, REQUESTS_PER_STREAM, (s, r) => sweepPrompt(streams, s, r), MAX_TOKENS);
    row.peerTokS.push(p.tokens / p.wallS);
  }
  dropCollapsed(row.ours.map(tokS), oursDropped);
  if (peer) dropCollapsed(row.peerTokS, peerDropped);
  sweep.push(row);
  const at = (xs: (number | null)[]) => xs.map((x, i) => `${x === null ? 'dropped' : `${x.toFixed(1)} tok/s`} at ${THREAD_COUNTS[i]} thread(s)`).join(', ');
  const vs = row.peerTokS.length === 0 ? '' : `; llama.cpp ${at(row.peerTokS)}, better / better ${(bestOf(row.ours.map(tokS)) / bestOf(row.peerTokS)).toFixed(2)}`;
  console.log(`streams ${streams}: ours ${at(row.ours.map(tokS))}${vs}`);
}

// ── 3. prefix cache hit vs miss, and prefill speed ─────────────────────────────────
const misses: Timing[][] = nodes.map(() => []);
const hits: Timing[][] = nodes.map(() => []);
const peerPrefillS: number[][] = THREAD_COUNTS.map(() => []);
for (let trial = 0; trial < PREFIX_TRIALS; trial++) {
  const p = prompt(LONG_PROMPT, 50_000 + trial);
  for (const [i, node] of nodes.entries()) {
    if (oursDropped.has(node.threads)) continue;
    const salt = `prefix-${node.threads}-${trial}-${Date.now()}`; // a fresh namespace: guaranteed cold
    misses[i].push(await generate(node, p, 1, salt));
    hits[i].push(await generate(node, p, 1, salt));
  }
  for (let i = 0; peer && i < THREAD_COUNTS.length; i++) if (!peerDropped.has(THREAD_COUNTS[i])) peerPrefillS[i].push(await peer.prefill(THREAD_COUNTS[i], p));
}
const missMs = misses.map((m) => (m.length ? percentile(m.map((t) => t.ttftMs), 50) : null));
const hitMs = hits.map((h) => (h.length ? percentile(h.map((t) => t.ttftMs), 50) : null));
// Prefill speed: our miss TTFT includes the HTTP hop and the first decode step, llama.cpp's the prompt alone.
const oursPrefillTokS = missMs.map((m) => (m === null ? null : LONG_PROMPT / (m / 1000)));
const peerPrefillTokS = peer ? peerPrefillS.map((s) => (s.length ? LONG_PROMPT / percentile(s, 50) : null)) : [];
console.log(`prefill ${LONG_PROMPT} tokens, tok/s: ours ${oursPrefillTokS.map((x, i) => `${x === null ? 'dropped' : x.toFixed(0)} at ${THREAD_COUNTS[i]} thread(s)`).join(', ')}${peer ? `; llama.cpp ${peerPrefillTokS.map((x, i) => `${x === null ? 'dropped' : x.toFixed(0)} at ${THREAD_COUNTS[i]} thread(s)`).join(', ')}` : ''}`);
await peer?.close();

const loads = await Promise.all(nodes.map(async (n) => (await fetch(`${n.base}/v1/load`)).json()));
const loadAfter = loadavg();

// ── report ─────────────────────────────────────────────────────────────────────
/** One side's cells, its better figure in bold (that thread count won), then ours / llama.cpp of the better ones. */
const bold = (cells: (string | null)[], figures: (number | null)[]) => {
  const best = bestOf(figures);
  return cells.map((c, i) => (c === null ? 'dropped (collapsed earlier)' : figures[i] === best ? `**${c}**` : c));
};
const row = (label: string, ours: (number | null)[], theirs: (number | null)[], cell: (i: number, x: number) => string) => {
  const oursCells = bold(ours.map((x, i) => (x === null ? null : cell(i, x))), ours);
  const theirCells = theirs.length === 0 ? THREAD_COUNTS.map(() => '-') : bold(theirs.map((x, i) => (x === null ? null : cell(i + THREAD_COUNTS.length, x))), theirs);
  const ratio = theirs.length === 0 ? '-' : (bestOf(ours) / bestOf(theirs)).toFixed(2);
  return `| ${label} | ${[...oursCells, ...theirCells, ratio].join(' | ')} |`;
};
const threadsLabel = (t: number) => `${t} thread${t > 1 ? 's' : ''}`;
const singleAll = [...oursSingle, ...peerSingle];
const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
const lines = [
  '# bench:serve — k2node serving k2-tiny',
  '',
  `${new Date().toISOString()} · backend ${[...new Set(nodes.map((n) => n.backend))].join(' / ')} · lm_head ${opts['lm-head']} · ours and llama.cpp each at ${THREAD_COUNTS.map(threadsLabel).join(' and ')} · ${availableParallelism()} cores · load average (1/5/15 min) ${fmtLoad(loadBefore)} before → ${fmtLoad(loadAfter)} after · client and node on the same machine · greedy`,
  '',
  '## Beside llama.cpp on the same weights',
  '',
  peer === null && peerSkipped
    ? `llama.cpp column ${peerSkipped}.`
    : `llama.cpp (node-llama-cpp, prebuilt CPU libraries, in-process) runs a GGUF written by gpu-nodes/bench/k2-to-gguf.ts (routed experts Q4_0 from our int4 codes, the rest BF16/F32). Logits check against our reference kernels over ${check!.positions} positions: top-1 ${check!.top1Agree}/${check!.positions}, max |diff| / max |logit| per position median ${check!.medianRelDiff.toExponential(2)}, worst ${check!.maxRelDiff.toExponential(2)}.`,
  '',
  `Both sides run at ${THREAD_COUNTS.map(threadsLabel).join(' and ')} (ours: one node process per thread count) and each is credited with its better figure per row (in bold); a thread count under ${COLLAPSED} of its side's better figure in a row is dropped from the later rows. 1 stream: ${SINGLE_REQUESTS} requests one after another, ${PROMPT_TOKENS}-token prompts, ${SINGLE_TOKENS} output tokens, the same for both; decode tok/s per request (tokens after the first over first-to-last token time), median (p25–p75).`,
  '',
  `| workload | ${THREAD_COUNTS.map((t) => `ours (HTTP), ${threadsLabel(t)}`).join(' | ')} | ${THREAD_COUNTS.map((t) => `llama.cpp, ${threadsLabel(t)}`).join(' | ')} | ours / llama.cpp, better of each |`,
  `|---|${THREAD_COUNTS.map(() => '---:|').join('')}${THREAD_COUNTS.map(() => '---:|').join('')}---:|`,
  row('1 stream, decode tok/s per request', oursSingle.map(singleMedian), peerSingle.map(singleMedian), (i) => spread(singleAll[i])),
  ...sweep.map((r) => row(`${r.streams} streams, output tok/s`, r.ours.map(tokS), r.peerTokS, (_, x) => x.toFixed(1))),
  row(`prefill ${LONG_PROMPT} tokens, tok/s (ours: miss TTFT)`, oursPrefillTokS, peerPrefillTokS, (_, x) => x.toFixed(0)),
  '',
  `## One stream (${SINGLE_REQUESTS} requests one after another, ${PROMPT_TOKENS}-token unique prompts, ${SINGLE_TOKENS} output tokens)`,
  '',
  '| side | threads | requests | output tokens | decode tok/s min | p25 | median | p75 | max | TTFT p50 ms |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...singleAll.map((r, i) => {
    const side = i < THREAD_COUNTS.length ? 'ours (HTTP)' : 'llama.cpp';
    const xs = r!.rates.map((x) => x.decodeTokS);
    return `| ${side} | ${r!.threads} | ${r!.rates.length} | ${r!.rates.reduce((n, x) => n + x.tokens, 0)} | ${[0, 25, 50, 75, 100].map((p) => percentile(xs, p).toFixed(1)).join(' | ')} | ${ms(percentile(r!.rates.map((x) => x.ttftMs), 50))} |`;
  }),
  '',
  `## Concurrent streams, ours (${PROMPT_TOKENS}-token unique prompts, ${MAX_TOKENS} completion tokens, ${REQUESTS_PER_STREAM} requests per stream)`,
  '',
  '| streams | threads | requests | output tokens | wall s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...sweep.flatMap((r) =>
    r.ours.map((o, i) =>
      o === null
        ? `| ${r.streams} | ${THREAD_COUNTS[i]} | dropped (collapsed earlier) | | | | | | | |`
        : `| ${r.streams} | ${THREAD_COUNTS[i]} | ${o.requests} | ${o.tokens} | ${o.wallS.toFixed(2)} | ${(o.tokens / o.wallS).toFixed(1)} | ${ms(percentile(o.ttft, 50))} | ${ms(percentile(o.ttft, 99))} | ${ms(percentile(o.itl, 50))} | ${ms(percentile(o.itl, 99))} |`,
    ),
  ),
  '',
  `## Prefix cache: ${LONG_PROMPT}-token prompt, median of ${PREFIX_TRIALS}`,
  '',
  '| threads | miss TTFT ms (fresh cache_salt) | hit TTFT ms (same prompt again) | cached_tokens reported on hits | hit / miss (target ≤ 0.2) |',
  '|---:|---:|---:|---:|---:|',
  ...nodes.map((n, i) =>
    missMs[i] === null
      ? `| ${n.threads} | dropped (collapsed earlier) | | | |`
      : `| ${n.threads} | ${ms(missMs[i]!)} | ${ms(hitMs[i]!)} | ${hits[i].map((t) => t.cachedTokens).join(', ')} | **${(hitMs[i]! / missMs[i]!).toFixed(3)}** (${hitMs[i]! / missMs[i]! <= 0.2 ? 'met' : 'NOT met'}) |`,
  ),
  '',
  ...nodes.map((n, i) => `Node at ${threadsLabel(n.threads)} after the run: ${JSON.stringify(loads[i])}`),
  '',
];
mkdirSync(`${ROOT}/bench-output`, { recursive: true });
writeFileSync(`${ROOT}/bench-output/serve.md`, lines.join('\n'));
console.log(`\nwrote bench-output/serve.md`);
process.exit(0);
