/**
 * The WebGPU implementation of `Kernels` (kernels.ts): WGSL through Dawn. Every call only encodes work
 * (command-queue.ts); `read` submits and waits.
 *
 * Weight handles: int4 keeps the compressed-tensors packing as is ([N, K/8] u32 words, bf16 scales packed
 * two per u32); int8 (made at load) is its bytes four per u32 with the same scales; bf16 matrices are
 * their bit patterns two per u32. Nothing is repacked.
 * The KV cache is one f32 buffer laid out [block][layer][slot][latent | rope key], so copyKvBlock is one copy.
 *
 * Routing and the MoE's grouping by expert run on the device (shaders/moe.wgsl.ts), and logit rows are
 * gathered there, so a forward step reads the host exactly once: its logits (`reads` counts).
 */
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
import { checkReadInto } from '../kernels.ts';
import { checkInt8Shape } from '../../model/quant.ts';
import { CommandQueue, grid } from './command-queue.ts';
import { GpuBf16, GpuInt4, GpuInt8, GpuKvCache, GpuTensor, Scratch, matrixBytes, storage, whole } from './handles.ts';
import type { RowPart } from './handles.ts';
import type { GpuContext } from './device.ts';
import { attentionShader, headMatmulShader } from './shaders/attention.wgsl.ts';
import {
  EW,
  addShader,
  combineShader,
  copyWithinShader,
  embedShader,
  gatherShader,
  kvWriteShader,
  rmsnormShader,
  ropeShader,
  siluMulShader,
} from './shaders/elementwise.wgsl.ts';
import { ROW_TILE, matmulShader } from './shaders/matmul.wgsl.ts';
import { ROUTE_MAX_GROUPS, ROUTE_MAX_K, maxTiles, moeSortShader, routeShader } from './shaders/moe.wgsl.ts';
import { layerSlabs, slabBytes } from './expert-slabs.ts';
import type { LayerSlabs, Slab } from './expert-slabs.ts';

export interface WebGpuKernelsOptions {
  /** int4 matmuls sum each word's products in f16 (W4A16; see shaders/matmul.wgsl.ts). Needs shader-f16. */
  halfInt4?: boolean;
  /** Cap on one expert slab's bytes (default and maximum: the device's storage binding limit); tests lower it to get several slabs. */
  maxSlabBytes?: number;
  /** Cap on one weight buffer; larger matrices are uploaded in row parts (default and maximum: the storage binding limit). */
  maxWeightBufferBytes?: number;
}

export class WebGpuKernels implements Kernels {
  readonly name: string;
  readonly ctx: GpuContext;
  private halfInt4: boolean;
  private maxSlabBytes: number;
  private maxWeightBufferBytes: number;
  private q: CommandQueue;
  private moeX: Scratch;
  private moeGate: Scratch;
  private moeUp: Scratch;
  private moeY: Scratch;
  private moeSrc: Scratch;
  private moeInv: Scratch;
  private moeTiles: Scratch;
  /** Each MoE layer's experts packed into slabs, keyed by the layer's expert list. */
  private moeSlabs = new WeakMap<ExpertWeights[], LayerSlabs>();
  /** Expert matrices whose own buffers were freed by adoptExperts (they live only in their list's slabs). */
  private adopted = new WeakSet<Matrix>();
  private uploadedBytes = 0;
  private noBias: GPUBuffer;

  constructor(ctx: GpuContext, opts: WebGpuKernelsOptions = {}) {
    if (opts.halfInt4 && !ctx.shaderF16) throw new Error('webgpu: halfInt4 needs a device with shader-f16');
    this.ctx = ctx;
    this.halfInt4 = opts.halfInt4 ?? false;
    const bindingLimit = ctx.device.limits.maxStorageBufferBindingSize;
    this.maxSlabBytes = Math.min(opts.maxSlabBytes ?? bindingLimit, bindingLimit);
    this.maxWeightBufferBytes = Math.min(opts.maxWeightBufferBytes ?? bindingLimit, bindingLimit);
    this.name = `webgpu${ctx.subgroups ? '+subgroups' : ''}${this.halfInt4 ? '+f16' : ''} (${ctx.description})`;
    this.q = new CommandQueue(ctx.device);
    this.moeX = new Scratch(this.q);
    this.moeGate = new Scratch(this.q);
    this.moeUp = new Scratch(this.q);
    this.moeY = new Scratch(this.q);
    this.moeSrc = new Scratch(this.q);
    this.moeInv = new Scratch(this.q);
    this.moeTiles = new Scratch(this.q);
    this.noBias = this.buffer(16);
  }

  /** Host reads so far (each is a submit and a wait); a forward step should add exactly one. */
  get reads(): number {
    return this.q.reads;
  }

  /** Bytes of weights on the device (uploads and expert slabs, less what adoptExperts freed); tensors and the KV cache excluded. */
  get weightBytes(): number {
    return this.uploadedBytes;
  }

  /** Dispatches encoded so far; `moe` adds the same number whatever the layer's expert count. */
  get dispatches(): number {
    return this.q.dispatched;
  }

  // ── memory ────────────────────────────────────────────────────────────────
  tensor(length: number): Tensor {
    // createBuffer zero-fills.
    return new GpuTensor(length, this.buffer(length * 4));
  }

  write(dst: Tensor, src: Float32Array, dstOffset = 0): void {
    this.q.write(buf(dst), dstOffset * 4, src);
  }

  async read(src: Tensor, offset = 0, length = src.length - offset, into?: Float32Array): Promise<Float32Array> {
    if (length <= 0) return new Float32Array(0);
    const values = new Float32Array(await this.q.read(buf(src), offset * 4, length * 4));
    if (!into) return values;
    checkReadInto(into, length);
    into.set(values);
    return into.subarray(0, length);
  }

  uploadF32(data: Float32Array): Tensor {
    return new GpuTensor(data.length, this.upload(data));
  }

  uploadInt4(w: Int4Host): Int4Matrix {
    if (w.cols % 32 !== 0) throw new Error(`int4 cols ${w.cols} is not a multiple of 32`);
    const pw = w.cols / 8;
    const sw = w.cols / 32;
    const parts = this.rowParts(w.rows, w.cols / 2, (r0, r1) => [this.upload(w.packed.subarray(r0 * pw, r1 * pw)), this.upload(w.scales.subarray(r0 * sw, r1 * sw))]);
    const m = new GpuInt4(w.rows, w.cols, parts);
    this.uploadedBytes += matrixBytes(m);
    return m;
  }

  uploadInt8(w: Int8Host): Int8Matrix {
    checkInt8Shape(w.q, w.scales, w.rows, w.cols);
    const sw = w.cols / 32;
    const words = (r0: number, r1: number) => {
      const q = w.q.subarray(r0 * w.cols, r1 * w.cols);
      return q.byteOffset % 4 === 0 ? new Int32Array(q.buffer, q.byteOffset, q.length / 4) : new Int32Array(q.slice().buffer);
    };
    const m = new GpuInt8(w.rows, w.cols, this.rowParts(w.rows, w.cols, (r0, r1) => [this.upload(words(r0, r1)), this.upload(w.scales.subarray(r0 * sw, r1 * sw))]));
    this.uploadedBytes += matrixBytes(m);
    return m;
  }

  uploadBf16(w: Bf16Host): Bf16Matrix {
    const m = new GpuBf16(w.rows, w.cols, this.rowParts(w.rows, w.cols * 2, (r0, r1) => [this.upload(w.data.subarray(r0 * w.cols, r1 * w.cols))]));
    this.uploadedBytes += matrixBytes(m);
    return m;
  }

  /** One part when the matrix fits a weight buffer; otherwise as many rows per part as fit (an embedding or lm_head past the binding limit). */
  private rowParts(rows: number, rowBytes: number, upload: (r0: number, r1: number) => GPUBuffer[]): RowPart[] {
    const perPart = Math.max(1, Math.floor(this.maxWeightBufferBytes / rowBytes));
    const parts: RowPart[] = [];
    for (let r0 = 0; r0 < Math.max(1, rows); r0 += perPart) {
      const r1 = Math.min(rows, r0 + perPart);
      parts.push({ row0: r0, rows: r1 - r0, buffers: upload(r0, r1) });
    }
    return parts;
  }

  /** Packs the layer's slabs now and frees each expert's own buffers once the copies are submitted. */
  adoptExperts(experts: ExpertWeights[]): void {
    if (experts.length === 0) throw new Error('moe: adoptExperts got an empty expert list');
    this.slabsFor(experts);
    for (const e of experts) {
      for (const m of [e.gate, e.up, e.down]) {
        if (this.adopted.has(m)) continue;
        this.adopted.add(m);
        const own = (m as GpuInt4 | GpuBf16).parts.flatMap((p) => p.buffers);
        for (const b of own) {
          this.uploadedBytes -= b.size;
          this.q.retire(b);
        }
      }
    }
    // Submitting the copies lets the retired buffers go now, so a large model never holds two copies of more than one layer.
    this.q.submit();
  }

  private slabsFor(experts: ExpertWeights[]): LayerSlabs {
    const had = this.moeSlabs.get(experts);
    const slabs = layerSlabs(this.moeSlabs, this.q, experts, this.maxSlabBytes, this.adopted);
    if (slabs !== had) this.uploadedBytes += slabBytes(slabs) - (had ? slabBytes(had) : 0);
    return slabs;
  }

  kvCache(spec: KvCacheSpec): KvCache {
    const floats = spec.numBlocks * spec.numLayers * spec.blockSize * (spec.kvLoraRank + spec.ropeDim);
    return new GpuKvCache(spec, this.buffer(floats * 4));
  }

  copyKvBlock(cache: KvCache, from: number, to: number): void {
    const c = cache as GpuKvCache;
    const n = c.blockFloats;
    const p = this.q.pipeline('copyWithin', () => copyWithinShader);
    this.q.dispatch(p, [this.q.params([n, from * n, to * n]), c.buffer], grid(n, EW));
  }

  // ── elementwise and normalization ─────────────────────────────────────────
  embed(out: Tensor, table: Bf16Matrix, ids: Int32Array): void {
    const t = table as GpuBf16;
    // WebGPU clamps out-of-bounds reads instead of failing, so a bad id would embed garbage silently.
    for (const id of ids) if (id < 0 || id >= t.rows) throw new Error(`embed: token id ${id} outside vocabulary of ${t.rows}`);
    const p = this.q.pipeline('embed', () => embedShader);
    const n = ids.length * t.cols;
    const idsBinding = this.q.hostData(ids);
    // A table split at the binding limit: each part writes the rows whose ids it holds.
    for (const part of t.parts) {
      this.q.dispatch(p, [this.q.params([ids.length, t.cols, part.row0, part.row0 + part.rows]), idsBinding, part.buffers[0], buf(out)], grid(n, EW));
    }
  }

  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, rows: number, dim: number, eps: number): void {
    const inPlace = out === x;
    const p = this.q.pipeline(`rmsnorm/${inPlace}`, () => rmsnormShader(inPlace));
    const bufs = [this.q.params([dim, eps], [1]), buf(out), buf(weight)];
    if (!inPlace) bufs.push(buf(x));
    this.q.dispatch(p, bufs, [rows, 1, 1]);
  }

  add(x: Tensor, y: Tensor, n: number): void {
    if (x === y) throw new Error('add: x and y must be different tensors');
    const p = this.q.pipeline('add', () => addShader);
    this.q.dispatch(p, [this.q.params([n]), buf(x), buf(y)], grid(n, EW));
  }

  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void {
    const alias = out === gate ? 'gate' : out === up ? 'up' : 'none';
    const p = this.q.pipeline(`siluMul/${alias}`, () => siluMulShader(alias));
    const bufs = [this.q.params([n]), buf(out)];
    if (alias !== 'gate') bufs.push(buf(gate));
    if (alias !== 'up') bufs.push(buf(up));
    this.q.dispatch(p, bufs, grid(n, EW));
  }

  gatherRows(out: Tensor, x: Tensor, rows: Int32Array, width: number): void {
    for (const r of rows) if (r < 0 || (r + 1) * width > x.length) throw new Error(`gatherRows: row ${r} outside a tensor of ${x.length / width} rows`);
    this.q.dispatch(
      this.q.pipeline('gather', () => gatherShader),
      [this.q.params([rows.length, width]), buf(x), this.q.hostData(rows), buf(out)],
      grid(rows.length * width, EW),
    );
  }

  // ── matmul ────────────────────────────────────────────────────────────────
  matmul(out: Tensor, x: Tensor, w: Matrix | Int8Matrix, rows: number): void {
    this.matmulAt(buf(out), 0, buf(x), 0, w, rows);
  }

  /** out[outOff + r*N + n] = Σ_k W[n,k] · x[xOff + r*K + k]; offsets in elements. */
  private matmulAt(out: GPUBuffer, outOff: number, x: GPUBuffer, xOff: number, w: Matrix | Int8Matrix, rows: number): void {
    if (rows === 0) return;
    if (w.kind !== 'int8' && this.adopted.has(w)) throw new Error('matmul: this expert matrix was adopted into MoE slabs (adoptExperts) and has no buffer of its own');
    const int4 = w.kind === 'int4';
    const int8 = w.kind === 'int8';
    const subgroups = this.ctx.subgroups;
    const tile = rows === 1 ? 1 : ROW_TILE;
    const half = int4 && this.halfInt4;
    const p = this.q.pipeline(`matmul/${w.kind}/${subgroups}/${tile}/${half}`, () => matmulShader({ int4, int8, subgroups, tile, half }));
    const m = w as GpuInt4 | GpuBf16 | GpuInt8;
    // One dispatch per row part (one part unless the matrix passed the binding limit), each writing its columns of the output rows.
    for (const part of m.parts) {
      const params = this.q.params([part.rows, w.cols, rows, xOff, outOff + part.row0, w.rows]);
      this.q.dispatch(p, [params, x, out, ...part.buffers], grid(part.rows, 1, Math.ceil(rows / tile)));
    }
  }

  // ── attention (MLA) ───────────────────────────────────────────────────────
  rope(
    x: Tensor,
    rows: number,
    positions: Int32Array,
    heads: number,
    headStride: number,
    offset: number,
    ropeDim: number,
    cos: Tensor,
    sin: Tensor,
  ): void {
    const p = this.q.pipeline('rope', () => ropeShader);
    const half = ropeDim / 2;
    const params = this.q.params([rows, heads, headStride, offset, half]);
    this.q.dispatch(
      p,
      [params, buf(x), this.q.hostData(positions.subarray(0, rows)), buf(cos), buf(sin)],
      grid(rows * heads * half, EW),
    );
  }

  kvWrite(cache: KvCache, layer: number, latent: Tensor, kRope: Tensor, rows: number, slots: Int32Array): void {
    const s = cache.spec;
    const p = this.q.pipeline('kvWrite', () => kvWriteShader);
    const params = this.q.params([rows, s.kvLoraRank, s.ropeDim, s.blockSize, s.numLayers, layer]);
    const bufs = [params, (cache as GpuKvCache).buffer, buf(latent), buf(kRope), this.q.hostData(slots.subarray(0, rows))];
    this.q.dispatch(p, bufs, grid(rows * (s.kvLoraRank + s.ropeDim), EW));
  }

  mlaAttention(
    out: Tensor,
    qLatent: Tensor,
    qRope: Tensor,
    cache: KvCache,
    layer: number,
    heads: number,
    seqs: AttnSeq[],
    scale: number,
  ): void {
    const s = cache.spec;
    let rows = 0;
    let tableLen = 0;
    for (const seq of seqs) {
      rows = Math.max(rows, seq.rowStart + seq.rowCount);
      tableLen += seq.blockTable.length;
    }
    if (rows === 0) return;
    // Per row: its position and where its sequence's block table starts in `tables`.
    const rowInfo = new Uint32Array(rows * 2);
    const tables = new Int32Array(Math.max(1, tableLen));
    let off = 0;
    for (const seq of seqs) {
      tables.set(seq.blockTable, off);
      for (let i = 0; i < seq.rowCount; i++) {
        rowInfo[2 * (seq.rowStart + i)] = seq.contextLen - seq.rowCount + i;
        rowInfo[2 * (seq.rowStart + i) + 1] = off;
      }
      off += seq.blockTable.length;
    }
    const p = this.q.pipeline(`mla/${s.kvLoraRank}/${s.ropeDim}`, () => attentionShader(s.kvLoraRank, s.ropeDim));
    const params = this.q.params([heads, s.kvLoraRank, s.ropeDim, s.blockSize, s.numLayers, layer, 0, scale], [7]);
    const bufs = [
      params,
      buf(qLatent),
      buf(qRope),
      (cache as GpuKvCache).buffer,
      this.q.hostData(rowInfo),
      this.q.hostData(tables),
      buf(out),
    ];
    this.q.dispatch(p, bufs, [heads, rows, 1]);
  }

  headMatmul(
    out: Tensor,
    outHeadStride: number,
    x: Tensor,
    xHeadStride: number,
    xOffset: number,
    w: Bf16Matrix,
    heads: number,
    headRows: number,
    rowOffset: number,
    n: number,
    rows: number,
    transpose: boolean,
  ): void {
    whole(w as GpuBf16, 'headMatmul');
    const p = this.q.pipeline('headMatmul', () => headMatmulShader);
    const params = this.q.params([
      rows, heads, outHeadStride, xHeadStride, xOffset, headRows, rowOffset, n, w.cols, transpose ? 1 : 0,
    ]);
    const width = transpose ? w.cols : n;
    this.q.dispatch(p, [params, buf(x), (w as GpuBf16).data, buf(out)], grid(rows * heads * width, 64));
  }

  // ── MoE ───────────────────────────────────────────────────────────────────
  /** shaders/moe.wgsl.ts's routeShader: one workgroup per row; ids and weights stay on the device. */
  route(ids: Tensor, weights: Tensor, logits: Tensor, bias: Tensor | null, rows: number, p: RouterParams): void {
    if (p.nGroup > ROUTE_MAX_GROUPS || p.k > ROUTE_MAX_K) throw new Error(`route: n_group ${p.nGroup} / k ${p.k} above the shader's ${ROUTE_MAX_GROUPS} / ${ROUTE_MAX_K}`);
    if (p.nExperts % p.nGroup !== 0) throw new Error(`route: ${p.nExperts} experts do not split into ${p.nGroup} groups`);
    this.checkWorkgroupBytes(p.nExperts * 12 + 1024, `route over ${p.nExperts} experts`);
    const pipe = this.q.pipeline(`route/${p.nExperts}`, () => routeShader(p.nExperts));
    const params = this.q.params([rows, p.k, p.nGroup, p.topkGroup, p.normTopkProb ? 1 : 0, bias ? 1 : 0, p.scalingFactor], [6]);
    this.q.dispatch(pipe, [params, buf(logits), bias ? buf(bias) : this.noBias, buf(ids), buf(weights)], grid(rows, 1));
  }

  /**
   * Grouped by expert, all on the device: sort the (row, choice) pairs by expert (moeSortShader, which
   * also writes the tile list), gather inputs into that order, run gate, up and down as one grouped
   * matmul per role and slab over every expert's tiles (expert-slabs.ts; unused experts have no tiles, so
   * their weights are not read), then combine with one writer per output element.
   * Encoding cost: 4 + 3 × slabs dispatches, independent of the number of experts for a uniform model.
   */
  moe(out: Tensor, x: Tensor, rows: number, experts: ExpertWeights[], ids: Tensor, weights: Tensor, k: number): void {
    if (rows === 0) return;
    const E = experts.length;
    const count = rows * k;
    const hidden = experts[0].gate.cols;
    const inter = experts[0].gate.rows;
    const slabs = this.slabsFor(experts);
    // Decode (one row) runs the GEMV variant; an expert then has one row unless ids repeat within the row.
    const tile = rows === 1 ? 1 : ROW_TILE;
    const bound = maxTiles(count, E, tile);
    const tiles = this.moeTiles.get(E + 1 + 3 * bound);
    const src = this.moeSrc.get(count);
    const inv = this.moeInv.get(count);
    const xg = this.moeX.get(count * hidden);
    const g = this.moeGate.get(count * inter);
    const u = this.moeUp.get(count * inter);
    const y = this.moeY.get(count * hidden);
    this.checkWorkgroupBytes(E * 12, `moe over ${E} experts`);
    this.q.dispatch(
      this.q.pipeline(`moeSort/${E}`, () => moeSortShader(E)),
      [this.q.params([count, k, tile]), buf(ids), src, inv, tiles],
      [1, 1, 1],
    );
    this.q.dispatch(
      this.q.pipeline('gather', () => gatherShader),
      [this.q.params([count, hidden]), buf(x), src, xg],
      grid(count * hidden, EW),
    );
    this.groupedMatmul(g, xg, slabs.roles.gate, inter, hidden, E, tiles, bound, tile);
    this.groupedMatmul(u, xg, slabs.roles.up, inter, hidden, E, tiles, bound, tile);
    this.q.dispatch(
      this.q.pipeline('siluMul/gate', () => siluMulShader('gate')),
      [this.q.params([count * inter]), g, u],
      grid(count * inter, EW),
    );
    this.groupedMatmul(y, g, slabs.roles.down, hidden, inter, E, tiles, bound, tile);
    this.q.dispatch(
      this.q.pipeline('combine', () => combineShader),
      [this.q.params([rows, hidden, k]), y, inv, buf(weights), buf(out)],
      grid(rows * hidden, EW),
    );
  }

  /** out = W_e · x over every tile of the sorted rows, one dispatch per slab (and per 65535 tiles). */
  private groupedMatmul(out: GPUBuffer, x: GPUBuffer, slabs: Slab[], n: number, kDim: number, E: number, tiles: GPUBuffer, bound: number, tile: 1 | typeof ROW_TILE): void {
    const subgroups = this.ctx.subgroups;
    const maxZ = this.ctx.device.limits.maxComputeWorkgroupsPerDimension;
    for (const s of slabs) {
      const int4 = s.kind === 'int4';
      const half = int4 && this.halfInt4;
      const p = this.q.pipeline(`matmul/${s.kind}/${subgroups}/${tile}/${half}/grouped`, () => matmulShader({ int4, subgroups, tile, half, grouped: true }));
      // Tiles of this slab ≤ min(all tiles, its experts' rows): the bound over all experts is enough.
      for (let z = 0; z < bound; z += maxZ) {
        const params = this.q.params([n, kDim, s.e0, s.e1, E, s.wStride, s.sStride, z]);
        const bufs = int4 ? [params, x, out, s.wq, s.ws!, tiles] : [params, x, out, s.wq, tiles];
        const [gx, gy] = grid(n, 1);
        this.q.dispatch(p, bufs, [gx, gy, Math.min(maxZ, bound - z)]);
      }
    }
  }

  private checkWorkgroupBytes(bytes: number, what: string): void {
    const max = this.ctx.device.limits.maxComputeWorkgroupStorageSize;
    if (bytes > max) throw new Error(`webgpu: ${what} needs ${bytes} bytes of workgroup memory; this device allows ${max}`);
  }

  // ── helpers ───────────────────────────────────────────────────────────────
  private buffer(bytes: number): GPUBuffer {
    // Storage bindings are whole multiples of 4 bytes; 16 keeps zero-length tensors bindable.
    return this.ctx.device.createBuffer({ size: this.checkedSize(bytes), usage: storage() });
  }

  /** Every buffer is bound whole, so it must fit one storage binding (Dawn would only log a validation error). */
  private checkedSize(bytes: number): number {
    const max = this.ctx.device.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new Error(`webgpu: a ${(bytes / 2 ** 20).toFixed(0)} MiB buffer exceeds this adapter's storage binding limit of ${(max / 2 ** 20).toFixed(0)} MiB`);
    }
    return Math.max(16, Math.ceil(bytes / 4) * 4);
  }

  private upload(data: Float32Array | Int32Array | Uint16Array): GPUBuffer {
    const b = this.ctx.device.createBuffer({ size: this.checkedSize(data.byteLength), usage: storage(), mappedAtCreation: true });
    new Uint8Array(b.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    b.unmap();
    return b;
  }
}

function buf(t: Tensor): GPUBuffer {
  if (!(t instanceof GpuTensor)) throw new Error('webgpu kernels: tensor made by another backend');
  return t.buffer;
}
