/**
 * `npm run deploy`: the edge worker to Cloudflare, from a checkout with `wrangler login` done (or
 * CLOUDFLARE_API_TOKEN + CLOUDFLARE_ACCOUNT_ID set in CI).
 *
 *   1. checks wrangler.toml (scripts/deploy-checks.ts)
 *   2. D1: creates the database named in wrangler.toml if the account lacks it, and writes its id there
 *   3. applies the D1 migrations remotely (`wrangler d1 migrations apply DB --remote`)
 *   4. checks every required secret exists on the worker; asks for a missing one on a terminal,
 *      fails with the command to run in CI (CI=1 or no TTY) instead of prompting
 *   5. `wrangler deploy`
 *
 * `npm run deploy -- --dry-run`: offline; bundles with `wrangler deploy --dry-run` and checks the
 * config and the bundle's gzipped size against the Workers limit. CI runs this (test/deploy.test.ts).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { unstable_readConfig } from 'wrangler';
import { REPO_ROOT } from './local-node.ts';
import {
  bundleGzipBytes,
  configProblems,
  PLACEHOLDER_D1_ID,
  productionProblems,
  REQUIRED_SECRETS,
  WORKER_GZIP_BUDGET_BYTES,
  WORKER_GZIP_LIMIT_BYTES,
} from './deploy-checks.ts';

const WRANGLER = join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');
const CONFIG = join(REPO_ROOT, 'wrangler.toml');
const { values } = parseArgs({ options: { 'dry-run': { type: 'boolean' } } });
const interactive = process.stdin.isTTY === true && !process.env.CI;

const step = (s: string) => console.log(`[deploy] ${s}`);

function fail(message: string): never {
  console.error(`[deploy] ${message}`);
  process.exit(1);
}

function wrangler(args: string[], opts: { inherit?: boolean } = {}): SpawnSyncReturns<string> {
  return spawnSync(WRANGLER, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    stdio: opts.inherit ? 'inherit' : 'pipe',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  });
}

function wranglerOk(args: string[]): string {
  const run = wrangler(args);
  if (run.status !== 0) fail(`wrangler ${args.join(' ')} failed:\n${run.stdout}\n${run.stderr}`);
  return run.stdout;
}

const readConfig = () => unstable_readConfig({ config: CONFIG });

const structural = configProblems(readConfig());
if (structural.length > 0) fail(`wrangler.toml:\n  ${structural.join('\n  ')}`);

if (values['dry-run']) {
  const outdir = mkdtempSync(join(tmpdir(), 'edge-bundle-'));
  try {
    step('bundling with wrangler deploy --dry-run');
    wranglerOk(['deploy', '--dry-run', '--outdir', outdir]);
    const bytes = bundleGzipBytes(outdir);
    const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
    step(`bundle: ${kib(bytes)} gzipped (Workers limit ${kib(WORKER_GZIP_LIMIT_BYTES)}, our budget ${kib(WORKER_GZIP_BUDGET_BYTES)})`);
    if (bytes > WORKER_GZIP_BUDGET_BYTES) fail(`bundle over budget: ${kib(bytes)} > ${kib(WORKER_GZIP_BUDGET_BYTES)}`);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
  step('dry run OK (nothing deployed)');
  process.exit(0);
}

// 2. The D1 database: create it when missing, then write its id where the placeholder is.
const db = readConfig().d1_databases[0];
if (!db) fail('wrangler.toml has no [[d1_databases]]');
const listed = JSON.parse(wranglerOk(['d1', 'list', '--json'])) as { name: string; uuid: string }[];
let id = listed.find((d) => d.name === db.database_name)?.uuid;
if (!id) {
  step(`D1: creating ${db.database_name}`);
  const created = wranglerOk(['d1', 'create', db.database_name]);
  id = /database_id"?\s*[=:]\s*"([0-9a-f-]{36})"/.exec(created)?.[1];
  if (!id) fail(`could not read the new database's id from:\n${created}`);
}
if (db.database_id !== id) {
  step(`D1: writing database_id ${id} into wrangler.toml (commit it)`);
  const toml = readFileSync(CONFIG, 'utf8');
  const from = db.database_id ?? PLACEHOLDER_D1_ID;
  if (!toml.includes(`database_id = "${from}"`)) fail(`wrangler.toml: no line database_id = "${from}" to update`);
  writeFileSync(CONFIG, toml.replace(`database_id = "${from}"`, `database_id = "${id}"`));
}
const problems = productionProblems(readConfig());
if (problems.length > 0) fail(`wrangler.toml is not ready for production:\n  ${problems.join('\n  ')}`);

// 3. Migrations, before the code that needs them.
step('D1: applying migrations remotely');
const applied = wrangler(['d1', 'migrations', 'apply', db.binding, '--remote'], { inherit: interactive });
if (applied.status !== 0) fail(`wrangler d1 migrations apply ${db.binding} --remote failed${interactive ? '' : `:\n${applied.stdout}\n${applied.stderr}`}`);

// 4. Secrets. A worker not deployed yet has none (the list command fails): all are missing.
const secretList = wrangler(['secret', 'list', '--format', 'json']);
const present = new Set(secretList.status === 0 ? (JSON.parse(secretList.stdout) as { name: string }[]).map((s) => s.name) : []);
const missing = REQUIRED_SECRETS.filter((s) => !present.has(s));
if (missing.length > 0 && !interactive) {
  fail(`missing Worker secrets: ${missing.join(', ')}. Set each with \`npx wrangler secret put NAME\` (NODE_SECRET must equal the nodes' K2NODE_SECRET).`);
}
for (const name of missing) {
  step(`secret ${name} is not set: enter its value`);
  if (wrangler(['secret', 'put', name], { inherit: true }).status !== 0) fail(`wrangler secret put ${name} failed`);
}

// 5. The code.
step('wrangler deploy');
if (wrangler(['deploy'], { inherit: true }).status !== 0) fail('wrangler deploy failed');
step('deployed. Register GPU nodes with POST /admin/nodes (README, Production).');
