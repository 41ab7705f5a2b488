/**
 * `npm run bench:upstreams`: what the edge adds in front of an OpenAI-compatible engine.
 * The engine is test/support/fake-upstream.ts, which answers at once, so the difference between a
 * request straight to it and the same request through the worker (wrangler's local runtime, local D1:
 * auth, limits and credit Durable Objects, D1 reads, tokenizing, relaying, metering) is the gateway's
 * own latency. Sequential requests, one at a time; p50/p95/p99 in ms. Writes bench-output/upstreams.md.
 *
 *   N=300 npm run bench:upstreams
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLocalMigrations, seedTenant, startLocalWorker } from '../../scripts/local-worker.ts';
import { startFakeUpstream } from '../support/fake-upstream.ts';

const N = Number(process.env.N ?? 200);
const WARMUP = 20;
const ADMIN_TOKEN = 'bench-admin-token';
const MODEL = 'kimi-k2-instruct';
const messages = [{ role: 'user', content: 'What is the weather in Paris today? Answer briefly.' }];

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Times `n` sequential calls of `send` (each reads its whole body), after a warm-up. */
async function timeSeries(send: () => Promise<Response>, n: number): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await (await send()).arrayBuffer();
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await send();
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b);
}

const upstream = await startFakeUpstream();
const persistTo = mkdtempSync(join(tmpdir(), 'bench-upstreams-'));
applyLocalMigrations(persistTo);
const worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: 'http://127.0.0.1:1', nodeSecret: 'unused: no GPU node in this benchmark', persistTo });
try {
  const base = `${upstream.url}/ok/bench/v1`;
  const add = await fetch(`${worker.url}/admin/models/${MODEL}/backends`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'fake', kind: 'openai', base_url: base, upstream_model: 'up' }),
  });
  if (add.status !== 201) throw new Error(`adding the backend: ${add.status} ${await add.text()}`);
  const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'bench', 1_000_000_000);
  // The top plan, so the benchmark measures latency, not our rate limiter saying no.
  await fetch(`${worker.url}/admin/organizations/${tenant.orgId}/limits`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ plan: 'tier5' }),
  });
  const post = (url: string, body: unknown, key?: string) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });

  const rows: string[] = [];
  // Baseline: an authenticated GET that touches no upstream, no limits and no credit.
  const models = await timeSeries(() => fetch(`${worker.url}/v1/models`, { headers: { authorization: `Bearer ${tenant.key}` } }), N);
  const modelsRow = `| GET /v1/models (auth only, no upstream) | | ${[50, 95, 99].map((p) => pct(models, p).toFixed(2)).join(' / ')} | |`;
  for (const stream of [false, true]) {
    const body = { model: MODEL, messages, max_tokens: 64, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) };
    const direct = await timeSeries(() => post(`${base}/chat/completions`, { ...body, model: 'up' }), N);
    const edge = await timeSeries(() => post(`${worker.url}/v1/chat/completions`, body, tenant.key), N);
    const f = (xs: number[]) => [50, 95, 99].map((p) => pct(xs, p).toFixed(2)).join(' / ');
    const added = [50, 95, 99].map((p) => (pct(edge, p) - pct(direct, p)).toFixed(2)).join(' / ');
    rows.push(`| ${stream ? 'stream' : 'json'} | ${f(direct)} | ${f(edge)} | ${added} |`);
  }
  const report = [
    `# Edge overhead in front of an OpenAI-compatible upstream (${N} sequential requests each, after ${WARMUP} warm-up)`,
    '',
    'p50 / p95 / p99 in ms. "added" = edge minus direct at the same percentile.',
    '',
    '| mode | direct to upstream | through the edge | added by the edge |',
    '|---|---|---|---|',
    ...rows,
    modelsRow,
    '',
    `Local: wrangler's workerd runtime with local D1 and Durable Objects on this machine; the upstream answers instantly.`,
  ].join('\n');
  console.log(report);
  mkdirSync('bench-output', { recursive: true });
  writeFileSync('bench-output/upstreams.md', report + '\n');
} finally {
  await Promise.allSettled([worker.stop(), upstream.stop()]);
  rmSync(persistTo, { recursive: true, force: true });
}
