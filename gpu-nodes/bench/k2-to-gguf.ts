/**
 * Our checkpoint (Kimi K2 / DeepSeek-V3 layout, compressed-tensors int4 experts) → a GGUF that
 * llama.cpp runs as its `deepseek2` architecture, so the benchmark's peer computes the same model:
 *
 * - routed experts: Q4_0, written losslessly from the int4 codes. Both are symmetric with 32-value
 *   groups: our nibble u encodes (u − 8)·scale, Q4_0's nibble q encodes (q − 8)·d, so q = u and the
 *   bf16 scale becomes an exact f16 d (refused if it is not representable);
 * - everything else as in the checkpoint: bf16 matrices as BF16, norms, router and bias as F32 (ggml
 *   wants vectors in f32; bf16 → f32 is exact);
 * - kv_b_proj split per head into attn_k_b (transposed) and attn_v_b, the absorbed-MLA layout llama.cpp
 *   expects (as its convert_hf_to_gguf.py does), with key/value_length_mla set so it takes that path;
 * - metadata from config.json under llama.cpp's deepseek2 keys, YaRN included (its loader divides the
 *   stored log multiplier by 0.1, hence the 0.1 · mscale_all_dim written);
 * - a placeholder vocabulary of the right size: ids 0-255 named as SentencePiece byte tokens ("<0x0A>"),
 *   which llama.cpp looks up at load (newline) and aborts without, the rest "<t123>". The benchmark
 *   feeds token ids, never text, so the names only have to be distinct.
 *
 * Benchmark tooling only. `node gpu-nodes/bench/k2-to-gguf.ts MODEL_DIR OUT.gguf`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Checkpoint } from '../src/model/checkpoint.ts';
import { isMoeLayer, parseConfig, type ModelConfig } from '../src/model/config.ts';
import { bf16ToF32 } from '../src/model/quant.ts';
import { GGML_TYPE, writeGguf, type GgufTensor, type GgufValue } from './gguf-writer.ts';

/** llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID. */
const GATING_SIGMOID = 2;
/** llama.cpp's token types NORMAL and BYTE. */
const TOKEN_NORMAL = 1;
const TOKEN_BYTE = 6;

/** A bf16 bit pattern as the f16 of the same value; throws when f16 cannot hold it exactly. */
export function bf16ToF16Exact(b: number): number {
  const sign = (b >> 15) & 1;
  const exp = (b >> 7) & 0xff;
  const mant = b & 0x7f;
  if (exp === 0 && mant === 0) return sign << 15;
  const e = exp - 127;
  if (exp === 0xff || e > 15) throw new Error(`bf16 ${bf16ToF32(b)} is outside f16's range`);
  if (e >= -14) return (sign << 15) | ((e + 15) << 10) | (mant << 3);
  // f16 subnormal: value = m·2^-24 with m = (1.mant)·2^(e+24) integral
  const shift = -14 - e; // 1.. : how far the 11-bit significand moves right
  const sig = (0x80 | mant) << 3;
  if (shift > 10 || (sig & ((1 << shift) - 1)) !== 0) throw new Error(`bf16 ${bf16ToF32(b)} is not exact in f16`);
  return (sign << 15) | (sig >> shift);
}

/** One int4 matrix's packed words + bf16 scales as Q4_0 blocks ([rows, cols] row-major, 18 bytes / 32). */
export function int4ToQ4_0(packed: Int32Array, scales: Uint16Array, rows: number, cols: number, out: Uint8Array, at = 0): void {
  const groups = cols / 32;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const blk = at + (r * groups + g) * 18;
      view.setUint16(blk, bf16ToF16Exact(scales[r * groups + g]), true);
      const word = r * (cols >> 3) + g * 4; // 4 words of 8 nibbles = this group's 32 codes
      const u = (k: number) => (packed[word + (k >> 3)] >>> (4 * (k & 7))) & 0xf;
      // Q4_0 puts value j in the low nibble of byte j and value j+16 in its high nibble.
      for (let j = 0; j < 16; j++) out[blk + 2 + j] = u(j) | (u(j + 16) << 4);
    }
  }
}

function metadata(c: ModelConfig, name: string): Map<string, GgufValue> {
  const a = 'deepseek2';
  const m = new Map<string, GgufValue>([
    ['general.architecture', { str: a }],
    ['general.name', { str: name }],
    ['general.alignment', { u32: 32 }],
    [`${a}.block_count`, { u32: c.numLayers }],
    [`${a}.context_length`, { u32: c.maxPositionEmbeddings }],
    [`${a}.embedding_length`, { u32: c.hiddenSize }],
    [`${a}.feed_forward_length`, { u32: c.intermediateSize }],
    [`${a}.attention.head_count`, { u32: c.numHeads }],
    // MLA runs as MQA over the compressed latent: one KV head of kv_lora_rank (+ rope) width
    [`${a}.attention.head_count_kv`, { u32: 1 }],
    [`${a}.attention.layer_norm_rms_epsilon`, { f32: c.rmsNormEps }],
    [`${a}.attention.kv_lora_rank`, { u32: c.kvLoraRank }],
    [`${a}.attention.key_length`, { u32: c.kvLoraRank + c.qkRopeHeadDim }],
    [`${a}.attention.value_length`, { u32: c.kvLoraRank }],
    [`${a}.attention.key_length_mla`, { u32: c.qkNopeHeadDim + c.qkRopeHeadDim }],
    [`${a}.attention.value_length_mla`, { u32: c.vHeadDim }],
    [`${a}.rope.dimension_count`, { u32: c.qkRopeHeadDim }],
    [`${a}.rope.freq_base`, { f32: c.ropeTheta }],
    [`${a}.leading_dense_block_count`, { u32: c.firstKDenseReplace }],
    [`${a}.vocab_size`, { u32: c.vocabSize }],
    [`${a}.expert_count`, { u32: c.nRoutedExperts }],
    [`${a}.expert_used_count`, { u32: c.numExpertsPerTok }],
    [`${a}.expert_shared_count`, { u32: c.nSharedExperts }],
    [`${a}.expert_feed_forward_length`, { u32: c.moeIntermediateSize }],
    [`${a}.expert_weights_scale`, { f32: c.routedScalingFactor }],
    [`${a}.expert_weights_norm`, { bool: c.normTopkProb }],
    [`${a}.expert_gating_func`, { u32: GATING_SIGMOID }],
    [`${a}.expert_group_count`, { u32: c.nGroup }],
    [`${a}.expert_group_used_count`, { u32: c.topkGroup }],
  ]);
  if (c.qLoraRank > 0) m.set(`${a}.attention.q_lora_rank`, { u32: c.qLoraRank });
  const ys = c.ropeScaling;
  if (ys) {
    m.set(`${a}.rope.scaling.type`, { str: 'yarn' });
    m.set(`${a}.rope.scaling.factor`, { f32: ys.factor });
    m.set(`${a}.rope.scaling.original_context_length`, { u32: ys.originalMaxPositionEmbeddings });
    m.set(`${a}.rope.scaling.yarn_log_multiplier`, { f32: 0.1 * ys.mscaleAllDim });
    m.set(`${a}.rope.scaling.yarn_beta_fast`, { f32: ys.betaFast });
    m.set(`${a}.rope.scaling.yarn_beta_slow`, { f32: ys.betaSlow });
  }
  m.set('tokenizer.ggml.model', { str: 'llama' });
  const byte = (i: number) => i < 256;
  m.set('tokenizer.ggml.tokens', { strs: Array.from({ length: c.vocabSize }, (_, i) => (byte(i) ? `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>` : `<t${i}>`)) });
  m.set('tokenizer.ggml.scores', { f32s: new Float32Array(c.vocabSize) });
  m.set('tokenizer.ggml.token_type', { i32s: Int32Array.from({ length: c.vocabSize }, (_, i) => (byte(i) ? TOKEN_BYTE : TOKEN_NORMAL)) });
  if (c.bosTokenId !== null) m.set('tokenizer.ggml.bos_token_id', { u32: c.bosTokenId });
  if (c.eosTokenId !== null) m.set('tokenizer.ggml.eos_token_id', { u32: c.eosTokenId });
  m.set('tokenizer.ggml.add_bos_token', { bool: false });
  return m;
}

/** Converts the checkpoint in `dir` to `outPath`; returns the tensor count. */
export function convertToGguf(dir: string, outPath: string): number {
  const c = parseConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  if (!c.quant) throw new Error('k2-to-gguf: the checkpoint has no int4 experts (quantization_config)');
  const ck = new Checkpoint(dir);
  try {
    const tensors: GgufTensor[] = [];
    const shapeOf = (name: string) => ck.info(name).shape;
    const bf16 = (name: string, gguf: string) => {
      const shape = shapeOf(name);
      tensors.push({ name: gguf, ne: [...shape].reverse(), type: GGML_TYPE.BF16, data: ck.read(name, ['BF16']) });
    };
    const f32 = (name: string, gguf: string) => {
      const info = ck.info(name);
      const raw = ck.read(name, ['BF16', 'F32']);
      const n = info.shape.reduce((x, y) => x * y, 1);
      const out = new Float32Array(n);
      if (info.dtype === 'F32') out.set(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + n * 4)));
      else {
        const b = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + n * 2));
        for (let i = 0; i < n; i++) out[i] = bf16ToF32(b[i]);
      }
      tensors.push({ name: gguf, ne: [...info.shape].reverse(), type: GGML_TYPE.F32, data: new Uint8Array(out.buffer) });
    };

    bf16('model.embed_tokens.weight', 'token_embd.weight');
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const b = `blk.${l}`;
      f32(`${p}.input_layernorm.weight`, `${b}.attn_norm.weight`);
      if (c.qLoraRank > 0) {
        bf16(`${p}.self_attn.q_a_proj.weight`, `${b}.attn_q_a.weight`);
        f32(`${p}.self_attn.q_a_layernorm.weight`, `${b}.attn_q_a_norm.weight`);
        bf16(`${p}.self_attn.q_b_proj.weight`, `${b}.attn_q_b.weight`);
      } else {
        bf16(`${p}.self_attn.q_proj.weight`, `${b}.attn_q.weight`);
      }
      bf16(`${p}.self_attn.kv_a_proj_with_mqa.weight`, `${b}.attn_kv_a_mqa.weight`);
      f32(`${p}.self_attn.kv_a_layernorm.weight`, `${b}.attn_kv_a_norm.weight`);
      splitKvB(ck.read(`${p}.self_attn.kv_b_proj.weight`, ['BF16']), c, b, tensors);
      bf16(`${p}.self_attn.o_proj.weight`, `${b}.attn_output.weight`);
      f32(`${p}.post_attention_layernorm.weight`, `${b}.ffn_norm.weight`);
      if (!isMoeLayer(c, l)) {
        for (const r of ['gate', 'up', 'down']) bf16(`${p}.mlp.${r}_proj.weight`, `${b}.ffn_${r}.weight`);
        continue;
      }
      f32(`${p}.mlp.gate.weight`, `${b}.ffn_gate_inp.weight`);
      if (ck.has(`${p}.mlp.gate.e_score_correction_bias`)) f32(`${p}.mlp.gate.e_score_correction_bias`, `${b}.exp_probs_b.bias`);
      for (const r of ['gate', 'up', 'down'] as const) {
        const [rows, cols] = r === 'down' ? [c.hiddenSize, c.moeIntermediateSize] : [c.moeIntermediateSize, c.hiddenSize];
        const per = (rows * cols * 18) / 32;
        const data = new Uint8Array(per * c.nRoutedExperts);
        for (let e = 0; e < c.nRoutedExperts; e++) {
          const m = `${p}.mlp.experts.${e}.${r}_proj`;
          const packed = ck.read(`${m}.weight_packed`, ['I32'], [rows, cols / 8]);
          const scales = ck.read(`${m}.weight_scale`, ['BF16'], [rows, cols / 32]);
          int4ToQ4_0(new Int32Array(packed.buffer.slice(packed.byteOffset, packed.byteOffset + packed.byteLength)), new Uint16Array(scales.buffer.slice(scales.byteOffset, scales.byteOffset + scales.byteLength)), rows, cols, data, e * per);
        }
        tensors.push({ name: `${b}.ffn_${r}_exps.weight`, ne: [cols, rows, c.nRoutedExperts], type: GGML_TYPE.Q4_0, data });
      }
      if (c.nSharedExperts > 0) for (const r of ['gate', 'up', 'down']) bf16(`${p}.mlp.shared_experts.${r}_proj.weight`, `${b}.ffn_${r}_shexp.weight`);
    }
    f32('model.norm.weight', 'output_norm.weight');
    bf16(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight', 'output.weight');
    writeGguf(outPath, metadata(c, dir.split('/').filter(Boolean).pop() ?? 'model'), tensors);
    return tensors.length;
  } finally {
    ck.close();
  }
}

/**
 * kv_b_proj [heads·(nope + v), L] → attn_k_b [heads, L, nope] (each head's nope rows transposed) and
 * attn_v_b [heads, v, L] (each head's v rows), bf16 values moved, not converted.
 */
function splitKvB(raw: Uint8Array, c: ModelConfig, b: string, tensors: GgufTensor[]): void {
  const src = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const H = c.numHeads;
  const nope = c.qkNopeHeadDim;
  const v = c.vHeadDim;
  const L = c.kvLoraRank;
  const kb = new Uint16Array(H * L * nope);
  const vb = new Uint16Array(H * v * L);
  for (let h = 0; h < H; h++) {
    const head = h * (nope + v) * L;
    for (let i = 0; i < nope; i++) for (let j = 0; j < L; j++) kb[(h * L + j) * nope + i] = src[head + i * L + j];
    vb.set(src.subarray(head + nope * L, head + (nope + v) * L), h * v * L);
  }
  tensors.push({ name: `${b}.attn_k_b.weight`, ne: [nope, L, H], type: GGML_TYPE.BF16, data: new Uint8Array(kb.buffer) });
  tensors.push({ name: `${b}.attn_v_b.weight`, ne: [L, v, H], type: GGML_TYPE.BF16, data: new Uint8Array(vb.buffer) });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, out] = process.argv.slice(2);
  if (!dir || !out) throw new Error('usage: node gpu-nodes/bench/k2-to-gguf.ts MODEL_DIR OUT.gguf');
  const n = convertToGguf(dir, out);
  console.log(`k2-to-gguf: wrote ${out} (${n} tensors)`);
}
