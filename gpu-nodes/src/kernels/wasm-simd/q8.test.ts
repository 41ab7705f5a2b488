// The int8 kernel (c/q8.c: q8_0 weights × int16 activations) and argmaxRows against reference.ts, both
// builds, 1 and 2 threads, on shapes around the 4-token tile (1, 3, 4, 5, 9 rows) and N not a multiple
// of the thread split.
// Tolerances:
// - int8 matmul vs. reference: the reference multiplies the dequantized weights (exact) by the f32
//   activations; the kernel rounds each token row's activations to int16 (step d = max|x_row|/32767), so
//   each x_k is off by at most d/2 and |out − ref| ≤ Σ_k |w_k|·max|x_row|/65534, plus f32 rounding (1e-6
//   of Σ|w·x|). That bound is checked per output; the mean error must sit well below it. (Rounding the
//   activations to int8 instead, as the int4 kernels do, breaks it by 258×.)
// - on activations already on the int16 grid the kernel's sums are exact integers: equal to f32 rounding.
// - argmaxRows: exact, the same index as the reference and as model/sampler.ts `argmax`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceKernels } from '../reference.ts';
import { dequantInt8, f32ArrayToBf16, quantizeInt8 } from '../../model/quant.ts';
import { argmax } from '../../model/sampler.ts';
import { WasmKernels } from './wasm-kernels.ts';
import { buildWasm } from './build.ts';
import { mulberry32 } from '../../model/prng.ts';

const rand = mulberry32(4242);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * s);
const ref = new ReferenceKernels();

const SHAPES = [
  [1, 32, 1],
  [3, 96, 3],
  [7, 800, 4],
  [33, 288, 5],
  [130, 256, 9],
] as const;

beforeAll(() => buildWasm());

for (const simd of ['relaxed', 'simd128'] as const) {
  for (const threads of [1, 2]) {
    describe(`int8 kernel and argmaxRows, ${simd} build, ${threads} thread(s)`, () => {
      let k: WasmKernels;
      beforeAll(async () => {
        k = await WasmKernels.create({ threads, simd, parallelMinMacs: 0 });
      });
      afterAll(() => k.close());

      for (const [N, K, rows] of SHAPES) {
        it(`int8 matmul ${N}×${K}, ${rows} row(s): within the int16-activation bound of the reference, nothing written past the output`, async () => {
          const q = quantizeInt8(randn(N * K), N, K);
          const w = dequantInt8(q.q, q.scales, N, K);
          const x = randn(rows * K, 3);
          const out = k.tensor(rows * N + 8);
          k.write(out, new Float32Array(rows * N + 8).fill(-12345));
          k.matmul(out, k.uploadF32(x), k.uploadInt8({ rows: N, cols: K, ...q }), rows);
          const all = await k.read(out);
          expect(Array.from(all.subarray(rows * N))).toEqual(new Array(8).fill(-12345));
          const refOut = ref.tensor(rows * N);
          ref.matmul(refOut, ref.uploadF32(x), ref.uploadInt8({ rows: N, cols: K, ...q }), rows);
          const want = await ref.read(refOut);
          let meanErr = 0;
          let meanBound = 0;
          for (let r = 0; r < rows; r++) {
            for (let n = 0; n < N; n++) {
              let bound = 1e-6;
              let amax = 0;
              for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[r * K + k]));
              for (let k = 0; k < K; k++) bound += (Math.abs(w[n * K + k]) * amax) / 65534 + 1e-6 * Math.abs(w[n * K + k] * x[r * K + k]);
              const err = Math.abs(all[r * N + n] - want[r * N + n]);
              if (!(err <= bound)) throw new Error(`out[${r}, ${n}]: got ${all[r * N + n]}, want ${want[r * N + n]} (|err| ${err} > ${bound})`);
              meanErr += err;
              meanBound += bound;
            }
          }
          expect(meanErr).toBeLessThan(meanBound / 2);
        });
      }

      it('int8 matmul is exact for activations on the int16 grid and weights at ±127, and 0 for an all-zero row', async () => {
        const N = 3, K = 64, rows = 3; // x's third row stays 0: step 0
        const q = new Int8Array(N * K);
        q.fill(127, 0, K); // row 0: all +127
        q.fill(-127, K, 2 * K); // row 1: all -127
        for (let i = 0; i < K; i++) q[2 * K + i] = ((i * 53) % 255) - 127; // row 2: spread over the range
        const scales = f32ArrayToBf16(Float32Array.of(0.5, 0.25, 1, 2, 0.125, 4));
        const x = new Float32Array(rows * K);
        for (let i = 0; i < K; i++) x[i] = ((i * 9973) % 65535) - 32767; // integers with max |x| = 32767 per row: step 1
        x[0] = 32767;
        for (let i = 0; i < 32; i++) x[K + i] = i % 2 ? 32767 : -32767; // second row: its second group stays 0
        const out = k.tensor(rows * N);
        k.matmul(out, k.uploadF32(x), k.uploadInt8({ rows: N, cols: K, q, scales }), rows);
        const refOut = ref.tensor(rows * N);
        ref.matmul(refOut, ref.uploadF32(x), ref.uploadInt8({ rows: N, cols: K, q, scales }), rows);
        const got = await k.read(out);
        const want = await ref.read(refOut);
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i])));
      });

      it('argmaxRows: the sampler argmax (ties to the lower index) on chosen rows, -1 for NaN, +Infinity or all -Infinity', async () => {
        const V = 1003; // not a multiple of 4: the scalar tail holds candidates too
        const rowsData: Float32Array[] = [];
        for (let r = 0; r < 9; r++) rowsData.push(randn(V, 10));
        rowsData[1][17] = 50;
        rowsData[1][900] = 50; // tie: 17 wins
        rowsData[2][1002] = 99; // in the tail
        rowsData[3].fill(-1);
        rowsData[3][2] = 0;
        rowsData[3][6] = 0; // tie in two SIMD lanes' different vectors: 2 wins
        rowsData[4][500] = NaN;
        rowsData[5][3] = Infinity;
        rowsData[6].fill(-Infinity);
        rowsData[7].fill(-Infinity);
        rowsData[7][1001] = -3; // only one finite value, in the tail
        rowsData[8][0] = 1e9; // first index
        const x = new Float32Array(9 * V);
        rowsData.forEach((r, i) => x.set(r, i * V));
        const pick = Int32Array.of(8, 0, 1, 2, 3, 4, 5, 6, 7, 1);
        const got = await k.argmaxRows(k.uploadF32(x), pick, V);
        const want = await ref.argmaxRows(ref.uploadF32(x), pick, V);
        expect(Array.from(got)).toEqual(Array.from(want));
        expect(Array.from(got)).toEqual([0, argmax(rowsData[0]), 17, 1002, 2, -1, -1, -1, 1001, 17]);
        await expect(k.argmaxRows(k.uploadF32(x), Int32Array.of(9), V)).rejects.toThrow(/outside a tensor of 9 rows/);
      });
    });
  }
}
