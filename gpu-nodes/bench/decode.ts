/**
 * End-to-end decode speed of k2-tiny on the wasm-simd kernels at batch 1 and 8, next to its bound:
 * bytes of weights one step must read / measured read bandwidth. At batch B a step reads every dense
 * (bf16) weight once plus each routed expert picked by at least one of the B tokens (int4 + bf16 scales),
 * so the bound counts min(B·k, n_routed) experts per MoE layer — an upper bound on speed, since the
 * tokens may share experts.
 */
import { join } from 'node:path';
import type { WasmKernels } from '../src/kernels/wasm-simd/wasm-kernels.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { Model, type StepBatch } from '../src/model/forward.ts';
import { ensureModel } from '../src/model/make-model.ts';
import { uniformStepBatch } from './uniform-batch.ts';

const BLOCK = 16;
const PROMPT = 8;

/** Weight bytes one decode step of `batch` tokens reads (see the file comment). */
export function stepWeightBytes(c: ModelConfig, batch: number): number {
  const H = c.hiddenSize;
  const bf16 = (r: number, k: number) => r * k * 2;
  const int4 = (r: number, k: number) => (r * k) / 2 + (r * k) / 32 * 2;
  const q = c.numHeads * (c.qkNopeHeadDim + c.qkRopeHeadDim);
  const attn =
    (c.qLoraRank > 0 ? bf16(c.qLoraRank, H) + bf16(q, c.qLoraRank) : bf16(q, H)) +
    bf16(c.kvLoraRank + c.qkRopeHeadDim, H) +
    bf16(c.numHeads * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank) +
    bf16(H, c.numHeads * c.vHeadDim);
  const expert = (c.quant ? int4 : bf16)(c.moeIntermediateSize, H) * 3;
  let bytes = bf16(c.vocabSize, H) + batch * H * 2; // lm_head + the embedding rows
  for (let l = 0; l < c.numLayers; l++) {
    bytes += attn;
    if (l < c.firstKDenseReplace) bytes += bf16(c.intermediateSize, H) * 3;
    else bytes += bf16(c.nRoutedExperts, H) / 2 + bf16(c.moeIntermediateSize * c.nSharedExperts, H) * 3 + Math.min(batch * c.numExpertsPerTok, c.nRoutedExperts) * expert;
  }
  return bytes;
}

export async function decodeBench(kernels: WasmKernels, bandwidthGBs: number, windowS: number): Promise<string[]> {
  const dir = await ensureModel(join('models', 'k2-tiny'));
  const steps = Math.max(16, Math.round(windowS * 100));
  const model = await Model.load(dir, { kernels, kvBlocks: 8 * Math.ceil((PROMPT + steps + 8) / BLOCK), blockSize: BLOCK, maxPositions: PROMPT + steps + 8, log: () => {} });
  const c = model.config;
  const lines = ['| batch | tokens/s | median ms/step | weight MB/step | bound tokens/s | % of bound |', '|---|---|---|---|---|---|'];
  for (const batch of [1, 8]) {
    const perSeq = Math.ceil((PROMPT + steps + 8) / BLOCK);
    const step = (from: number, rows: number, tokenOf: (s: number, i: number) => number): StepBatch =>
      uniformStepBatch({ batch, blockSize: BLOCK, blocksPerSeq: perSeq }, from, rows, tokenOf);
    await model.forward(step(0, PROMPT, (s, i) => 1000 + 17 * s + i)); // prefill
    let next = Array.from({ length: batch }, (_, s) => 500 + s);
    const argmax = (logits: Float32Array, s: number) => {
      let best = 0;
      for (let v = 1; v < c.vocabSize; v++) if (logits[s * c.vocabSize + v] > logits[s * c.vocabSize + best]) best = v;
      return best;
    };
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const logits = await model.forward(step(PROMPT + i, 1, (s) => next[s]));
      times.push(performance.now() - t0);
      next = next.map((_, s) => argmax(logits, s)); // greedy, so the experts are the model's own picks
    }
    // Median step: robust to other processes on a shared machine (the forward pass alone, not argmax).
    const sec = times.sort((a, b) => a - b)[Math.floor(times.length / 2)] / 1000;
    const bytes = stepWeightBytes(c, batch);
    const bound = (batch * bandwidthGBs * 1e9) / bytes;
    lines.push(`| ${batch} | ${((batch / sec)).toFixed(0)} | ${(sec * 1e3).toFixed(2)} | ${(bytes / 1e6).toFixed(1)} | ${bound.toFixed(0)} | ${((100 * batch) / sec / bound).toFixed(0)}% |`);
  }
  lines.push('', `Bound = batch × ${bandwidthGBs.toFixed(1)} GB/s / weight bytes per step (KV-cache reads are negligible at these lengths).`);
  return lines;
}
