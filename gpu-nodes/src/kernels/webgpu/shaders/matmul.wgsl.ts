/**
 * W·x for int4 (group 32, compressed-tensors packing, used as uploaded: no repack), int8 (group 32, four
 * weights per u32, see kernels.ts) and bf16 weights.
 *
 * One workgroup per output feature n and per tile of ROW_TILE token rows: each thread walks a strided
 * slice of the weight row, dequantizes it once and applies it to all rows of the tile, so a decode step
 * (rows = 1) is a GEMV and a small batch re-reads each weight word at most ceil(rows / 4) times. The
 * 64 partial sums are reduced with `subgroupAdd` when the device has subgroups, else a shared-memory tree.
 *
 * Precision: by default everything is f32, so results match reference.ts to f32 rounding. With
 * `half` (int4 only, device with shader-f16) each word's 8 products q·x are summed in f16 — W4A16 as
 * Marlin runs it — and the bf16 scale is applied in f32 afterwards, because a bf16 scale's 8-bit exponent
 * does not fit f16. Activations are rounded to f16 (~1e-3 relative) and |x| must stay below ~1000 or
 * the 8-product sum overflows, so `half` is opt-in (WebGpuKernels option `halfInt4`), not the default.
 *
 * xOff/outOff (element offsets) let a caller run a matmul over a slice of a tensor's rows; outStride is
 * the output row width, wider than n when a matrix split into row parts (binding limit) writes one part.
 *
 * `grouped` (the MoE): one dispatch covers every expert of a slab (expert-slabs.ts). Workgroup z is an
 * entry of the tile list moeSortShader writes — (expert, first row, row count) in the expert-sorted rows —
 * and the expert picks its weights at (expert - e0) · stride in the slab. The z grid is an upper bound on
 * the number of tiles; workgroups past the slab's last tile leave at once.
 */
export const WG = 64;
export const ROW_TILE = 4;

export interface MatmulVariant {
  int4: boolean;
  /** int8 weights (not with int4): f32 products like bf16, half its bytes. */
  int8?: boolean;
  subgroups: boolean;
  /** 1 for decode (plain GEMV, scalar accumulators) or ROW_TILE for batches. */
  tile: 1 | typeof ROW_TILE;
  /** int4 only: f16 products within each 8-nibble word (needs shader-f16). */
  half?: boolean;
  /** MoE: rows and weights of each workgroup come from the tile list (see above). */
  grouped?: boolean;
}

export function matmulShader({ int4, int8 = false, subgroups, tile, half = false, grouped = false }: MatmulVariant): string {
  if (half && !int4) throw new Error('matmulShader: the f16 variant is int4-only');
  if (int8 && (int4 || grouped)) throw new Error('matmulShader: int8 is its own weight format and never an expert slab');
  const enable = `${subgroups ? 'enable subgroups;' : ''}${half ? 'enable f16;' : ''}`;
  const acc16 = tile === 1 ? 'f16' : 'vec4<f16>';
  const dot8 = half
    ? /* wgsl */ `
    var part = ${acc16}(0.0);
    for (var j = 0u; j < 8u; j++) {
      part += f16(i32((word >> (4u * j)) & 15u) - 8) * ${acc16}(xs(kb + j));
    }
    acc += scale * Acc(part);`
    : /* wgsl */ `
    for (var j = 0u; j < 8u; j++) {
      let wv = (f32((word >> (4u * j)) & 15u) - 8.0) * scale;
      acc += wv * xs(kb + j);
    }`;
  const scalesBinding = int4 || int8 ? '@group(0) @binding(4) var<storage, read> ws: array<u32>;' : '';
  const body = int8
    ? /* wgsl */ `
  let wordsPerRow = p.k / 4u;
  let groupsPerRow = p.k / 32u;
  for (var w = lid; w < wordsPerRow; w += WG) {
    let word = bitcast<i32>(wq[wBase + n * wordsPerRow + w]);
    let sIdx = sBase + n * groupsPerRow + w / 8u; // 8 words of 4 bytes = one 32-group
    let scale = bf16((ws[sIdx >> 1u] >> ((sIdx & 1u) * 16u)) & 0xffffu);
    let kb = w * 4u;
    for (var j = 0u; j < 4u; j++) {
      acc += f32(extractBits(word, 8u * j, 8u)) * scale * xs(kb + j);
    }
  }`
    : int4
    ? /* wgsl */ `
  let wordsPerRow = p.k / 8u;
  let groupsPerRow = p.k / 32u;
  for (var w = lid; w < wordsPerRow; w += WG) {
    let word = wq[wBase + n * wordsPerRow + w];
    let sIdx = sBase + n * groupsPerRow + w / 4u; // 4 words of 8 nibbles = one 32-group
    let scale = bf16((ws[sIdx >> 1u] >> ((sIdx & 1u) * 16u)) & 0xffffu);
    let kb = w * 8u;${dot8}
  }`
    : /* wgsl */ `
  for (var k = lid; k < p.k; k += WG) {
    let idx = wBase + n * p.k + k;
    let wv = bf16((wq[idx >> 1u] >> ((idx & 1u) * 16u)) & 0xffffu);
    acc += wv * xs(k);
  }`;
  const reduce = subgroups
    ? /* wgsl */ `
  let sum = subgroupAdd(acc);
  if (sgLane == 0u) { partial[lid / sgSize] = sum; }
  workgroupBarrier();
  if (lid == 0u) {
    var total = Acc(0.0);
    for (var i = 0u; i < WG / sgSize; i++) { total += partial[i]; }
    store(n, total);
  }`
    : /* wgsl */ `
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { store(n, partial[0]); }`;
  const tilesBinding = grouped ? `@group(0) @binding(${int4 ? 5 : 4}) var<storage, read> tiles: array<u32>;` : '';
  const params = grouped
    ? 'n: u32, k: u32, e0: u32, e1: u32, nExperts: u32, wStride: u32, sStride: u32, zBase: u32'
    : 'n: u32, k: u32, rows: u32, xOff: u32, outOff: u32, outStride: u32, _b: u32, _c: u32';
  // Where this workgroup's rows and weights are: the tile entry (grouped) or the z tile of one matrix.
  const locate = grouped
    ? /* wgsl */ `
  let t = tiles[p.e0] + p.zBase + wid.z; // tiles[e] = the expert's first tile entry
  if (t >= tiles[p.e1]) { return; } // t is workgroup-uniform (read-only storage at a uniform index)
  let entry = p.nExperts + 1u + 3u * t;
  let e = tiles[entry];
  row0 = tiles[entry + 1u];
  rowEnd = row0 + tiles[entry + 2u];
  wBase = (e - p.e0) * p.wStride;
  sBase = (e - p.e0) * p.sStride;`
    : /* wgsl */ `
  row0 = wid.z * ROW_TILE;
  rowEnd = p.rows;
  xOff = p.xOff;
  outOff = p.outOff;
  outStride = p.outStride;`;
  const sgBuiltins = subgroups
    ? ', @builtin(subgroup_invocation_id) sgLane: u32, @builtin(subgroup_size) sgSize: u32'
    : '';
  return /* wgsl */ `${enable}
alias Acc = ${tile === 1 ? 'f32' : 'vec4<f32>'};
struct Params { ${params} }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> wq: array<u32>;
${scalesBinding}
${tilesBinding}

const WG = ${WG}u;
const ROW_TILE = ${tile}u;
var<workgroup> partial: array<Acc, ${WG}>;
var<private> row0: u32;
var<private> rowEnd: u32;
var<private> xOff = 0u;
var<private> outOff = 0u;
var<private> outStride = 0u;
var<private> wBase = 0u;
var<private> sBase = 0u;

fn bf16(bits: u32) -> f32 { return bitcast<f32>(bits << 16u); }

${tile === 1 ? XS_SINGLE : XS_TILE}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32${sgBuiltins}) {
  let n = wid.x + wid.y * nwg.x;
  if (n >= p.n) { return; } // whole workgroup leaves together: n is workgroup-uniform
  outStride = p.n;
${locate}
  initRows();
  var acc = Acc(0.0);
${body}
${reduce}
}
`;
}

const XS_SINGLE = /* wgsl */ `
fn initRows() {}
fn xs(k: u32) -> f32 { return x[xOff + row0 * p.k + k]; }
fn store(n: u32, v: f32) { out[outOff + row0 * outStride + n] = v; }
`;

// x[row0 + i, k] for the 4 rows of the tile; rows past the end re-read the last row (results discarded),
// which keeps the inner loop branch-free. Row offsets are computed once per workgroup.
const XS_TILE = /* wgsl */ `
var<private> xBase: vec4<u32>;
fn initRows() {
  let last = rowEnd - 1u;
  xBase = xOff + vec4<u32>(min(row0, last), min(row0 + 1u, last), min(row0 + 2u, last), min(row0 + 3u, last)) * p.k;
}
fn xs(k: u32) -> vec4<f32> {
  return vec4<f32>(x[xBase.x + k], x[xBase.y + k], x[xBase.z + k], x[xBase.w + k]);
}
fn store(n: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    if (row0 + i < rowEnd) { out[outOff + (row0 + i) * outStride + n] = v[i]; }
  }
}
`;
