/**
 * WebGPU backend benchmark: int4 GEMV/GEMM and bf16 GEMV bandwidth against the device's memory
 * bandwidth, and the routed-expert part of a K2 decode step as tokens/s.
 *
 *   node gpu-nodes/bench/webgpu.ts [--peak-gbs N] [--allow-software] [--model DIR] [--tokens N]
 *
 * WebGPU does not expose memory bandwidth, so the peak comes from --peak-gbs or a small table of known
 * GPUs matched against the adapter description. On a software adapter (lavapipe, SwiftShader) it only
 * says so: CPU-rasterizer numbers say nothing about a GPU. --allow-software runs small shapes anyway,
 * which checks that the benchmark itself works.
 *
 * Decode tokens/s comes from greedy decoding with the real forward pass on --model (default
 * models/k2-tiny when it exists), plus a synthetic figure for K2's routed experts alone.
 */
import { existsSync } from 'node:fs';
import type { ExpertWeights, Int4Host, Kernels, Matrix, Tensor } from '../src/kernels/kernels.ts';
import { WebGpuKernels } from '../src/kernels/webgpu/backend.ts';
import { acquireGpu } from '../src/kernels/webgpu/device.ts';
import { Model } from '../src/model/forward.ts';
import { peakBandwidthGBs } from './gpu-peaks.ts';

const args = process.argv.slice(2);
const allowSoftware = args.includes('--allow-software');
const peakArg = args.indexOf('--peak-gbs');
const modelArg = args.indexOf('--model');
const modelDir = modelArg >= 0 ? args[modelArg + 1] : existsSync('models/k2-tiny/config.json') ? 'models/k2-tiny' : null;
const tokensArg = args.indexOf('--tokens');
const decodeTokens = tokensArg >= 0 ? Number(args[tokensArg + 1]) : 32;

const ctx = await acquireGpu();
if (!ctx) {
  console.log('webgpu bench: no WebGPU adapter found (is a Vulkan driver installed?)');
  process.exit(0);
}
console.log(`adapter: ${ctx.description}${ctx.subgroups ? ', subgroups' : ''}${ctx.shaderF16 ? ', shader-f16' : ''}`);
if (ctx.software && !allowSoftware) {
  console.log('adapter is software (lavapipe/SwiftShader): no bandwidth or tokens/s reported. Run on a GPU, or pass --allow-software.');
  process.exit(0);
}
const peak = peakArg >= 0 ? Number(args[peakArg + 1]) : peakBandwidthGBs(ctx.description);
const k = new WebGpuKernels(ctx);
const small = ctx.software;

// K2 shapes: hidden 7168, moe_intermediate 2048, 8 routed experts per token; scaled down on a CPU adapter.
const HIDDEN = small ? 1024 : 7168;
const INTER = small ? 256 : 2048;
const TOPK = 8;

function randomInt4(rows: number, cols: number): Int4Host {
  const packed = new Int32Array((rows * cols) / 8);
  for (let i = 0; i < packed.length; i++) packed[i] = (Math.random() * 2 ** 32) | 0;
  const scales = new Uint16Array((rows * cols) / 32).fill(0x3c00); // bf16 ≈ 0.0078
  return { rows, cols, packed, scales };
}

/** Seconds per call of `step`, after a warm-up, measured over enough calls to last ~1 s (one read at the end). */
async function time(step: () => void, probe: Tensor, ks: Kernels = k): Promise<number> {
  step();
  await ks.read(probe, 0, 1);
  let iters = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) step();
    await ks.read(probe, 0, 1);
    const s = (performance.now() - t0) / 1000;
    if (s > 1 || iters >= 4096) return s / iters;
    iters *= 4;
  }
}

function report(label: string, bytes: number, seconds: number): void {
  const gbs = bytes / seconds / 1e9;
  const ofPeak = peak ? ` = ${((100 * gbs) / peak).toFixed(0)}% of ${peak} GB/s peak` : ' (peak unknown: pass --peak-gbs)';
  console.log(`${label.padEnd(44)} ${(seconds * 1e6).toFixed(1).padStart(9)} µs  ${gbs.toFixed(1).padStart(7)} GB/s${ofPeak}`);
}

async function matmulBench(label: string, w: Matrix, bytes: number, rows: number, ks: Kernels): Promise<void> {
  const x = ks.uploadF32(new Float32Array(rows * w.cols).fill(0.01));
  const out = ks.tensor(rows * w.rows);
  const s = await time(() => ks.matmul(out, x, w, rows), out, ks);
  report(label, bytes + 4 * rows * (w.cols + w.rows), s);
}

// Many rows so the weight (≥ 128 MB on a GPU) cannot sit in L2 between calls.
const N = small ? 4096 : 8 * 2 * INTER * 2; // 65536 rows × 7168 ≈ 235 MB int4
const int4Bytes = (N * HIDDEN) / 2 + (N * HIDDEN) / 16;
const w4 = k.uploadInt4(randomInt4(N, HIDDEN));
await matmulBench(`int4 GEMV [${N}×${HIDDEN}]`, w4, int4Bytes, 1, k);
await matmulBench(`int4 GEMM [${N}×${HIDDEN}] × 8 rows`, w4, int4Bytes, 8, k);
if (ctx.shaderF16) {
  // Same weights through the opt-in f16-product shader (the handles are plain buffers on the same device).
  const kh = new WebGpuKernels(ctx, { halfInt4: true });
  await matmulBench(`int4 GEMV, f16 products`, w4, int4Bytes, 1, kh);
  await matmulBench(`int4 GEMM × 8 rows, f16 products`, w4, int4Bytes, 8, kh);
}
const NB = small ? 2048 : 16384;
const wb = k.uploadBf16({ rows: NB, cols: HIDDEN, data: new Uint16Array(NB * HIDDEN).fill(0x3c00) });
await matmulBench(`bf16 GEMV [${NB}×${HIDDEN}]`, wb, NB * HIDDEN * 2, 1, k);

// Routed experts of one decode token: 8 distinct experts × (gate, up, down), each streamed once.
const experts: ExpertWeights[] = Array.from({ length: TOPK }, () => ({
  gate: k.uploadInt4(randomInt4(INTER, HIDDEN)),
  up: k.uploadInt4(randomInt4(INTER, HIDDEN)),
  down: k.uploadInt4(randomInt4(HIDDEN, INTER)),
}));
const x = k.uploadF32(new Float32Array(HIDDEN).fill(0.01));
const out = k.tensor(HIDDEN);
const ids = Int32Array.from({ length: TOPK }, (_, i) => i);
const weights = new Float32Array(TOPK).fill(1 / TOPK);
const idsT = k.uploadF32(Float32Array.from(ids));
const weightsT = k.uploadF32(weights);
const moeSeconds = await time(() => k.moe(out, x, 1, experts, idsT, weightsT, TOPK), out);
const moeBytes = TOPK * 3 * ((INTER * HIDDEN) / 2 + (INTER * HIDDEN) / 16);
report(`MoE decode layer (${TOPK} experts, ${INTER}×${HIDDEN})`, moeBytes, moeSeconds);
// K2 has 60 MoE layers; attention and the bf16 parts are not included, so this is an upper bound.
const moeLayers = 60;
console.log(
  `decode, routed experts only: ${(1 / (moeSeconds * moeLayers)).toFixed(1)} tokens/s at batch 1 ` +
    `(${moeLayers} MoE layers${small ? ', scaled-down shapes' : ''}; attention and bf16 weights not included)`,
);

await moeEncodeBench();

if (modelDir) await decodeBench(modelDir);
else console.log('decode on a model: skipped (no models/k2-tiny; run `npm run make-model` or pass --model DIR)');
process.exit(0);

/**
 * Host cost of encoding one K2-sized MoE layer (384 experts, top-8, a decode row): grouped matmuls keep
 * it to a few dispatches whatever the expert count. Tiny matrices: encoding does not depend on shapes.
 */
async function moeEncodeBench(): Promise<void> {
  const E = 384;
  const tiny = (rows: number, cols: number) => k.uploadInt4(randomInt4(rows, cols));
  const layer: ExpertWeights[] = Array.from({ length: E }, () => ({ gate: tiny(32, 64), up: tiny(32, 64), down: tiny(64, 32) }));
  const xs = k.uploadF32(new Float32Array(64).fill(0.01));
  const o = k.tensor(64);
  const idsE = k.uploadF32(Float32Array.from({ length: TOPK }, (_, i) => i * 47));
  k.moe(o, xs, 1, layer, idsE, weightsT, TOPK); // packs the slabs and compiles the pipelines
  await k.read(o, 0, 1);
  const before = k.dispatches;
  const iters = 50;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) k.moe(o, xs, 1, layer, idsE, weightsT, TOPK);
  const ms = (performance.now() - t0) / iters;
  await k.read(o, 0, 1);
  console.log(`MoE encode, ${E} experts: ${(k.dispatches - before) / iters} dispatches, ${ms.toFixed(3)} ms of host time per layer`);
}

/** Greedy decode with the real forward pass: one prefill step of 16 tokens, then one token per step. */
async function decodeBench(dir: string): Promise<void> {
  const blockSize = 16;
  const maxLen = 16 + decodeTokens;
  const blocks = Math.ceil(maxLen / blockSize);
  const model = await Model.load(dir, { kernels: k, kvBlocks: blocks, blockSize, log: () => {} });
  const blockTable = Int32Array.from({ length: blocks }, (_, i) => i);
  const vocab = model.config.vocabSize;
  let step = Int32Array.from({ length: 16 }, (_, i) => 1000 + i);
  let pos = 0;
  let prefillSeconds = 0;
  const t0 = performance.now();
  for (let i = 0; i <= decodeTokens; i++) {
    if (i === 1) prefillSeconds = (performance.now() - t0) / 1000;
    const rows = step.length;
    const positions = Int32Array.from({ length: rows }, (_, r) => pos + r);
    const logits = await model.forward({
      tokens: step,
      positions,
      slots: positions,
      seqs: [{ rowStart: 0, rowCount: rows, contextLen: pos + rows, blockTable }],
      logitRows: Int32Array.of(rows - 1),
    });
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits[v] > logits[best]) best = v;
    pos += rows;
    step = Int32Array.of(best);
  }
  const decodeSeconds = (performance.now() - t0) / 1000 - prefillSeconds;
  console.log(
    `decode on ${dir}: prefill 16 tokens ${(prefillSeconds * 1000).toFixed(0)} ms, ` +
      `${(decodeTokens / decodeSeconds).toFixed(1)} tokens/s at batch 1 over ${decodeTokens} tokens`,
  );
}
