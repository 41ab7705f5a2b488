/**
 * Starts a real GPU node process on this machine (`node gpu-nodes/src/cli.ts serve DIR --port P`)
 * and waits until it can generate. Used by `npm start` and by the tests that need the real node.
 *
 * The child gets its own process group, so stop() ends it and anything it spawned, and nothing else.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signNodeRequest } from '../shared/node-auth.ts';
import type { NodeLoad } from '../shared/protocol.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_MODEL_DIR = join(REPO_ROOT, 'models', 'k2-tiny');

export interface LocalNode {
  url: string;
  pid: number;
  /** The signing secret the node accepts (the edge's NODE_SECRET). */
  secret: string;
  /** The bearer key its OpenAI-compatible routes accept. */
  apiKey: string;
  /** Resolves with the exit code (null when ended by a signal) once the process has exited. */
  exited: Promise<number | null>;
  /** The node's `GET /v1/load`, signed as the edge signs it. */
  load(): Promise<NodeLoad>;
  stop(): Promise<void>;
}

/** A fresh random credential, for a node and edge started together on this machine. */
export function localCredential(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString('hex')}`;
}

export interface LocalNodeOptions {
  modelDir?: string;
  /** 0 picks a free port. */
  port?: number;
  /** How long loading the model may take before we give up. */
  readyTimeoutMs?: number;
  /** Extra `serve` flags, e.g. ['--kv-blocks', '256']. */
  extraArgs?: string[];
  /** Where the node's stdout/stderr lines go (default: kept, shown only if it fails to start). */
  log?: (line: string) => void;
  /** Signing secret shared with the edge (default: a fresh random one; nodes of one pool share it). */
  secret?: string;
  /** Bearer key for the node's OpenAI-compatible routes (default: a fresh random one). */
  apiKey?: string;
}

/** Generates models/k2-tiny when missing or stale (same config hash = reused). */
export async function ensureTinyModel(modelDir = DEFAULT_MODEL_DIR): Promise<string> {
  const { ensureModel } = await import('../gpu-nodes/src/model/make-model.ts');
  return ensureModel(modelDir, 'k2-tiny');
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

export async function startLocalNode(options: LocalNodeOptions = {}): Promise<LocalNode> {
  const { modelDir = DEFAULT_MODEL_DIR, readyTimeoutMs = 180_000, extraArgs = [], log } = options;
  const port = options.port || (await freePort());
  const secret = options.secret ?? localCredential('nsec');
  const apiKey = options.apiKey ?? localCredential('nkey');
  const child = spawn(process.execPath, [join(REPO_ROOT, 'gpu-nodes/src/cli.ts'), 'serve', modelDir, '--port', String(port), ...extraArgs], {
    cwd: REPO_ROOT,
    // Credentials through the environment, not argv, as in production (argv shows in `ps`).
    env: { ...process.env, K2NODE_SECRET: secret, K2NODE_API_KEY: apiKey },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const onLine = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      log?.(line);
      tail.push(line);
      if (tail.length > 40) tail.shift();
    }
  };
  child.stdout.on('data', onLine);
  child.stderr.on('data', onLine);
  let exited: string | undefined;
  const exitCode = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = `exited with ${code ?? signal}`;
      resolve(code);
    }),
  );
  // Safety net: if our process ends without stop() (a test runner tearing down, an uncaught
  // error, a signal handler calling exit), take the node's process group with us.
  const killOnExit = () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone between the check and the kill.
      }
    }
  };
  process.once('exit', killOnExit);

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const gone = new Promise((ok) => child.once('exit', ok));
    process.kill(-child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };

  const load = async (): Promise<NodeLoad> => {
    const res = await fetch(`${url}/v1/load`, { headers: await signNodeRequest({ method: 'GET', path: '/v1/load', body: '', secret }) });
    if (!res.ok) throw new Error(`GET ${url}/v1/load: ${res.status} ${await res.text()}`);
    return (await res.json()) as NodeLoad;
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) throw new Error(`GPU node ${exited} before it was ready:\n${tail.join('\n')}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`GPU node not ready after ${readyTimeoutMs} ms:\n${tail.join('\n')}`);
    }
    // /ready answers 503 until the model is loaded, so 200 there means it can generate.
    const ready = await fetch(`${url}/ready`).then((r) => r.ok, () => false);
    if (ready) return { url, pid: child.pid!, secret, apiKey, exited: exitCode, load, stop };
    await new Promise((r) => setTimeout(r, 250));
  }
}
