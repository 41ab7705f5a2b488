/**
 * Elementwise and per-row kernels: embed, rmsnorm, add, siluMul, rope, KV-cache write, MoE gather/combine.
 * One thread per output element (256 per workgroup) unless stated; the grid is 2-D because a dimension
 * holds at most 65535 workgroups, so `gid` linearises it.
 */
export const EW = 256;

const GID = /* wgsl */ `
fn gidOf(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wid.x + wid.y * nwg.x) * ${EW}u + lid; }
fn bf16(bits: u32) -> f32 { return bitcast<f32>(bits << 16u); }
`;
const ENTRY = `@compute @workgroup_size(${EW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32)`;

export const embedShader = /* wgsl */ `${GID}
// table holds vocabulary rows [lo, hi): one part of a table split at the binding limit; other ids are left alone.
struct Params { rows: u32, dim: u32, lo: u32, hi: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<u32>; // bf16 pairs
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i >= p.rows * p.dim) { return; }
  let id = u32(ids[i / p.dim]);
  if (id < p.lo || id >= p.hi) { return; }
  let idx = (id - p.lo) * p.dim + i % p.dim;
  out[i] = bf16((table[idx >> 1u] >> ((idx & 1u) * 16u)) & 0xffffu);
}`;

export const addShader = /* wgsl */ `${GID}
struct Params { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i < p.n) { x[i] += y[i]; }
}`;

/** `alias` says which input `out` shares a buffer with: WebGPU forbids binding one buffer twice when one binding writes. */
export function siluMulShader(alias: 'none' | 'gate' | 'up'): string {
  const decl =
    alias === 'none'
      ? `@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;`
      : alias === 'gate'
        ? '@group(0) @binding(2) var<storage, read> up: array<f32>;'
        : '@group(0) @binding(2) var<storage, read> gate: array<f32>;';
  const g = alias === 'gate' ? 'out[i]' : 'gate[i]';
  const u = alias === 'up' ? 'out[i]' : 'up[i]';
  return /* wgsl */ `${GID}
struct Params { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${decl}
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i >= p.n) { return; }
  let g = ${g};
  out[i] = g / (1.0 + exp(-g)) * ${u};
}`;
}

/** One 64-thread workgroup per row. `inPlace` when out is x. */
export function rmsnormShader(inPlace: boolean): string {
  const xDecl = inPlace ? '' : '@group(0) @binding(3) var<storage, read> x: array<f32>;';
  const xs = inPlace ? 'out' : 'x';
  return /* wgsl */ `
struct Params { dim: u32, eps: f32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
${xDecl}
var<workgroup> partial: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * p.dim;
  var ss = 0.0;
  for (var i = lid; i < p.dim; i += 64u) { let v = ${xs}[base + i]; ss += v * v; }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(p.dim) + p.eps);
  for (var i = lid; i < p.dim; i += 64u) { out[base + i] = ${xs}[base + i] * inv * weight[i]; }
}`;
}

/** One thread per (row, head, pair); rotates interleaved pairs in place. */
export const ropeShader = /* wgsl */ `${GID}
struct Params { rows: u32, heads: u32, headStride: u32, offset: u32, half: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> cosT: array<f32>;
@group(0) @binding(4) var<storage, read> sinT: array<f32>;
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i >= p.rows * p.heads * p.half) { return; }
  let pair = i % p.half;
  let rh = i / p.half; // row * heads + head
  let base = rh * p.headStride + p.offset + 2u * pair;
  let t = u32(positions[rh / p.heads]) * p.half + pair;
  let c = cosT[t];
  let s = sinT[t];
  let a = x[base];
  let b = x[base + 1u];
  x[base] = a * c - b * s;
  x[base + 1u] = a * s + b * c;
}`;

/** Cache layout (backend-private): [block][layer][slot in block][kvLoraRank latent | ropeDim key], f32. */
export const kvWriteShader = /* wgsl */ `${GID}
struct Params { rows: u32, rank: u32, ropeDim: u32, blockSize: u32, layers: u32, layer: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;
@group(0) @binding(2) var<storage, read> latent: array<f32>;
@group(0) @binding(3) var<storage, read> kRope: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<i32>;
${ENTRY} {
  let width = p.rank + p.ropeDim;
  let i = gidOf(wid, nwg, lid);
  if (i >= p.rows * width) { return; }
  let r = i / width;
  let d = i % width;
  let slot = u32(slots[r]);
  let base = (((slot / p.blockSize) * p.layers + p.layer) * p.blockSize + slot % p.blockSize) * width;
  if (d < p.rank) { cache[base + d] = latent[r * p.rank + d]; }
  else { cache[base + d] = kRope[r * p.ropeDim + d - p.rank]; }
}`;

/** MoE: copy x rows into expert-sorted order, xg[j, :] = x[src[j], :]. */
export const gatherShader = /* wgsl */ `${GID}
struct Params { count: u32, dim: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> xg: array<f32>;
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i >= p.count * p.dim) { return; }
  xg[i] = x[src[i / p.dim] * p.dim + i % p.dim];
}`;

/** MoE: out[r, :] = Σ_j w[r*k+j] · y[inv[r*k+j], :]; one writer per output, so no atomics. */
export const combineShader = /* wgsl */ `${GID}
struct Params { rows: u32, dim: u32, k: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> inv: array<u32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i >= p.rows * p.dim) { return; }
  let r = i / p.dim;
  let d = i % p.dim;
  var acc = 0.0;
  for (var j = 0u; j < p.k; j++) { acc += w[r * p.k + j] * y[inv[r * p.k + j] * p.dim + d]; }
  out[i] = acc;
}`;

/** dst[dstOff + i] = src[srcOff + i] within one buffer (copyBufferToBuffer refuses src === dst). */
export const copyWithinShader = /* wgsl */ `${GID}
struct Params { n: u32, srcOff: u32, dstOff: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> data: array<f32>;
${ENTRY} {
  let i = gidOf(wid, nwg, lid);
  if (i < p.n) { data[p.dstOff + i] = data[p.srcOff + i]; }
}`;
