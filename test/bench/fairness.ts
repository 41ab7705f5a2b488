/**
 * bench:fairness — one organization saturates a real GPU node (k2-tiny) with more concurrent long
 * generations than its batch holds; another sends 1-token requests. Reports the victim's time to
 * first token (TTFT) alone on the idle node, under the aggressor as its own tenant (fair scheduling:
 * gpu-nodes/src/engine/scheduler.ts), and under the aggressor when both share one tenant (one FIFO
 * queue: what every request got before the node knew tenants). Straight to the node's signed
 * token-batch route with the tenant ids the edge would send, so the figure is the node's alone.
 *
 *   npm run bench:fairness -- [--aggressors 50] [--max-batch 32] [--aggressor-tokens 128] [--samples 5]
 * Writes bench-output/fairness.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { signNodeRequest } from '../../shared/node-auth.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, type GenerateRequest, type NodeEvent } from '../../shared/protocol.ts';
import { ensureTinyModel, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';

const { values } = parseArgs({
  options: {
    aggressors: { type: 'string', default: '50' },
    'max-batch': { type: 'string', default: '32' },
    'aggressor-tokens': { type: 'string', default: '128' },
    samples: { type: 'string', default: '5' },
  },
});
const AGGRESSORS = Number(values.aggressors);
const MAX_BATCH = Number(values['max-batch']);
const AGGRESSOR_TOKENS = Number(values['aggressor-tokens']);
const SAMPLES = Number(values.samples);

let seq = 0;
/** One signed generation; resolves with ms to the first token, after reading the stream to its end. */
async function generate(node: LocalNode, tenant: string, maxTokens: number, prompt: number[]): Promise<number> {
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
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const ev = JSON.parse(buf.slice(0, nl)) as NodeEvent;
      buf = buf.slice(nl + 1);
      if (ev.type === 'tokens' && Number.isNaN(ttft)) ttft = performance.now() - t0;
      if (ev.type === 'error') throw new Error(ev.message);
    }
  }
  return ttft;
}

const prompt = (i: number) => Array.from({ length: 24 }, (_, j) => 1000 + ((i * 31 + j * 7) % 5000));
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The victim's TTFTs, one request at a time, while `aggressorTenant` keeps AGGRESSORS generations in flight (none when undefined). */
async function measure(node: LocalNode, victimTenant: string, aggressorTenant: string | undefined): Promise<{ ttfts: number[]; running: number; queued: number }> {
  let stop = false;
  const loops = aggressorTenant === undefined ? [] : Array.from({ length: AGGRESSORS }, async (_, i) => {
    while (!stop) await generate(node, aggressorTenant, AGGRESSOR_TOKENS, prompt(i + 100 * seq));
  });
  if (aggressorTenant !== undefined) {
    // Saturated: the batch holds all it may of the aggressor and the rest queue.
    for (let load = await node.load(); load.running + load.queue_depth < AGGRESSORS; load = await node.load()) await new Promise((r) => setTimeout(r, 50));
  }
  const loadSeen = await node.load();
  const ttfts: number[] = [];
  for (let i = 0; i < SAMPLES; i++) ttfts.push(await generate(node, victimTenant, 1, prompt(10_000 + i + seq)));
  stop = true;
  await Promise.all(loops);
  return { ttfts, running: loadSeen.running, queued: loadSeen.queue_depth };
}

await ensureTinyModel();
const node = await startLocalNode({ extraArgs: ['--max-batch', String(MAX_BATCH), '--kv-blocks', '4096', '--max-queue', String(AGGRESSORS * 4)] });
try {
  await generate(node, 'warm-up', 4, prompt(0));
  const alone = await measure(node, 'victim', undefined);
  const fair = await measure(node, 'victim', 'aggressor');
  const shared = await measure(node, 'aggressor', 'aggressor');
  const a = median(alone.ttfts);
  const row = (name: string, m: { ttfts: number[]; running: number; queued: number }) =>
    `| ${name} | ${m.running} | ${m.queued} | ${median(m.ttfts).toFixed(0)} | ${Math.max(...m.ttfts).toFixed(0)} | ${(median(m.ttfts) / a).toFixed(2)}× |`;
  const table = [
    `Victim TTFT (1-token request, ${SAMPLES} in a row) on one k2-tiny node, max batch ${MAX_BATCH} (one tenant may run ${MAX_BATCH - Math.max(1, Math.floor(MAX_BATCH / 4))}),`,
    `aggressor: ${AGGRESSORS} concurrent generations of ${AGGRESSOR_TOKENS} tokens, re-sent as each ends. ${cpus().length} cores, load ${loadavg()[0].toFixed(1)}.`,
    '',
    '| victim | running at start | queued at start | TTFT median ms | TTFT max ms | vs alone |',
    '|---|---|---|---|---|---|',
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
