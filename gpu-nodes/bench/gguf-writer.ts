/**
 * A GGUF (version 3) file writer: typed metadata key/values, then tensor infos, then the tensor data,
 * each tensor aligned to `general.alignment` (32). The layout is ggml's `docs/gguf.md`:
 *
 *   magic "GGUF" · u32 version · u64 tensor count · u64 kv count
 *   kv:     string key · u32 value type · value          (arrays: u32 element type · u64 count · elements)
 *   tensor: string name · u32 n_dims · u64 ne[n_dims] (ne[0] = innermost, contiguous) · u32 ggml type · u64 offset
 *   padding to the alignment, then the data section (offsets are relative to its start)
 *
 * Strings are u64 length + UTF-8 bytes. Benchmark tooling: the product never writes GGUF.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

const ALIGNMENT = 32;

/** ggml tensor types we write. */
export const GGML_TYPE = { F32: 0, Q4_0: 2, BF16: 30 } as const;
export type GgmlType = (typeof GGML_TYPE)[keyof typeof GGML_TYPE];

const VT = { U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;

export type GgufValue =
  | { u32: number }
  | { i32: number }
  | { f32: number }
  | { bool: boolean }
  | { str: string }
  | { strs: string[] }
  | { i32s: Int32Array | number[] }
  | { f32s: Float32Array | number[] };

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the contiguous (innermost) dimension, i.e. numpy's shape reversed. */
  ne: number[];
  type: GgmlType;
  data: Uint8Array;
}

/** Bytes of one tensor of `type` with `ne` elements, as ggml lays it out. */
export function ggmlBytes(type: GgmlType, ne: number[]): number {
  const n = ne.reduce((a, b) => a * b, 1);
  if (type === GGML_TYPE.F32) return n * 4;
  if (type === GGML_TYPE.BF16) return n * 2;
  if (ne[0] % 32 !== 0) throw new Error(`q4_0 rows must be a multiple of 32 values, got ${ne[0]}`);
  return (n / 32) * 18;
}

class Out {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private view = new DataView(this.cur.buffer);
  private at = 0;
  length = 0;

  private room(n: number): void {
    if (this.at + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.at));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.view = new DataView(this.cur.buffer);
    this.at = 0;
  }
  u32(x: number): void {
    this.room(4);
    this.view.setUint32(this.at, x, true);
    this.at += 4;
    this.length += 4;
  }
  i32(x: number): void {
    this.room(4);
    this.view.setInt32(this.at, x, true);
    this.at += 4;
    this.length += 4;
  }
  f32(x: number): void {
    this.room(4);
    this.view.setFloat32(this.at, x, true);
    this.at += 4;
    this.length += 4;
  }
  u64(x: number): void {
    this.room(8);
    this.view.setBigUint64(this.at, BigInt(x), true);
    this.at += 8;
    this.length += 8;
  }
  u8(x: number): void {
    this.room(1);
    this.cur[this.at++] = x;
    this.length += 1;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.cur.set(b, this.at);
    this.at += b.length;
    this.length += b.length;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  pad(): void {
    while (this.length % ALIGNMENT !== 0) this.u8(0);
  }
  parts(): Uint8Array[] {
    return [...this.chunks, this.cur.subarray(0, this.at)];
  }
}

function writeValue(o: Out, v: GgufValue): void {
  if ('u32' in v) (o.u32(VT.U32), o.u32(v.u32));
  else if ('i32' in v) (o.u32(VT.I32), o.i32(v.i32));
  else if ('f32' in v) (o.u32(VT.F32), o.f32(v.f32));
  else if ('bool' in v) (o.u32(VT.BOOL), o.u8(v.bool ? 1 : 0));
  else if ('str' in v) (o.u32(VT.STRING), o.str(v.str));
  else if ('strs' in v) {
    o.u32(VT.ARRAY), o.u32(VT.STRING), o.u64(v.strs.length);
    for (const s of v.strs) o.str(s);
  } else if ('i32s' in v) {
    o.u32(VT.ARRAY), o.u32(VT.I32), o.u64(v.i32s.length);
    for (const x of v.i32s) o.i32(x);
  } else {
    o.u32(VT.ARRAY), o.u32(VT.F32), o.u64(v.f32s.length);
    for (const x of v.f32s) o.f32(x);
  }
}

/** Writes `path`: metadata in insertion order, tensors in the order given. */
export function writeGguf(path: string, metadata: Map<string, GgufValue>, tensors: GgufTensor[]): void {
  const head = new Out();
  head.bytes(new TextEncoder().encode('GGUF'));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.size);
  for (const [key, value] of metadata) {
    head.str(key);
    writeValue(head, value);
  }
  let offset = 0;
  for (const t of tensors) {
    const want = ggmlBytes(t.type, t.ne);
    if (t.data.length !== want) throw new Error(`gguf: tensor ${t.name} has ${t.data.length} bytes, type ${t.type} [${t.ne}] needs ${want}`);
    head.str(t.name);
    head.u32(t.ne.length);
    for (const d of t.ne) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offset += Math.ceil(want / ALIGNMENT) * ALIGNMENT;
  }
  head.pad();
  const fd = openSync(path, 'w');
  try {
    for (const p of head.parts()) writeSync(fd, p);
    const zeros = new Uint8Array(ALIGNMENT);
    for (const t of tensors) {
      writeSync(fd, t.data);
      const pad = (ALIGNMENT - (t.data.length % ALIGNMENT)) % ALIGNMENT;
      if (pad) writeSync(fd, zeros, 0, pad);
    }
  } finally {
    closeSync(fd);
  }
}
