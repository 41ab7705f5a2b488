/**
 * A MoE layer's experts copied into a few large buffers ("slabs") per role, so one grouped matmul
 * dispatch (matmul.wgsl.ts, `grouped`) can reach every expert's weights: WGSL cannot index an array of
 * buffers. `uploadInt4`/`uploadBf16` see one matrix at a time, so packing happens on the device
 * (buffer-to-buffer copies) the first time `moe` sees an `ExpertWeights[]` list, and is cached per list.
 *
 * A slab holds a contiguous expert range [e0, e1) of one kind, at a fixed stride per expert, and is cut
 * where the kind changes or the next expert would pass the storage binding limit (128 MiB on lavapipe),
 * so a uniform model gets ceil(experts / experts-per-slab) slabs per role, whatever the routing.
 * `WebGpuKernels.adoptExperts` packs a layer at load time and frees the per-expert buffers, so a loaded
 * model holds its expert weights once; a list that was never adopted keeps both (callers own those handles).
 */
import type { ExpertWeights, Matrix } from '../kernels.ts';
import type { CommandQueue } from './command-queue.ts';
import { GpuBf16, GpuInt4, storage, whole } from './handles.ts';

export type Role = 'gate' | 'up' | 'down';

export interface Slab {
  kind: 'int4' | 'bf16';
  /** Experts e0 ≤ e < e1 live here, expert e at (e - e0) * stride. */
  e0: number;
  e1: number;
  /** int4: packed words (stride in u32 words); bf16: bit patterns two per u32 (stride in bf16 elements). */
  wq: GPUBuffer;
  wStride: number;
  /** int4 only: bf16 scales two per u32 (stride in bf16 elements, even so each expert starts on a word). */
  ws: GPUBuffer | null;
  sStride: number;
}

export interface LayerSlabs {
  /** The matrices packed, to notice a list that was changed after packing. */
  packed: Matrix[];
  roles: Record<Role, Slab[]>;
}

const even = (n: number) => n + (n & 1);
const words = (bytes: number) => Math.ceil(bytes / 4) * 4;

/** Bytes of each buffer an expert's matrix takes in a slab of its kind, and the strides. */
function footprint(m: Matrix): { wBytes: number; wStride: number; sBytes: number; sStride: number } {
  if (m.kind === 'int4') {
    const sStride = even((m.rows * m.cols) / 32);
    return { wBytes: (m.rows * m.cols) / 2, wStride: (m.rows * m.cols) / 8, sBytes: sStride * 2, sStride };
  }
  const wStride = even(m.rows * m.cols);
  return { wBytes: wStride * 2, wStride, sBytes: 0, sStride: 0 };
}

function packRole(q: CommandQueue, mats: Matrix[], maxBinding: number, freed: WeakSet<Matrix>): Slab[] {
  const { rows, cols } = mats[0];
  for (const m of mats) if (m.rows !== rows || m.cols !== cols) throw new Error(`moe: experts of shape ${m.rows}×${m.cols} and ${rows}×${cols} in one layer`);
  const slabs: Slab[] = [];
  let e0 = 0;
  while (e0 < mats.length) {
    const kind = mats[e0].kind;
    const f = footprint(mats[e0]);
    const perSlab = Math.floor(maxBinding / Math.max(f.wBytes, f.sBytes));
    if (perSlab < 1) throw new Error(`moe: one expert's ${(f.wBytes / 2 ** 20).toFixed(0)} MiB exceed the slab limit of ${(maxBinding / 2 ** 20).toFixed(0)} MiB`);
    let e1 = e0 + 1;
    while (e1 < mats.length && e1 - e0 < perSlab && mats[e1].kind === kind) e1++;
    const n = e1 - e0;
    const wq = q.device.createBuffer({ size: Math.max(16, n * f.wBytes), usage: storage() });
    const ws = kind === 'int4' ? q.device.createBuffer({ size: Math.max(16, n * f.sBytes), usage: storage() }) : null;
    for (let e = e0; e < e1; e++) {
      const m = mats[e];
      if (freed.has(m)) throw new Error('moe: an expert adopted into another list\'s slabs (its own buffers are freed) cannot be packed again; pass the list adoptExperts was given');
      if (m instanceof GpuInt4 || m instanceof GpuBf16) whole(m, 'moe');
      if (m instanceof GpuInt4) {
        q.copy(m.packed, 0, wq, (e - e0) * f.wBytes, f.wBytes);
        q.copy(m.scales, 0, ws!, (e - e0) * f.sBytes, words((m.rows * m.cols) / 16));
      } else if (m instanceof GpuBf16) {
        q.copy(m.data, 0, wq, (e - e0) * f.wBytes, words(m.rows * m.cols * 2));
      } else throw new Error('moe: expert matrix made by another backend');
    }
    slabs.push({ kind, e0, e1, wq, wStride: f.wStride, ws, sStride: f.sStride });
    e0 = e1;
  }
  return slabs;
}

/** Packs (once per list, on the device, queued before the work that reads it) or returns the cached slabs. */
export function layerSlabs(cache: WeakMap<ExpertWeights[], LayerSlabs>, q: CommandQueue, experts: ExpertWeights[], maxSlabBytes: number, freed: WeakSet<Matrix>): LayerSlabs {
  const mats = experts.flatMap((e) => [e.gate, e.up, e.down]);
  const hit = cache.get(experts);
  if (hit && hit.packed.length === mats.length && hit.packed.every((m, i) => m === mats[i])) return hit;
  const packed: LayerSlabs = {
    packed: mats,
    roles: {
      gate: packRole(q, experts.map((e) => e.gate), maxSlabBytes, freed),
      up: packRole(q, experts.map((e) => e.up), maxSlabBytes, freed),
      down: packRole(q, experts.map((e) => e.down), maxSlabBytes, freed),
    },
  };
  // Queued work may still read the old slabs: free them after the next submit.
  for (const slabs of hit ? Object.values(hit.roles) : []) {
    for (const s of slabs) {
      q.retire(s.wq);
      if (s.ws) q.retire(s.ws);
    }
  }
  cache.set(experts, packed);
  return packed;
}

/** Bytes of every buffer in a layer's slabs. */
export function slabBytes(s: LayerSlabs): number {
  let n = 0;
  for (const slabs of Object.values(s.roles)) for (const slab of slabs) n += slab.wq.size + (slab.ws?.size ?? 0);
  return n;
}
