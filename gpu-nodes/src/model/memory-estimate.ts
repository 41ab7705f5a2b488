/**
 * How much memory serving a checkpoint takes, from its config and tensor headers alone (no weight is
 * read): weights as stored (the wasm and webgpu backends keep int4 packed and bf16 as bf16; the reference
 * backend dequantizes every weight to f32), the paged MLA cache in f32, and forward.ts's run-state buffers. `k2node inspect` prints it per backend; `Model.load` uses it
 * to refuse a model past a backend's hard limit before reading any weight.
 */
import type { Checkpoint } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';

export interface MemoryEstimate {
  /** Tensor bytes as stored: the wasm and webgpu backends keep int4 packed and bf16 as bf16. */
  weightBytes: number;
  /** Tensor bytes once dequantized to f32, as the reference backend holds them (int4 ×8, bf16 ×2). */
  referenceWeightBytes: number;
  /** The biggest single tensor: WebGPU uploads it in row parts where it passes one storage binding (`maxStorageBufferBindingSize`). */
  largestTensor: { name: string; bytes: number };
  /** MLA caches (kv_lora_rank + qk_rope_head_dim) per token per layer; at bf16, as vLLM/SGLang store it. */
  kvBytesPerTokenBf16: number;
  /** The same in f32, as our kernels' paged cache stores it. */
  kvBytesPerToken: number;
  kvTokens: number;
  kvCacheBytes: number;
  /** Run-state buffers for a full step plus the rope tables (model/forward.ts RunState). */
  activationBytes: number;
  totalBytes: number;
  /** What the reference backend holds: f32 weights, KV and activations. */
  referenceTotalBytes: number;
}

export interface CheckpointBytes {
  total: number;
  /** The same weights dequantized to f32: a packed weight's scales and shape are folded into its values. */
  asF32: number;
  largest: { name: string; bytes: number };
}

/** How many bytes one stored byte of each dtype becomes in f32: 8 int4 values per int32, 2 bf16 per 4 bytes. */
const F32_BYTES_PER_STORED_BYTE: Record<string, number> = { I32: 8, BF16: 2, F16: 2, F32: 1 };

/** Bytes of every tensor, and the largest one, from the shard headers. */
export function checkpointBytes(ck: Checkpoint): CheckpointBytes {
  let total = 0;
  let asF32 = 0;
  let largest = { name: '', bytes: 0 };
  for (const name of ck.names()) {
    const info = ck.info(name);
    const bytes = info.end - info.begin;
    total += bytes;
    if (!name.endsWith('.weight_scale') && !name.endsWith('.weight_shape')) asF32 += bytes * (F32_BYTES_PER_STORED_BYTE[info.dtype] ?? 1);
    if (bytes > largest.bytes) largest = { name, bytes };
  }
  return { total, asF32, largest };
}

/** Per-step activation floats of forward.ts's RunState at `rows` rows and `logitRows` logit rows, plus rope tables. */
export function activationBytes(c: ModelConfig, rows: number, logitRows: number): number {
  const ffn = Math.max(c.intermediateSize, c.moeIntermediateSize * Math.max(1, c.nSharedExperts));
  const perRow =
    5 * c.hiddenSize + // x, xn, attnOut, ffnOut, moeOut
    Math.max(1, c.qLoraRank) +
    c.numHeads * (c.qkNopeHeadDim + c.qkRopeHeadDim + 2 * c.kvLoraRank + c.vHeadDim) + // q parts, qLatent, attnLatent, attnV
    c.kvLoraRank + c.qkRopeHeadDim + // latent, kRope
    2 * ffn + // gate, up
    Math.max(1, c.nRoutedExperts); // router logits
  const rope = 2 * c.maxPositionEmbeddings * (c.qkRopeHeadDim / 2); // cos and sin tables
  return 4 * (rows * perRow + logitRows * (c.hiddenSize + c.vocabSize) + rope);
}

export function memoryEstimate(
  c: ModelConfig,
  weights: CheckpointBytes,
  kvTokens: number,
  step: { rows: number; logitRows: number },
): MemoryEstimate {
  const perTokenValues = (c.kvLoraRank + c.qkRopeHeadDim) * c.numLayers;
  const kvBytesPerToken = 4 * perTokenValues;
  const activations = activationBytes(c, step.rows, step.logitRows);
  const kvCacheBytes = kvBytesPerToken * kvTokens;
  return {
    weightBytes: weights.total,
    referenceWeightBytes: weights.asF32,
    largestTensor: weights.largest,
    kvBytesPerTokenBf16: 2 * perTokenValues,
    kvBytesPerToken,
    kvTokens,
    kvCacheBytes,
    activationBytes: activations,
    totalBytes: weights.total + kvCacheBytes + activations,
    referenceTotalBytes: weights.asF32 + kvCacheBytes + activations,
  };
}
