// A real Prometheus (Debian's `prometheus`, installed by ./dev) scrapes a real `k2node serve` every
// second; after a known set of requests, its HTTP API must report exactly the tokens and requests
// sent, a generation rate consistent with them, and latency quantiles consistent with what the
// client measured.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyModel, freePort, startLocalNode, type LocalNode } from '../../scripts/local-node.ts';
import { signNodeRequest } from '../../shared/node-auth.ts';
import type { GenerateRequest, NodeEvent, Usage } from '../../shared/protocol.ts';

const PROMETHEUS = '/usr/bin/prometheus';
const REQUESTS = 6;
const MAX_TOKENS = 12;
// 40 tokens: two full 16-token blocks, so repeats of the prompt hit the prefix cache.
const PROMPT = Array.from({ length: 40 }, (_, i) => 1000 + i);

let node: LocalNode;
let prometheus: ChildProcess;
let promUrl = '';
let dir = '';

beforeAll(async () => {
  const version = spawnSync(PROMETHEUS, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) throw new Error(`${PROMETHEUS} is missing: run ./dev setup (installs Debian's prometheus package)`);
  await ensureTinyModel();
  node = await startLocalNode({ extraArgs: ['--kv-blocks', '256', '--backend', 'reference'] });
  dir = mkdtempSync(join(tmpdir(), 'k2node-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    ['global:', '  scrape_interval: 1s', 'scrape_configs:', '  - job_name: k2node', '    static_configs:', `      - targets: ['${new URL(node.url).host}']`, ''].join('\n'),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: 'ignore',
  });
  // Ready once it has scraped the node at least once.
  await until(async () => (await query('up{job="k2node"}').catch(() => []))[0]?.value[1] === '1', 'Prometheus never scraped the node');
});

afterAll(async () => {
  prometheus?.kill('SIGTERM');
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

type Sample = { metric: Record<string, string>; value: [number, string] };

async function query(promql: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] }; error?: string };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data.result;
}

const scalar = async (promql: string) => Number((await query(promql))[0]?.value[1] ?? NaN);

/** One signed generation straight to the node; its final usage and the client-side latency in seconds. */
async function generate(i: number): Promise<{ usage: Usage; seconds: number }> {
  const req: GenerateRequest = {
    version: 1,
    request_id: `prom-${i}`,
    model: 'k2-tiny',
    prompt_token_ids: PROMPT,
    sampling: { max_tokens: MAX_TOKENS, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
    cache_salt: 'metrics-test',
  };
  const body = JSON.stringify(req);
  const t0 = performance.now();
  const res = await fetch(`${node.url}/v1/generate`, { method: 'POST', body, headers: await signNodeRequest({ method: 'POST', path: '/v1/generate', body, secret: node.secret }) });
  expect(res.status).toBe(200);
  const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as NodeEvent);
  const seconds = (performance.now() - t0) / 1000;
  const last = events.at(-1)!;
  if (last.type !== 'finish') throw new Error(`request ${i} ended with ${JSON.stringify(last)}`);
  return { usage: last.usage, seconds };
}

describe('node /metrics scraped by a real Prometheus', () => {
  it('reports the tokens, requests, rate and latency quantiles of what was sent', async () => {
    const results = [];
    for (let i = 0; i < REQUESTS; i++) results.push(await generate(i));
    const generated = results.reduce((n, r) => n + r.usage.completion_tokens, 0);
    const prompt = results.reduce((n, r) => n + r.usage.prompt_tokens, 0);
    const cached = results.reduce((n, r) => n + r.usage.cached_tokens, 0);
    expect(generated).toBe(REQUESTS * MAX_TOKENS);
    expect(cached).toBeGreaterThan(0);

    // Wait for a scrape that saw every request finish.
    await until(async () => (await scalar('sum(vllm:e2e_request_latency_seconds_count)')) === REQUESTS, 'Prometheus never saw all requests finish');

    expect(await scalar('sum(vllm:generation_tokens_total)')).toBe(generated);
    expect(await scalar('sum(vllm:prompt_tokens_total)')).toBe(prompt);
    expect(await scalar('sum(vllm:prefix_cache_queries)')).toBe(prompt);
    expect(await scalar('sum(vllm:prefix_cache_hits)')).toBe(cached);
    expect(await scalar('sum(vllm:time_to_first_token_seconds_count)')).toBe(REQUESTS);
    expect(await scalar('sum(vllm:request_success_total{finished_reason="length"})')).toBe(REQUESTS);
    expect(await scalar('sum(vllm:num_requests_running)')).toBe(0);
    expect(await scalar('k2node_kernel_backend_info{backend="reference"}')).toBe(1);
    // Counted inside the engine, on its own thread, and carried to /metrics by its snapshots: every
    // request took at least one prefill step and MAX_TOKENS − 1 decode steps; nothing was preempted.
    expect(await scalar('sum(k2node_engine_steps_total)')).toBeGreaterThanOrEqual(MAX_TOKENS);
    expect(await scalar('sum(k2node_engine_execute_seconds_total)')).toBeGreaterThan(0);
    expect(await scalar('sum(vllm:num_preemptions_total)')).toBe(0);

    // rate() over the last minute: everything sent so far, per second of the window. Prometheus
    // extrapolates a little past the last sample, never below what the samples show.
    const increase = (await scalar('sum(rate(vllm:generation_tokens_total[1m]))')) * 60;
    expect(increase).toBeGreaterThanOrEqual(generated * 0.99);
    expect(increase).toBeLessThan(generated * 1.5);

    // The node's end-to-end latency is inside the client's (which adds the HTTP hop), so the
    // quantile estimate can be no higher than the histogram bucket holding the client's slowest request.
    const p50 = await scalar('histogram_quantile(0.5, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[1m])))');
    const slowest = Math.max(...results.map((r) => r.seconds));
    const bucketAbove = async (histogram: string, seconds: number) => {
      const edges = (await query(`${histogram}_bucket`)).map((s) => Number(s.metric.le)).sort((x, y) => x - y);
      return edges.find((e) => e >= seconds) ?? Infinity;
    };
    expect(p50).toBeGreaterThan(0);
    expect(p50).toBeLessThanOrEqual(await bucketAbove('vllm:e2e_request_latency_seconds', slowest));
    // The first token comes before the end, so the same bound holds for time to first token.
    const ttftP95 = await scalar('histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[1m])))');
    expect(ttftP95).toBeGreaterThan(0);
    expect(ttftP95).toBeLessThanOrEqual(await bucketAbove('vllm:time_to_first_token_seconds', slowest));
  });
});
