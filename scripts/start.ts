/**
 * `npm start`: the whole platform on this machine, from a fresh checkout.
 *
 *   1. models/k2-tiny generated if missing (deterministic, same as `npm run make-model`)
 *   2. ADMIN_TOKEN and NODE_SECRET in .dev.vars (generated once; the node gets NODE_SECRET as K2NODE_SECRET)
 *   3. D1 migrations applied to the local database (`wrangler d1 migrations apply DB --local`)
 *   4. the GPU node on :8788 (`node gpu-nodes/src/cli.ts serve models/k2-tiny --port 8788`), restarted
 *      with back-off whenever it dies (node-supervisor.ts)
 *   5. the worker on :8787 (wrangler's local dev runtime, from wrangler.toml)
 *   6. a demo organization with credit and a fresh API key, printed with the base URL
 *
 * Ctrl-C stops the worker and the node (by process group, nothing else).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MODEL_DIR, ensureTinyModel, localCredential, REPO_ROOT, startLocalNode } from './local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from './local-worker.ts';
import { superviseNode } from './node-supervisor.ts';

const WORKER_PORT = Number(process.env.PORT ?? 8787);
const NODE_PORT = Number(process.env.NODE_PORT ?? 8788);
const DEMO_CREDIT_MICROS = 10_000_000; // $10

process.env.WRANGLER_SEND_METRICS ??= 'false';

/** A secret from .dev.vars (what `wrangler dev` reads), written there on first run. */
function devVar(name: string, prefix: string): string {
  const file = join(REPO_ROOT, '.dev.vars');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const found = new RegExp(`^${name}\\s*=\\s*"?([^"\\n]+)"?\\s*$`, 'm').exec(text);
  if (found) return found[1];
  const value = `${prefix}_${randomBytes(24).toString('hex')}`;
  writeFileSync(file, `${text}${text && !text.endsWith('\n') ? '\n' : ''}${name}="${value}"\n`);
  return value;
}

const step = (s: string) => console.log(`[start] ${s}`);

/**
 * Stripe top-ups locally are opt-in, from the environment: `STRIPE_SECRET_KEY=sk_test_…
 * STRIPE_WEBHOOK_SECRET=whsec_… npm start` (the whsec_ that `stripe listen` prints). Passed as
 * bindings because wrangler loads only the secrets wrangler.toml requires from .dev.vars.
 */
function stripeSecrets(): Record<string, string> {
  const names = ['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'STRIPE_API_BASE'];
  return Object.fromEntries(names.flatMap((n) => (process.env[n] ? [[n, process.env[n]]] : [])));
}

step('model: models/k2-tiny');
await ensureTinyModel();
const token = devVar('ADMIN_TOKEN', 'adm');
// The edge signs every node request with it; the node refuses anything unsigned.
const nodeSecret = devVar('NODE_SECRET', 'nsec');
// Fixed for the session, so a restarted node keeps the key printed below.
const nodeApiKey = localCredential('nkey');
step('D1: applying migrations to the local database');
applyLocalMigrations();
step(`GPU node: starting on :${NODE_PORT} (loading the model)`);
const node = await superviseNode({
  start: () => startLocalNode({ modelDir: DEFAULT_MODEL_DIR, port: NODE_PORT, secret: nodeSecret, apiKey: nodeApiKey, log: (l) => console.log(`[node] ${l}`) }),
  log: (l) => step(l),
});
step(`worker: starting on :${WORKER_PORT}`);
let worker: LocalWorker;
try {
  worker = await startLocalWorker({ adminToken: token, nodeUrl: node.current.url, nodeSecret, port: WORKER_PORT, secrets: stripeSecrets() });
} catch (err) {
  await node.stop();
  throw err;
}
const demo = await seedTenant(worker.url, token, 'demo', DEMO_CREDIT_MICROS);

console.log(`
  Edge inference platform is running.

  Base URL:     ${worker.url}/v1
  API key:      ${demo.key}        (organization "demo", $${DEMO_CREDIT_MICROS / 1e6} credit)
  Admin token:  ${token}        (from .dev.vars)
  GPU node:     ${node.current.url}        (its own OpenAI routes: Bearer ${nodeApiKey}; restarted if it dies)
  Dashboard:    ${worker.url}/dashboard        (sign in with the API key or the admin token)

  curl ${worker.url}/v1/chat/completions -H "Authorization: Bearer ${demo.key}" \\
    -H "content-type: application/json" \\
    -d '{"model":"k2-tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'

  Ctrl-C to stop.
`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  step(`${signal}: stopping the worker and the GPU node`);
  await Promise.allSettled([worker.stop(), node.stop()]);
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
