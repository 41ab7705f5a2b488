/**
 * The reference backend: every op of `kernels.ts` as obvious scalar loops over Float32Arrays.
 * Slow and plainly correct; it is the oracle the WASM and WebGPU backends are tested against.
 *
 * Choices an oracle has to make, written down:
 * - Weights are dequantized to f32 at upload. bf16, int4 and int8 (see `model/quant.ts`) are all exact
 *   in f32, so this loses nothing and every matmul is the same loop.
 * - Dot products and softmax sums accumulate in f64 (JS numbers) and round to f32 once on store,
 *   so the reference is at least as accurate as any backend it judges.
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
} from './kernels.ts';
import { checkReadInto } from './kernels.ts';
import { bf16ArrayToF32, checkInt4Shape, dequantInt4, dequantInt8 } from '../model/quant.ts';
import { routeRow, RouterScratch } from '../model/moe-router.ts';

class RefTensor implements Tensor {
  readonly data: Float32Array;
  constructor(data: Float32Array) {
    this.data = data;
  }
  get length(): number {
    return this.data.length;
  }
}

interface RefInt4 extends Int4Matrix {
  readonly f32: Float32Array; // (rows, cols) dequantized
}
interface RefBf16 extends Bf16Matrix {
  readonly f32: Float32Array; // (rows, cols)
}
interface RefInt8 extends Int8Matrix {
  readonly f32: Float32Array; // (rows, cols) dequantized
}
type RefMatrix = RefInt4 | RefBf16 | RefInt8;

interface RefKvCache extends KvCache {
  /** (numBlocks, numLayers, blockSize, kvLoraRank + ropeDim) */
  readonly data: Float32Array;
}

function t(x: Tensor): Float32Array {
  if (!(x instanceof RefTensor)) throw new Error('reference kernels: tensor made by another backend');
  return x.data;
}
function m(w: Matrix | Int8Matrix): Float32Array {
  const f32 = (w as Partial<RefMatrix>).f32;
  if (!f32) throw new Error('reference kernels: matrix uploaded to another backend');
  return f32;
}
function kv(c: KvCache): RefKvCache {
  if (!(c as Partial<RefKvCache>).data) throw new Error('reference kernels: KV cache made by another backend');
  return c as RefKvCache;
}

/** Offset of (slot, layer) in the cache: slot = block * blockSize + offsetInBlock. */
function kvOffset(spec: KvCacheSpec, layer: number, slot: number): number {
  const block = Math.floor(slot / spec.blockSize);
  const inBlock = slot % spec.blockSize;
  if (block < 0 || block >= spec.numBlocks) throw new Error(`KV slot ${slot} is outside the cache (${spec.numBlocks} blocks)`);
  return ((block * spec.numLayers + layer) * spec.blockSize + inBlock) * (spec.kvLoraRank + spec.ropeDim);
}

export class ReferenceKernels implements Kernels {
  readonly name = 'reference';

  // ── memory ────────────────────────────────────────────────────────────────
  tensor(length: number): Tensor {
    return new RefTensor(new Float32Array(length));
  }
  write(dst: Tensor, src: Float32Array, dstOffset = 0): void {
    t(dst).set(src, dstOffset);
  }
  async read(src: Tensor, offset = 0, length?: number, into?: Float32Array): Promise<Float32Array> {
    const d = t(src);
    const values = d.subarray(offset, length === undefined ? d.length : offset + length);
    if (!into) return values.slice();
    checkReadInto(into, values.length);
    into.set(values);
    return into.subarray(0, values.length);
  }
  uploadF32(data: Float32Array): Tensor {
    return new RefTensor(Float32Array.from(data));
  }
  uploadInt4(w: Int4Host): Int4Matrix {
    checkInt4Shape(w.packed, w.scales, w.rows, w.cols);
    const r: RefInt4 = { kind: 'int4', rows: w.rows, cols: w.cols, f32: dequantInt4(w.packed, w.scales, w.rows, w.cols) };
    return r;
  }
  uploadBf16(w: Bf16Host): Bf16Matrix {
    if (w.data.length !== w.rows * w.cols) throw new Error(`bf16 matrix [${w.rows}, ${w.cols}]: ${w.data.length} values`);
    const r: RefBf16 = { kind: 'bf16', rows: w.rows, cols: w.cols, f32: bf16ArrayToF32(w.data) };
    return r;
  }
  uploadInt8(w: Int8Host): Int8Matrix {
    const r: RefInt8 = { kind: 'int8', rows: w.rows, cols: w.cols, f32: dequantInt8(w.q, w.scales, w.rows, w.cols) };
    return r;
  }
  kvCache(spec: KvCacheSpec): KvCache {
    const width = spec.kvLoraRank + spec.ropeDim;
    const c: RefKvCache = { spec: { ...spec }, data: new Float32Array(spec.numBlocks * spec.numLayers * spec.blockSize * width) };
    return c;
  }
  copyKvBlock(cache: KvCache, from: number, to: number): void {
    const c = kv(cache);
    const { numLayers, blockSize, kvLoraRank, ropeDim } = c.spec;
    const blockLen = numLayers * blockSize * (kvLoraRank + ropeDim);
    c.data.copyWithin(to * blockLen, from * blockLen, (from + 1) * blockLen);
  }

  // ── elementwise and normalization ─────────────────────────────────────────
  embed(out: Tensor, table: Bf16Matrix, ids: Int32Array): void {
    const o = t(out);
    const w = m(table);
    const dim = table.cols;
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (id < 0 || id >= table.rows) throw new Error(`embed: token id ${id} outside vocabulary of ${table.rows}`);
      for (let i = 0; i < dim; i++) o[r * dim + i] = w[id * dim + i];
    }
  }
  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, rows: number, dim: number, eps: number): void {
    const o = t(out);
    const xs = t(x);
    const w = t(weight);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += xs[r * dim + i] * xs[r * dim + i];
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) o[r * dim + i] = xs[r * dim + i] * inv * w[i];
    }
  }
  add(x: Tensor, y: Tensor, n: number): void {
    const a = t(x);
    const b = t(y);
    for (let i = 0; i < n; i++) a[i] += b[i];
  }
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void {
    const o = t(out);
    const g = t(gate);
    const u = t(up);
    for (let i = 0; i < n; i++) o[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  }

  gatherRows(out: Tensor, x: Tensor, rows: Int32Array, width: number): void {
    const o = t(out);
    const xs = t(x);
    for (let i = 0; i < rows.length; i++) {
      for (let c = 0; c < width; c++) o[i * width + c] = xs[rows[i] * width + c];
    }
  }

  // ── matmul ────────────────────────────────────────────────────────────────
  matmul(out: Tensor, x: Tensor, w: Matrix | Int8Matrix, rows: number): void {
    const o = t(out);
    const xs = t(x);
    const wf = m(w);
    const { rows: n, cols: k } = w;
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let j = 0; j < k; j++) acc += wf[i * k + j] * xs[r * k + j];
        o[r * n + i] = acc;
      }
    }
  }

  async argmaxRows(x: Tensor, rows: Int32Array, width: number): Promise<Int32Array> {
    const xs = t(x);
    const out = new Int32Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const row = xs.subarray(rows[i] * width, (rows[i] + 1) * width);
      let best = 0;
      let nan = false;
      for (let j = 0; j < width; j++) {
        if (row[j] > row[best]) best = j;
        if (Number.isNaN(row[j])) nan = true;
      }
      out[i] = nan || !Number.isFinite(row[best]) ? -1 : best;
    }
    return out;
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
    const xs = t(x);
    const c = t(cos);
    const s = t(sin);
    const half = ropeDim / 2;
    for (let r = 0; r < rows; r++) {
      const pos = positions[r];
      if ((pos + 1) * half > c.length) throw new Error(`rope: position ${pos} beyond the precomputed table`);
      for (let h = 0; h < heads; h++) {
        const base = r * heads * headStride + h * headStride + offset;
        for (let i = 0; i < half; i++) {
          const x0 = xs[base + 2 * i];
          const x1 = xs[base + 2 * i + 1];
          const ci = c[pos * half + i];
          const si = s[pos * half + i];
          xs[base + 2 * i] = x0 * ci - x1 * si;
          xs[base + 2 * i + 1] = x0 * si + x1 * ci;
        }
      }
    }
  }
  kvWrite(cache: KvCache, layer: number, latent: Tensor, kRope: Tensor, rows: number, slots: Int32Array): void {
    const c = kv(cache);
    const { kvLoraRank, ropeDim } = c.spec;
    const lat = t(latent);
    const kr = t(kRope);
    for (let r = 0; r < rows; r++) {
      const at = kvOffset(c.spec, layer, slots[r]);
      for (let i = 0; i < kvLoraRank; i++) c.data[at + i] = lat[r * kvLoraRank + i];
      for (let i = 0; i < ropeDim; i++) c.data[at + kvLoraRank + i] = kr[r * ropeDim + i];
    }
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
    const c = kv(cache);
    const { kvLoraRank: L, ropeDim: R, blockSize } = c.spec;
    const o = t(out);
    const ql = t(qLatent);
    const qr = t(qRope);
    const scores = new Float64Array(seqs.reduce((mx, s) => Math.max(mx, s.contextLen), 0));
    for (const seq of seqs) {
      for (let i = 0; i < seq.rowCount; i++) {
        const r = seq.rowStart + i;
        const pos = seq.contextLen - seq.rowCount + i; // this row's absolute position; it sees 0..pos
        for (let h = 0; h < heads; h++) {
          const qlBase = (r * heads + h) * L;
          const qrBase = (r * heads + h) * R;
          let max = -Infinity;
          for (let p = 0; p <= pos; p++) {
            const at = kvOffset(c.spec, layer, seq.blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize));
            let dot = 0;
            for (let j = 0; j < L; j++) dot += ql[qlBase + j] * c.data[at + j];
            for (let j = 0; j < R; j++) dot += qr[qrBase + j] * c.data[at + L + j];
            scores[p] = dot * scale;
            if (scores[p] > max) max = scores[p];
          }
          let sum = 0;
          for (let p = 0; p <= pos; p++) {
            scores[p] = Math.exp(scores[p] - max);
            sum += scores[p];
          }
          const oBase = (r * heads + h) * L;
          for (let j = 0; j < L; j++) {
            let acc = 0;
            for (let p = 0; p <= pos; p++) {
              const at = kvOffset(c.spec, layer, seq.blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize));
              acc += scores[p] * c.data[at + j];
            }
            o[oBase + j] = acc / sum;
          }
        }
      }
    }
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
    const o = t(out);
    const xs = t(x);
    const wf = m(w);
    const cols = w.cols;
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < heads; h++) {
        const xBase = (r * heads + h) * xHeadStride + xOffset;
        const oBase = (r * heads + h) * outHeadStride;
        const wBase = (h * headRows + rowOffset) * cols;
        if (!transpose) {
          for (let i = 0; i < n; i++) {
            let acc = 0;
            for (let k = 0; k < cols; k++) acc += wf[wBase + i * cols + k] * xs[xBase + k];
            o[oBase + i] = acc;
          }
        } else {
          for (let k = 0; k < cols; k++) {
            let acc = 0;
            for (let i = 0; i < n; i++) acc += wf[wBase + i * cols + k] * xs[xBase + i];
            o[oBase + k] = acc;
          }
        }
      }
    }
  }

  // ── MoE ───────────────────────────────────────────────────────────────────
  /** model/moe-router.ts is the definition; the oracle runs it as is, row by row. */
  route(ids: Tensor, weights: Tensor, logits: Tensor, bias: Tensor | null, rows: number, p: RouterParams): void {
    const s = new RouterScratch(p.nExperts, p.nGroup);
    for (let r = 0; r < rows; r++) routeRow(p, t(logits), r, bias ? t(bias) : null, t(ids), t(weights), s);
  }
  moe(out: Tensor, x: Tensor, rows: number, experts: ExpertWeights[], idTensor: Tensor, weightTensor: Tensor, k: number): void {
    const o = t(out);
    const xs = t(x);
    const ids = t(idTensor);
    const weights = t(weightTensor);
    const hidden = experts[0].gate.cols;
    const inter = experts[0].gate.rows;
    const act = new Float64Array(inter);
    const acc = new Float64Array(hidden);
    for (let r = 0; r < rows; r++) {
      acc.fill(0);
      for (let j = 0; j < k; j++) {
        const e = Number.isInteger(ids[r * k + j]) ? experts[ids[r * k + j]] : undefined;
        if (!e) throw new Error(`moe: expert id ${ids[r * k + j]} out of range (${experts.length} experts)`);
        const g = m(e.gate);
        const u = m(e.up);
        const d = m(e.down);
        // act = silu(gate·x) * (up·x), rounded to f32 as a backend's intermediate tensor would be
        for (let i = 0; i < inter; i++) {
          let gs = 0;
          let us = 0;
          for (let c = 0; c < hidden; c++) {
            gs += g[i * hidden + c] * xs[r * hidden + c];
            us += u[i * hidden + c] * xs[r * hidden + c];
          }
          gs = Math.fround(gs);
          us = Math.fround(us);
          act[i] = Math.fround((gs / (1 + Math.exp(-gs))) * us);
        }
        for (let c = 0; c < hidden; c++) {
          let ds = 0;
          for (let i = 0; i < inter; i++) ds += d[c * inter + i] * act[i];
          acc[c] += weights[r * k + j] * Math.fround(ds);
        }
      }
      for (let c = 0; c < hidden; c++) o[r * hidden + c] = acc[c];
    }
  }
}
