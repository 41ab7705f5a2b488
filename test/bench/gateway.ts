/**
 * `npm run bench:gateway`: what our edge costs as a gateway, beside a real peer in the same run.
 *
 * Targets, all on this machine, all in front of test/support/fake-upstream.ts (an OpenAI-compatible
 * server that answers at once):
 *   - upstream      the fake engine alone: the floor of the client + network path
 *   - edge          our worker (wrangler's local workerd runtime, local D1, Durable Objects, Queue):
 *                   auth, admission (limits + credit), tokenizing, relaying, metering, the usage queue
 *   - portkey       Portkey's open-source gateway (@portkey-ai/gateway, a Hono app on Node), relaying to
 *                   the same engine as a custom OpenAI host: no auth, limits or billing, the floor a
 *                   gateway can reach on Node. Its SSE relay fails on Node here (TypeError: immutable),
 *                   so it is measured in JSON mode only.
 *   - edge /health  a trivial route on our runtime: wrangler's local proxy + workerd, nothing else
 * Closed loop: each of C clients sends its next request when the previous one has been read whole.
 * Rounds are interleaved (every target at every concurrency, then again), so drift in the machine's
 * load hits all of them alike. The worker's CPU per request is the workerd process's user+system time
 * over the edge's phases divided by its requests (that process also runs the local D1 and Durable
 * Objects, so it is the whole local platform's CPU, an upper bound for the worker's own).
 * After the run the books are checked: one usage row per request sent through the edge, Σ cost = Σ
 * debits, and the org's object equals its ledger (GET /admin/reconcile).
 *
 *   ROUNDS=3 SECONDS=2 npm run bench:gateway      (writes bench-output/gateway.md)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, REPO_ROOT } from '../../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker } from '../../scripts/local-worker.ts';
import { startFakeUpstream } from '../support/fake-upstream.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 2);
const CONCURRENCY = (process.env.CLIENTS ?? '1,8,32').split(',').map(Number);
const ADMIN_TOKEN = 'bench-gateway-admin-token';
const MODEL = 'kimi-k2-instruct';
const messages = [{ role: 'user', content: 'What is the weather in Paris today? Answer briefly.' }];

type Mode = 'json' | 'stream';
interface Target {
  name: string;
  modes: Mode[];
  send(mode: Mode): Promise<Response>;
}
interface Sample {
  latencies: number[];
  requests: number;
  seconds: number;
  failures: number;
  cpuMs: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** C clients in a closed loop for `seconds`; every answer is read whole. */
async function closedLoop(send: () => Promise<Response>, clients: number, seconds: number): Promise<Omit<Sample, 'cpuMs'>> {
  const latencies: number[] = [];
  let failures = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < until) {
        const start = performance.now();
        try {
          const res = await send();
          await res.arrayBuffer();
          if (res.ok) latencies.push(performance.now() - start);
          else failures++;
        } catch {
          failures++;
        }
      }
    }),
  );
  return { latencies, requests: latencies.length, seconds: (performance.now() - t0) / 1000, failures };
}

/** CPU ms (user + system) of every workerd process on this machine that belongs to us. */
function workerdCpuMs(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('workerd') || !cmd.includes(REPO_ROOT)) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the process ended between listing and reading
    }
  }
  return ticks * 10; // USER_HZ = 100 on Linux
}

async function startPortkey(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(REPO_ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js'), `--port=${port}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url);
      return { url, child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill();
  throw new Error('Portkey gateway did not start');
}

const upstream = await startFakeUpstream();
const persistTo = mkdtempSync(join(tmpdir(), 'bench-gateway-'));
applyLocalMigrations(persistTo);
const worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: 'http://127.0.0.1:1', nodeSecret: 'unused: no GPU node in this benchmark', persistTo });
const portkey = await startPortkey();
const admin = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
  const res = await fetch(`${worker.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
};
try {
  const base = `${upstream.url}/ok/bench/v1`;
  const add = await admin('POST', `/models/${MODEL}/backends`, { name: 'fake', kind: 'openai', base_url: base, upstream_model: 'up' });
  if (add.status !== 201) throw new Error(`adding the backend: ${add.status} ${JSON.stringify(add.body)}`);
  const grant = 1_000_000_000;
  const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'bench', grant);
  // The top plan, with room for every request of the run: the benchmark measures the gateway, not a 429.
  await admin('PUT', `/organizations/${tenant.orgId}/limits`, { plan: 'tier5', rpm: 1_000_000, tpm: 1_000_000_000 });

  const body = (mode: Mode, model: string) => JSON.stringify({ model, messages, max_tokens: 64, stream: mode === 'stream', ...(mode === 'stream' ? { stream_options: { include_usage: true } } : {}) });
  const json = { 'content-type': 'application/json' };
  const targets: Target[] = [
    { name: 'upstream alone', modes: ['json', 'stream'], send: (m) => fetch(`${base}/chat/completions`, { method: 'POST', headers: json, body: body(m, 'up') }) },
    {
      name: 'our edge',
      modes: ['json', 'stream'],
      send: (m) => fetch(`${worker.url}/v1/chat/completions`, { method: 'POST', headers: { ...json, authorization: `Bearer ${tenant.key}` }, body: body(m, MODEL) }),
    },
    {
      name: 'Portkey gateway',
      modes: ['json'],
      send: (m) =>
        fetch(`${portkey.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { ...json, authorization: 'Bearer unused', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': base },
          body: body(m, 'up'),
        }),
    },
    { name: 'our runtime, GET /health', modes: ['json'], send: () => fetch(`${worker.url}/health`) },
  ];

  // Warm-up: every path once per mode, so isolates, caches and connections are up.
  for (const t of targets) for (const m of t.modes) for (let i = 0; i < 20; i++) await (await t.send(m)).arrayBuffer();

  const samples = new Map<string, Sample>();
  let edgeRequests = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const clients of CONCURRENCY) {
      for (const t of targets) {
        for (const mode of t.modes) {
          const cpu0 = workerdCpuMs();
          const s = await closedLoop(() => t.send(mode), clients, SECONDS);
          const cpuMs = workerdCpuMs() - cpu0;
          if (t.name === 'our edge') edgeRequests += s.requests + s.failures;
          const key = `${clients}|${mode}|${t.name}`;
          const acc = samples.get(key) ?? { latencies: [], requests: 0, seconds: 0, failures: 0, cpuMs: 0 };
          acc.latencies.push(...s.latencies);
          acc.requests += s.requests;
          acc.seconds += s.seconds;
          acc.failures += s.failures;
          acc.cpuMs += cpuMs;
          samples.set(key, acc);
        }
      }
      console.log(`round ${round + 1}/${ROUNDS}, ${clients} clients done`);
    }
  }

  const rows: string[] = [];
  for (const clients of CONCURRENCY) {
    for (const mode of ['json', 'stream'] as Mode[]) {
      const floor = samples.get(`${clients}|${mode}|upstream alone`)!;
      const floorP50 = pct([...floor.latencies].sort((a, b) => a - b), 50);
      for (const t of targets) {
        const s = samples.get(`${clients}|${mode}|${t.name}`);
        if (!s) continue;
        const sorted = [...s.latencies].sort((a, b) => a - b);
        const added = t.name === 'upstream alone' || t.name.startsWith('our runtime') ? '' : (pct(sorted, 50) - floorP50).toFixed(2);
        const cpu = t.name === 'our edge' || t.name.startsWith('our runtime') ? (s.cpuMs / Math.max(1, s.requests)).toFixed(2) : '';
        rows.push(
          `| ${clients} | ${mode} | ${t.name} | ${(s.requests / s.seconds).toFixed(0)} | ${pct(sorted, 50).toFixed(2)} | ${pct(sorted, 99).toFixed(2)} | ${added} | ${cpu} | ${s.failures} |`,
        );
      }
    }
  }

  // The books: one row per edge request, Σ cost = Σ debits, object = ledger.
  const month = new Date().toISOString().slice(0, 7);
  let books = '';
  for (let i = 0; i < 200; i++) {
    const reconcile = (await admin<{ orgs: { drift_micros: number; open_reservations: number; ledger_micros: number; object_micros: number }[] }>('GET', `/reconcile?org_id=${tenant.orgId}`)).body.orgs[0];
    const statement = (await admin<{ totals: { requests: number; cost_micros: number } }>('GET', `/organizations/${tenant.orgId}/statements/${month}`)).body.totals;
    const warmups = 20 * 2; // the edge's warm-up requests, json and stream
    const rowsOk = statement.requests === edgeRequests + warmups;
    const costOk = grant - statement.cost_micros === reconcile.ledger_micros;
    if ((rowsOk && costOk && reconcile.drift_micros === 0 && reconcile.open_reservations === 0) || i === 199) {
      books = [
        `Books after the run: ${statement.requests} usage rows for ${edgeRequests + warmups} requests sent through the edge (${rowsOk ? 'equal' : 'NOT EQUAL'});`,
        `Σ cost ${statement.cost_micros} µ$ = grant − ledger ${grant - reconcile.ledger_micros} µ$ (${costOk ? 'equal' : 'NOT EQUAL'});`,
        `object ${reconcile.object_micros} µ$ vs ledger ${reconcile.ledger_micros} µ$: drift ${reconcile.drift_micros}, open reservations ${reconcile.open_reservations}.`,
      ].join(' ');
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const load = loadavg().map((l) => l.toFixed(1)).join(' / ');
  const report = [
    `# Gateway overhead: our edge beside Portkey's gateway and the upstream alone`,
    '',
    `${ROUNDS} interleaved rounds × ${SECONDS} s per cell, closed-loop clients, every answer read whole; load average at the end ${load} (1/5/15 min) on ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?'} cores.`,
    'p50/p99 in ms; "added p50" = target p50 − upstream-alone p50 at the same concurrency and mode; CPU = workerd process ms per request (local D1 and Durable Objects included).',
    '',
    '| clients | mode | target | req/s | p50 | p99 | added p50 | CPU ms/req | failed |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    books,
    '',
    "Portkey's streaming relay fails on Node here (TypeError: immutable), so streaming is compared with the upstream alone.",
  ].join('\n');
  console.log(report);
  mkdirSync('bench-output', { recursive: true });
  writeFileSync('bench-output/gateway.md', report + '\n');
} finally {
  portkey.child.kill();
  await Promise.allSettled([worker.stop(), upstream.stop()]);
  rmSync(persistTo, { recursive: true, force: true });
}
