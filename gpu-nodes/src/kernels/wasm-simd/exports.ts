/** The C functions of kernels.wasm (see ./c/*.c); pointers are byte offsets into the shared memory. */
export interface WasmExports {
  __heap_base: WebAssembly.Global;
  __stack_pointer: WebAssembly.Global;
  q4_variant(): number;
  q4_repack(dst: number, src: number, groups: number): void;
  quantize_q8(x: number, rows: number, K: number, xq: number, xd: number, xc: number): void;
  q4_matmul(out: number, xq: number, xd: number, xc: number, w: number, s: number, N: number, K: number, rows: number, tid: number, nth: number): void;
  q4x4_repack(dst: number, sdst: number, src: number, s: number, N: number, K: number): void;
  q4x4_matmul(out: number, xq: number, xd: number, xc: number, w: number, s: number, N: number, K: number, rows: number, tid: number, nth: number): void;
  quantize_a16(x: number, rows: number, K: number, a: number, d: number): void;
  q8_matmul(out: number, a: number, d: number, w: number, s: number, N: number, K: number, rows: number, tid: number, nth: number): void;
  argmax_rows(out: number, x: number, rowIdx: number, n: number, V: number, tid: number, nth: number): void;
  deinterleave8(dst: number, src: number, rows: number, K: number): void;
  bf16_matmul(out: number, x: number, w: number, N: number, K: number, rows: number, tid: number, nth: number): void;
  head_matmul(...args: number[]): void;
  mla_attention(...args: number[]): void;
  embed(out: number, table: number, ids: number, rows: number, dim: number): void;
  rmsnorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number): void;
  add(x: number, y: number, n: number): void;
  silu_mul(out: number, gate: number, up: number, n: number): void;
  rope(x: number, rows: number, positions: number, heads: number, headStride: number, offset: number, ropeDim: number, cos: number, sin: number): void;
  gather_rows(dst: number, src: number, idx: number, n: number, dim: number): void;
  scatter_add_rows(out: number, src: number, idx: number, weights: number, n: number, dim: number): void;
  stream_read(ptr: number, bytes: number, sums: number, tid: number, nth: number): void;
}

/**
 * Kernels that split work across threads; each takes (…, tid, nth) as its last two arguments.
 * Workers look them up by index in this list, so main thread and workers must share it.
 */
export const PARALLEL_FNS = ['q4_matmul', 'q4x4_matmul', 'q8_matmul', 'bf16_matmul', 'head_matmul', 'mla_attention', 'stream_read', 'argmax_rows'] as const;
export type ParallelFn = (typeof PARALLEL_FNS)[number];

/** Layout of the dispatch control block (Int32 indices), then up to MAX_ARGS f64 arguments at byte ARGS_BYTE. */
export const CTL = { SEQ: 0, PENDING: 1, FN: 2, NARGS: 3, NTH: 4, FAILED: 5 } as const;
export const ARGS_BYTE = 64;
export const MAX_ARGS = 24;
export const CTL_BYTES = ARGS_BYTE + MAX_ARGS * 8;
/** Busy-wait iterations before sleeping in Atomics.wait: a wake-up costs tens of µs, a decode op less. */
export const SPIN = 20000;
