/**
 * The Kimi K2 / DeepSeek-V3 forward pass over one scheduler step, written against `Kernels`.
 * Reads top to bottom like llama2.c's run.c: types, run state, then `forward`.
 *
 * Attention is MLA in its "absorbed" form: the KV cache holds only the normalised latent
 * (kv_lora_rank) and the shared rope key (qk_rope_head_dim) per token per layer; the per-head key and
 * value up-projections (kv_b_proj = [W_UK; W_UV] per head) are folded into the query before attention
 * and into the output after it, so attention itself runs in latent space for every head.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AttnSeq, Kernels, KvCache, Tensor } from '../kernels/kernels.ts';
import { Checkpoint } from './checkpoint.ts';
import { parseConfig } from './config.ts';
import { checkpointBytes, memoryEstimate } from './memory-estimate.ts';
import type { ModelConfig } from './config.ts';
import { ropeTables, softmaxScale } from './rope.ts';
import type { RouterParams } from './moe-router.ts';
import { WeightLoader } from './weights.ts';
import type { LmHeadFormat, LoadProgress, Mlp, Weights } from './weights.ts';

export type { ModelConfig } from './config.ts';
export type { LoadProgress } from './weights.ts';

export interface StepBatch {
  tokens: Int32Array; // (rows) token ids of every scheduled sequence's new tokens, concatenated
  positions: Int32Array; // (rows) absolute positions
  slots: Int32Array; // (rows) KV slot = blockTable[floor(pos/blockSize)]*blockSize + pos%blockSize
  seqs: AttnSeq[]; // one per sequence in the step, rows contiguous
  logitRows: Int32Array; // rows whose next-token logits are wanted
}

export interface LoadOptions {
  kernels: Kernels;
  kvBlocks: number;
  blockSize: number;
  /** Longest position the rope tables cover; defaults to max_position_embeddings. */
  maxPositions?: number;
  onProgress?: (p: LoadProgress) => void;
  /** Load log lines (start, every 10%, done); default stderr. */
  log?: (line: string) => void;
  /** The lm_head as in the checkpoint (default), int8 or int4; see weights.ts `LmHeadFormat`. */
  lmHead?: LmHeadFormat;
}

// ----------------------------------------------------------------------------
// Run state: every activation buffer, sized for `capacity` rows and grown (never per token) when a
// larger step arrives.

class RunState {
  capacity = 0;
  logitCapacity = 0;
  x!: Tensor; // (rows, hidden) residual stream
  xn!: Tensor; // (rows, hidden) normed input of attention / FFN
  qa!: Tensor; // (rows, q_lora)
  qNope!: Tensor; // (rows, heads, nope)
  qRope!: Tensor; // (rows, heads, rope)
  qLatent!: Tensor; // (rows, heads, kv_lora) q_nope absorbed through W_UK
  latent!: Tensor; // (rows, kv_lora) normed compressed KV of the new tokens
  kRope!: Tensor; // (rows, rope) rope key of the new tokens
  attnLatent!: Tensor; // (rows, heads, kv_lora) attention output in latent space
  attnV!: Tensor; // (rows, heads, v) after W_UV
  attnOut!: Tensor; // (rows, hidden) after o_proj
  gate!: Tensor; // (rows, max FFN width)
  up!: Tensor; // (rows, max FFN width)
  ffnOut!: Tensor; // (rows, hidden) dense MLP or routed-experts output
  moeOut!: Tensor; // (rows, hidden) shared expert output before it joins the routed sum
  routerLogits!: Tensor; // (rows, n_routed)
  expertIds!: Tensor; // (rows, k) chosen expert ids, as f32 (kernels.ts)
  expertWeights!: Tensor; // (rows, k) their routing weights
  last!: Tensor; // (logit rows, hidden)
  logits!: Tensor; // (logit rows, vocab)

  ensure(k: Kernels, c: ModelConfig, rows: number, logitRows: number): void {
    if (rows > this.capacity) {
      const n = Math.max(rows, this.capacity * 2, 16);
      const H = c.hiddenSize;
      const heads = c.numHeads;
      const ffn = Math.max(c.intermediateSize, c.moeIntermediateSize * Math.max(1, c.nSharedExperts));
      this.x = k.tensor(n * H);
      this.xn = k.tensor(n * H);
      this.qa = k.tensor(n * Math.max(1, c.qLoraRank));
      this.qNope = k.tensor(n * heads * c.qkNopeHeadDim);
      this.qRope = k.tensor(n * heads * c.qkRopeHeadDim);
      this.qLatent = k.tensor(n * heads * c.kvLoraRank);
      this.latent = k.tensor(n * c.kvLoraRank);
      this.kRope = k.tensor(n * c.qkRopeHeadDim);
      this.attnLatent = k.tensor(n * heads * c.kvLoraRank);
      this.attnV = k.tensor(n * heads * c.vHeadDim);
      this.attnOut = k.tensor(n * H);
      this.gate = k.tensor(n * ffn);
      this.up = k.tensor(n * ffn);
      this.ffnOut = k.tensor(n * H);
      this.moeOut = k.tensor(n * H);
      this.routerLogits = k.tensor(n * Math.max(1, c.nRoutedExperts));
      this.expertIds = k.tensor(n * Math.max(1, c.numExpertsPerTok));
      this.expertWeights = k.tensor(n * Math.max(1, c.numExpertsPerTok));
      this.capacity = n;
    }
    if (logitRows > this.logitCapacity) {
      const n = Math.max(logitRows, this.logitCapacity * 2, 4);
      this.last = k.tensor(n * c.hiddenSize);
      this.logits = k.tensor(n * c.vocabSize);
      this.logitCapacity = n;
    }
  }
}

// ----------------------------------------------------------------------------
// Small blocks

/** SiLU-gated MLP: out = down(silu(gate·x) * up·x). Dense layers and the shared expert. */
function mlp(k: Kernels, s: RunState, out: Tensor, x: Tensor, w: Mlp, rows: number): void {
  const inter = w.gate.rows;
  k.matmul(s.gate, x, w.gate, rows);
  k.matmul(s.up, x, w.up, rows);
  k.siluMul(s.gate, s.gate, s.up, rows * inter);
  k.matmul(out, s.gate, w.down, rows);
}

function checkBatch(c: ModelConfig, kv: KvCache, b: StepBatch): void {
  const rows = b.tokens.length;
  if (b.positions.length !== rows || b.slots.length !== rows) throw new Error(`StepBatch: ${rows} tokens but ${b.positions.length} positions and ${b.slots.length} slots`);
  let next = 0;
  for (const s of b.seqs) {
    if (s.rowStart !== next) throw new Error(`StepBatch: sequence rows must be contiguous (expected rowStart ${next}, got ${s.rowStart})`);
    if (s.contextLen < s.rowCount) throw new Error(`StepBatch: contextLen ${s.contextLen} < rowCount ${s.rowCount}`);
    if (s.blockTable.length * kv.spec.blockSize < s.contextLen) throw new Error(`StepBatch: block table of ${s.blockTable.length} blocks cannot hold ${s.contextLen} tokens`);
    // attention derives each row's position from contextLen; the rope positions must agree
    for (let i = 0; i < s.rowCount; i++) {
      const want = s.contextLen - s.rowCount + i;
      if (b.positions[s.rowStart + i] !== want) throw new Error(`StepBatch: row ${s.rowStart + i} has position ${b.positions[s.rowStart + i]}, its sequence implies ${want}`);
    }
    next += s.rowCount;
  }
  if (next !== rows) throw new Error(`StepBatch: sequences cover ${next} rows, batch has ${rows}`);
  for (let r = 0; r < rows; r++) {
    if (b.tokens[r] < 0 || b.tokens[r] >= c.vocabSize) throw new Error(`StepBatch: token ${b.tokens[r]} outside vocabulary ${c.vocabSize}`);
  }
  for (const r of b.logitRows) if (r < 0 || r >= rows) throw new Error(`StepBatch: logit row ${r} outside 0..${rows - 1}`);
}

// ----------------------------------------------------------------------------
// The model

export class Model {
  readonly config: ModelConfig;
  readonly kernels: Kernels;
  readonly kv: KvCache;
  readonly maxPositions: number;
  private w: Weights;
  private cos: Tensor;
  private sin: Tensor;
  private scale: number;
  private router: RouterParams;
  private routerBias: Array<Tensor | null>; // (layer) e_score_correction_bias on the device, MoE layers only
  private s = new RunState();

  private constructor(config: ModelConfig, kernels: Kernels, kv: KvCache, w: Weights, maxPositions: number) {
    this.config = config;
    this.kernels = kernels;
    this.kv = kv;
    this.w = w;
    this.maxPositions = maxPositions;
    const { cos, sin } = ropeTables(config, maxPositions);
    this.cos = kernels.uploadF32(cos);
    this.sin = kernels.uploadF32(sin);
    this.scale = softmaxScale(config);
    this.router = {
      nExperts: config.nRoutedExperts,
      k: config.numExpertsPerTok,
      nGroup: config.nGroup,
      topkGroup: config.topkGroup,
      normTopkProb: config.normTopkProb,
      scalingFactor: config.routedScalingFactor,
    };
    this.routerBias = w.layers.map((l) => (l.moe ? kernels.uploadF32(l.moe.bias) : null));
  }

  static async load(dir: string, opts: LoadOptions): Promise<Model> {
    const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
    const config = parseConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    const ck = new Checkpoint(dir);
    try {
      refuseOverLimit(dir, config, ck, opts);
    } catch (e) {
      ck.close();
      throw e;
    }
    let lastTenth = -1;
    const started = Date.now();
    log(`model: loading ${dir} (${config.numLayers} layers, ${config.nRoutedExperts} experts) into ${opts.kernels.name} kernels`);
    try {
      const loader = new WeightLoader(ck, config, opts.kernels, (p) => {
        opts.onProgress?.(p);
        const tenth = Math.floor((10 * p.loadedBytes) / Math.max(1, p.totalBytes));
        if (tenth > lastTenth) {
          lastTenth = tenth;
          log(`model: ${tenth * 10}% (${(p.loadedBytes / 1e6).toFixed(0)} / ${(p.totalBytes / 1e6).toFixed(0)} MB)`);
        }
      });
      const w = await loader.all(opts.lmHead);
      const kv = opts.kernels.kvCache({
        numBlocks: opts.kvBlocks,
        blockSize: opts.blockSize,
        numLayers: config.numLayers,
        kvLoraRank: config.kvLoraRank,
        ropeDim: config.qkRopeHeadDim,
      });
      const model = new Model(config, opts.kernels, kv, w, opts.maxPositions ?? config.maxPositionEmbeddings);
      log(`model: loaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return model;
    } finally {
      ck.close();
    }
  }

  /**
   * Runs one step; returns logits (logitRows.length, vocab_size) as f32.
   * `probe` (tests only) receives the residual stream (rows, hidden) after each layer. With
   * `logitsInto` the logits are written there and a view of it returned (see `Kernels.read`).
   */
  async forward(b: StepBatch, probe?: (layer: number, hidden: Float32Array) => void, logitsInto?: Float32Array): Promise<Float32Array> {
    const nLogits = await this.step(b, probe);
    if (nLogits === 0) return new Float32Array(0);
    return this.readLogits(0, nLogits, logitsInto);
  }

  /**
   * Logits rows [from, from + count) of the last `step` (row i = batch.logitRows[i]) copied to the host,
   * into `into` when given (see `Kernels.read`).
   */
  readLogits(from: number, count: number, into?: Float32Array): Promise<Float32Array> {
    const V = this.config.vocabSize;
    return this.kernels.read(this.s.logits, from * V, count * V, into);
  }

  /** Whether `argmaxLogits` runs on this backend (its `Kernels.argmaxRows`). */
  get canArgmax(): boolean {
    return this.kernels.argmaxRows !== undefined;
  }

  /**
   * The argmax of each listed logits row of the last `step`, where the logits are (no host copy); -1 for a
   * row that cannot be sampled from (a NaN, or a maximum of ±Infinity). Only when `canArgmax`.
   */
  argmaxLogits(rows: Int32Array): Promise<Int32Array> {
    if (!this.kernels.argmaxRows) throw new Error(`argmaxLogits: the ${this.kernels.name} backend has no argmaxRows`);
    return this.kernels.argmaxRows(this.s.logits, rows, this.config.vocabSize);
  }

  /**
   * Runs one step and leaves its logits (logitRows.length, vocab_size) on the backend for `readLogits`
   * and `argmaxLogits`, valid until the next step; returns how many rows they have.
   */
  async step(b: StepBatch, probe?: (layer: number, hidden: Float32Array) => void): Promise<number> {
    const c = this.config;
    const k = this.kernels;
    const w = this.w;
    const s = this.s;
    const rows = b.tokens.length;
    const H = c.hiddenSize;
    const heads = c.numHeads;
    const nope = c.qkNopeHeadDim;
    const rope = c.qkRopeHeadDim;
    const L = c.kvLoraRank;
    const nLogits = b.logitRows.length;
    checkBatch(c, this.kv, b);
    for (const p of b.positions) if (p < 0 || p >= this.maxPositions) throw new Error(`StepBatch: position ${p} outside 0..${this.maxPositions - 1}`);
    s.ensure(k, c, rows, nLogits);

    // token embeddings
    k.embed(s.x, w.embed, b.tokens);

    for (let l = 0; l < c.numLayers; l++) {
      const lw = w.layers[l];

      // attention norm
      k.rmsnorm(s.xn, s.x, lw.inputNorm, rows, H, c.rmsNormEps);

      // queries: low-rank down-projection, its norm, then the per-head nope and rope parts
      let qIn = s.xn;
      if (lw.qA && lw.qANorm) {
        k.matmul(s.qa, s.xn, lw.qA, rows);
        k.rmsnorm(s.qa, s.qa, lw.qANorm, rows, c.qLoraRank, c.rmsNormEps);
        qIn = s.qa;
      }
      k.matmul(s.qNope, qIn, lw.qNope, rows);
      k.matmul(s.qRope, qIn, lw.qRope, rows);

      // compressed KV: the normed latent and the single rope key head shared by all heads
      k.matmul(s.latent, s.xn, lw.kvALatent, rows);
      k.rmsnorm(s.latent, s.latent, lw.kvANorm, rows, L, c.rmsNormEps);
      k.matmul(s.kRope, s.xn, lw.kvARope, rows);

      // RoPE (YaRN tables) on the rope parts of queries and key
      k.rope(s.qRope, rows, b.positions, heads, rope, 0, rope, this.cos, this.sin);
      k.rope(s.kRope, rows, b.positions, 1, rope, 0, rope, this.cos, this.sin);

      // write this step's latent and rope key into the paged cache
      k.kvWrite(this.kv, l, s.latent, s.kRope, rows, b.slots);

      // absorb W_UK into the query: qLatent[h] = W_UK[h]ᵀ · q_nope[h], so scores need no per-head keys
      k.headMatmul(s.qLatent, L, s.qNope, nope, 0, lw.kvB, heads, nope + c.vHeadDim, 0, nope, rows, true);

      // attention over the cached latents, causal within each sequence
      k.mlaAttention(s.attnLatent, s.qLatent, s.qRope, this.kv, l, heads, b.seqs, this.scale);

      // W_UV per head takes the attended latent to the value head, then o_proj
      k.headMatmul(s.attnV, c.vHeadDim, s.attnLatent, L, 0, lw.kvB, heads, nope + c.vHeadDim, nope, c.vHeadDim, rows, false);
      k.matmul(s.attnOut, s.attnV, lw.o, rows);

      // residual
      k.add(s.x, s.attnOut, rows * H);

      // FFN norm
      k.rmsnorm(s.xn, s.x, lw.postNorm, rows, H, c.rmsNormEps);

      if (lw.dense) {
        // dense SiLU MLP (first_k_dense_replace layers)
        mlp(k, s, s.ffnOut, s.xn, lw.dense, rows);
      } else {
        const moe = lw.moe!;

        // router on the device: sigmoid scores, bias picks the top-k, unbiased weights renormalised × scaling
        k.matmul(s.routerLogits, s.xn, moe.router, rows);
        k.route(s.expertIds, s.expertWeights, s.routerLogits, this.routerBias[l], rows, this.router);

        // routed experts, then the shared expert added unscaled
        k.moe(s.ffnOut, s.xn, rows, moe.experts, s.expertIds, s.expertWeights, c.numExpertsPerTok);
        if (moe.shared) {
          mlp(k, s, s.moeOut, s.xn, moe.shared, rows);
          k.add(s.ffnOut, s.moeOut, rows * H);
        }
      }

      // residual
      k.add(s.x, s.ffnOut, rows * H);
      if (probe) probe(l, await k.read(s.x, 0, rows * H));
    }

    // a prefill chunk that samples nothing needs no logits (its KV writes were the point)
    if (nLogits === 0) return 0;

    // gather the rows that want logits on the device (a pure decode step wants every row: no copy)
    let final = s.x;
    if (!isIdentity(b.logitRows, rows)) {
      k.gatherRows(s.last, s.x, b.logitRows, H);
      final = s.last;
    }

    // final norm and logits
    k.rmsnorm(s.last, final, w.norm, nLogits, H, c.rmsNormEps);
    k.matmul(s.logits, s.last, w.lmHead, nLogits);
    return nLogits;
  }
}

/** A backend with one hard memory limit (wasm-simd's 4 GiB) refuses a model past it before any weight is read. */
function refuseOverLimit(dir: string, config: ModelConfig, ck: Checkpoint, opts: LoadOptions): void {
  const limit = opts.kernels.memoryLimitBytes;
  if (limit === undefined) return;
  const need = memoryEstimate(config, checkpointBytes(ck), opts.kvBlocks * opts.blockSize, { rows: 1, logitRows: 1 });
  if (need.totalBytes <= limit) return;
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  throw new Error(
    `model: ${dir} needs at least ${gib(need.totalBytes)} (weights ${gib(need.weightBytes)} + KV cache ${gib(need.kvCacheBytes)}), ` +
      `more than the ${opts.kernels.name} backend's limit of ${gib(limit)} (one wasm32 memory addresses 4 GiB); ` +
      'serve it with the webgpu backend (--backend webgpu), which keeps weights in GPU buffers',
  );
}

function isIdentity(rows: Int32Array, n: number): boolean {
  if (rows.length !== n) return false;
  for (let i = 0; i < n; i++) if (rows[i] !== i) return false;
  return true;
}

