/**
 * `npm run bench:node-responsiveness`: how fast a busy `k2node serve` answers its control routes.
 *
 * A real node process on k2-tiny runs a full batch of decodes: --streams client streams (default 20)
 * against --max-batch equal to it, each sending generations back to back (64-token prompts, unique per
 * request, 256 completion tokens, greedy), so every engine step decodes the whole batch. Once the batch
 * is full, three probe loops run side by side for --seconds (default 20): `GET /health`, `GET /v1/load`
 * (signed, as the edge polls it) and `GET /metrics`, each one request at a time, 10 per second.
 * Reports each route's latency (send to last byte) p50 / p99 / max and how many took over 50 ms and
 * over 500 ms (the edge's load-poll timeout), beside the decode rate the node sustained meanwhile.
 *
 * Writes bench-output/node-responsiveness.md (a table row per route, the load stated above it).
 * Options: --backend auto|wasm|webgpu|reference (default auto), --threads N, --streams N,
 * --seconds N, --label TEXT (names the build in the output, e.g. "engine on the HTTP thread").
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureTinyModel, REPO_ROOT, startLocalNode } from '../../scripts/local-node.ts';
import { signNodeRequest } from '../../shared/node-auth.ts';
import type { GenerateRequest } from '../../shared/protocol.ts';
import { NodeEventReader } from '../../shared/node-event-reader.ts';

const { values: opts } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    threads: { type: 'string' },
    streams: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '20' },
    label: { type: 'string', default: '' },
  },
});
const STREAMS = Number(opts.streams);
const SECONDS = Number(opts.seconds);
const PROMPT_TOKENS = 64;
const MAX_TOKENS = 256;
const PROBE_HZ = 10;

await ensureTinyModel();
const node = await startLocalNode({
  extraArgs: [
    '--backend', opts.backend,
    ...(opts.threads ? ['--threads', opts.threads] : []),
    '--max-batch', String(STREAMS),
    '--kv-blocks', String(Math.ceil((STREAMS * (PROMPT_TOKENS + MAX_TOKENS)) / 16) + 64),
  ],
  log: (line) => {
    if (line.startsWith('k2node: kernels') || line.startsWith('k2node: ready')) console.log(line);
  },
});

let stopping = false;
let generated = 0;
let nextRequest = 0;

/** One client stream: generations back to back until the probes are done. */
async function stream(s: number): Promise<void> {
  while (!stopping) {
    const n = nextRequest++;
    const req: GenerateRequest = {
      version: 1,
      request_id: `resp-${s}-${n}`,
      model: 'k2-tiny',
      // Unique per request so the prefix cache does not shorten any prefill.
      prompt_token_ids: Array.from({ length: PROMPT_TOKENS }, (_, i) => 1000 + ((n * 7919 + i * 31) % 90000)),
      sampling: { max_tokens: MAX_TOKENS, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
      // A tenant per stream: one tenant may run only part of the batch, and the batch is to be full.
      tenant: `stream-${s}`,
    };
    const body = JSON.stringify(req);
    const res = await fetch(`${node.url}/v1/generate`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(await signNodeRequest({ method: 'POST', path: '/v1/generate', body, secret: node.secret })) } });
    if (!res.ok) throw new Error(`generate: ${res.status} ${await res.text()}`);
    const events = new NodeEventReader(res.body!);
    for (let ev = await events.next(); ev; ev = await events.next()) {
      if (ev.type === 'tokens') generated += ev.token_ids.length;
    }
  }
}

type Route = '/health' | '/v1/load' | '/metrics';

async function probeOnce(route: Route): Promise<number> {
  const headers = route === '/v1/load' ? await signNodeRequest({ method: 'GET', path: route, body: '', secret: node.secret }) : {};
  const t0 = performance.now();
  const res = await fetch(node.url + route, { headers });
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (!res.ok) throw new Error(`${route}: ${res.status}`);
  return ms;
}

/** One request at a time at PROBE_HZ until `until`; a slow answer delays the next (as a poller's would). */
async function probe(route: Route, until: number): Promise<number[]> {
  const out: number[] = [];
  while (performance.now() < until) {
    const started = performance.now();
    out.push(await probeOnce(route));
    const wait = 1000 / PROBE_HZ - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return out;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

// Stopping the node at the end breaks the streams still reading: only an earlier failure counts.
const clients = Array.from({ length: STREAMS }, (_, s) =>
  stream(s).catch((err: unknown) => {
    if (!stopping) throw err;
  }),
);
// Wait for the full batch: every stream's first request running.
for (let l = await node.load(); l.running < STREAMS; l = await node.load()) await new Promise((r) => setTimeout(r, 100));
const tokens0 = generated;
const t0 = performance.now();
const until = t0 + SECONDS * 1000;
const routes: Route[] = ['/health', '/v1/load', '/metrics'];
const samples = await Promise.all(routes.map((r) => probe(r, until)));
const decodeRate = (generated - tokens0) / ((performance.now() - t0) / 1000);
const running = (await node.load()).running;
stopping = true;
await node.stop();
await Promise.allSettled(clients);

const label = opts.label || 'this build';
const rows = routes.map((route, i) => {
  const xs = samples[i];
  const f = (ms: number) => ms.toFixed(1);
  return `| ${route} | ${xs.length} | ${f(quantile(xs, 0.5))} | ${f(quantile(xs, 0.99))} | ${f(Math.max(...xs))} | ${xs.filter((x) => x > 50).length} | ${xs.filter((x) => x > 500).length} |`;
});
const md = [
  `# Node control routes under full-batch decode (${label})`,
  '',
  `${STREAMS} concurrent generation streams, --max-batch ${STREAMS} (batch full: ${running} running at the end), 64-token prompts, ` +
    `256 completion tokens, backend ${opts.backend}${opts.threads ? ` × ${opts.threads} threads` : ''}; ${decodeRate.toFixed(0)} tokens/s decoded during the ` +
    `${SECONDS} s window. Probes: each route one request at a time, ${PROBE_HZ}/s. ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ` +
    `load average ${loadavg()[0].toFixed(2)} at the end.`,
  '',
  '| route | probes | p50 ms | p99 ms | max ms | > 50 ms | > 500 ms |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows,
  '',
].join('\n');
const dir = join(REPO_ROOT, 'bench-output');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'node-responsiveness.md'), md);
console.log(md);
console.log(`wrote ${join(dir, 'node-responsiveness.md')} (${availableParallelism()} cores available)`);
