/**
 * `k2node serve DIR`: load the model, then serve the token-batch protocol over HTTP. The port opens
 * first and answers 503 not_ready until the weights are in, so a supervisor sees a live process and the
 * edge a clear reason, instead of connection refused for the whole load.
 *
 * Credentials (request-auth.ts) come from the environment or files, never from flags (flags show in `ps`):
 *   K2NODE_SECRET / --secret-file            the pool's signing secret (the edge's NODE_SECRET)
 *   K2NODE_SECRET_PREVIOUS / --previous-secret-file   still accepted while a rotation is under way
 *   K2NODE_API_KEY / --api-key-file          bearer key(s) for the OpenAI-compatible routes, comma-separated
 * Without them the node refuses those requests, unless started with --insecure-no-auth.
 *
 * The model, kernels and scheduler run on a worker thread (engine-thread/); this thread only parses,
 * queues and streams, so `/health`, `/v1/load` and `/metrics` answer while a step computes. If that
 * thread dies, its requests end with an error event and the process exits 1 for its supervisor.
 *
 * SIGTERM (or SIGINT) drains (drain.ts): no new requests, in-flight ones run to their end or to
 * --drain-timeout seconds, then exit 0. A second signal exits at once.
 */
import { serve } from '@hono/node-server';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DrainState } from '../drain.ts';
import { NodeMetrics } from '../metrics.ts';
import type { NodeAuthConfig } from '../request-auth.ts';
import { isBackendName } from '../kernels/select.ts';
import { ENGINE_DEFAULTS } from '../engine/load-engine.ts';
import { EngineThread } from '../engine-thread/engine-client.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import { DEFAULT_LM_HEAD, LM_HEAD_FORMATS } from '../model/weights.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { createApp } from '../server.ts';
import { intOption as int } from './args.ts';

const usage =
  'serve DIR [--port 8788] [--host 127.0.0.1] [--backend auto|webgpu|wasm|reference] [--threads N] [--max-batch 32] [--max-tokens-per-step 256] [--kv-blocks 2048] [--block-size 16] [--max-queue 256] [--model-id ID] [--node-id ID] [--secret-file F] [--previous-secret-file F] [--api-key-file F] [--insecure-no-auth] [--drain-timeout 30] [--lm-head int8|bf16|int4]';

/** One value per non-empty line or comma: a key file may hold several keys. */
function credentials(envValue: string | undefined, file: string | undefined): string[] {
  const text = file !== undefined ? readFileSync(file, 'utf8') : (envValue ?? '');
  return text.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
}

function authConfig(values: { 'secret-file'?: string; 'previous-secret-file'?: string; 'api-key-file'?: string; 'insecure-no-auth'?: boolean }): NodeAuthConfig {
  const secrets = [
    ...credentials(process.env.K2NODE_SECRET, values['secret-file']),
    ...credentials(process.env.K2NODE_SECRET_PREVIOUS, values['previous-secret-file']),
  ];
  return { secrets, apiKeys: credentials(process.env.K2NODE_API_KEY, values['api-key-file']), insecureNoAuth: values['insecure-no-auth'] === true };
}

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      port: { type: 'string', default: '8788' },
      host: { type: 'string', default: '127.0.0.1' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      'max-batch': { type: 'string' },
      'max-tokens-per-step': { type: 'string' },
      'kv-blocks': { type: 'string' },
      'block-size': { type: 'string' },
      'max-queue': { type: 'string' },
      'model-id': { type: 'string' },
      'node-id': { type: 'string' },
      'secret-file': { type: 'string' },
      'previous-secret-file': { type: 'string' },
      'api-key-file': { type: 'string' },
      'insecure-no-auth': { type: 'boolean' },
      'drain-timeout': { type: 'string', default: '30' },
      'lm-head': { type: 'string', default: DEFAULT_LM_HEAD },
    },
  });
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new Error(`usage: k2node ${usage}`);
  const port = int(values.port, 'port', 0)!; // 0: any free port (tests read it from the log line)
  const drainTimeoutS = int(values['drain-timeout'], 'drain-timeout', 0)!;
  const auth = authConfig(values);
  if (auth.insecureNoAuth) console.log('k2node: --insecure-no-auth: anyone who can reach this port may generate and cancel');
  else if (auth.secrets.length === 0) console.log('k2node: no signing secret (K2NODE_SECRET): token-batch requests will be refused');

  let engine: EngineThread | undefined;
  // For the OpenAI-compatible endpoint (openai/routes.ts), which renders the chat template itself.
  let tokenizer: Tokenizer | undefined;
  const drain = new DrainState();
  const metrics = new NodeMetrics();
  const app = createApp(() => engine, () => tokenizer, { auth, drain, metrics });
  const server = serve({ fetch: app.fetch, port, hostname: values.host }, (info) => {
    console.log(`k2node: listening on http://${values.host}:${info.port} (loading ${dir})`);
  });

  const shutdown = async (signal: string) => {
    if (drain.draining) {
      console.log(`k2node: second ${signal}: exiting now`);
      process.exit(1);
    }
    drain.draining = true;
    metrics.setDraining(true);
    const load = engine?.load();
    console.log(`k2node: ${signal}: draining (${load ? load.running + load.queue_depth : 0} in flight, up to ${drainTimeoutS} s)`);
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), drainTimeoutS * 1000).unref());
    const outcome = await Promise.race([engine ? engine.idle().then(() => 'idle' as const) : Promise.resolve('idle' as const), deadline]);
    // The terminal events are written; let the last bytes reach their clients before closing sockets.
    server.close(() => {
      console.log(`k2node: drained (${outcome}), exiting`);
      process.exit(0);
    });
    if ('closeIdleConnections' in server) server.closeIdleConnections();
    await deadline;
    console.log('k2node: drain deadline passed with connections still open; exiting');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const t0 = performance.now();
  const backend = values.backend ?? 'auto';
  if (!isBackendName(backend)) throw new Error(`unknown --backend "${backend}" (have auto, webgpu, wasm, reference)`);
  const lmHead = LM_HEAD_FORMATS.find((f) => f === values['lm-head']);
  if (!lmHead) throw new Error(`unknown --lm-head "${values['lm-head']}" (have ${LM_HEAD_FORMATS.join(', ')})`);
  tokenizer = await loadTokenizer(dir);
  const loaded = await EngineThread.start({
    modelDir: dir,
    backend,
    threads: int(values.threads, 'threads'),
    engine: {
      modelId: values['model-id'],
      nodeId: values['node-id'],
      maxBatch: int(values['max-batch'], 'max-batch') ?? ENGINE_DEFAULTS.maxBatch,
      maxTokensPerStep: int(values['max-tokens-per-step'], 'max-tokens-per-step'),
      kvBlocks: int(values['kv-blocks'], 'kv-blocks'),
      blockSize: int(values['block-size'], 'block-size'),
      maxQueue: int(values['max-queue'], 'max-queue'),
      lmHead,
    },
  });
  metrics.instrument(loaded);
  const loadS = (performance.now() - t0) / 1000;
  metrics.loaded(loaded, loaded.kernels, loadS);
  engine = loaded;
  console.log(`k2node: ready, model ${loaded.options.modelId} on ${loaded.kernels} in ${loadS.toFixed(1)} s`);
  void loaded.died.then(() => {
    // The error events are written; give them a moment to reach their clients, then exit for a restart.
    process.exitCode = 1;
    server.close();
    setTimeout(() => process.exit(1), 1000).unref();
  });
}
