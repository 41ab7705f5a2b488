/**
 * bench:fairness — one organization saturates a real GPU node (k2-tiny) with more concurrent long
 * generations than its batch holds; another sends 1-token requests. Reports the victim's time to
 * first token (TTFT) alone on the idle node, under the aggressor as its own tenant (fair scheduling:
 * gpu-nodes/src/engine/scheduler.ts), and under the aggressor when both share one tenant (one FIFO
 * queue: what every request got before the node knew tenants). Straight to the node's signed
 * token-batch route with the tenant ids the edge would send, so the figure is the node's alone.
 * Each victim request is sent after a random pause (0-300 ms), so it lands at a random point of the
 * step in progress rather than always just after one began. Alongside TTFT: the aggressor's token
 * throughput over the same window and the node's mean step time (from /metrics), the cost fairness
 * is paid in and the floor under the victim's wait.
 *
 *   npm run bench:fairness -- [--aggressors 50] [--max-batch 32] [--aggressor-tokens 128] [--samples 15] [--shared-samples 3]
 * Writes bench-output/fairness.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { signNodeRequest } from '../../shared/node-auth.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, type GenerateRequest, type NodeLoad } from '../../shared/protocol.ts';
import { defaultTenantCap } from '../../gpu-nodes/src/engine/scheduler.ts';
import { ensureTinyModel, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';
import { NodeEventReader } from '../../shared/node-event-reader.ts';

const { values } = parseArgs({
  options: {
    aggressors: { type: 'string', default: '50' },
    'max-batch': { type: 'string', default: '32' },
    'aggressor-tokens': { type: 'string', default: '128' },
    samples: { type: 'string', default: '15' },
    'shared-samples': { type: 'string', default: '3' },
  },
});
const AGGRESSORS = Number(values.aggressors);
const MAX_BATCH = Number(values['max-batch']);
const AGGRESSOR_TOKENS = Number(values['aggressor-tokens']);
const SAMPLES = Number(values.samples);
const SHARED_SAMPLES = Number(values['shared-samples']);
const MAX_PAUSE_MS = 300;
/** What one tenant may run (the node's default cap, gpu-nodes/src/engine/scheduler.ts). */
const TENANT_CAP = defaultTenantCap(MAX_BATCH);

let seq = 0;
/** One signed generation; resolves with ms to the first token, after reading the stream to its end. `onTokens` sees each tokens event's count. */
async function generate(node: LocalNode, tenant: string, maxTokens: number, prompt: number[], onTokens?: (n: number) => void): Promise<number> {
  const req: GenerateRequest = {
    version: PROTOCOL_VERSION,
    request_id: `fair-${seq++}`,
    model: 'k2-tiny',
    prompt_token_ids: prompt,
    sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
    cache_salt: tenant,
    tenant,
  };
  const body = JSON.stringify(req);
  const t0 = performance.now();
  const res = await fetch(`${node.url}/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...(await signNodeRequest({ method: 'POST', path: '/v1/generate', body, secret: node.secret })) },
    body,
  });
  if (!res.ok) throw new Error(`node answered ${res.status}: ${await res.text()}`);
  let ttft = NaN;
  const events = new NodeEventReader(res.body!);
  for (let ev = await events.next(); ev; ev = await events.next()) {
    if (ev.type === 'tokens') {
      if (Number.isNaN(ttft)) ttft = performance.now() - t0;
      onTokens?.(ev.token_ids.length);
    }
    if (ev.type === 'error') throw new Error(ev.message);
  }
  return ttft;
}

const prompt = (i: number) => Array.from({ length: 24 }, (_, j) => 1000 + ((i * 31 + j * 7) % 5000));
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Engine steps and seconds inside the model runner so far, from the node's /metrics. */
async function engineCounters(node: LocalNode): Promise<{ steps: number; executeS: number }> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const value = (name: string) => {
    const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`/metrics has no ${name}`);
    return Number(m[1]);
  };
  return { steps: value('k2node_engine_steps_total'), executeS: value('k2node_engine_execute_seconds_total') };
}

interface Measured {
  ttfts: number[];
  running: number;
  queued: number;
  /** Aggressor tokens streamed per second while the victim was measured (NaN without an aggressor). */
  aggressorTps: number;
  /** Mean engine step (ms inside the model runner) while the victim was measured. */
  stepMs: number;
}

/** The victim's TTFTs, one request at a time, while `aggressorTenant` keeps AGGRESSORS generations in flight (none when undefined). */
async function measure(node: LocalNode, victimTenant: string, aggressorTenant: string | undefined, samples: number): Promise<Measured> {
  let stop = false;
  let aggressorTokens = 0;
  const count = (n: number) => {
    aggressorTokens += n;
  };
  const loops = aggressorTenant === undefined ? [] : Array.from({ length: AGGRESSORS }, async (_, i) => {
    while (!stop) await generate(node, aggressorTenant, AGGRESSOR_TOKENS, prompt(i + 100 * seq), count);
  });
  if (aggressorTenant !== undefined) {
    // Saturated: the batch holds all it may of the aggressor and the rest queue.
    const saturated = (l: NodeLoad) => l.running >= Math.min(TENANT_CAP, AGGRESSORS) && l.running + l.queue_depth >= AGGRESSORS;
    for (let load = await node.load(); !saturated(load); load = await node.load()) await new Promise((r) => setTimeout(r, 50));
  }
  const loadSeen = await node.load();
  const before = await engineCounters(node);
  const tokens0 = aggressorTokens;
  const t0 = performance.now();
  const ttfts: number[] = [];
  for (let i = 0; i < samples; i++) {
    await new Promise((r) => setTimeout(r, Math.random() * MAX_PAUSE_MS));
    ttfts.push(await generate(node, victimTenant, 1, prompt(10_000 + i + seq)));
  }
  const seconds = (performance.now() - t0) / 1000;
  const tokens = aggressorTokens - tokens0;
  const after = await engineCounters(node);
  stop = true;
  await Promise.all(loops);
  const steps = after.steps - before.steps;
  return {
    ttfts,
    running: loadSeen.running,
    queued: loadSeen.queue_depth,
    aggressorTps: aggressorTenant === undefined ? NaN : tokens / seconds,
    stepMs: steps > 0 ? ((after.executeS - before.executeS) * 1000) / steps : NaN,
  };
}

await ensureTinyModel();
const node = await startLocalNode({ extraArgs: ['--max-batch', String(MAX_BATCH), '--kv-blocks', '4096', '--max-queue', String(AGGRESSORS * 4)] });
try {
  await generate(node, 'warm-up', 4, prompt(0));
  // Alone is measured before and after the loaded runs and pooled: on a shared machine the load drifts.
  const before = await measure(node, 'victim', undefined, SAMPLES);
  const fair = await measure(node, 'victim', 'aggressor', SAMPLES);
  const shared = await measure(node, 'aggressor', 'aggressor', SHARED_SAMPLES);
  const after = await measure(node, 'victim', undefined, SAMPLES);
  const alone: Measured = { ...before, ttfts: [...before.ttfts, ...after.ttfts], stepMs: (before.stepMs + after.stepMs) / 2 };
  const a = median(alone.ttfts);
  const fmt = (x: number) => (Number.isNaN(x) ? '–' : x.toFixed(0));
  const row = (name: string, m: Measured) =>
    `| ${name} | ${m.running} / ${m.queued} | ${median(m.ttfts).toFixed(0)} | ${Math.max(...m.ttfts).toFixed(0)} | ${(median(m.ttfts) / a).toFixed(2)}× | ${fmt(m.stepMs)} | ${fmt(m.aggressorTps)} |`;
  const table = [
    `Victim TTFT (1-token request, ${SAMPLES} in a row, each after a random 0-${MAX_PAUSE_MS} ms pause; ${SHARED_SAMPLES} in the shared-tenant row; alone: ${SAMPLES} before and ${SAMPLES} after the loaded runs) on one k2-tiny node,`,
    `max batch ${MAX_BATCH} (one tenant may run ${TENANT_CAP}), aggressor: ${AGGRESSORS} concurrent generations of ${AGGRESSOR_TOKENS} tokens, re-sent as each ends.`,
    `${cpus().length} cores, load ${loadavg()[0].toFixed(1)}.`,
    '',
    '| victim | running / queued at start | TTFT median ms | TTFT max ms | vs alone | mean step ms | aggressor tokens/s |',
    '|---|---|---:|---:|---:|---:|---:|',
    row('alone (idle node)', alone),
    row('own tenant, aggressor saturating (fair scheduling)', fair),
    row('same tenant as the aggressor (one FIFO queue)', shared),
    '',
  ].join('\n');
  mkdirSync('bench-output', { recursive: true });
  writeFileSync('bench-output/fairness.md', table);
  console.log(table);
} finally {
  await node.stop();
}
