/**
 * MoE on the device, so a step needs no host round trip per layer:
 * - `routeShader`: the K2 router (model/moe-router.ts's `routeRow`), one 64-thread workgroup per token row.
 * - `moeSortShader`: groups the step's (row, choice) pairs by expert (histogram, prefix sum, placement)
 *   and writes the tile list the grouped matmuls (matmul.wgsl.ts) read, so the host never learns which
 *   experts were chosen and encodes the same few dispatches whatever they are.
 * Expert ids are f32 tensors (see kernels.ts).
 */

/** Largest n_group and top-k the router shader handles (K2: 1 and 8; DeepSeek-V3: 8 and 8). */
export const ROUTE_MAX_GROUPS = 64;
export const ROUTE_MAX_K = 64;

/**
 * Same order of decisions as routeRow, in f32: scores, biased choice values, group top-2 sums and the
 * kept groups (one thread, as few as they are), then k rounds of a workgroup argmax whose ties go to the
 * lower id, then weights from the unbiased scores. Exact ties agree with the host (same f32 inputs);
 * values within f32 rounding of each other could in principle rank differently than the f64 host.
 */
export function routeShader(nExperts: number): string {
  return /* wgsl */ `
const E = ${nExperts}u;
const WG = 64u;
const NONE = 0xffffffffu;
const LOWEST = -3.402823e38;
struct Params { rows: u32, k: u32, nGroup: u32, topkGroup: u32, norm: u32, hasBias: u32, scale: f32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> ids: array<f32>;
@group(0) @binding(4) var<storage, read_write> weights: array<f32>;
var<workgroup> score: array<f32, E>;
var<workgroup> choice: array<f32, E>;
var<workgroup> excluded: array<u32, E>;
var<workgroup> groupScore: array<f32, ${ROUTE_MAX_GROUPS}>;
var<workgroup> groupChosen: array<u32, ${ROUTE_MAX_GROUPS}>;
var<workgroup> bestV: array<f32, WG>;
var<workgroup> bestI: array<u32, WG>;
var<workgroup> picked: array<u32, ${ROUTE_MAX_K}>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // row is workgroup-uniform: the whole group leaves together

  // sigmoid scores; the bias only enters the choice values
  for (var e = lid; e < E; e += WG) {
    let s = 1.0 / (1.0 + exp(-logits[row * E + e]));
    var b = 0.0;
    if (p.hasBias != 0u) { b = bias[e]; }
    score[e] = s;
    choice[e] = s + b;
    excluded[e] = 0u;
  }
  workgroupBarrier();

  // group-limited routing: keep the topk_group groups with the best top-2 sums
  if (p.nGroup > 1u) {
    let size = E / p.nGroup;
    if (lid < p.nGroup) {
      var a = LOWEST;
      var b = LOWEST;
      for (var e = lid * size; e < (lid + 1u) * size; e++) {
        let v = choice[e];
        if (v > a) { b = a; a = v; } else if (v > b) { b = v; }
      }
      groupScore[lid] = select(a, a + b, size >= 2u);
      groupChosen[lid] = 0u;
    }
    workgroupBarrier();
    if (lid == 0u) {
      for (var j = 0u; j < p.topkGroup; j++) {
        var best = NONE;
        for (var g = 0u; g < p.nGroup; g++) {
          if (groupChosen[g] == 0u && (best == NONE || groupScore[g] > groupScore[best])) { best = g; }
        }
        groupChosen[best] = 1u;
      }
    }
    workgroupBarrier();
    for (var e = lid; e < E; e += WG) {
      if (groupChosen[e / size] == 0u) { excluded[e] = 1u; }
    }
    workgroupBarrier();
  }

  // k rounds of argmax over the remaining experts; ties go to the lower id
  for (var j = 0u; j < p.k; j++) {
    var bv = 0.0;
    var bi = NONE;
    for (var e = lid; e < E; e += WG) {
      // ascending e within a thread, so strict > keeps the lowest id among equals
      if (excluded[e] == 0u && (bi == NONE || choice[e] > bv)) { bv = choice[e]; bi = e; }
    }
    bestV[lid] = bv;
    bestI[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) {
        let oi = bestI[lid + s];
        let ov = bestV[lid + s];
        let mi = bestI[lid];
        if (oi != NONE && (mi == NONE || ov > bestV[lid] || (ov == bestV[lid] && oi < mi))) {
          bestV[lid] = ov;
          bestI[lid] = oi;
        }
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      picked[j] = bestI[0];
      excluded[bestI[0]] = 1u;
    }
    workgroupBarrier();
  }

  // weights: unbiased scores of the chosen, renormalised (norm_topk_prob) and scaled
  if (lid == 0u) {
    var sum = 0.0;
    for (var j = 0u; j < p.k; j++) { sum += score[picked[j]]; }
    var norm = 1.0;
    if (p.norm != 0u) { norm = 1.0 / (sum + 1e-20); }
    for (var j = 0u; j < p.k; j++) {
      ids[row * p.k + j] = f32(picked[j]);
      weights[row * p.k + j] = score[picked[j]] * norm * p.scale;
    }
  }
}`;
}

/**
 * One 256-thread workgroup for the whole step (rows × k entries are few): count entries per expert,
 * prefix-sum the counts into slice starts, write the tile list the grouped matmuls read, then place every
 * entry in its expert's slice. Within a slice the order depends on atomics; results do not (each slice
 * row is computed alone and `combine` sums in choice order via `inv`).
 *
 * tiles: [0..E] each expert's first tile entry (tiles[E] = the total), then from E+1 one entry of 3 u32
 * per tile: (expert, first row in the sorted order, row count ≤ tile). An unused expert has no entries,
 * so its weights are never read. Entries are in expert order, so a slab's experts [e0, e1) own the
 * entries tiles[e0] ≤ t < tiles[e1].
 */
export function moeSortShader(nExperts: number): string {
  return /* wgsl */ `
const E = ${nExperts}u;
const WG = 256u;
struct Params { count: u32, k: u32, tile: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> inv: array<u32>;
@group(0) @binding(4) var<storage, read_write> tiles: array<u32>;
var<workgroup> hist: array<atomic<u32>, E>;
var<workgroup> cursor: array<atomic<u32>, E>;
var<workgroup> firstTile: array<u32, E>;

// An id past the last expert can only come from a caller bug; clamp it to stay inside the buffers.
fn expertOf(i: u32) -> u32 { return min(u32(ids[i]), E - 1u); }

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var e = lid; e < E; e += WG) { atomicStore(&hist[e], 0u); }
  workgroupBarrier();
  for (var i = lid; i < p.count; i += WG) { atomicAdd(&hist[expertOf(i)], 1u); }
  workgroupBarrier();
  if (lid == 0u) {
    var start = 0u;
    var tile = 0u;
    for (var e = 0u; e < E; e++) {
      let c = atomicLoad(&hist[e]);
      atomicStore(&cursor[e], start);
      firstTile[e] = tile;
      tiles[e] = tile;
      start += c;
      tile += (c + p.tile - 1u) / p.tile;
    }
    tiles[E] = tile;
  }
  workgroupBarrier();
  for (var e = lid; e < E; e += WG) {
    let rows = atomicLoad(&hist[e]);
    let start = atomicLoad(&cursor[e]);
    var t = E + 1u + 3u * firstTile[e];
    for (var r = 0u; r < rows; r += p.tile) {
      tiles[t] = e;
      tiles[t + 1u] = start + r;
      tiles[t + 2u] = min(p.tile, rows - r);
      t += 3u;
    }
  }
  workgroupBarrier();
  for (var i = lid; i < p.count; i += WG) {
    let at = atomicAdd(&cursor[expertOf(i)], 1u);
    src[at] = i / p.k;
    inv[i] = at;
  }
}`;
}

/** Most tile entries `count` sorted rows can make over `experts` experts: each used expert wastes < 1 tile. */
export function maxTiles(count: number, experts: number, tile: number): number {
  return Math.ceil((count + (tile - 1) * Math.min(experts, count)) / tile);
}
