/**
 * The kernel interface the forward pass is written against. Three backends implement it:
 * `reference.ts` (plain scalar TypeScript, the oracle), `wasm-simd/` (the CPU serving path) and
 * `webgpu/` (WGSL through Dawn). Every backend passes the same conformance tests against the reference.
 *
 * Design:
 * - Activations live in backend-owned f32 `Tensor`s, so a GPU backend keeps them on the device and the
 *   only host↔device copies per step are token ids in and logits out (`read`). CPU backends may run each
 *   op synchronously; a GPU backend may only enqueue work. `read` is the one await point.
 * - Weights are uploaded once at load (`uploadInt4`, `uploadBf16`, `uploadF32`) into opaque handles; a
 *   backend may repack them (document the repack in that backend).
 * - "rows" is the number of token rows in a step (all sequences' tokens concatenated, prefill chunks and
 *   decode tokens alike). Row r of a tensor with row width D occupies [r*D, (r+1)*D).
 * - Small index arrays (token ids, positions, KV slots, logit rows) come from the host as typed arrays:
 *   the scheduler produces them there. Routing does not: `route` turns router logits into expert ids and
 *   weights in device tensors and `moe` consumes them there, so a step never waits on the host mid-way.
 * - Expert ids live in ordinary f32 tensors (an id e is stored as the float e, exact below 2^24): one
 *   tensor kind keeps every backend's memory model unchanged; kernels convert with u32(id) / `| 0`.
 *
 * Quantized layout (compressed-tensors "pack-quantized", int4 symmetric, group 32), for a Linear with
 * out_features N (`rows`) and in_features K (`cols`, a multiple of 32):
 *   packed: Int32Array [N, K/8]; weight (n, k) is nibble (k % 8) of word [n, k/8], bits 4*(k%8)..+3,
 *           stored as an unsigned value u = q + 8 where q ∈ [-8, 7];
 *   scales: Uint16Array [N, K/32] of bf16 bit patterns; w(n, k) = (u - 8) * bf16(scales[n, k/32]).
 *
 * int8 layout (q8_0: symmetric, group 32; made at load by model/quant.ts `quantizeInt8`, never in a
 * checkpoint), for the same N × K Linear:
 *   q:      Int8Array [N, K], q ∈ [-127, 127];
 *   scales: Uint16Array [N, K/32] of bf16 bit patterns; w(n, k) = q * bf16(scales[n, k/32]) (exact in f32).
 */

/** An f32 buffer owned by a backend. Only the backend that made it may use it. */
export interface Tensor {
  readonly length: number;
}

/** int4 group-32 symmetric weight of a Linear: out = W·x with W of shape [rows = N, cols = K]. */
export interface Int4Matrix {
  readonly kind: 'int4';
  readonly rows: number;
  readonly cols: number;
}

/** bf16 weight of a Linear, row-major [rows = N, cols = K]. */
export interface Bf16Matrix {
  readonly kind: 'bf16';
  readonly rows: number;
  readonly cols: number;
}

export type Matrix = Int4Matrix | Bf16Matrix;

/** int8 group-32 symmetric weight quantized at load (the lm_head's `--lm-head int8`); only `matmul` takes it. */
export interface Int8Matrix {
  readonly kind: 'int8';
  readonly rows: number;
  readonly cols: number;
}

export interface Int4Host {
  rows: number;
  cols: number;
  /** [rows, cols/8] packed nibbles, compressed-tensors order. */
  packed: Int32Array;
  /** [rows, cols/32] bf16 bit patterns. */
  scales: Uint16Array;
}

export interface Int8Host {
  rows: number;
  cols: number;
  /** [rows, cols] signed weights in [-127, 127]. */
  q: Int8Array;
  /** [rows, cols/32] bf16 bit patterns. */
  scales: Uint16Array;
}

export interface Bf16Host {
  rows: number;
  cols: number;
  /** [rows, cols] bf16 bit patterns. */
  data: Uint16Array;
}

/** Paged MLA KV cache: per block, per layer, per slot: kv_lora_rank latent values then qk_rope_head_dim rope-key values. */
export interface KvCacheSpec {
  numBlocks: number;
  blockSize: number;
  numLayers: number;
  kvLoraRank: number;
  ropeDim: number;
}

export interface KvCache {
  readonly spec: KvCacheSpec;
}

/** One sequence's part of a step, for attention. */
export interface AttnSeq {
  /** First row of this sequence's tokens in the step's row-major tensors. */
  rowStart: number;
  /** Rows (new tokens) this sequence has in the step. */
  rowCount: number;
  /** Tokens in the KV cache after this step's writes (= position of the last new token + 1). */
  contextLen: number;
  /** Physical block ids holding positions [i*blockSize, (i+1)*blockSize). */
  blockTable: Int32Array;
}

/**
 * The K2 / DeepSeek-V3 "noaux_tc" routing rule's parameters (model/moe-router.ts defines the rule on the
 * host; every backend's `route` matches it, ties included: the lower id wins).
 */
export interface RouterParams {
  nExperts: number;
  k: number;
  nGroup: number;
  topkGroup: number;
  normTopkProb: boolean;
  scalingFactor: number;
}

/** One routed expert's SiLU-gated MLP. */
export interface ExpertWeights {
  gate: Matrix; // [moe_intermediate, hidden]
  up: Matrix; // [moe_intermediate, hidden]
  down: Matrix; // [hidden, moe_intermediate]
}

/** wasm32 addresses 4 GiB: every weight, tensor and the KV cache of the wasm-simd backend share one memory of at most this. */
export const WASM32_MEMORY_BYTES = 2 ** 32;

export interface Kernels {
  readonly name: string;
  /**
   * Bytes this backend can hold in weights, KV cache and activations together, where one hard limit
   * bounds them all (wasm-simd: WASM32_MEMORY_BYTES). Model.load refuses a model past it before reading
   * any weight. Undefined: no single limit (host memory, or a GPU checked buffer by buffer).
   */
  readonly memoryLimitBytes?: number;

  // ── memory ────────────────────────────────────────────────────────────────
  /** A zeroed f32 tensor. */
  tensor(length: number): Tensor;
  write(dst: Tensor, src: Float32Array, dstOffset?: number): void;
  /**
   * Copies [offset, offset+length) out to the host once all queued work is done, into a new array, or
   * into `into` (at least `length` long; its first `length` values are written and a view of them
   * returned) so a per-step caller can reuse one host buffer instead of faulting in fresh pages.
   */
  read(src: Tensor, offset?: number, length?: number, into?: Float32Array): Promise<Float32Array>;
  uploadF32(data: Float32Array): Tensor;
  uploadInt4(w: Int4Host): Int4Matrix;
  uploadBf16(w: Bf16Host): Bf16Matrix;
  uploadInt8(w: Int8Host): Int8Matrix;
  kvCache(spec: KvCacheSpec): KvCache;
  /** Copy one physical KV block (all layers) to another: copy-on-write for shared prefixes. */
  copyKvBlock(cache: KvCache, from: number, to: number): void;

  // ── elementwise and normalization ─────────────────────────────────────────
  /** out[r, :] = bf16 row ids[r] of the embedding table. */
  embed(out: Tensor, table: Bf16Matrix, ids: Int32Array): void;
  /** out[r, :] = x[r, :] / rms(x[r, :]) * weight; x and out have row width `dim`. out may equal x. */
  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, rows: number, dim: number, eps: number): void;
  /** x[i] += y[i] for i < n. */
  add(x: Tensor, y: Tensor, n: number): void;
  /** out[i] = silu(gate[i]) * up[i] for i < n. */
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void;

  /** out[i, :] = x[rows[i], :] for i < rows.length, rows of width `width`: picks the rows that want logits. */
  gatherRows(out: Tensor, x: Tensor, rows: Int32Array, width: number): void;

  // ── matmul ────────────────────────────────────────────────────────────────
  /**
   * out[r, 0:w.rows] = W · x[r, 0:w.cols] for r < rows. The serving hot path: int4 weights run with
   * activations quantized to int8 per 32-group on fast backends (as llama.cpp's q4_0×q8_0); int8
   * weights likewise (q8_0×q8_0).
   */
  matmul(out: Tensor, x: Tensor, w: Matrix | Int8Matrix, rows: number): void;

  /**
   * Optional: for each i, the index of the largest value in row rows[i] of x (row width `width`), ties
   * to the lower index (model/sampler.ts `argmax`); -1 for a row holding a NaN or whose maximum is
   * ±Infinity, which the caller then samples on the host to learn why. Greedy sampling with it reads
   * 4 bytes per row instead of the row's logits. Resolves once the queued work is done, like `read`.
   */
  argmaxRows?(x: Tensor, rows: Int32Array, width: number): Promise<Int32Array>;

  // ── attention (MLA) ───────────────────────────────────────────────────────
  /**
   * RoPE on `ropeDim` values at `offset` inside each of `heads` heads of stride `headStride` per row,
   * rotating interleaved pairs (x[2i], x[2i+1]) as DeepSeek-V3/K2 do, at position positions[r].
   * cos/sin: tables [maxPosition, ropeDim/2] precomputed on the host (YaRN folded in).
   */
  rope(
    x: Tensor,
    rows: number,
    positions: Int32Array,
    heads: number,
    headStride: number,
    offset: number,
    ropeDim: number,
    cos: Tensor,
    sin: Tensor,
  ): void;
  /** Store row r's latent (width kvLoraRank) and rope key (width ropeDim) into slot slots[r] (= block*blockSize + offset) of `layer`. */
  kvWrite(cache: KvCache, layer: number, latent: Tensor, kRope: Tensor, rows: number, slots: Int32Array): void;
  /**
   * Absorbed MLA attention for one layer. For each sequence, row r (position contextLen - rowCount + i)
   * attends causally to cached positions ≤ its own:
   *   score(h, t) = (qLatent[r,h,:] · latent[t] + qRope[r,h,:] · kRope[t]) * scale
   *   out[r,h,:]  = Σ_t softmax_t(score) · latent[t]            (width kvLoraRank per head)
   * qLatent: [rows, heads, kvLoraRank]; qRope: [rows, heads, ropeDim]; out: [rows, heads, kvLoraRank].
   */
  mlaAttention(
    out: Tensor,
    qLatent: Tensor,
    qRope: Tensor,
    cache: KvCache,
    layer: number,
    heads: number,
    seqs: AttnSeq[],
    scale: number,
  ): void;
  /**
   * Per-head matmul for weight absorption. W is [heads * headRows, cols]; head h uses rows
   * [h*headRows + rowOffset, h*headRows + rowOffset + n). x and out are [rows, heads, *] with the given
   * per-head strides/offsets.
   *   transpose=false: out[r,h,i] = Σ_k W[h*headRows+rowOffset+i, k] · x[r,h,k]      (i < n, k < cols)
   *   transpose=true:  out[r,h,k] = Σ_i W[h*headRows+rowOffset+i, k] · x[r,h,i]      (k < cols, i < n)
   */
  headMatmul(
    out: Tensor,
    outHeadStride: number,
    x: Tensor,
    xHeadStride: number,
    xOffset: number,
    w: Bf16Matrix,
    heads: number,
    headRows: number,
    rowOffset: number,
    n: number,
    rows: number,
    transpose: boolean,
  ): void;

  // ── MoE ───────────────────────────────────────────────────────────────────
  /**
   * The router for `rows` rows of `logits` ([rows, nExperts]), exactly model/moe-router.ts's `routeRow`:
   * sigmoid scores; scores + bias (bias null = zeros) only choose (group-limited when nGroup > 1: groups
   * ranked by the sum of their top-2 biased scores); the k chosen weigh by their unbiased scores,
   * renormalised when normTopkProb, × scalingFactor. Writes ids[r*k + j] (expert id as f32, descending
   * choice order) and weights[r*k + j].
   */
  route(ids: Tensor, weights: Tensor, logits: Tensor, bias: Tensor | null, rows: number, p: RouterParams): void;
  /**
   * Routed experts: out[r, :] = Σ_j weights[r*k + j] · expert_{ids[r*k+j]}(x[r, :]) for r < rows
   * (out is overwritten). ids and weights are device tensors as `route` writes them (ids as f32). Fast
   * backends group rows by expert so each expert's weights stream once per step for all its rows.
   */
  moe(out: Tensor, x: Tensor, rows: number, experts: ExpertWeights[], ids: Tensor, weights: Tensor, k: number): void;
  /**
   * Optional, called once per MoE layer when its weights are loaded: a backend that reads experts from
   * its own layout (WebGPU's slabs) builds it now and frees the per-expert copies, so expert weights are
   * held once. Afterwards the handles are valid only inside `moe`, with this same list.
   */
  adoptExperts?(experts: ExpertWeights[]): void;
}

/** The `into` contract of `Kernels.read`, the same failure on every backend. */
export function checkReadInto(into: Float32Array, length: number): void {
  if (into.length < length) throw new Error(`read: ${length} values do not fit a host buffer of ${into.length}`);
}
