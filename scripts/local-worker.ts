/**
 * The edge worker on this machine, for `npm start` and the cross-process tests: apply the D1
 * migrations to a local database, run the worker from wrangler.toml (wrangler's own dev runtime,
 * workerd + miniflare), and seed an organization through the admin API.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { unstable_startWorker } from 'wrangler';
import { REPO_ROOT } from './local-node.ts';

const WRANGLER = join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');

/** `wrangler d1 migrations apply DB --local`, into `persistTo` (default: .wrangler/state, as `wrangler dev` uses). */
export function applyLocalMigrations(persistTo?: string): void {
  const args = ['d1', 'migrations', 'apply', 'DB', '--local', ...(persistTo ? ['--persist-to', persistTo] : [])];
  const run = spawnSync(WRANGLER, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    // CI=1: never prompt "are you sure" (wrangler asks before applying when attached to a TTY).
    env: { ...process.env, CI: '1', WRANGLER_SEND_METRICS: 'false' },
  });
  if (run.status !== 0) throw new Error(`wrangler ${args.join(' ')} failed:\n${run.stdout}\n${run.stderr}`);
}

export interface LocalWorker {
  /** e.g. http://127.0.0.1:8787 (no trailing slash). */
  url: string;
  stop(): Promise<void>;
}

export async function startLocalWorker(opts: {
  adminToken: string;
  nodeUrl: string;
  /** The secret the edge signs node requests with (the node's K2NODE_SECRET). */
  nodeSecret: string;
  /** More Worker secrets, e.g. a pool's own signing secret NODE_SECRET_<POOL>. */
  secrets?: Record<string, string>;
  port?: number;
  persistTo?: string;
  /** Overrides of wrangler.toml [vars], e.g. { ROUTING_POLICY: 'random' } for a benchmark baseline. */
  vars?: Record<string, string>;
}): Promise<LocalWorker> {
  const worker = await unstable_startWorker({
    config: join(REPO_ROOT, 'wrangler.toml'),
    bindings: {
      ADMIN_TOKEN: { type: 'secret_text', value: opts.adminToken },
      NODE_SECRET: { type: 'secret_text', value: opts.nodeSecret },
      ...Object.fromEntries(Object.entries(opts.secrets ?? {}).map(([k, value]) => [k, { type: 'secret_text' as const, value }])),
      GPU_NODE_URLS: { type: 'plain_text', value: opts.nodeUrl },
      ...Object.fromEntries(Object.entries(opts.vars ?? {}).map(([k, value]) => [k, { type: 'plain_text' as const, value }])),
    },
    dev: {
      server: { hostname: '127.0.0.1', port: opts.port ?? 0 },
      inspector: false,
      watch: false,
      ...(opts.persistTo ? { persist: opts.persistTo } : {}),
    },
  });
  await worker.ready;
  const url = (await worker.url).origin;
  return { url, stop: () => worker.dispose() };
}

export interface SeededTenant {
  orgId: string;
  keyId: string;
  key: string;
}

/** Creates (or reuses) an organization, tops its credit up to `creditMicros`, and makes a new key. */
export async function seedTenant(baseUrl: string, adminToken: string, orgId: string, creditMicros: number): Promise<SeededTenant> {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${baseUrl}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const balance = await call('GET', `/organizations/${orgId}/balance`);
  if (balance.status === 404) {
    const created = await call('POST', '/organizations', { id: orgId, name: `${orgId} organization` });
    if (created.status !== 201) throw new Error(`creating ${orgId}: ${JSON.stringify(created.body)}`);
  }
  const have = balance.status === 200 ? Number(balance.body.balance_micros) : 0;
  if (have < creditMicros) await call('POST', '/credit', { org_id: orgId, amount_micros: creditMicros - have, note: 'seed' });
  const key = await call('POST', '/keys', { org_id: orgId, name: 'seed' });
  if (key.status !== 201) throw new Error(`creating a key: ${JSON.stringify(key.body)}`);
  return { orgId, keyId: String(key.body.id), key: String(key.body.key) };
}
