/**
 * Builds a ready engine from a model directory: model weights onto the chosen kernels, the paged KV
 * cache sized from the options, the tokenizer for text deltas. The one place those parts meet.
 */
import { basename, resolve } from 'node:path';
import type { Kernels } from '../kernels/kernels.ts';
import { Model } from '../model/forward.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import type { LmHeadFormat } from '../model/weights.ts';
import { OUTPUT_MARKERS } from '../../../shared/tokenizer/output-parser.ts';
import { Engine } from './engine.ts';
import { KvCacheManager } from './kv-cache-manager.ts';
import { ModelRunner, type LogitsHook } from './model-runner.ts';
import { GrammarCompiler } from './structured-output/grammar-compiler.ts';

export interface LoadEngineOptions {
  kernels: Kernels;
  /** Model id requests must name; default: the directory's name (models/k2-tiny → "k2-tiny"). */
  modelId?: string;
  nodeId?: string;
  maxBatch?: number;
  maxTokensPerStep?: number;
  /** Physical KV blocks; with MLA each holds blockSize × layers × (kv_lora_rank + rope dim) floats. */
  kvBlocks?: number;
  blockSize?: number;
  maxQueue?: number;
  enablePrefixCaching?: boolean;
  /** Model load log lines; default stderr. */
  log?: (line: string) => void;
  /** The lm_head as in the checkpoint (default here; `k2node serve` defaults to int8), int8 or int4 (model/weights.ts `LmHeadFormat`). */
  lmHead?: LmHeadFormat;
  /** Test hook: sees (and may change) each request's logits row before its sampler (fault injection). */
  logitsHook?: LogitsHook;
}

export const ENGINE_DEFAULTS = {
  maxBatch: 32,
  // Large enough that a 2k-token prompt prefills in a handful of steps, small enough that a step
  // stays short and running decodes keep a steady inter-token latency while it does.
  maxTokensPerStep: 256,
  kvBlocks: 2048,
  blockSize: 16,
  maxQueue: 256,
} as const;

export async function loadEngine(dir: string, opts: LoadEngineOptions): Promise<Engine> {
  const blockSize = opts.blockSize ?? ENGINE_DEFAULTS.blockSize;
  const kvBlocks = opts.kvBlocks ?? ENGINE_DEFAULTS.kvBlocks;
  const [model, tokenizer] = await Promise.all([
    Model.load(dir, { kernels: opts.kernels, kvBlocks, blockSize, log: opts.log, lmHead: opts.lmHead }),
    loadTokenizer(dir),
  ]);
  const kv = new KvCacheManager({ numBlocks: kvBlocks, blockSize, enablePrefixCaching: opts.enablePrefixCaching });
  return new Engine(
    new ModelRunner(model, kv, opts.logitsHook),
    kv,
    () => tokenizer.createDecoder({ skipSpecial: true, keepSpecial: OUTPUT_MARKERS }),
    {
      modelId: opts.modelId ?? basename(resolve(dir)),
      nodeId: opts.nodeId ?? `node-${process.pid}`,
      maxBatch: opts.maxBatch ?? ENGINE_DEFAULTS.maxBatch,
      maxTokensPerStep: opts.maxTokensPerStep ?? ENGINE_DEFAULTS.maxTokensPerStep,
      maxQueue: opts.maxQueue ?? ENGINE_DEFAULTS.maxQueue,
    },
    new GrammarCompiler(tokenizer, model.config.vocabSize),
  );
}
