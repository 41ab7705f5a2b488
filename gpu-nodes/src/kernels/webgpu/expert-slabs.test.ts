// The MoE's grouped matmuls over packed expert slabs: many experts against reference.ts (int4, bf16,
// mixed kinds, slabs split by size), and a dispatch count that does not grow with the number of experts.
import { describe, expect, it } from 'vitest';
import type { ExpertWeights, Kernels } from '../kernels.ts';
import { ReferenceKernels } from '../reference.ts';
import { mulberry32 } from '../../model/prng.ts';
import { f32ToBf16 } from '../../model/quant.ts';
import { WebGpuKernels } from './backend.ts';
import { acquireGpu, preferLavapipeIfUnset } from './device.ts';

preferLavapipeIfUnset();
const ctx = await acquireGpu();
// The grouped matmul leaves early per workgroup, before its reduction: check both reductions.
const noSubgroups = ctx?.subgroups ? await acquireGpu({ disableSubgroups: true }) : null;
if (!ctx) console.warn('webgpu expert-slab tests skipped: Dawn found no WebGPU adapter (see webgpu.test.ts)');

const rand = mulberry32(99);
const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
const int4 = (rows: number, cols: number) => ({
  rows,
  cols,
  packed: Int32Array.from({ length: (rows * cols) / 8 }, () => (rand() * 2 ** 32) | 0),
  scales: Uint16Array.from(floats((rows * cols) / 32, 0.1), f32ToBf16),
});
const bf16 = (rows: number, cols: number) => ({ rows, cols, data: Uint16Array.from(floats(rows * cols, 0.2), f32ToBf16) });

type HostExpert = { bf16: boolean; gate: ReturnType<typeof int4 | typeof bf16>; up: ReturnType<typeof int4 | typeof bf16>; down: ReturnType<typeof int4 | typeof bf16> };

/** n experts; `isBf16(e)` picks each one's kind. */
function hostExperts(n: number, hidden: number, inter: number, isBf16: (e: number) => boolean): HostExpert[] {
  return Array.from({ length: n }, (_, e) => {
    const make = isBf16(e) ? bf16 : int4;
    return { bf16: isBf16(e), gate: make(inter, hidden), up: make(inter, hidden), down: make(hidden, inter) };
  });
}

function upload(kern: Kernels, hosts: HostExpert[]): ExpertWeights[] {
  const one = (h: HostExpert, m: HostExpert['gate']) => ('data' in m ? kern.uploadBf16(m) : kern.uploadInt4(m));
  return hosts.map((h) => ({ gate: one(h, h.gate), up: one(h, h.up), down: one(h, h.down) }));
}

/** k distinct experts per row, like the router picks them; `repeat` makes the first row's choices all one expert. */
function routing(rows: number, k: number, nExp: number, repeat = false): { ids: Float32Array; weights: Float32Array } {
  const ids = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const picked = new Set<number>();
    while (picked.size < k) picked.add(Math.floor(rand() * nExp));
    ids.set([...picked], r * k);
  }
  if (repeat) ids.fill(Math.floor(rand() * nExp), 0, k);
  return { ids, weights: floats(rows * k) };
}

async function runMoe(kern: Kernels, hosts: HostExpert[], x: Float32Array, rows: number, k: number, ids: Float32Array, weights: Float32Array): Promise<Float32Array> {
  const hidden = hosts[0].gate.cols;
  const out = kern.tensor(rows * hidden);
  kern.moe(out, kern.uploadF32(x), rows, upload(kern, hosts), kern.uploadF32(ids), kern.uploadF32(weights), k);
  return kern.read(out);
}

async function agree(gpu: Kernels, hosts: HostExpert[], rows: number, k: number, repeat = false): Promise<void> {
  const hidden = hosts[0].gate.cols;
  const x = floats(rows * hidden);
  const { ids, weights } = routing(rows, k, hosts.length, repeat);
  const want = await runMoe(new ReferenceKernels(), hosts, x, rows, k, ids, weights);
  const got = await runMoe(gpu, hosts, x, rows, k, ids, weights);
  let maxAbs = 0;
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  }
  expect(got.length).toBe(want.length);
  expect(maxAbs).toBeGreaterThan(0);
  expect(maxDiff, `rows ${rows}: max |gpu - reference| = ${maxDiff} (max |reference| ${maxAbs})`).toBeLessThanOrEqual(1e-4 * Math.max(1, maxAbs));
}

for (const c of [ctx, noSubgroups].filter((c) => c !== null)) describe(`webgpu MoE over expert slabs: ${c.subgroups ? 'subgroups' : 'shared-memory reduction'}`, () => {
  const gpu = new WebGpuKernels(c);
  const hidden = 64;
  const inter = 32;

  it('64 int4 experts, top-8: decode, a decode row repeating one expert, odd and tile-multiple batches', async () => {
    const hosts = hostExperts(64, hidden, inter, () => false);
    for (const rows of [1, 7, 16]) await agree(gpu, hosts, rows, 8);
    await agree(gpu, hosts, 1, 8, true);
  });

  it('64 bf16 experts, top-8, odd widths per expert (rows 5)', async () => {
    await agree(gpu, hostExperts(64, hidden, 33, () => true), 5, 8);
    await agree(gpu, hostExperts(64, hidden, 33, () => true), 1, 8);
  });

  it('mixed kinds and a small slab cap: several slabs per role, still one dispatch per slab', async () => {
    // 5 int4 experts per slab (inter·hidden/2 bytes each); a bf16 expert takes 4× that, so one per slab.
    const capped = new WebGpuKernels(c, { maxSlabBytes: 5 * (inter * hidden) / 2 });
    const hosts = hostExperts(24, hidden, inter, (e) => e === 7 || e === 8 || e === 23);
    for (const rows of [1, 3, 9]) await agree(capped, hosts, rows, 4);
    // int4 [0,5) [5,7), bf16 [7,8) [8,9), int4 [9,14) [14,19) [19,23), bf16 [23,24): 8 slabs per role.
    const { ids, weights } = routing(9, 4, hosts.length);
    const before = capped.dispatches;
    await runMoe(capped, hosts, floats(9 * hidden), 9, 4, ids, weights);
    expect(capped.dispatches - before).toBe(4 + 3 * 8);
  });

  it('moe encodes the same number of dispatches for 8, 64 and 256 experts', async () => {
    const counts: number[] = [];
    for (const nExp of [8, 64, 256]) {
      const hosts = hostExperts(nExp, 32, 32, () => false);
      const rows = 6;
      const { ids, weights } = routing(rows, 8, nExp);
      const experts = upload(gpu, hosts);
      const out = gpu.tensor(rows * 32);
      const x = gpu.uploadF32(floats(rows * 32));
      const idsT = gpu.uploadF32(ids);
      const weightsT = gpu.uploadF32(weights);
      const before = gpu.dispatches;
      gpu.moe(out, x, rows, experts, idsT, weightsT, 8);
      counts.push(gpu.dispatches - before);
      const got = await gpu.read(out); // the work is valid, not only encoded
      expect(got.every(Number.isFinite)).toBe(true);
    }
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts).toEqual([counts[0], counts[0], counts[0]]);
  });
});

describe.skipIf(ctx !== null)('webgpu MoE over expert slabs', () => {
  it.skip('no WebGPU adapter on this machine', () => {});
});

describe.skipIf(ctx === null)('webgpu adoptExperts: expert weights held once', () => {
  it('frees the per-expert buffers once the slabs hold them, and moe still matches the reference', async () => {
    const gpu = new WebGpuKernels(ctx!);
    const hosts = hostExperts(64, 64, 32, (e) => e === 5);
    const base = gpu.weightBytes;
    const experts = upload(gpu, hosts);
    const perExpert = gpu.weightBytes - base;
    gpu.adoptExperts(experts);
    const held = gpu.weightBytes - base;
    // Slabs round each expert's scales up to a whole word, so allow a little over one copy; two copies would be 2×.
    expect(held).toBeGreaterThanOrEqual(perExpert);
    expect(held).toBeLessThan(perExpert * 1.05);
    const rows = 5;
    const x = floats(rows * 64);
    const { ids, weights } = routing(rows, 6, 64);
    const want = await runMoe(new ReferenceKernels(), hosts, x, rows, 6, ids, weights);
    const out = gpu.tensor(rows * 64);
    gpu.moe(out, gpu.uploadF32(x), rows, experts, gpu.uploadF32(ids), gpu.uploadF32(weights), 6);
    const got = await gpu.read(out);
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
    expect(diff).toBeLessThan(1e-4 * Math.max(1, ...Array.from(want, Math.abs)));
    // the adopted handles have no buffers of their own any more: using them elsewhere is refused
    expect(() => gpu.matmul(gpu.tensor(32), gpu.tensor(64), experts[0].gate, 1)).toThrow(/adopted/);
    expect(() => gpu.moe(out, gpu.tensor(rows * 64), rows, [...experts], gpu.uploadF32(ids), gpu.uploadF32(weights), 6)).toThrow(/adopted/);
  });
});
