/**
 * bench:load — N concurrent streaming clients through the edge (wrangler's local runtime, local D1)
 * to a real GPU node (k2-tiny), for a fixed number of requests; then the same requests sent straight
 * to the node in the same run, so the gateway's added latency is a ratio measured on this machine.
 * Afterwards the books are checked: usage rows = completed requests, ledger = grants − costs, no
 * reservation left open. Loopback only; bounded by --requests and a 5-minute deadline.
 *
 *   npm run bench:load -- [--clients 8] [--requests 48] [--max-tokens 24]
 * Writes bench-output/load.md.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { signNodeRequest } from '../../shared/node-auth.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, type GenerateRequest, type NodeEvent } from '../../shared/protocol.ts';
import { k2TinyTokenizer, renderChat, chatStopTokenIds } from '../../shared/tokenizer/index.ts';
import { ensureTinyModel, REPO_ROOT, startLocalNode } from '../../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker } from '../../scripts/local-worker.ts';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '8' },
    requests: { type: 'string', default: '48' },
    'max-tokens': { type: 'string', default: '24' },
  },
});
const CLIENTS = Number(values.clients);
const REQUESTS = Number(values.requests);
const MAX_TOKENS = Number(values['max-tokens']);
const DEADLINE = Date.now() + 5 * 60_000;
const ADMIN_TOKEN = 'load-bench-admin-token';
const ORG = 'load';
const CREDIT = 100_000_000;

interface Sample {
  ok: boolean;
  /** ms from sending the request to the first generated text. */
  ttft: number;
  /** ms from sending the request to the response headers (the edge has admitted it and a node accepted it). */
  headers: number;
  /** ms between consecutive text events. */
  itl: number[];
  total: number;
  tokens: number;
}

/** Unique prompts (no prefix-cache hits between requests), the same set for both paths. */
const prompts = Array.from({ length: REQUESTS }, (_, i) => `Request ${i}: describe the number ${i * 7919} in a few words.`);

/** Runs `work(i)` for i in [0, n) with `concurrency` workers pulling from one counter. */
async function pool(n: number, concurrency: number, work: (i: number) => Promise<Sample>): Promise<{ samples: Sample[]; wallMs: number }> {
  const samples: Sample[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n && Date.now() < DEADLINE) samples.push(await work(next++));
    }),
  );
  return { samples, wallMs: performance.now() - start };
}

/** One streamed chat completion through the edge; timings from the SSE chunks that carry text. */
async function viaEdge(edgeUrl: string, key: string, i: number): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${edgeUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: prompts[i] }], max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  const headers = performance.now() - t0;
  if (res.status !== 200 || !res.body) return { ok: false, ttft: 0, headers: 0, itl: [], total: performance.now() - t0, tokens: 0 };
  let ttft = -1;
  let last = 0;
  const itl: number[] = [];
  let tokens = 0;
  let done = false;
  let buffered = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const data = buffered.slice(6, end);
      buffered = buffered.slice(end + 2);
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const ev = JSON.parse(data) as { choices: { delta: { content?: string } }[]; usage?: { completion_tokens: number } | null };
      if (ev.usage) tokens = ev.usage.completion_tokens;
      if (!ev.choices[0]?.delta.content) continue;
      const now = performance.now();
      if (ttft < 0) ttft = now - t0;
      else itl.push(now - last);
      last = now;
    }
  }
  return { ok: done, ttft: Math.max(ttft, 0), headers, itl, total: performance.now() - t0, tokens };
}

/** The same prompt straight to the node, tokenized here exactly as the edge does. */
async function direct(nodeUrl: string, secret: string, i: number): Promise<Sample> {
  const tokenizer = k2TinyTokenizer();
  const req: GenerateRequest = {
    version: PROTOCOL_VERSION,
    request_id: `direct_${i}_${Date.now()}`,
    model: 'k2-tiny',
    prompt_token_ids: renderChat(tokenizer, [{ role: 'user', content: prompts[i] }]),
    sampling: { max_tokens: MAX_TOKENS, temperature: 0, top_p: 1, stop_token_ids: chatStopTokenIds(tokenizer), stop: [] },
    // Its own salt: the edge's requests (salted by org) leave nothing in the cache for these.
    cache_salt: 'load-bench-direct',
  };
  const t0 = performance.now();
  // Signed as the edge signs (the node refuses unsigned requests); the signing is part of the timed hop, as it is at the edge.
  const body = JSON.stringify(req);
  const signature = await signNodeRequest({ method: 'POST', path: '/v1/generate', body, secret });
  const res = await fetch(`${nodeUrl}/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...signature },
    body,
  });
  const headers = performance.now() - t0;
  if (res.status !== 200 || !res.body) return { ok: false, ttft: 0, headers: 0, itl: [], total: performance.now() - t0, tokens: 0 };
  let ttft = -1;
  let last = 0;
  const itl: number[] = [];
  let ok = false;
  let tokens = 0;
  let buffered = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      const ev = JSON.parse(line) as NodeEvent;
      if (ev.type === 'tokens' && ev.text) {
        const now = performance.now();
        if (ttft < 0) ttft = now - t0;
        else itl.push(now - last);
        last = now;
      } else if (ev.type === 'finish') {
        ok = true;
        tokens = ev.usage.completion_tokens;
      }
    }
  }
  return { ok, ttft: Math.max(ttft, 0), headers, itl, total: performance.now() - t0, tokens };
}

/** Reads the run's totals from the worker's local D1 file (node:sqlite, read-only). */
function d1Books(persistTo: string): { rows: number; cost: number; debits: number; open: number } {
  const dir = join(persistTo, 'v3', 'd1', 'miniflare-D1DatabaseObject');
  const file = readdirSync(dir).find((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite');
  if (!file) throw new Error(`no D1 database under ${dir}`);
  const db = new DatabaseSync(join(dir, file), { readOnly: true });
  try {
    const one = (sql: string) => Number((db.prepare(sql).get() as { n: number | null }).n ?? 0);
    return {
      rows: one(`SELECT count(*) AS n FROM usage_events WHERE org_id = '${ORG}'`),
      cost: one(`SELECT sum(cost_micros) AS n FROM usage_events WHERE org_id = '${ORG}'`),
      debits: -one(`SELECT sum(amount_micros) AS n FROM credit_ledger WHERE org_id = '${ORG}' AND kind = 'usage'`),
      open: one(`SELECT count(*) AS n FROM credit_reservations WHERE org_id = '${ORG}' AND status = 'open'`),
    };
  } finally {
    db.close();
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

function summarize(name: string, run: { samples: Sample[]; wallMs: number }) {
  const ok = run.samples.filter((s) => s.ok);
  const ttft = ok.map((s) => s.ttft);
  const itl = ok.flatMap((s) => s.itl);
  const total = ok.map((s) => s.total);
  const tokens = ok.reduce((a, s) => a + s.tokens, 0);
  return {
    name,
    requests: run.samples.length,
    completed: ok.length,
    wallS: run.wallMs / 1000,
    reqPerS: ok.length / (run.wallMs / 1000),
    tokPerS: tokens / (run.wallMs / 1000),
    ttftP50: pct(ttft, 50),
    ttftP99: pct(ttft, 99),
    itlP50: pct(itl, 50),
    itlP99: pct(itl, 99),
    totalP50: pct(total, 50),
    headersP50: pct(ok.map((s) => s.headers), 50),
  };
}

async function main() {
  const persistTo = mkdtempSync(join(tmpdir(), 'edge-load-'));
  await ensureTinyModel();
  const node = await startLocalNode({ extraArgs: ['--kv-blocks', '1024'] });
  let worker: Awaited<ReturnType<typeof startLocalWorker>> | undefined;
  try {
    applyLocalMigrations(persistTo);
    worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret: node.secret, persistTo });
    const adminCall = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${worker!.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return (await res.json()) as T;
    };
    const tenant = await seedTenant(worker.url, ADMIN_TOKEN, ORG, CREDIT);
    // The bench measures the gateway, not the plan's limits: lift them for this org and key.
    const lifted = { rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 1000 };
    await adminCall('PUT', `/admin/organizations/${ORG}/limits`, lifted);
    await adminCall('PUT', `/admin/keys/${tenant.keyId}/limits`, lifted);

    const runStartedAt = Date.now() - 60_000;
    // Warm both paths (model pages, isolate, JIT) outside the measurement.
    await viaEdge(worker.url, tenant.key, 0);
    await direct(node.url, node.secret, 0);

    const edgeRun = await pool(REQUESTS, CLIENTS, (i) => viaEdge(worker!.url, tenant.key, i));
    const directRun = await pool(REQUESTS, CLIENTS, (i) => direct(node.url, node.secret, i));
    const edge = summarize('edge → node', edgeRun);
    const node_ = summarize('node direct', directRun);

    // The books, through the worker's own admin and dashboard APIs (waitUntil writes land shortly after).
    const expectedRows = edge.completed + 1; // + the warm-up request
    let summary = { requests: 0, cost_micros: 0 };
    for (let i = 0; i < 100 && summary.requests < expectedRows; i++) {
      await new Promise((r) => setTimeout(r, 100));
      summary = await adminCall('GET', `/dashboard/api/summary?org=${ORG}&from=${runStartedAt}&to=${Date.now() + 1000}`);
    }
    const balance = await adminCall<{ balance_micros: number }>('GET', `/admin/organizations/${ORG}/balance`);
    const account = await adminCall<{ balance_micros: number; reserved_micros: number; open_reservations: number }>('GET', `/admin/organizations/${ORG}/account`);
    const checks = [
      { check: 'usage rows = completed requests', want: expectedRows, got: summary.requests },
      { check: 'ledger balance = credit − Σ cost (µ$)', want: CREDIT - summary.cost_micros, got: balance.balance_micros },
      { check: "org object's balance = ledger (µ$)", want: balance.balance_micros, got: account.balance_micros },
      { check: 'open reservations', want: 0, got: account.open_reservations },
      { check: 'reserved µ$', want: 0, got: account.reserved_micros },
    ];
    // The same books straight from D1's tables (the local SQLite file), after the worker has stopped.
    await worker.stop();
    worker = undefined;
    const d1 = d1Books(persistTo);
    checks.push(
      { check: 'D1 usage_events rows', want: expectedRows, got: d1.rows },
      { check: 'D1 Σ usage_events.cost = −Σ usage debits (µ$)', want: d1.cost, got: d1.debits },
      { check: 'D1 credit_reservations still open', want: 0, got: d1.open },
    );
    const allOk = checks.every((c) => c.want === c.got) && edge.completed === REQUESTS && node_.completed === REQUESTS;

    const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '—');
    const row = (s: ReturnType<typeof summarize>) =>
      `| ${s.name} | ${s.completed}/${s.requests} | ${f(s.wallS, 2)} | ${f(s.reqPerS, 2)} | ${f(s.tokPerS)} | ${f(s.ttftP50)} | ${f(s.ttftP99)} | ${f(s.itlP50)} | ${f(s.itlP99)} | ${f(s.totalP50)} | ${f(s.headersP50)} |`;
    const md = [
      '# bench:load — concurrent streaming clients through the edge',
      '',
      `${new Date().toISOString()} · ${CLIENTS} clients · ${REQUESTS} requests per path · max_tokens ${MAX_TOKENS} · greedy · ${cpus().length} cores · loopback (wrangler local runtime → real k2-tiny node)`,
      '',
      '| path | completed | wall s | req/s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | total p50 ms | headers p50 ms |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      row(edge),
      row(node_),
      '',
      `Gateway added latency (same prompts, same run): TTFT p50 ${f(edge.ttftP50 - node_.ttftP50)} ms, ratio edge/direct **${f(edge.ttftP50 / node_.ttftP50, 2)}×** (p99 ${f(edge.ttftP99 / node_.ttftP99, 2)}×); ITL p50 ratio ${f(edge.itlP50 / node_.itlP50, 2)}×; req/s ratio ${f(edge.reqPerS / node_.reqPerS, 2)}×.`,
      edge.reqPerS < 0.9 * node_.reqPerS
        ? 'The edge path is the bottleneck at this concurrency: the worker runtime, its D1 queries and Durable Object calls share the cores with the node, and the ratio includes the CPU they take from it.'
        : 'The node is the bottleneck at this concurrency: the edge keeps up with it.',
      `Machine load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other processes share these cores; compare runs only at similar load).`,
      '',
      '## Books after the run',
      '',
      '| check | expected | actual | |',
      '|---|---:|---:|---|',
      ...checks.map((c) => `| ${c.check} | ${c.want} | ${c.got} | ${c.want === c.got ? 'ok' : '**MISMATCH**'} |`),
      '',
      `Σ cost of the run: ${summary.cost_micros} µ$. Result: **${allOk ? 'all checks passed' : 'FAILED'}**.`,
      '',
    ].join('\n');
    mkdirSync(join(REPO_ROOT, 'bench-output'), { recursive: true });
    writeFileSync(join(REPO_ROOT, 'bench-output', 'load.md'), md);
    console.log(md);
    if (!allOk) process.exitCode = 1;
  } finally {
    await Promise.allSettled([worker?.stop(), node.stop()]);
    rmSync(persistTo, { recursive: true, force: true });
  }
}

await main();
