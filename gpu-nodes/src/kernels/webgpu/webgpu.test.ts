// Conformance: every WebGPU kernel against reference.ts on random shapes, with and without subgroups.
// Runs on whatever adapter Dawn finds (lavapipe in CI); skips, saying why, when there is none.
import { describe, expect, it } from 'vitest';
import type { AttnSeq, ExpertWeights, Kernels, Tensor } from '../kernels.ts';
import { ReferenceKernels } from '../reference.ts';
import { mulberry32 } from '../../model/prng.ts';
import { f32ToBf16 } from '../../model/quant.ts';
import { ROUTE_CASES, routeOn } from '../route-cases.ts';
import { WebGpuKernels } from './backend.ts';
import { acquireGpu, preferLavapipeIfUnset } from './device.ts';

preferLavapipeIfUnset();
const withSubgroups = await acquireGpu();
const noSubgroups = withSubgroups?.subgroups ? await acquireGpu({ disableSubgroups: true }) : null;
if (!withSubgroups) {
  console.warn(
    'webgpu tests skipped: Dawn found no WebGPU adapter. For CI install Mesa >= 25 (mesa-vulkan-drivers from ' +
      'bookworm-backports) so lavapipe is at /usr/share/vulkan/icd.d/lvp_icd.json.',
  );
}
const backends = [withSubgroups, noSubgroups].filter((c) => c !== null).map((c) => new WebGpuKernels(c));

// ── deterministic random inputs ─────────────────────────────────────────────
const rand = mulberry32(1234);
const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
const bf16s = (n: number, scale = 1) => Uint16Array.from(floats(n, scale), f32ToBf16);
const int4 = (rows: number, cols: number) => ({
  rows,
  cols,
  packed: Int32Array.from({ length: (rows * cols) / 8 }, () => (rand() * 2 ** 32) | 0),
  scales: bf16s((rows * cols) / 32, 0.1),
});

/** Runs the same scenario on the reference and the GPU backend; the result must agree within tolerance. */
async function agree(gpu: Kernels, scenario: (k: Kernels) => Promise<Float32Array>, tol = 1e-4): Promise<void> {
  const want = await scenario(new ReferenceKernels());
  const got = await scenario(gpu);
  expect(got.length).toBe(want.length);
  let maxAbs = 0;
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  }
  expect(Number.isFinite(maxDiff)).toBe(true);
  expect(maxDiff, `max |gpu - reference| = ${maxDiff} (max |reference| ${maxAbs})`).toBeLessThanOrEqual(tol * Math.max(1, maxAbs));
}

const readAll = (k: Kernels, t: Tensor) => k.read(t);

for (const gpu of backends) {
  describe(`webgpu kernels: ${gpu.name}`, () => {
    it('write and read with offsets', async () => {
      const x = gpu.tensor(6);
      gpu.write(x, Float32Array.of(1, 2, 3), 2);
      expect(Array.from(await gpu.read(x))).toEqual([0, 0, 1, 2, 3, 0]);
      expect(Array.from(await gpu.read(x, 3, 2))).toEqual([2, 3]);
    });

    it('reads into a reused host buffer', async () => {
      const into = Float32Array.of(9, 9, 9, 9, 9);
      const got = await gpu.read(gpu.uploadF32(Float32Array.of(1, 2, 3, 4)), 1, 3, into);
      expect(got.buffer).toBe(into.buffer);
      expect(Array.from(into)).toEqual([2, 3, 4, 9, 9]);
    });

    it('embed', async () => {
      const table = { rows: 11, cols: 7, data: bf16s(77) };
      const ids = Int32Array.of(3, 0, 10, 3);
      await agree(gpu, async (k) => {
        const out = k.tensor(ids.length * 7);
        k.embed(out, k.uploadBf16(table), ids);
        return readAll(k, out);
      }, 0);
      expect(() => gpu.embed(gpu.tensor(7), gpu.uploadBf16(table), Int32Array.of(11))).toThrow(/outside vocabulary/);
    });

    it('matrices past the weight-buffer cap are split into row parts: embed and matmul still agree', async () => {
      // A 1 KiB cap: the bf16 table (23 rows of 64 bytes) splits into 16 + 7 rows, the int4 matrix (50 rows of 64 bytes) into 16 + 16 + 16 + 2.
      const split = new WebGpuKernels(gpu.ctx, { maxWeightBufferBytes: 1024 });
      const table = { rows: 23, cols: 32, data: bf16s(23 * 32) };
      const w4 = int4(50, 128);
      const ids = Int32Array.of(22, 0, 16, 15, 7);
      const x = floats(3 * 128);
      const t = split.uploadBf16(table) as unknown as { parts: unknown[] };
      expect(t.parts).toHaveLength(2);
      expect((split.uploadInt4(w4) as unknown as { parts: unknown[] }).parts).toHaveLength(4);
      const run = (k: Kernels) => async () => {
        const emb = k.tensor(ids.length * 32);
        k.embed(emb, k.uploadBf16(table), ids);
        const logits = k.tensor(ids.length * 23);
        k.matmul(logits, emb, k.uploadBf16(table), ids.length); // tied lm_head: every part writes its columns
        const y = k.tensor(3 * 50);
        k.matmul(y, k.uploadF32(x), k.uploadInt4(w4), 3);
        return Float32Array.of(...(await k.read(emb)), ...(await k.read(logits)), ...(await k.read(y)));
      };
      await agree(split, (k) => run(k)());
    });

    it('rmsnorm, separate and in place', async () => {
      const x = floats(3 * 100, 3);
      const w = floats(100);
      for (const inPlace of [false, true]) {
        await agree(gpu, async (k) => {
          const xt = k.uploadF32(x);
          const out = inPlace ? xt : k.tensor(x.length);
          k.rmsnorm(out, xt, k.uploadF32(w), 3, 100, 1e-6);
          return readAll(k, out);
        });
      }
    });

    it('add and siluMul (also with out aliasing an input)', async () => {
      const a = floats(1000, 4);
      const b = floats(1000, 4);
      for (const alias of ['none', 'gate', 'up'] as const) {
        await agree(gpu, async (k) => {
          const g = k.uploadF32(a);
          const u = k.uploadF32(b);
          const out = alias === 'gate' ? g : alias === 'up' ? u : k.tensor(1000);
          k.siluMul(out, g, u, 999);
          k.add(out, k.uploadF32(b), 1000);
          return readAll(k, out);
        });
      }
    });

    it('int4 matmul: GEMV and small-batch GEMM', async () => {
      for (const [rows, n, kk] of [[1, 37, 64], [5, 70, 256], [9, 3, 32]]) {
        const w = int4(n, kk);
        const x = floats(rows * kk);
        await agree(gpu, async (k) => {
          const out = k.tensor(rows * n);
          k.matmul(out, k.uploadF32(x), k.uploadInt4(w), rows);
          return readAll(k, out);
        });
      }
    });

    it('int8 matmul (an lm_head quantized at load): GEMV, small-batch GEMM, and split into row parts', async () => {
      // Random bytes over the whole int8 range, -128 included (the kernel must sign-extend every byte).
      const int8 = (rows: number, cols: number) => ({ rows, cols, q: Int8Array.from({ length: rows * cols }, () => Math.floor(rand() * 256) - 128), scales: bf16s((rows * cols) / 32, 0.01) });
      const split = new WebGpuKernels(gpu.ctx, { maxWeightBufferBytes: 1024 }); // 128-byte rows: parts of 8 rows
      for (const [rows, n, kk] of [[1, 37, 64], [5, 70, 256], [9, 3, 32], [3, 21, 128]]) {
        const w = int8(n, kk);
        const x = floats(rows * kk);
        for (const g of kk === 128 ? [gpu, split] : [gpu]) {
          await agree(g, async (k) => {
            const out = k.tensor(rows * n);
            k.matmul(out, k.uploadF32(x), k.uploadInt8(w), rows);
            return readAll(k, out);
          });
        }
      }
      expect((split.uploadInt8(int8(21, 128)) as unknown as { parts: unknown[] }).parts).toHaveLength(3);
    });

    it.skipIf(!gpu.ctx.shaderF16)('int4 matmul with f16 products (opt-in W4A16), within f16 tolerance', async () => {
      const half = new WebGpuKernels(gpu.ctx, { halfInt4: true });
      for (const [rows, n, kk] of [[1, 37, 64], [6, 20, 128]]) {
        const w = int4(n, kk);
        const x = floats(rows * kk, 4);
        await agree(half, async (k) => {
          const out = k.tensor(rows * n);
          k.matmul(out, k.uploadF32(x), k.uploadInt4(w), rows);
          return readAll(k, out);
        }, 3e-3);
      }
    });

    it('bf16 matmul, odd width', async () => {
      const w = { rows: 33, cols: 51, data: bf16s(33 * 51) };
      const x = floats(3 * 51);
      await agree(gpu, async (k) => {
        const out = k.tensor(3 * 33);
        k.matmul(out, k.uploadF32(x), k.uploadBf16(w), 3);
        return readAll(k, out);
      });
    });

    it('rope on a slice of each head', async () => {
      const rows = 3, heads = 2, stride = 12, offset = 4, ropeDim = 8, maxPos = 16;
      const x = floats(rows * heads * stride);
      const cos = floats(maxPos * ropeDim / 2);
      const sin = floats(maxPos * ropeDim / 2);
      const positions = Int32Array.of(0, 15, 7);
      await agree(gpu, async (k) => {
        const xt = k.uploadF32(x);
        k.rope(xt, rows, positions, heads, stride, offset, ropeDim, k.uploadF32(cos), k.uploadF32(sin));
        return readAll(k, xt);
      });
    });

    it('kvWrite, copyKvBlock and MLA attention over a paged cache (decode + prefill rows)', async () => {
      const spec = { numBlocks: 7, blockSize: 4, numLayers: 2, kvLoraRank: 16, ropeDim: 8 };
      const heads = 3;
      // Sequence A decodes its 8th token (rows 0), sequence B prefills 3 tokens after 2 cached (rows 1..3).
      const seqs: AttnSeq[] = [
        { rowStart: 0, rowCount: 1, contextLen: 8, blockTable: Int32Array.of(5, 1) },
        { rowStart: 1, rowCount: 3, contextLen: 5, blockTable: Int32Array.of(0, 6) },
      ];
      const slotsA = Int32Array.from({ length: 8 }, (_, p) => seqs[0].blockTable[p >> 2] * 4 + (p % 4));
      const slotsB = Int32Array.from({ length: 5 }, (_, p) => seqs[1].blockTable[p >> 2] * 4 + (p % 4));
      const slots = Int32Array.from([...slotsA, ...slotsB]);
      const latent = floats(slots.length * 16);
      const kRope = floats(slots.length * 8);
      const qLat = floats(4 * heads * 16);
      const qRope = floats(4 * heads * 8);
      await agree(gpu, async (k) => {
        const cache = k.kvCache(spec);
        for (const layer of [0, 1]) k.kvWrite(cache, layer, k.uploadF32(latent), k.uploadF32(kRope), slots.length, slots);
        // Block 5 (A's first) copied to spare block 3, then A's table points there: same result expected.
        k.copyKvBlock(cache, 5, 3);
        const moved = [{ ...seqs[0], blockTable: Int32Array.of(3, 1) }, seqs[1]];
        const out = k.tensor(4 * heads * 16);
        k.mlaAttention(out, k.uploadF32(qLat), k.uploadF32(qRope), cache, 1, heads, moved, 0.3);
        return readAll(k, out);
      });
    });

    it('MLA attention over a context of several tiles (online softmax rescaling)', async () => {
      const spec = { numBlocks: 40, blockSize: 16, numLayers: 1, kvLoraRank: 80, ropeDim: 8 };
      const heads = 2, ctxLen = 600, rows = 2;
      const blockTable = Int32Array.from({ length: 38 }, (_, i) => (i * 7) % 40); // a permutation of 38 blocks
      const slots = Int32Array.from({ length: ctxLen }, (_, p) => blockTable[p >> 4] * 16 + (p % 16));
      const latent = floats(ctxLen * 80, 2);
      const kRope = floats(ctxLen * 8, 2);
      const qLat = floats(rows * heads * 80);
      const qRope = floats(rows * heads * 8);
      const seqs: AttnSeq[] = [{ rowStart: 0, rowCount: rows, contextLen: ctxLen, blockTable }];
      await agree(gpu, async (k) => {
        const cache = k.kvCache(spec);
        k.kvWrite(cache, 0, k.uploadF32(latent), k.uploadF32(kRope), ctxLen, slots);
        const out = k.tensor(rows * heads * 80);
        k.mlaAttention(out, k.uploadF32(qLat), k.uploadF32(qRope), cache, 0, heads, seqs, 0.5);
        return readAll(k, out);
      });
    });

    it('headMatmul, plain and transposed', async () => {
      const heads = 3, headRows = 10, cols = 6, rows = 2;
      const w = { rows: heads * headRows, cols, data: bf16s(heads * headRows * cols) };
      const x = floats(rows * heads * 9);
      await agree(gpu, async (k) => {
        const out = k.tensor(rows * heads * 8);
        // plain: rows 2..5 of each head against x[.., 1..7)
        k.headMatmul(out, 8, k.uploadF32(x), 9, 1, k.uploadBf16(w), heads, headRows, 2, 4, rows, false);
        return readAll(k, out);
      });
      await agree(gpu, async (k) => {
        const out = k.tensor(rows * heads * 7);
        // transposed: Σ over head rows 3..8 weighted by x[.., 2..7), outputs the 6 columns
        k.headMatmul(out, 7, k.uploadF32(x), 9, 2, k.uploadBf16(w), heads, headRows, 3, 5, rows, true);
        return readAll(k, out);
      });
    });

    for (const c of ROUTE_CASES) {
      it(`route on the device: ${c.name}`, async () => {
        const want = await routeOn(new ReferenceKernels(), c);
        const got = await routeOn(gpu, c);
        expect(Array.from(got.ids)).toEqual(Array.from(want.ids));
        for (let i = 0; i < want.weights.length; i++) expect(Math.abs(got.weights[i] - want.weights[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want.weights[i])));
      });
    }

    it('gatherRows picks rows on the device', async () => {
      const x = floats(5 * 33);
      await agree(gpu, async (k) => {
        const out = k.tensor(4 * 33);
        k.gatherRows(out, k.uploadF32(x), Int32Array.of(4, 0, 2, 4), 33);
        return readAll(k, out);
      }, 0);
      expect(() => gpu.gatherRows(gpu.tensor(33), gpu.tensor(5 * 33), Int32Array.of(5), 33)).toThrow(/outside/);
    });

    it('route then moe with no host read in between (random rows, 12 experts, top-3), and a decode row repeating an expert', async () => {
      const hidden = 64, inter = 32, nExp = 12, rows = 9, k = 3;
      const hosts = Array.from({ length: nExp }, () => ({ gate: int4(inter, hidden), up: int4(inter, hidden), down: int4(hidden, inter) }));
      const logits = floats(rows * nExp, 3);
      const bias = floats(nExp, 0.2);
      const x = floats(rows * hidden);
      const p = { nExperts: nExp, k, nGroup: 3, topkGroup: 2, normTopkProb: true, scalingFactor: 2.5 };
      const upload = (kern: Kernels): ExpertWeights[] => hosts.map((h) => ({ gate: kern.uploadInt4(h.gate), up: kern.uploadInt4(h.up), down: kern.uploadInt4(h.down) }));
      const readsBefore = gpu.reads;
      await agree(gpu, async (kern) => {
        const ids = kern.tensor(rows * k);
        const weights = kern.tensor(rows * k);
        kern.route(ids, weights, kern.uploadF32(logits), kern.uploadF32(bias), rows, p);
        const out = kern.tensor(rows * hidden);
        kern.moe(out, kern.uploadF32(x), rows, upload(kern), ids, weights, k);
        return readAll(kern, out);
      });
      expect(gpu.reads - readsBefore).toBe(1);
      await agree(gpu, async (kern) => {
        const out = kern.tensor(hidden);
        kern.moe(out, kern.uploadF32(x.subarray(0, hidden)), 1, upload(kern), kern.uploadF32(Float32Array.of(7, 7, 2)), kern.uploadF32(Float32Array.of(0.5, -1, 2)), k);
        return readAll(kern, out);
      });
    });

    it('moe grouped by expert, int4 and bf16 experts mixed', async () => {
      const hidden = 64, inter = 32, rows = 4, k = 3;
      const hosts = Array.from({ length: 5 }, (_, e) =>
        e === 2
          ? { bf16: true as const, gate: bf16s(inter * hidden, 0.2), up: bf16s(inter * hidden, 0.2), down: bf16s(hidden * inter, 0.2) }
          : { bf16: false as const, gate: int4(inter, hidden), up: int4(inter, hidden), down: int4(hidden, inter) },
      );
      const ids = Int32Array.of(4, 0, 2, 2, 4, 1, 0, 2, 3, 4, 1, 2);
      const weights = floats(rows * k);
      const x = floats(rows * hidden);
      await agree(gpu, async (kern) => {
        const experts: ExpertWeights[] = hosts.map((h) =>
          h.bf16
            ? {
                gate: kern.uploadBf16({ rows: inter, cols: hidden, data: h.gate }),
                up: kern.uploadBf16({ rows: inter, cols: hidden, data: h.up }),
                down: kern.uploadBf16({ rows: hidden, cols: inter, data: h.down }),
              }
            : { gate: kern.uploadInt4(h.gate), up: kern.uploadInt4(h.up), down: kern.uploadInt4(h.down) },
        );
        const out = kern.tensor(rows * hidden);
        kern.write(out, floats(rows * hidden)); // moe overwrites
        kern.moe(out, kern.uploadF32(x), rows, experts, kern.uploadF32(Float32Array.from(ids)), kern.uploadF32(weights), k);
        return readAll(kern, out);
      });
    });
  });
}

describe.skipIf(backends.length > 0)('webgpu kernels', () => {
  it.skip('no WebGPU adapter on this machine', () => {});
});
