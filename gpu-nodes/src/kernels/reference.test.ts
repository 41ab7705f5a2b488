// The oracle itself checked against cases worked out by hand (values in comments), so a bug here
// cannot silently become the "truth" the fast backends are held to.
import { describe, expect, it } from 'vitest';
import { ReferenceKernels } from './reference.ts';
import { f32ToBf16 } from '../model/quant.ts';
import { ROUTE_CASES, routeOn, routeOnHost } from './route-cases.ts';

const k = new ReferenceKernels();
const bf = (xs: number[]) => Uint16Array.from(xs.map(f32ToBf16));
const f32 = (xs: number[]) => Float32Array.from(xs);
const close = (got: Float32Array, want: number[], digits = 5) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, digits));
};

describe('reference kernels: memory', () => {
  it('write/read round-trips with offsets', async () => {
    const x = k.tensor(6);
    k.write(x, f32([1, 2, 3]), 2);
    expect(Array.from(await k.read(x))).toEqual([0, 0, 1, 2, 3, 0]);
    expect(Array.from(await k.read(x, 3, 2))).toEqual([2, 3]);
  });

  it('reads into a reused host buffer: a view of its head, the rest untouched, too small refused', async () => {
    const x = k.uploadF32(f32([1, 2, 3, 4]));
    const into = f32([9, 9, 9, 9, 9]);
    const got = await k.read(x, 1, 3, into);
    expect(got.buffer).toBe(into.buffer);
    expect(Array.from(got)).toEqual([2, 3, 4]);
    expect(Array.from(into)).toEqual([2, 3, 4, 9, 9]);
    await expect(k.read(x, 0, 4, f32([0, 0, 0]))).rejects.toThrow(/do not fit a host buffer of 3/);
  });
});

describe('reference kernels: int4 dequantization (compressed-tensors pack-quantized)', () => {
  it('reads nibble k%8 of word k/8 as u-8 times the bf16 group scale, bit for bit', async () => {
    // One row, 32 columns: word j holds nibbles u = (j*8 + i) % 16 at bits 4i..4i+3.
    const packed = new Int32Array(4);
    const want: number[] = [];
    for (let j = 0; j < 4; j++) {
      for (let i = 0; i < 8; i++) {
        const u = (j * 8 + i) % 16;
        packed[j] |= u << (4 * i);
        want.push((u - 8) * 0.375); // scale 0.375 = 0x3EC0 is exact in bf16
      }
    }
    const w = k.uploadInt4({ rows: 1, cols: 32, packed, scales: Uint16Array.of(0x3ec0) });
    // W·e_c picks column c, so 32 one-hot matmuls read back every dequantized weight.
    const x = k.tensor(32 * 32);
    const eye = new Float32Array(32 * 32);
    for (let c = 0; c < 32; c++) eye[c * 32 + c] = 1;
    k.write(x, eye);
    const out = k.tensor(32);
    k.matmul(out, x, w, 32);
    expect(Array.from(await k.read(out))).toEqual(want);
    // The high nibble of a word with the sign bit set (u = 15 → q = 7) must not sign-extend.
    expect(want[15]).toBe(7 * 0.375);
    expect(want[16]).toBe(-8 * 0.375); // u = 0 → q = -8
  });

  it('uses one scale per 32 inputs and per output row', async () => {
    // 2 rows × 64 cols, every nibble u = 9 (q = 1): weights equal the scale of their group.
    const packed = new Int32Array((2 * 64) / 8).fill(0x99999999 | 0);
    const scales = bf([1, -2, 0.5, 4]); // [row0 g0, row0 g1, row1 g0, row1 g1]
    const w = k.uploadInt4({ rows: 2, cols: 64, packed, scales });
    const x = k.uploadF32(new Float32Array(64).fill(1));
    const out = k.tensor(2);
    k.matmul(out, x, w, 1);
    expect(Array.from(await k.read(out))).toEqual([32 * 1 + 32 * -2, 32 * 0.5 + 32 * 4]);
  });

  it('rejects shapes that do not match the packing', () => {
    expect(() => k.uploadInt4({ rows: 1, cols: 48, packed: new Int32Array(6), scales: new Uint16Array(2) })).toThrow(/multiple of 32/);
    expect(() => k.uploadInt4({ rows: 1, cols: 32, packed: new Int32Array(3), scales: new Uint16Array(1) })).toThrow(/packed/);
  });
});

describe('reference kernels: elementwise', () => {
  it('embeds bf16 rows by id', async () => {
    const table = k.uploadBf16({ rows: 3, cols: 2, data: bf([1, 2, 3, 4, 5, 6]) });
    const out = k.tensor(4);
    k.embed(out, table, Int32Array.of(2, 0));
    expect(Array.from(await k.read(out))).toEqual([5, 6, 1, 2]);
    expect(() => k.embed(out, table, Int32Array.of(3))).toThrow(/outside vocabulary/);
  });

  it('rmsnorm: [3,4] has rms sqrt(12.5)', async () => {
    const x = k.uploadF32(f32([3, 4, -1, 1]));
    const out = k.tensor(4);
    k.rmsnorm(out, x, k.uploadF32(f32([1, 2])), 2, 2, 0);
    close(await k.read(out), [3 / Math.sqrt(12.5), (2 * 4) / Math.sqrt(12.5), -1, 2]);
  });

  it('add and siluMul', async () => {
    const a = k.uploadF32(f32([1, 2]));
    k.add(a, k.uploadF32(f32([10, 20])), 2);
    expect(Array.from(await k.read(a))).toEqual([11, 22]);
    const out = k.tensor(2);
    k.siluMul(out, k.uploadF32(f32([0, 2])), k.uploadF32(f32([5, 3])), 2);
    close(await k.read(out), [0, (2 / (1 + Math.exp(-2))) * 3]);
  });
});

describe('reference kernels: matmul', () => {
  it('bf16 [2,3] times two rows', async () => {
    const w = k.uploadBf16({ rows: 2, cols: 3, data: bf([1, 2, 3, -1, 0, 0.5]) });
    const x = k.uploadF32(f32([1, 1, 1, 2, 0, 4]));
    const out = k.tensor(4);
    k.matmul(out, x, w, 2);
    expect(Array.from(await k.read(out))).toEqual([6, -0.5, 14, 0]);
  });
});

describe('reference kernels: attention pieces', () => {
  it('rope rotates interleaved pairs by pos * freq at an offset inside each head', async () => {
    // 2 heads of stride 6, rope part at offset 2 with ropeDim 4 (2 pairs); tables for positions 0..1.
    const cos = k.uploadF32(f32([1, 1, Math.cos(0.5), Math.cos(0.25)]));
    const sin = k.uploadF32(f32([0, 0, Math.sin(0.5), Math.sin(0.25)]));
    const x = k.uploadF32(f32([9, 9, 1, 0, 0, 1, 7, 7, 2, 0, 1, 1]));
    k.rope(x, 1, Int32Array.of(1), 2, 6, 2, 4, cos, sin);
    const c1 = Math.cos(0.5), s1 = Math.sin(0.5), c2 = Math.cos(0.25), s2 = Math.sin(0.25);
    close(await k.read(x), [9, 9, c1, s1, -s2, c2, 7, 7, 2 * c1, 2 * s1, c2 - s2, s2 + c2]);
  });

  it('headMatmul per head, plain and transposed', async () => {
    // W: 2 heads × 3 rows each, 2 cols. Head h uses rows [h*3+1, h*3+3) (rowOffset 1, n 2).
    const w = k.uploadBf16({ rows: 6, cols: 2, data: bf([0, 0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8]) });
    // x: 1 row, 2 heads of stride 3, values at offset 1.
    const x = k.uploadF32(f32([0, 1, 1, 0, 2, -1]));
    const out = k.tensor(4);
    k.headMatmul(out, 2, x, 3, 1, w, 2, 3, 1, 2, 1, false);
    // head0: [1,2]·[1,1]=3, [3,4]·[1,1]=7; head1: [5,6]·[2,-1]=4, [7,8]·[2,-1]=6
    expect(Array.from(await k.read(out))).toEqual([3, 7, 4, 6]);
    k.headMatmul(out, 2, x, 3, 1, w, 2, 3, 1, 2, 1, true);
    // head0: Wᵀ x = [1*1+3*1, 2*1+4*1] = [4, 6]; head1: [5*2+7*-1, 6*2+8*-1] = [3, 4]
    expect(Array.from(await k.read(out))).toEqual([4, 6, 3, 4]);
  });

  it('kvWrite + mlaAttention through a non-trivial block table, causal per row', async () => {
    const spec = { numBlocks: 3, blockSize: 1, numLayers: 2, kvLoraRank: 2, ropeDim: 2 };
    const cache = k.kvCache(spec);
    // Sequence positions 0,1 live in physical blocks 2 and 0 (block size 1).
    const latent = k.uploadF32(f32([1, 0, 0, 1]));
    const kRope = k.uploadF32(f32([0, 0, 1, 0]));
    k.kvWrite(cache, 1, latent, kRope, 2, Int32Array.of(2, 0));
    const qLatent = k.uploadF32(f32([1, 1, 2, 0])); // rows 0,1; one head
    const qRope = k.uploadF32(f32([0, 0, 1, 0]));
    const out = k.tensor(4);
    k.mlaAttention(out, qLatent, qRope, cache, 1, 1, [{ rowStart: 0, rowCount: 2, contextLen: 2, blockTable: Int32Array.of(2, 0) }], 0.5);
    // row 0 sees only pos 0 → latent[0] = [1,0].
    // row 1: score0 = (2*1 + 0)*0.5 = 1, score1 = (0 + 1*1)*0.5 = 0.5 → p0 = e^1/(e^1+e^0.5)
    const p0 = Math.exp(1) / (Math.exp(1) + Math.exp(0.5));
    close(await k.read(out), [1, 0, p0, 1 - p0]);
    // layer 0 stayed empty, and copyKvBlock moves all layers of a block
    k.copyKvBlock(cache, 2, 1);
    const out2 = k.tensor(2);
    k.mlaAttention(out2, qLatent, qRope, cache, 1, 1, [{ rowStart: 0, rowCount: 1, contextLen: 1, blockTable: Int32Array.of(1) }], 0.5);
    close(await k.read(out2), [1, 0]);
  });
});

describe('reference kernels: moe', () => {
  it('sums weighted SiLU-gated experts', async () => {
    // hidden 2, intermediate 1. expert0: gate [1,0], up [0,1], down [1,1]; expert1: gate [0,1], up [1,1], down [2,0].
    const mk = (g: number[], u: number[], d: number[]) => ({
      gate: k.uploadBf16({ rows: 1, cols: 2, data: bf(g) }),
      up: k.uploadBf16({ rows: 1, cols: 2, data: bf(u) }),
      down: k.uploadBf16({ rows: 2, cols: 1, data: bf(d) }),
    });
    const experts = [mk([1, 0], [0, 1], [1, 1]), mk([0, 1], [1, 1], [2, 0])];
    const x = k.uploadF32(f32([1, 2]));
    const out = k.tensor(2);
    k.moe(out, x, 1, experts, k.uploadF32(f32([1, 0])), k.uploadF32(f32([0.25, 2])), 2);
    const silu = (v: number) => v / (1 + Math.exp(-v));
    const a0 = silu(1) * 2; // expert0: gate·x = 1, up·x = 2
    const a1 = silu(2) * 3; // expert1: gate·x = 2, up·x = 3
    close(await k.read(out), [2 * a0 + 0.25 * 2 * a1, 2 * a0]);
  });
});

describe('reference kernels: route and gatherRows', () => {
  it('routes several rows at their row offsets, bias from a tensor, ids stored as f32', async () => {
    const p = { nExperts: 4, k: 2, nGroup: 1, topkGroup: 1, normTopkProb: true, scalingFactor: 2 };
    const ids = k.tensor(4);
    const weights = k.tensor(4);
    k.route(ids, weights, k.uploadF32(f32([0, 0, 0, 0, 2, 1, 0, -1])), k.uploadF32(f32([0, 0.25, 0.25, 0])), 2, p);
    // row 0: scores all 0.5; the bias ties experts 1 and 2 at 0.75 above the rest → [1, 2], weights 0.5/1 × 2.
    // row 1: choices s(2) = 0.881, s(1) + 0.25 = 0.981, 0.75, 0.269 → [1, 0], weighed by s(1) and s(2) unbiased.
    expect(Array.from(await k.read(ids))).toEqual([1, 2, 1, 0]);
    const s = (v: number) => 1 / (1 + Math.exp(-v));
    const sum = s(1) + s(2);
    close(await k.read(weights), [1, 1, (2 * s(1)) / sum, (2 * s(2)) / sum], 6);
    // no bias: row 1 is plain top-2 by score
    k.route(ids, weights, k.uploadF32(f32([0, 0, 0, 0, 2, 1, 0, -1])), null, 2, p);
    expect(Array.from(await k.read(ids))).toEqual([0, 1, 0, 1]);
  });

  it('route over many rows is routeRow row by row (the shared conformance cases)', async () => {
    for (const c of ROUTE_CASES) {
      const want = routeOnHost(c);
      const got = await routeOn(k, c);
      expect(Array.from(got.ids), c.name).toEqual(Array.from(want.ids));
      expect(Array.from(got.weights), c.name).toEqual(Array.from(want.weights));
    }
  });

  it('gatherRows copies the listed rows in order (repeats allowed)', async () => {
    const x = k.uploadF32(f32([1, 2, 3, 4, 5, 6]));
    const out = k.tensor(6);
    k.gatherRows(out, x, Int32Array.of(2, 0, 2), 2);
    expect(Array.from(await k.read(out))).toEqual([5, 6, 1, 2, 5, 6]);
  });
});
