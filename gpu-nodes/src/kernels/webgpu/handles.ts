/**
 * The opaque handles `WebGpuKernels` hands out (tensors, weights, KV cache) and its growable scratch
 * buffers. Each wraps GPU buffers bound whole by the shaders.
 */
import type { Bf16Matrix, Int4Matrix, Int8Matrix, KvCache, KvCacheSpec, Tensor } from '../kernels.ts';
import type { CommandQueue } from './command-queue.ts';

// A function, not a constant: the GPUBufferUsage global exists only once device.ts has installed Dawn's globals.
export const storage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class GpuTensor implements Tensor {
  readonly length: number;
  readonly buffer: GPUBuffer;
  constructor(length: number, buffer: GPUBuffer) {
    this.length = length;
    this.buffer = buffer;
  }
}

/**
 * Rows [row0, row0 + rows) of a matrix in their own buffers: a matrix larger than one storage binding
 * (maxStorageBufferBindingSize) is uploaded as several row parts; int4 buffers are [packed, scales], int8
 * [weights, scales], bf16 [data].
 */
export interface RowPart {
  row0: number;
  rows: number;
  buffers: GPUBuffer[];
}

export class GpuInt4 implements Int4Matrix {
  readonly kind = 'int4' as const;
  readonly rows: number;
  readonly cols: number;
  readonly parts: RowPart[];
  /** The first part's buffers: the whole matrix unless it was split. */
  readonly packed: GPUBuffer;
  readonly scales: GPUBuffer;
  constructor(rows: number, cols: number, parts: RowPart[]) {
    this.rows = rows;
    this.cols = cols;
    this.parts = parts;
    [this.packed, this.scales] = parts[0].buffers;
  }
}

/** int8 weights four per u32 (byte j of word w is weight 4w + j), bf16 scales two per u32. */
export class GpuInt8 implements Int8Matrix {
  readonly kind = 'int8' as const;
  readonly rows: number;
  readonly cols: number;
  readonly parts: RowPart[];
  constructor(rows: number, cols: number, parts: RowPart[]) {
    this.rows = rows;
    this.cols = cols;
    this.parts = parts;
  }
}

export class GpuBf16 implements Bf16Matrix {
  readonly kind = 'bf16' as const;
  readonly rows: number;
  readonly cols: number;
  readonly parts: RowPart[];
  /** The first part's buffer: the whole matrix unless it was split. */
  readonly data: GPUBuffer;
  constructor(rows: number, cols: number, parts: RowPart[]) {
    this.rows = rows;
    this.cols = cols;
    this.parts = parts;
    this.data = parts[0].buffers[0];
  }
}

/** Bytes of every buffer of a matrix, all parts. */
export function matrixBytes(m: GpuInt4 | GpuBf16 | GpuInt8): number {
  return m.parts.reduce((n, p) => n + p.buffers.reduce((b, buf) => b + buf.size, 0), 0);
}

/** Refuses a split matrix where a kernel binds the matrix whole (per-head matmuls, expert slabs). */
export function whole(m: GpuInt4 | GpuBf16, what: string): void {
  if (m.parts.length > 1) throw new Error(`${what}: a ${m.rows}×${m.cols} ${m.kind} matrix split into ${m.parts.length} parts at the storage binding limit cannot be bound whole here`);
}

export class GpuKvCache implements KvCache {
  readonly spec: KvCacheSpec;
  readonly buffer: GPUBuffer;
  readonly blockFloats: number;
  constructor(spec: KvCacheSpec, buffer: GPUBuffer) {
    this.spec = spec;
    this.buffer = buffer;
    this.blockFloats = spec.numLayers * spec.blockSize * (spec.kvLoraRank + spec.ropeDim);
  }
}

/** A buffer that only grows; reused by every call that needs scratch of that role. */
export class Scratch {
  private buf: GPUBuffer | null = null;
  private q: CommandQueue;
  constructor(q: CommandQueue) {
    this.q = q;
  }
  get(floats: number): GPUBuffer {
    const size = Math.max(16, floats * 4);
    if (!this.buf || this.buf.size < size) {
      // Unsubmitted work may still use the old buffer: free it only after the next submit.
      if (this.buf) this.q.retire(this.buf);
      this.buf = this.q.device.createBuffer({ size: Math.max(size, (this.buf?.size ?? 0) * 2), usage: storage() });
    }
    return this.buf;
  }
}
