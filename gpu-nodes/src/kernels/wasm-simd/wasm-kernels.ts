/**
 * The CPU serving backend: every op of `kernels.ts` in WebAssembly SIMD128 (C sources in ./c, built by
 * ./build.ts), multi-threaded with worker_threads over one shared WebAssembly.Memory (./threads.ts).
 *
 * - Weights, tensors and the KV cache all live in the wasm memory (./heap.ts); `read` copies out.
 * - int4 matmuls quantize activations to int8 per 32-group at run time (llama.cpp's q8_0) and use
 *   i16x8.relaxed_dot_i8x16_i7x16_s (relaxed-SIMD build) or i32x4.dot_i16x8_s (baseline build);
 *   weights are repacked once at upload, by default into c/q4x4.c's layout (4 weight rows interleaved per
 *   vector: no horizontal sums, 1.2-1.5× the row kernel's throughput), or c/q4.c's row layout
 *   (`int4Kernel: 'row'`, the previous kernel, kept for the benchmark's comparison). Error vs. the f32 reference:
 *   each activation is off by at most d/2 = max|x_group|/254, so |err| ≲ Σ_g |w_g|·max|x_g|/254.
 * - int8 matmuls (the lm_head quantized at load, c/q8.c) quantize activations to int16 with one step per
 *   row and run i32x4.dot_i16x8_s in both builds: |err| ≲ Σ_k |w_k|·max|x_row|/65534 vs. the reference.
 * - bf16 matmuls (attention, dense, a bf16 lm_head) run in f32 on widened bf16.
 * - `argmaxRows` (greedy sampling) scans the logits where the lm_head wrote them, on the calling thread.
 * - Routing runs model/moe-router.ts's `routeRow` on views of the wasm memory: the tensors are host memory
 *   already, so "on the device" costs no copy here.
 * - MoE groups the step's rows by expert (the moe_align_block_size idea): each expert's weights stream
 *   once per step for all its rows.
 * - Only the matmuls and attention are split across threads; elementwise ops are too cheap to pay a
 *   wake-up for.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import type {
  AttnSeq,
  Bf16Host,
  Bf16Matrix,
  ExpertWeights,
  Int4Host,
  Int4Matrix,
  Int8Host,
  Int8Matrix,
  Kernels,
  KvCache,
  KvCacheSpec,
  Matrix,
  RouterParams,
  Tensor,
} from '../kernels.ts';
import { checkReadInto, WASM32_MEMORY_BYTES } from '../kernels.ts';
import { checkInt4Shape, checkInt8Shape } from '../../model/quant.ts';
import { routeRow, RouterScratch } from '../../model/moe-router.ts';
import { WASM_PATH, WASM_RELAXED_PATH } from './build.ts';
import type { WasmExports } from './exports.ts';
import { Heap } from './heap.ts';
import { ThreadPool } from './threads.ts';

export interface WasmKernelsOptions {
  /** Threads (calling thread included); default: the cores available. */
  threads?: number;
  /**
   * Which build: 'relaxed' (relaxed-SIMD int8 dot products), 'simd128' (baseline), or 'auto' (relaxed
   * when this runtime validates it). Both are built by `npm run build` next to build.ts.
   */
  simd?: 'auto' | 'relaxed' | 'simd128';
  /** Work (multiply-adds) from which ops are split across threads; tests pass 0 to thread everything. */
  parallelMinMacs?: number;
  /**
   * int4 kernel and weight layout: 'q4x4' (default; 4 rows interleaved per vector, the faster one,
   * c/q4x4.c) or 'row' (one row at a time, c/q4.c; kept for comparison in the benchmark).
   */
  int4Kernel?: 'q4x4' | 'row';
}

class WasmTensor implements Tensor {
  readonly ptr: number;
  readonly length: number;
  constructor(ptr: number, length: number) {
    this.ptr = ptr;
    this.length = length;
  }
}
interface WasmInt4 extends Int4Matrix {
  readonly layout: 'q4x4' | 'row'; // which kernel's repack made w and s (see c/q4x4.c, c/q4.c)
  readonly w: number; // repacked nibbles, rows * cols/2 bytes (q4x4: rows padded to a multiple of 4)
  readonly s: number; // bf16 scales, rows * cols/32 (q4x4: padded rows, 4 rows interleaved)
}
interface WasmInt8 extends Int8Matrix {
  readonly w: number; // int8 weights, rows * cols bytes
  readonly s: number; // bf16 scales, rows * cols/32
}
interface WasmBf16 extends Bf16Matrix {
  readonly w: number; // rows * cols bf16
}
interface WasmKv extends KvCache {
  readonly ptr: number; // (numBlocks, numLayers, blockSize, kvLoraRank + ropeDim) f32
}

/**
 * Multiply-adds below which an op runs on the calling thread alone: waking the workers costs ~10 µs on
 * an idle machine and far more on a busy one, about what 512K MACs take (k2-tiny's experts stay serial).
 */
const PARALLEL_MIN_MACS = 1 << 19;

function ptrOf(x: Tensor): number {
  if (!(x instanceof WasmTensor)) throw new Error('wasm-simd kernels: tensor made by another backend');
  return x.ptr;
}
function kvOf(c: KvCache): WasmKv {
  if (typeof (c as Partial<WasmKv>).ptr !== 'number') throw new Error('wasm-simd kernels: KV cache made by another backend');
  return c as WasmKv;
}
function matOf(w: Matrix | Int8Matrix): WasmInt4 | WasmBf16 | WasmInt8 {
  if (typeof (w as Partial<WasmBf16>).w !== 'number') throw new Error('wasm-simd kernels: matrix uploaded to another backend');
  return w as WasmInt4 | WasmBf16 | WasmInt8;
}
function bf16Of(w: Bf16Matrix): WasmBf16 {
  const m = matOf(w);
  if (m.kind !== 'bf16') throw new Error(`wasm-simd kernels: a bf16 matrix was expected, got ${m.kind}`);
  return m;
}

/** The wasm bytes of the requested build; 'auto' feature-detects relaxed SIMD by validating that build. */
function pickBuild(simd: 'auto' | 'relaxed' | 'simd128'): Uint8Array {
  if (simd === 'simd128') return readFileSync(WASM_PATH);
  const relaxed = readFileSync(WASM_RELAXED_PATH);
  if (WebAssembly.validate(relaxed)) return relaxed;
  if (simd === 'relaxed') throw new Error('wasm-simd: this runtime does not support relaxed SIMD');
  return readFileSync(WASM_PATH);
}

export class WasmKernels implements Kernels {
  readonly name = 'wasm-simd';
  readonly memoryLimitBytes = WASM32_MEMORY_BYTES;
  /** 'relaxed' or 'simd128': which int4 dot product this instance runs. */
  readonly variant: 'relaxed' | 'simd128';
  readonly heap: Heap;
  readonly pool: ThreadPool;
  private readonly ex: WasmExports;
  private readonly minMacs: number;
  private routerScratch: RouterScratch | null = null;
  /** The int4 kernel new uploads get (matrices remember theirs). */
  readonly int4Kernel: 'q4x4' | 'row';

  private constructor(ex: WasmExports, heap: Heap, pool: ThreadPool, minMacs: number, int4Kernel: 'q4x4' | 'row') {
    this.ex = ex;
    this.minMacs = minMacs;
    this.int4Kernel = int4Kernel;
    this.heap = heap;
    this.pool = pool;
    this.variant = ex.q4_variant() === 2 ? 'relaxed' : 'simd128';
  }

  static async create(opts: WasmKernelsOptions = {}): Promise<WasmKernels> {
    // V8 first runs wasm in its baseline compiler (Liftoff) and tiers a function up to TurboFan only after
    // enough calls; our kernels are few calls with long loops, so they would stay 1.5-3× slower for the
    // first many steps. Compile optimized from the start (process-wide flag, read at compile time).
    setFlagsFromString('--no-liftoff');
    const threads = Math.max(1, opts.threads ?? availableParallelism());
    const module = new WebAssembly.Module(pickBuild(opts.simd ?? 'auto'));
    const memory = new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    const ex = instance.exports as unknown as WasmExports;
    const heap = new Heap(memory, ex.__heap_base.value as number);
    const pool = await ThreadPool.start(threads, module, ex, heap);
    return new WasmKernels(ex, heap, pool, opts.parallelMinMacs ?? PARALLEL_MIN_MACS, opts.int4Kernel ?? 'q4x4');
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** Stops the worker threads; the backend is unusable afterwards. */
  close(): Promise<void> {
    return this.pool.close();
  }

  // ── memory ────────────────────────────────────────────────────────────────
  tensor(length: number): Tensor {
    return new WasmTensor(this.heap.alloc(length * 4), length);
  }
  write(dst: Tensor, src: Float32Array, dstOffset = 0): void {
    if (dstOffset + src.length > dst.length) throw new Error(`write: ${src.length} values at ${dstOffset} overflow a tensor of ${dst.length}`);
    this.heap.f32.set(src, ptrOf(dst) / 4 + dstOffset);
  }
  async read(src: Tensor, offset = 0, length?: number, into?: Float32Array): Promise<Float32Array> {
    const n = length ?? src.length - offset;
    const start = ptrOf(src) / 4 + offset;
    // A fresh array costs more than the copy: its pages fault in on first write (≈ 1 ms per 100k
    // floats here, one row of k2-tiny logits), while `set` into a reused one is a 20 µs memcpy.
    const out = into ?? new Float32Array(n);
    if (into) checkReadInto(into, n);
    out.set(this.heap.f32.subarray(start, start + n));
    return into ? into.subarray(0, n) : out;
  }
  uploadF32(data: Float32Array): Tensor {
    const t = this.tensor(data.length);
    this.write(t, data);
    return t;
  }
  uploadInt4(w: Int4Host): Int4Matrix {
    checkInt4Shape(w.packed, w.scales, w.rows, w.cols);
    // The checkpoint's words (and, for q4x4, scales) go through scratch and are repacked by the C side.
    const src = this.heap.scratch('repack', w.packed.length * 4);
    this.heap.i32.set(w.packed, src / 4);
    if (this.int4Kernel === 'q4x4') {
      const padded = Math.ceil(w.rows / 4) * 4;
      const wp = this.heap.alloc(padded * (w.cols / 2));
      const sp = this.heap.alloc(padded * (w.cols / 32) * 2);
      const ss = this.heap.scratch('repack.s', w.scales.length * 2);
      this.heap.u16.set(w.scales, ss / 2);
      this.ex.q4x4_repack(wp, sp, src, ss, w.rows, w.cols);
      const m: WasmInt4 = { kind: 'int4', rows: w.rows, cols: w.cols, layout: 'q4x4', w: wp, s: sp };
      return m;
    }
    const wp = this.heap.alloc(w.rows * (w.cols / 2));
    const sp = this.heap.alloc(w.scales.length * 2);
    this.ex.q4_repack(wp, src, (w.rows * w.cols) / 32);
    this.heap.u16.set(w.scales, sp / 2);
    const m: WasmInt4 = { kind: 'int4', rows: w.rows, cols: w.cols, layout: 'row', w: wp, s: sp };
    return m;
  }
  uploadBf16(w: Bf16Host): Bf16Matrix {
    if (w.data.length !== w.rows * w.cols) throw new Error(`bf16 matrix [${w.rows}, ${w.cols}]: ${w.data.length} values`);
    const p = this.heap.alloc(w.data.length * 2);
    this.heap.u16.set(w.data, p / 2);
    const m: WasmBf16 = { kind: 'bf16', rows: w.rows, cols: w.cols, w: p };
    return m;
  }
  uploadInt8(w: Int8Host): Int8Matrix {
    checkInt8Shape(w.q, w.scales, w.rows, w.cols);
    const wp = this.heap.alloc(w.q.length);
    const sp = this.heap.alloc(w.scales.length * 2);
    this.heap.u8.set(new Uint8Array(w.q.buffer, w.q.byteOffset, w.q.length), wp);
    this.heap.u16.set(w.scales, sp / 2);
    const m: WasmInt8 = { kind: 'int8', rows: w.rows, cols: w.cols, w: wp, s: sp };
    return m;
  }
  kvCache(spec: KvCacheSpec): KvCache {
    const floats = spec.numBlocks * spec.numLayers * spec.blockSize * (spec.kvLoraRank + spec.ropeDim);
    const c: WasmKv = { spec: { ...spec }, ptr: this.heap.alloc(floats * 4) };
    return c;
  }
  copyKvBlock(cache: KvCache, from: number, to: number): void {
    const c = kvOf(cache);
    const { numLayers, blockSize, kvLoraRank, ropeDim } = c.spec;
    const blockBytes = numLayers * blockSize * (kvLoraRank + ropeDim) * 4;
    this.heap.u8.copyWithin(c.ptr + to * blockBytes, c.ptr + from * blockBytes, c.ptr + (from + 1) * blockBytes);
  }

  /** Host index/weight arrays are copied into named scratch regions for the C side. */
  private i32In(name: string, a: Int32Array): number {
    const p = this.heap.scratch(name, a.length * 4);
    this.heap.i32.set(a, p / 4);
    return p;
  }
  private f32In(name: string, a: Float32Array): number {
    const p = this.heap.scratch(name, a.length * 4);
    this.heap.f32.set(a, p / 4);
    return p;
  }

  // ── elementwise and normalization ─────────────────────────────────────────
  embed(out: Tensor, table: Bf16Matrix, ids: Int32Array): void {
    for (const id of ids) if (id < 0 || id >= table.rows) throw new Error(`embed: token id ${id} outside vocabulary of ${table.rows}`);
    this.ex.embed(ptrOf(out), bf16Of(table).w, this.i32In('ids', ids), ids.length, table.cols);
  }
  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, rows: number, dim: number, eps: number): void {
    this.ex.rmsnorm(ptrOf(out), ptrOf(x), ptrOf(weight), rows, dim, eps);
  }
  add(x: Tensor, y: Tensor, n: number): void {
    this.ex.add(ptrOf(x), ptrOf(y), n);
  }
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void {
    this.ex.silu_mul(ptrOf(out), ptrOf(gate), ptrOf(up), n);
  }

  gatherRows(out: Tensor, x: Tensor, rows: Int32Array, width: number): void {
    for (const r of rows) if (r < 0 || (r + 1) * width > x.length) throw new Error(`gatherRows: row ${r} outside a tensor of ${x.length / width} rows`);
    this.ex.gather_rows(ptrOf(out), ptrOf(x), this.i32In('gather.rows', rows), rows.length, width);
  }

  // ── matmul ────────────────────────────────────────────────────────────────
  matmul(out: Tensor, x: Tensor, w: Matrix | Int8Matrix, rows: number): void {
    this.matmulPtr(ptrOf(out), ptrOf(x), w, rows);
  }

  async argmaxRows(x: Tensor, rows: Int32Array, width: number): Promise<Int32Array> {
    for (const r of rows) if (r < 0 || (r + 1) * width > x.length) throw new Error(`argmaxRows: row ${r} outside a tensor of ${Math.floor(x.length / width)} rows`);
    const out = this.heap.scratch('argmax.out', rows.length * 4);
    // One thread: a row is a ~25 µs scan at memory speed, while waking the workers on a busy machine
    // measured 2-3 ms for 8 rows (bench:lm-head) against 0.4 ms on the calling thread alone.
    this.pool.run('argmax_rows', [out, ptrOf(x), this.i32In('argmax.rows', rows), rows.length, width], 1);
    return this.heap.i32.slice(out / 4, out / 4 + rows.length);
  }

  /** Activations of `rows` × K quantized to int8 (held as i16) per 32-group: pointers to q, d, c. */
  quantize(x: number, rows: number, K: number, tag = 'q'): [number, number, number] {
    if (K % 32 !== 0) throw new Error(`int4 matmul: in_features ${K} is not a multiple of 32`);
    const G = K / 32;
    const xq = this.heap.scratch(`${tag}.xq`, rows * K * 2);
    const xd = this.heap.scratch(`${tag}.xd`, rows * G * 4);
    const xc = this.heap.scratch(`${tag}.xc`, rows * G * 4);
    this.ex.quantize_q8(x, rows, K, xq, xd, xc);
    return [xq, xd, xc];
  }

  /** out = W·x for an int4 W with x already quantized (so MoE's gate and up share one quantization). */
  q4Quantized(out: number, q: [number, number, number], w: WasmInt4, rows: number): void {
    const nth = w.rows * w.cols * rows >= this.minMacs ? this.pool.threads : 1;
    this.pool.run(w.layout === 'q4x4' ? 'q4x4_matmul' : 'q4_matmul', [out, q[0], q[1], q[2], w.w, w.s, w.rows, w.cols, rows], nth);
  }

  private matmulPtr(out: number, x: number, w: Matrix | Int8Matrix, rows: number): void {
    const m = matOf(w);
    if (m.kind === 'int4') {
      this.q4Quantized(out, this.quantize(x, rows, m.cols), m, rows);
    } else if (m.kind === 'int8') {
      const a = this.heap.scratch('q8.a', rows * m.cols * 2);
      const d = this.heap.scratch('q8.d', rows * 4);
      this.ex.quantize_a16(x, rows, m.cols, a, d);
      const nth = m.rows * m.cols * rows >= this.minMacs ? this.pool.threads : 1;
      this.pool.run('q8_matmul', [out, a, d, m.w, m.s, m.rows, m.cols, rows], nth);
    } else {
      const nth = m.rows * m.cols * rows >= this.minMacs ? this.pool.threads : 1;
      const xp = this.heap.scratch('bf16.x', rows * m.cols * 4);
      this.ex.deinterleave8(xp, x, rows, m.cols);
      this.pool.run('bf16_matmul', [out, xp, m.w, m.rows, m.cols, rows], nth);
    }
  }

  // ── attention (MLA) ───────────────────────────────────────────────────────
  rope(x: Tensor, rows: number, positions: Int32Array, heads: number, headStride: number, offset: number, ropeDim: number, cos: Tensor, sin: Tensor): void {
    const half = ropeDim / 2;
    for (let r = 0; r < rows; r++) {
      if ((positions[r] + 1) * half > cos.length) throw new Error(`rope: position ${positions[r]} beyond the precomputed table`);
    }
    this.ex.rope(ptrOf(x), rows, this.i32In('positions', positions), heads, headStride, offset, ropeDim, ptrOf(cos), ptrOf(sin));
  }
  kvWrite(cache: KvCache, layer: number, latent: Tensor, kRope: Tensor, rows: number, slots: Int32Array): void {
    const c = kvOf(cache);
    const { kvLoraRank: L, ropeDim: R, blockSize, numBlocks, numLayers } = c.spec;
    const f32 = this.heap.f32;
    const lat = ptrOf(latent) / 4;
    const kr = ptrOf(kRope) / 4;
    for (let r = 0; r < rows; r++) {
      const block = Math.floor(slots[r] / blockSize);
      if (block < 0 || block >= numBlocks) throw new Error(`KV slot ${slots[r]} is outside the cache (${numBlocks} blocks)`);
      const at = c.ptr / 4 + ((block * numLayers + layer) * blockSize + (slots[r] % blockSize)) * (L + R);
      f32.copyWithin(at, lat + r * L, lat + (r + 1) * L);
      f32.copyWithin(at + L, kr + r * R, kr + (r + 1) * R);
    }
  }
  mlaAttention(out: Tensor, qLatent: Tensor, qRope: Tensor, cache: KvCache, layer: number, heads: number, seqs: AttnSeq[], scale: number): void {
    const c = kvOf(cache);
    const { kvLoraRank: L, ropeDim: R, blockSize, numLayers, numBlocks } = c.spec;
    // Sequences as {rowStart, rowCount, contextLen, offset of its block table}, all tables concatenated.
    const desc = new Int32Array(seqs.length * 4);
    let tables = 0;
    let maxContext = 1;
    let totalRows = 0;
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i];
      if (s.rowStart !== totalRows) throw new Error('mlaAttention: sequences must cover the rows contiguously, in order');
      const needed = Math.ceil(s.contextLen / blockSize);
      if (s.blockTable.length < needed) throw new Error(`mlaAttention: block table of ${s.blockTable.length} blocks for ${s.contextLen} tokens`);
      for (let b = 0; b < needed; b++) {
        if (s.blockTable[b] < 0 || s.blockTable[b] >= numBlocks) throw new Error(`mlaAttention: block ${s.blockTable[b]} is outside the cache`);
      }
      desc.set([s.rowStart, s.rowCount, s.contextLen, tables], i * 4);
      tables += needed;
      maxContext = Math.max(maxContext, s.contextLen);
      totalRows += s.rowCount;
    }
    const allTables = new Int32Array(Math.max(tables, 1));
    for (let i = 0, at = 0; i < seqs.length; i++) {
      const needed = Math.ceil(seqs[i].contextLen / blockSize);
      allTables.set(seqs[i].blockTable.subarray(0, needed), at);
      at += needed;
    }
    const nth = totalRows * heads * maxContext * (L + R) >= this.minMacs ? this.pool.threads : 1;
    const scratch = this.heap.scratch('scores', this.pool.threads * heads * maxContext * 4);
    const descP = this.i32In('attn.desc', desc);
    const tablesP = this.i32In('attn.tables', allTables);
    this.pool.run(
      'mla_attention',
      [ptrOf(out), ptrOf(qLatent), ptrOf(qRope), c.ptr, numLayers, blockSize, L, R, layer, heads, descP, seqs.length, tablesP, totalRows, scale, scratch, maxContext],
      nth,
    );
  }
  headMatmul(out: Tensor, outHeadStride: number, x: Tensor, xHeadStride: number, xOffset: number, w: Bf16Matrix, heads: number, headRows: number, rowOffset: number, n: number, rows: number, transpose: boolean): void {
    const nth = rows * heads * n * w.cols >= this.minMacs ? this.pool.threads : 1;
    this.pool.run(
      'head_matmul',
      [ptrOf(out), outHeadStride, ptrOf(x), xHeadStride, xOffset, bf16Of(w).w, w.cols, heads, headRows, rowOffset, n, rows, transpose ? 1 : 0],
      nth,
    );
  }

  // ── MoE ───────────────────────────────────────────────────────────────────
  route(ids: Tensor, weights: Tensor, logits: Tensor, bias: Tensor | null, rows: number, p: RouterParams): void {
    const view = (x: Tensor) => this.heap.f32.subarray(ptrOf(x) / 4, ptrOf(x) / 4 + x.length);
    this.routerScratch ??= new RouterScratch(p.nExperts, p.nGroup);
    if (this.routerScratch.scores.length !== p.nExperts || this.routerScratch.groupScore.length !== p.nGroup) this.routerScratch = new RouterScratch(p.nExperts, p.nGroup);
    const [i, w, l, b] = [view(ids), view(weights), view(logits), bias ? view(bias) : null];
    for (let r = 0; r < rows; r++) routeRow(p, l, r, b, i, w, this.routerScratch);
  }
  moe(out: Tensor, x: Tensor, rows: number, experts: ExpertWeights[], idTensor: Tensor, weightTensor: Tensor, k: number): void {
    // ids are f32 in the wasm memory (see kernels.ts); read straight from there, no copy.
    const ids = this.heap.f32.subarray(ptrOf(idTensor) / 4, ptrOf(idTensor) / 4 + rows * k);
    const weights = this.heap.f32.subarray(ptrOf(weightTensor) / 4, ptrOf(weightTensor) / 4 + rows * k);
    const hidden = experts[0].gate.cols;
    const inter = experts[0].gate.rows;
    const o = ptrOf(out);
    this.heap.f32.fill(0, o / 4, o / 4 + rows * hidden);
    // Counting sort of the (row, slot) pairs by expert: rows of one expert become one contiguous batch.
    const n = rows * k;
    const count = new Int32Array(experts.length + 1);
    for (let i = 0; i < n; i++) {
      const e = ids[i];
      if (!(e >= 0 && e < experts.length && Number.isInteger(e))) throw new Error(`moe: expert id ${e} out of range (${experts.length} experts)`);
      count[e + 1]++;
    }
    for (let e = 0; e < experts.length; e++) count[e + 1] += count[e];
    const rowOf = new Int32Array(n);
    const wOf = new Float32Array(n);
    const fill = count.slice(0, experts.length);
    for (let i = 0; i < n; i++) {
      const at = fill[ids[i]]++;
      rowOf[at] = Math.floor(i / k);
      wOf[at] = weights[i];
    }
    const idxP = this.i32In('moe.idx', rowOf);
    const wP = this.f32In('moe.w', wOf);
    const maxRows = rows * k;
    const xg = this.heap.scratch('moe.x', maxRows * hidden * 4);
    const g = this.heap.scratch('moe.g', maxRows * inter * 4);
    const u = this.heap.scratch('moe.u', maxRows * inter * 4);
    const d = this.heap.scratch('moe.d', maxRows * hidden * 4);
    for (let e = 0; e < experts.length; e++) {
      const cnt = count[e + 1] - count[e];
      if (cnt === 0) continue;
      const { gate, up, down } = experts[e];
      this.ex.gather_rows(xg, ptrOf(x), idxP + count[e] * 4, cnt, hidden);
      const gm = matOf(gate);
      const um = matOf(up);
      if (gm.kind === 'int4' && um.kind === 'int4') {
        const q = this.quantize(xg, cnt, hidden, 'moe');
        this.q4Quantized(g, q, gm, cnt);
        this.q4Quantized(u, q, um, cnt);
      } else {
        this.matmulPtr(g, xg, gate, cnt);
        this.matmulPtr(u, xg, up, cnt);
      }
      this.ex.silu_mul(g, g, u, cnt * inter);
      this.matmulPtr(d, g, down, cnt);
      this.ex.scatter_add_rows(o, d, idxP + count[e] * 4, wP + count[e] * 4, cnt, hidden);
    }
  }
}
