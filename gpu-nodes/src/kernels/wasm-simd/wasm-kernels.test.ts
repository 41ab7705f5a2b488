// Conformance of the wasm-simd backend against reference.ts, on random and edge-case shapes, with 1 and
// 2 threads. Tolerances:
// - f32/bf16 ops: relative 1e-5 of Σ|terms| (f32 accumulation order differs from the f64 reference).
// - int4 matmul: activations are rounded to int8 per 32-group (step d = max|x_g|/127), so each x_k is off
//   by at most d/2 and |out - ref| ≤ Σ_k |w_k|·max|x_g(k)|/254, plus f32 rounding; that bound is checked
//   per output, and the mean error must sit well below it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttnSeq, Bf16Matrix, ExpertWeights, Kernels, Tensor } from '../kernels.ts';
import { ReferenceKernels } from '../reference.ts';
import { dequantInt4, f32ArrayToBf16, quantizeInt4 } from '../../model/quant.ts';
import { ROUTE_CASES, routeOn } from '../route-cases.ts';
import { WasmKernels } from './wasm-kernels.ts';
import { buildWasm } from './build.ts';
import { mulberry32 } from '../../model/prng.ts';

const rand = mulberry32(12345);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * s);
const ref = new ReferenceKernels();

/** Both backends given the same host data; returns each one's result tensor read back. */
async function both(k: Kernels, run: (k: Kernels) => Tensor): Promise<[Float32Array, Float32Array]> {
  const a = run(k);
  const b = run(ref);
  return [await k.read(a), await ref.read(b)];
}

function expectClose(got: Float32Array, want: Float32Array, tol: (i: number) => number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= tol(i))) throw new Error(`index ${i}: got ${got[i]}, want ${want[i]} (|err| ${err} > ${tol(i)})`);
  }
}
const relTol = (want: Float32Array, scale = 1) => (i: number) => 1e-5 * (Math.abs(want[i]) + scale) + 1e-6;

const CASES = [
  ['relaxed', 1],
  ['relaxed', 2],
  ['simd128', 1],
  ['simd128', 2],
] as const;

beforeAll(() => buildWasm());

for (const [simd, threads] of CASES) {
  describe(`wasm-simd kernels, ${simd} build, ${threads} thread(s)`, () => {
    let k: WasmKernels;
    beforeAll(async () => {
      // With 2 threads, split every op however small: thread boundaries at every shape get tested.
      k = await WasmKernels.create({ threads, simd, parallelMinMacs: threads > 1 ? 0 : undefined });
      expect(k.variant).toBe(simd);
    });
    afterAll(() => k.close());

    it('write/read round-trips with offsets', async () => {
      const x = k.tensor(6);
      k.write(x, Float32Array.of(1, 2, 3), 2);
      expect(Array.from(await k.read(x))).toEqual([0, 0, 1, 2, 3, 0]);
      expect(Array.from(await k.read(x, 3, 2))).toEqual([2, 3]);
    });

    it('reads into a reused host buffer: a view of its head, the rest untouched, too small refused', async () => {
      const x = k.uploadF32(Float32Array.of(1, 2, 3, 4));
      const into = new Float32Array([9, 9, 9, 9, 9]);
      const got = await k.read(x, 1, 3, into);
      expect(got.buffer).toBe(into.buffer);
      expect(Array.from(got)).toEqual([2, 3, 4]);
      expect(Array.from(into)).toEqual([2, 3, 4, 9, 9]);
      await expect(k.read(x, 0, 4, new Float32Array(3))).rejects.toThrow(/do not fit a host buffer of 3/);
    });

    // N=1, K not a multiple of 256 or of 128 (32, 96, 288, 800, 544), odd batch sizes, threaded sizes.
    for (const [N, K, rows] of [[1, 32, 1], [7, 96, 3], [33, 288, 1], [5, 800, 17], [257, 800, 5], [64, 4096, 2], [129, 544, 9]]) {
      it(`int4 matmul ${N}×${K}, ${rows} row(s), within the int8-activation bound`, async () => {
        const q = quantizeInt4(randn(N * K), N, K);
        const w = dequantInt4(q.packed, q.scales, N, K);
        const x = randn(rows * K, 3);
        const [got, want] = await both(k, (kk) => {
          const out = kk.tensor(rows * N);
          kk.matmul(out, kk.uploadF32(x), kk.uploadInt4({ rows: N, cols: K, ...q }), rows);
          return out;
        });
        const bound = new Float64Array(rows * N);
        for (let r = 0; r < rows; r++) {
          for (let n = 0; n < N; n++) {
            let b = 0;
            let mag = 0;
            for (let g = 0; g < K; g += 32) {
              let amax = 0;
              for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[r * K + g + j]));
              for (let j = 0; j < 32; j++) {
                b += (Math.abs(w[n * K + g + j]) * amax) / 254;
                mag += Math.abs(w[n * K + g + j] * x[r * K + g + j]);
              }
            }
            bound[r * N + n] = b + 1e-5 * mag + 1e-6;
          }
        }
        expectClose(got, want, (i) => bound[i]);
        let meanErr = 0;
        let meanBound = 0;
        for (let i = 0; i < got.length; i++) {
          meanErr += Math.abs(got[i] - want[i]);
          meanBound += bound[i];
        }
        expect(meanErr).toBeLessThan(meanBound / 2);
      });
    }

    it('int4 matmul is exact when activations are already int8 on the group grid, for extreme nibbles', async () => {
      // Nibbles 0 (q=-8) and 15 (q=7) and an all-zero activation group (scale 0) in one matrix.
      const N = 3, K = 64;
      const packed = new Int32Array((N * K) / 8);
      packed.fill(0x00000000, 0, 8); // row 0: all q = -8
      packed.fill(0xffffffff | 0, 8, 16); // row 1: all q = 7
      for (let i = 16; i < 24; i++) packed[i] = 0x0f0f0f0f; // row 2: alternating 7, -8
      const scales = f32ArrayToBf16(Float32Array.of(0.5, 0.25, 1, 2, 0.125, 4));
      const x = new Float32Array(2 * K);
      for (let i = 0; i < 32; i++) x[i] = i % 2 ? 127 : -(i * 3); // max |x| = 127, so the grid step is 1
      // second group of row 0 stays 0; row 1 of x: both groups ±127 integers
      for (let i = 0; i < K; i++) x[K + i] = ((i * 37) % 255) - 127;
      x[K] = 127;
      x[K + 32] = -127;
      const [got, want] = await both(k, (kk) => {
        const out = kk.tensor(2 * N);
        kk.matmul(out, kk.uploadF32(x), kk.uploadInt4({ rows: N, cols: K, packed, scales }), 2);
        return out;
      });
      expectClose(got, want, relTol(want));
    });

    for (const [N, K, rows] of [[1, 37, 1], [9, 64, 3], [130, 300, 5], [200, 1024, 8], [33, 260, 11], [8, 64, 32]]) {
      it(`bf16 matmul ${N}×${K}, ${rows} row(s)`, async () => {
        const wb = f32ArrayToBf16(randn(N * K));
        const x = randn(rows * K);
        const [got, want] = await both(k, (kk) => {
          const out = kk.tensor(rows * N);
          kk.matmul(out, kk.uploadF32(x), kk.uploadBf16({ rows: N, cols: K, data: wb }), rows);
          return out;
        });
        expectClose(got, want, relTol(want, Math.sqrt(K)));
      });
    }

    it('embed, rmsnorm, add, siluMul', async () => {
      const vocab = 11, dim = 37, rows = 3;
      const table = f32ArrayToBf16(randn(vocab * dim));
      const ids = Int32Array.of(10, 0, 4);
      const y = randn(rows * dim, 5);
      const wNorm = randn(dim);
      const [got, want] = await both(k, (kk) => {
        const e = kk.tensor(rows * dim);
        kk.embed(e, kk.uploadBf16({ rows: vocab, cols: dim, data: table }), ids);
        kk.add(e, kk.uploadF32(y), rows * dim);
        const n = kk.tensor(rows * dim);
        kk.rmsnorm(n, e, kk.uploadF32(wNorm), rows, dim, 1e-6);
        const out = kk.tensor(rows * dim);
        kk.siluMul(out, n, e, rows * dim);
        return out;
      });
      expectClose(got, want, relTol(want, 1));
      expect(() => k.embed(k.tensor(dim), k.uploadBf16({ rows: vocab, cols: dim, data: table }), Int32Array.of(vocab))).toThrow(/outside vocabulary/);
    });

    it('rope on interleaved pairs at an offset inside each head', async () => {
      const rows = 3, heads = 2, stride = 12, offset = 4, ropeDim = 8, maxPos = 50;
      const x = randn(rows * heads * stride);
      const cos = randn(maxPos * ropeDim / 2);
      const sin = randn(maxPos * ropeDim / 2);
      const pos = Int32Array.of(0, 17, 49);
      const [got, want] = await both(k, (kk) => {
        const t = kk.uploadF32(x);
        kk.rope(t, rows, pos, heads, stride, offset, ropeDim, kk.uploadF32(cos), kk.uploadF32(sin));
        return t;
      });
      expectClose(got, want, relTol(want));
    });

    it('headMatmul, both directions', async () => {
      const rows = 3, heads = 4, headRows = 10, rowOffset = 2, n = 6, cols = 13;
      const w = f32ArrayToBf16(randn(heads * headRows * cols));
      for (const transpose of [false, true]) {
        const inW = transpose ? n : cols;
        const outW = transpose ? cols : n;
        const xStride = inW + 3, xOffset = 2, outStride = outW + 1;
        const x = randn(rows * heads * xStride);
        const [got, want] = await both(k, (kk) => {
          const out = kk.tensor(rows * heads * outStride);
          const wm = kk.uploadBf16({ rows: heads * headRows, cols, data: w }) as Bf16Matrix;
          kk.headMatmul(out, outStride, kk.uploadF32(x), xStride, xOffset, wm, heads, headRows, rowOffset, n, rows, transpose);
          return out;
        });
        expectClose(got, want, relTol(want, 4));
      }
    });

    it('paged MLA attention: prefill + decode sequences on scattered blocks, copyKvBlock', async () => {
      const spec = { numBlocks: 9, blockSize: 4, numLayers: 2, kvLoraRank: 24, ropeDim: 8 };
      const heads = 3, layer = 1, L = spec.kvLoraRank, R = spec.ropeDim;
      // seq A: 6 prompt tokens prefilled now (blocks 7, 2); seq B: 9 tokens cached, 1 decoded (blocks 0, 5, 3).
      const seqs: AttnSeq[] = [
        { rowStart: 0, rowCount: 6, contextLen: 6, blockTable: Int32Array.of(7, 2) },
        { rowStart: 6, rowCount: 1, contextLen: 10, blockTable: Int32Array.of(0, 5, 3) },
      ];
      const slotsOf = (s: AttnSeq, from: number) =>
        Int32Array.from({ length: s.contextLen - from }, (_, i) => s.blockTable[Math.floor((from + i) / 4)] * 4 + ((from + i) % 4));
      const histLat = randn(9 * L), histRope = randn(9 * R);
      const lat = randn(7 * L), kr = randn(7 * R);
      const ql = randn(7 * heads * L), qr = randn(7 * heads * R);
      const [got, want] = await both(k, (kk) => {
        const cache = kk.kvCache(spec);
        // B's history went into block 8 first, then copy-on-write moved it to block 0.
        kk.kvWrite(cache, layer, kk.uploadF32(histLat.subarray(0, 4 * L)), kk.uploadF32(histRope.subarray(0, 4 * R)), 4, Int32Array.of(32, 33, 34, 35));
        kk.copyKvBlock(cache, 8, 0);
        kk.kvWrite(cache, layer, kk.uploadF32(histLat.subarray(4 * L)), kk.uploadF32(histRope.subarray(4 * R)), 5, slotsOf(seqs[1], 4).subarray(0, 5));
        const slots = new Int32Array(7);
        slots.set(slotsOf(seqs[0], 0), 0);
        slots.set(slotsOf(seqs[1], 9), 6);
        kk.kvWrite(cache, layer, kk.uploadF32(lat), kk.uploadF32(kr), 7, slots);
        const out = kk.tensor(7 * heads * L);
        kk.mlaAttention(out, kk.uploadF32(ql), kk.uploadF32(qr), cache, layer, heads, seqs, 0.3);
        return out;
      });
      expectClose(got, want, relTol(want, 1));
    });

    it('paged MLA attention over a context of several 32-position chunks, latent width not a multiple of 16', async () => {
      const spec = { numBlocks: 20, blockSize: 4, numLayers: 1, kvLoraRank: 40, ropeDim: 8 };
      const heads = 2, L = spec.kvLoraRank, R = spec.ropeDim, ctx = 70, rows = 5;
      // the last 5 of 70 tokens prefilled now, blocks in reverse order
      const seqs: AttnSeq[] = [{ rowStart: 0, rowCount: rows, contextLen: ctx, blockTable: Int32Array.from({ length: 18 }, (_, i) => 19 - i) }];
      const slots = Int32Array.from({ length: ctx }, (_, p) => seqs[0].blockTable[Math.floor(p / 4)] * 4 + (p % 4));
      const lat = randn(ctx * L), kr = randn(ctx * R);
      const ql = randn(rows * heads * L), qr = randn(rows * heads * R);
      const [got, want] = await both(k, (kk) => {
        const cache = kk.kvCache(spec);
        kk.kvWrite(cache, 0, kk.uploadF32(lat), kk.uploadF32(kr), ctx, slots);
        const out = kk.tensor(rows * heads * L);
        kk.mlaAttention(out, kk.uploadF32(ql), kk.uploadF32(qr), cache, 0, heads, seqs, 0.2);
        return out;
      });
      expectClose(got, want, relTol(want, 1));
    });

    it('route matches the reference on crafted and random cases', async () => {
      for (const c of ROUTE_CASES) {
        const want = await routeOn(ref, c);
        const got = await routeOn(k, c);
        expect(Array.from(got.ids), c.name).toEqual(Array.from(want.ids));
        expect(Array.from(got.weights), c.name).toEqual(Array.from(want.weights));
      }
    });

    it('gatherRows', async () => {
      const x = randn(5 * 33);
      const [got, want] = await both(k, (kk) => {
        const out = kk.tensor(4 * 33);
        kk.gatherRows(out, kk.uploadF32(x), Int32Array.of(4, 0, 2, 4), 33);
        return out;
      });
      expect(Array.from(got)).toEqual(Array.from(want));
      expect(() => k.gatherRows(k.tensor(33), k.tensor(5 * 33), Int32Array.of(5), 33)).toThrow(/outside/);
    });

    for (const kind of ['int4', 'bf16'] as const) {
      it(`moe with ${kind} experts: rows grouped per expert, k=2, a repeated expert in one row`, async () => {
        const hidden = 64, inter = 32, nExp = 5, rows = 5, topk = 2;
        const host = Array.from({ length: nExp }, () => ({
          gate: randn(inter * hidden, 0.3),
          up: randn(inter * hidden, 0.3),
          down: randn(hidden * inter, 0.3),
        }));
        const ids = Int32Array.of(0, 3, 3, 3, 1, 0, 4, 1, 0, 3); // expert 2 unused; row 1 picks 3 twice
        const weights = randn(rows * topk);
        const x = randn(rows * hidden);
        const upload = (kk: Kernels, w: Float32Array, r: number, c: number) =>
          kind === 'int4' ? kk.uploadInt4({ rows: r, cols: c, ...quantizeInt4(w, r, c) }) : kk.uploadBf16({ rows: r, cols: c, data: f32ArrayToBf16(w) });
        const [got, want] = await both(k, (kk) => {
          const experts: ExpertWeights[] = host.map((e) => ({
            gate: upload(kk, e.gate, inter, hidden),
            up: upload(kk, e.up, inter, hidden),
            down: upload(kk, e.down, hidden, inter),
          }));
          const out = kk.tensor(rows * hidden);
          kk.write(out, randn(rows * hidden)); // moe overwrites out
          kk.moe(out, kk.uploadF32(x), rows, experts, kk.uploadF32(Float32Array.from(ids)), kk.uploadF32(weights), topk);
          return out;
        });
        // int4: activations are quantized to int8 twice in a row (x, then the SiLU product), each off by up
        // to 0.4% of its group's max, and the errors pass through two 32-64 long dot products and a
        // weighted sum of k experts: bound each output by 10% of the output's RMS.
        let rms = 0;
        for (const v of want) rms += v * v;
        rms = Math.sqrt(rms / want.length);
        expectClose(got, want, kind === 'int4' ? () => 0.1 * rms : relTol(want, 1));
      });
    }
  });
}

it.each(['relaxed', 'simd128'] as const)('the %s int4 repack keeps every weight: a one-hot matmul reads them back exactly', async (simd) => {
  const k = await WasmKernels.create({ threads: 1, simd });
  try {
    const N = 3, K = 64;
    const q = quantizeInt4(randn(N * K), N, K);
    const w = dequantInt4(q.packed, q.scales, N, K);
    // x = e_c scaled to 127 makes the int8 quantization exact, so out / 127 is column c of W.
    const x = new Float32Array(K * K);
    for (let c = 0; c < K; c++) x[c * K + c] = 127;
    const out = k.tensor(K * N);
    k.matmul(out, k.uploadF32(x), k.uploadInt4({ rows: N, cols: K, ...q }), K);
    const got = await k.read(out);
    for (let c = 0; c < K; c++) for (let n = 0; n < N; n++) expect(got[c * N + n] / 127).toBe(w[n * K + c]);
  } finally {
    await k.close();
  }
});
