/**
 * Maps a DeepSeek-V3 / Kimi K2 checkpoint's tensor names onto the forward pass's `Weights` and
 * uploads them into the chosen `Kernels`.
 *
 * Quantization: a Linear listed in `quantization_config.ignore` must be stored as bf16 `.weight`;
 * any other Linear must be pack-quantized (`weight_packed`, `weight_scale`, `weight_shape`). The
 * tensors present are checked against that rule, so a checkpoint that disagrees with its own config
 * fails with the module's name instead of running with misread bytes.
 *
 * Two load-time regroupings keep every per-step tensor contiguous for the kernels:
 * - q_b_proj rows are per head [nope | rope]; they are split into a nope matrix and a rope matrix.
 * - kv_a_proj_with_mqa rows are [latent | rope key]; split the same way.
 */
import type { Bf16Matrix, ExpertWeights, Int8Matrix, Kernels, Matrix, Tensor } from '../kernels/kernels.ts';
import type { Checkpoint } from './checkpoint.ts';
import { isIgnored, isMoeLayer } from './config.ts';
import type { ModelConfig } from './config.ts';
import { bf16ArrayToF32, quantizeInt4, quantizeInt8 } from './quant.ts';

/**
 * How the lm_head is held. It is the largest matrix a step reads (vocabulary × hidden), so its format
 * trades logit error for speed:
 * - 'bf16': as the checkpoint has it; exact.
 * - 'int8': quantized at load to q8_0 (symmetric int8, group 32, bf16 scales; quant.ts `quantizeInt8`):
 *   half the bytes and integer dot products; logits move ~0.4 % of their range (lm-head-int8.test.ts).
 * - 'int4': with the routed experts' scheme, so it runs on the int4 kernels: a quarter of the bytes,
 *   but logits move ~7 % of their range (lm-head-int4.test.ts).
 */
export type LmHeadFormat = 'bf16' | 'int8' | 'int4';
export const LM_HEAD_FORMATS: readonly LmHeadFormat[] = ['bf16', 'int8', 'int4'];
/** The serving default: see README "Serving speed beside llama.cpp". */
export const DEFAULT_LM_HEAD: LmHeadFormat = 'int8';

export interface Mlp {
  gate: Matrix; // (inter, hidden)
  up: Matrix; // (inter, hidden)
  down: Matrix; // (hidden, inter)
}

export interface LayerWeights {
  inputNorm: Tensor; // (hidden)
  qA: Matrix | null; // (q_lora, hidden); null when q_lora_rank = 0
  qANorm: Tensor | null; // (q_lora)
  qNope: Matrix; // (heads * nope, q_lora or hidden): q_b_proj rows of the non-rotary part
  qRope: Matrix; // (heads * rope, q_lora or hidden): q_b_proj rows of the rotary part
  kvALatent: Matrix; // (kv_lora, hidden)
  kvARope: Matrix; // (rope, hidden): the single shared rope key head
  kvANorm: Tensor; // (kv_lora)
  kvB: Bf16Matrix; // (heads * (nope + v), kv_lora): per head W_UK rows then W_UV rows, absorbed via headMatmul
  o: Matrix; // (hidden, heads * v)
  postNorm: Tensor; // (hidden)
  dense: Mlp | null; // first_k_dense_replace layers
  moe: {
    router: Matrix; // (n_routed, hidden)
    bias: Float32Array; // (n_routed) e_score_correction_bias; forward.ts uploads it for Kernels.route
    experts: ExpertWeights[]; // n_routed
    shared: Mlp | null; // (n_shared * moe_inter) wide
  } | null;
}

export interface Weights {
  embed: Bf16Matrix; // (vocab, hidden)
  layers: LayerWeights[];
  norm: Tensor; // (hidden)
  lmHead: Matrix | Int8Matrix; // (vocab, hidden)
}

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
  tensor: string;
}

type HostLinear =
  | { kind: 'bf16'; rows: number; cols: number; data: Uint16Array }
  | { kind: 'int4'; rows: number; cols: number; packed: Int32Array; scales: Uint16Array };

export class WeightLoader {
  private ck: Checkpoint;
  private cfg: ModelConfig;
  private k: Kernels;
  private onProgress: (p: LoadProgress) => void;
  private loaded = 0;
  private total = 0;

  constructor(ck: Checkpoint, cfg: ModelConfig, kernels: Kernels, onProgress: (p: LoadProgress) => void) {
    this.ck = ck;
    this.cfg = cfg;
    this.k = kernels;
    this.onProgress = onProgress;
    for (const name of ck.names()) {
      const info = ck.info(name);
      this.total += info.end - info.begin;
    }
  }

  private bytes(name: string, dtypes: readonly string[], shape?: number[]): Uint8Array {
    const b = this.ck.read(name, dtypes, shape);
    this.loaded += b.length;
    this.onProgress({ loadedBytes: this.loaded, totalBytes: this.total, tensor: name });
    return b;
  }

  /** A norm weight or other vector, bf16 or f32 in the file, as f32. */
  vector(name: string, length: number): Float32Array {
    const b = this.bytes(name, ['BF16', 'F32'], [length]);
    return this.ck.info(name).dtype === 'F32' ? new Float32Array(b.buffer) : bf16ArrayToF32(new Uint16Array(b.buffer));
  }

  /** A Linear module's weight in host form, in the format its quantization rule demands. */
  linear(module: string, rows: number, cols: number): HostLinear {
    const q = this.cfg.quant;
    const quantized = q !== null && !isIgnored(q, module);
    const hasPacked = this.ck.has(`${module}.weight_packed`);
    const hasPlain = this.ck.has(`${module}.weight`);
    if (quantized && !hasPacked) {
      throw new Error(`${module}: quantization_config says pack-quantized (not in ignore) but the checkpoint has ${hasPlain ? 'a plain .weight' : 'no weight'}`);
    }
    if (!quantized && !hasPlain) {
      throw new Error(`${module}: expected bf16 ".weight" (${q ? 'listed in quantization_config.ignore' : 'no quantization_config'}) but ${hasPacked ? 'found weight_packed' : 'no weight found'}`);
    }
    if (!quantized) {
      const data = new Uint16Array(this.bytes(`${module}.weight`, ['BF16'], [rows, cols]).buffer);
      return { kind: 'bf16', rows, cols, data };
    }
    const shapeBytes = this.bytes(`${module}.weight_shape`, ['I32', 'I64'], [2]);
    const shape = this.ck.info(`${module}.weight_shape`).dtype === 'I64'
      ? Array.from(new BigInt64Array(shapeBytes.buffer), Number)
      : Array.from(new Int32Array(shapeBytes.buffer));
    if (shape[0] !== rows || shape[1] !== cols) throw new Error(`${module}.weight_shape is [${shape.join(', ')}], config.json implies [${rows}, ${cols}]`);
    const packed = new Int32Array(this.bytes(`${module}.weight_packed`, ['I32'], [rows, cols / 8]).buffer);
    const scales = new Uint16Array(this.bytes(`${module}.weight_scale`, ['BF16'], [rows, cols / 32]).buffer);
    return { kind: 'int4', rows, cols, packed, scales };
  }

  upload(w: HostLinear): Matrix {
    return w.kind === 'bf16' ? this.k.uploadBf16(w) : this.k.uploadInt4(w);
  }

  /** Keep rows [from, to) of every `period`-row block: regroups per-head rows into one matrix. */
  rowsOf(w: HostLinear, period: number, from: number, to: number): Matrix {
    const blocks = w.rows / period;
    const take = to - from;
    if (w.kind === 'bf16') {
      const data = new Uint16Array(blocks * take * w.cols);
      for (let b = 0; b < blocks; b++) data.set(w.data.subarray((b * period + from) * w.cols, (b * period + to) * w.cols), b * take * w.cols);
      return this.k.uploadBf16({ rows: blocks * take, cols: w.cols, data });
    }
    const pw = w.cols / 8;
    const sw = w.cols / 32;
    const packed = new Int32Array(blocks * take * pw);
    const scales = new Uint16Array(blocks * take * sw);
    for (let b = 0; b < blocks; b++) {
      packed.set(w.packed.subarray((b * period + from) * pw, (b * period + to) * pw), b * take * pw);
      scales.set(w.scales.subarray((b * period + from) * sw, (b * period + to) * sw), b * take * sw);
    }
    return this.k.uploadInt4({ rows: blocks * take, cols: w.cols, packed, scales });
  }

  mlp(prefix: string, inter: number): Mlp {
    const H = this.cfg.hiddenSize;
    return {
      gate: this.upload(this.linear(`${prefix}.gate_proj`, inter, H)),
      up: this.upload(this.linear(`${prefix}.up_proj`, inter, H)),
      down: this.upload(this.linear(`${prefix}.down_proj`, H, inter)),
    };
  }

  /** A MoE layer's routed experts, handed to the backend's own layout (if it has one) right away, so a large model's per-expert copies never pile up. */
  experts(pre: string): ExpertWeights[] {
    const experts = Array.from({ length: this.cfg.nRoutedExperts }, (_, e) => this.mlp(`${pre}.mlp.experts.${e}`, this.cfg.moeIntermediateSize));
    this.k.adoptExperts?.(experts);
    return experts;
  }

  layer(l: number): LayerWeights {
    const c = this.cfg;
    const H = c.hiddenSize;
    const pre = `model.layers.${l}`;
    const qk = c.qkNopeHeadDim + c.qkRopeHeadDim;
    const qIn = c.qLoraRank > 0 ? c.qLoraRank : H;
    const qB = this.linear(c.qLoraRank > 0 ? `${pre}.self_attn.q_b_proj` : `${pre}.self_attn.q_proj`, c.numHeads * qk, qIn);
    const kvA = this.linear(`${pre}.self_attn.kv_a_proj_with_mqa`, c.kvLoraRank + c.qkRopeHeadDim, H);
    const kvB = this.upload(this.linear(`${pre}.self_attn.kv_b_proj`, c.numHeads * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank));
    if (kvB.kind !== 'bf16') throw new Error(`${pre}.self_attn.kv_b_proj must be bf16: absorbed MLA multiplies it per head (headMatmul)`);
    const moe = isMoeLayer(c, l);
    return {
      inputNorm: this.k.uploadF32(this.vector(`${pre}.input_layernorm.weight`, H)),
      qA: c.qLoraRank > 0 ? this.upload(this.linear(`${pre}.self_attn.q_a_proj`, c.qLoraRank, H)) : null,
      qANorm: c.qLoraRank > 0 ? this.k.uploadF32(this.vector(`${pre}.self_attn.q_a_layernorm.weight`, c.qLoraRank)) : null,
      qNope: this.rowsOf(qB, qk, 0, c.qkNopeHeadDim),
      qRope: this.rowsOf(qB, qk, c.qkNopeHeadDim, qk),
      kvALatent: this.rowsOf(kvA, kvA.rows, 0, c.kvLoraRank),
      kvARope: this.rowsOf(kvA, kvA.rows, c.kvLoraRank, kvA.rows),
      kvANorm: this.k.uploadF32(this.vector(`${pre}.self_attn.kv_a_layernorm.weight`, c.kvLoraRank)),
      kvB,
      o: this.upload(this.linear(`${pre}.self_attn.o_proj`, H, c.numHeads * c.vHeadDim)),
      postNorm: this.k.uploadF32(this.vector(`${pre}.post_attention_layernorm.weight`, H)),
      dense: moe ? null : this.mlp(`${pre}.mlp`, c.intermediateSize),
      moe: moe
        ? {
            // The router is not a Linear in the published model (a bare parameter), so never quantized.
            router: this.k.uploadBf16({ rows: c.nRoutedExperts, cols: H, data: new Uint16Array(this.bytes(`${pre}.mlp.gate.weight`, ['BF16'], [c.nRoutedExperts, H]).buffer) }),
            bias: this.ck.has(`${pre}.mlp.gate.e_score_correction_bias`)
              ? this.vector(`${pre}.mlp.gate.e_score_correction_bias`, c.nRoutedExperts)
              : new Float32Array(c.nRoutedExperts),
            experts: this.experts(pre),
            shared: c.nSharedExperts > 0 ? this.mlp(`${pre}.mlp.shared_experts`, c.moeIntermediateSize * c.nSharedExperts) : null,
          }
        : null,
    };
  }

  /** Reads and uploads everything, yielding to the event loop between layers so a server can answer health checks while a large model loads. */
  async all(lmHeadFormat: LmHeadFormat = 'bf16'): Promise<Weights> {
    const c = this.cfg;
    const embedBytes = this.bytes('model.embed_tokens.weight', ['BF16'], [c.vocabSize, c.hiddenSize]);
    const embed = this.k.uploadBf16({ rows: c.vocabSize, cols: c.hiddenSize, data: new Uint16Array(embedBytes.buffer) });
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      await new Promise((resolve) => setImmediate(resolve));
      layers.push(this.layer(l));
    }
    const norm = this.k.uploadF32(this.vector('model.norm.weight', c.hiddenSize));
    let lmHead: Matrix | Int8Matrix;
    const head = c.tieWordEmbeddings ? { kind: 'bf16' as const, rows: c.vocabSize, cols: c.hiddenSize, data: new Uint16Array(embedBytes.buffer) } : this.linear('lm_head', c.vocabSize, c.hiddenSize);
    // A checkpoint that already quantized its lm_head (int4) is used as it is, whatever the format asked.
    if (lmHeadFormat === 'int4' && head.kind === 'bf16') lmHead = this.k.uploadInt4({ rows: head.rows, cols: head.cols, ...quantizeInt4(bf16ArrayToF32(head.data), head.rows, head.cols) });
    else if (lmHeadFormat === 'int8' && head.kind === 'bf16') lmHead = this.k.uploadInt8({ rows: head.rows, cols: head.cols, ...quantizeInt8(bf16ArrayToF32(head.data), head.rows, head.cols) });
    else lmHead = c.tieWordEmbeddings ? embed : this.upload(head);
    return { embed, layers, norm, lmHead };
  }
}
