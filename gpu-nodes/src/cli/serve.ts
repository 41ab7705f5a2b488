/**
 * `k2node serve DIR`: load the model, then serve the token-batch protocol over HTTP. The port opens
 * first and answers 503 not_ready until the weights are in, so a supervisor sees a live process and the
 * edge a clear reason, instead of connection refused for the whole load.
 */
import { serve } from '@hono/node-server';
import { parseArgs } from 'node:util';
import { isBackendName, selectKernels } from '../kernels/select.ts';
import type { Engine } from '../engine/engine.ts';
import { ENGINE_DEFAULTS, loadEngine } from '../engine/load.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { createApp } from '../server.ts';
import { intOption as int } from './args.ts';

const usage =
  'serve DIR [--port 8788] [--host 127.0.0.1] [--backend auto|webgpu|wasm|reference] [--threads N] [--max-batch 32] [--max-tokens-per-step 256] [--kv-blocks 2048] [--block-size 16] [--max-queue 256] [--model-id ID] [--node-id ID] [--lm-head bf16|int4]';

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
      'lm-head': { type: 'string', default: 'bf16' },
    },
  });
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new Error(`usage: k2node ${usage}`);
  const port = int(values.port, 'port', 0)!; // 0: any free port (tests read it from the log line)

  let engine: Engine | undefined;
  // For the OpenAI-compatible endpoint (openai/routes.ts), which renders the chat template itself.
  let tokenizer: Tokenizer | undefined;
  const server = serve({ fetch: createApp(() => engine, () => tokenizer).fetch, port, hostname: values.host }, (info) => {
    console.log(`k2node: listening on http://${values.host}:${info.port} (loading ${dir})`);
  });
  const shutdown = () => server.close(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);

  const t0 = performance.now();
  const backend = values.backend ?? 'auto';
  if (!isBackendName(backend)) throw new Error(`unknown --backend "${backend}" (have auto, webgpu, wasm, reference)`);
  const lmHead = values['lm-head'];
  if (lmHead !== 'bf16' && lmHead !== 'int4') throw new Error(`unknown --lm-head "${lmHead}" (have bf16, int4)`);
  const kernels = await selectKernels({ backend, threads: int(values.threads, 'threads'), log: (line) => console.log(`k2node: ${line}`) });
  tokenizer = await loadTokenizer(dir);
  engine = await loadEngine(dir, {
    kernels,
    modelId: values['model-id'],
    nodeId: values['node-id'],
    maxBatch: int(values['max-batch'], 'max-batch') ?? ENGINE_DEFAULTS.maxBatch,
    maxTokensPerStep: int(values['max-tokens-per-step'], 'max-tokens-per-step'),
    kvBlocks: int(values['kv-blocks'], 'kv-blocks'),
    blockSize: int(values['block-size'], 'block-size'),
    maxQueue: int(values['max-queue'], 'max-queue'),
    lmHead,
  });
  console.log(`k2node: ready, model ${engine.options.modelId} on ${kernels.name} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
