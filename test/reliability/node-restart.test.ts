/**
 * `npm start`'s GPU node supervisor (scripts/node-supervisor.ts) across real processes: the node is
 * killed with SIGKILL (as the OOM killer would), a request that arrives while it is gone gets a clean
 * 503 in the OpenAI shape at once, never a hang or a 500, and the supervisor brings the node back on
 * the same URL, where the edge serves again without being told.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyModel, freePort, localCredential, startLocalNode } from '../../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker, type SeededTenant } from '../../scripts/local-worker.ts';
import { superviseNode, type SupervisedNode } from '../../scripts/node-supervisor.ts';

const ADMIN_TOKEN = 'restart-admin-token';
const secret = localCredential('nsec');

let supervised: SupervisedNode;
let worker: LocalWorker;
let tenant: SeededTenant;
let persistTo: string;
const log: string[] = [];

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'edge-restart-'));
  const port = await freePort();
  await ensureTinyModel();
  supervised = await superviseNode({ start: () => startLocalNode({ port, secret }), log: (l) => log.push(l), minBackoffMs: 200 });
  applyLocalMigrations(persistTo);
  worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: supervised.current.url, nodeSecret: secret, persistTo });
  tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'restart', 5_000_000);
});

afterAll(async () => {
  await Promise.allSettled([worker?.stop(), supervised?.stop()]);
  rmSync(persistTo, { recursive: true, force: true });
});

function chat(): Promise<Response> {
  return fetch(`${worker.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 2, temperature: 0 }),
    signal: AbortSignal.timeout(30_000),
  });
}

describe('npm start node supervisor', () => {
  it('restarts a killed node; meanwhile the edge answers 503 at once, then serves again', async () => {
    expect((await chat()).status).toBe(200);
    const first = supervised.current;
    process.kill(-first.pid, 'SIGKILL');
    await first.exited;

    // While it is down: a clean refusal in OpenAI's shape, quickly.
    const t0 = Date.now();
    const down = await chat();
    expect(down.status).toBe(503);
    expect(((await down.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: 'server_error', code: 'upstream_unavailable' });
    expect(Date.now() - t0).toBeLessThan(10_000);

    const second = await supervised.restarted(1);
    expect(second.pid).not.toBe(first.pid);
    expect(second.url).toBe(first.url);
    expect(log.some((l) => l.includes('restarting'))).toBe(true);
    // The edge's view of the node expires within a second (routing/node-load-poll.ts): served again.
    let res = await chat();
    for (let i = 0; i < 20 && res.status !== 200; i++) {
      expect(res.status, 'a 503 while the edge catches up, never a 500').toBe(503);
      await new Promise((r) => setTimeout(r, 250));
      res = await chat();
    }
    expect(res.status).toBe(200);
  });
});
