/**
 * Number formats of the checkpoint, defined once: bf16 bit patterns and compressed-tensors
 * "pack-quantized" int4 (symmetric, group 32). Both the generator (make-model.ts) and every kernel
 * backend's upload path are checked against these functions.
 *
 * int4 layout for a Linear with out_features N and in_features K (K a multiple of 32):
 *   packed [N, K/8] int32: weight (n, k) is nibble k%8 of word [n, k/8] (bits 4*(k%8)..+3), stored
 *          unsigned as u = q + 8 with q ∈ [-8, 7] (compressed-tensors `pack_to_int32` adds the offset 8);
 *   scale  [N, K/32] bf16: w(n, k) = (u - 8) * scale[n, k/32].
 * (u - 8) has 4 significant bits and a bf16 scale 8, so the product is exact in f32: dequantization is
 * bit-exact with no rounding choices, which is why the tests can demand equality.
 */

export const GROUP_SIZE = 32;

// One scratch word for bit casts; module-level so conversions allocate nothing.
const castF32 = new Float32Array(1);
const castU32 = new Uint32Array(castF32.buffer);

/** bf16 bit pattern → f32 value (exact: bf16 is the top half of an f32). */
export function bf16ToF32(bits: number): number {
  castU32[0] = (bits & 0xffff) << 16;
  return castF32[0];
}

/** f32 value → bf16 bit pattern, round to nearest even (as torch's `.to(torch.bfloat16)`); NaN stays NaN. */
export function f32ToBf16(value: number): number {
  castF32[0] = value;
  const u = castU32[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return (u >>> 16) | 0x0040; // quiet NaN
  const rounded = u + 0x7fff + ((u >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** A whole bf16 array to f32. */
export function bf16ArrayToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outU32 = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outU32[i] = bits[i] << 16;
  return out;
}

/** A whole f32 array to bf16 bit patterns (round to nearest even). */
export function f32ArrayToBf16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16(values[i]);
  return out;
}

/** The signed int4 value q ∈ [-8, 7] of weight (n, k). */
export function int4At(packed: Int32Array, cols: number, n: number, k: number): number {
  const word = packed[n * (cols >> 3) + (k >> 3)];
  return ((word >>> (4 * (k & 7))) & 0xf) - 8;
}

/** Dequantized weight (n, k): the compressed-tensors definition, exact in f32. */
export function dequantInt4At(packed: Int32Array, scales: Uint16Array, cols: number, n: number, k: number): number {
  return Math.fround(int4At(packed, cols, n, k) * bf16ToF32(scales[n * (cols / GROUP_SIZE) + Math.floor(k / GROUP_SIZE)]));
}

/** Dequantize a whole [rows, cols] int4 matrix into row-major f32. */
export function dequantInt4(packed: Int32Array, scales: Uint16Array, rows: number, cols: number): Float32Array {
  checkInt4Shape(packed, scales, rows, cols);
  const out = new Float32Array(rows * cols);
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) out[n * cols + k] = dequantInt4At(packed, scales, cols, n, k);
  }
  return out;
}

export function checkInt4Shape(packed: Int32Array, scales: Uint16Array, rows: number, cols: number): void {
  if (cols % GROUP_SIZE !== 0) throw new Error(`int4 matrix: in_features ${cols} is not a multiple of ${GROUP_SIZE}`);
  if (packed.length !== (rows * cols) / 8) throw new Error(`int4 matrix [${rows}, ${cols}]: packed has ${packed.length} words, want ${(rows * cols) / 8}`);
  if (scales.length !== (rows * cols) / GROUP_SIZE) throw new Error(`int4 matrix [${rows}, ${cols}]: ${scales.length} scales, want ${(rows * cols) / GROUP_SIZE}`);
}

/**
 * Quantize a row-major f32 [rows, cols] matrix as compressed-tensors does for symmetric int4 groups:
 * scale = max|w| / 7.5 (its observer divides by (q_max - q_min) / 2), stored as bf16, then
 * q = clamp(round(w / scale), -8, 7) using the stored (rounded) scale; ties round to even like torch.round.
 */
export function quantizeInt4(w: Float32Array, rows: number, cols: number): { packed: Int32Array; scales: Uint16Array } {
  if (cols % GROUP_SIZE !== 0) throw new Error(`quantizeInt4: cols ${cols} is not a multiple of ${GROUP_SIZE}`);
  const packed = new Int32Array((rows * cols) / 8);
  const scales = new Uint16Array((rows * cols) / GROUP_SIZE);
  for (let n = 0; n < rows; n++) {
    for (let g = 0; g < cols / GROUP_SIZE; g++) {
      let maxAbs = 0;
      for (let i = 0; i < GROUP_SIZE; i++) maxAbs = Math.max(maxAbs, Math.abs(w[n * cols + g * GROUP_SIZE + i]));
      const scaleBits = f32ToBf16(maxAbs / 7.5);
      scales[n * (cols / GROUP_SIZE) + g] = scaleBits;
      const scale = bf16ToF32(scaleBits);
      for (let i = 0; i < GROUP_SIZE; i++) {
        const k = g * GROUP_SIZE + i;
        const q = scale === 0 ? 0 : Math.max(-8, Math.min(7, roundHalfEven(w[n * cols + k] / scale)));
        packed[n * (cols >> 3) + (k >> 3)] |= (q + 8) << (4 * (k & 7));
      }
    }
  }
  return { packed, scales };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * int8 (q8_0: symmetric, group 32, bf16 scales) for a matrix quantized at load, never read from a
 * checkpoint: scale = max|w| / 127 stored as bf16, then q = clamp(round(w / scale), -127, 127) with the
 * stored scale (ties to even), so the step the kernels multiply by is the one that rounded. Each weight
 * is off by at most scale/2 = max|w_group|/254 (plus the clamp when bf16 rounded the scale down).
 */
export function quantizeInt8(w: Float32Array, rows: number, cols: number): { q: Int8Array; scales: Uint16Array } {
  if (cols % GROUP_SIZE !== 0) throw new Error(`quantizeInt8: cols ${cols} is not a multiple of ${GROUP_SIZE}`);
  const q = new Int8Array(rows * cols);
  const scales = new Uint16Array((rows * cols) / GROUP_SIZE);
  for (let n = 0; n < rows; n++) {
    for (let g = 0; g < cols / GROUP_SIZE; g++) {
      const at = n * cols + g * GROUP_SIZE;
      let maxAbs = 0;
      for (let i = 0; i < GROUP_SIZE; i++) maxAbs = Math.max(maxAbs, Math.abs(w[at + i]));
      const scaleBits = f32ToBf16(maxAbs / 127);
      scales[n * (cols / GROUP_SIZE) + g] = scaleBits;
      const scale = bf16ToF32(scaleBits);
      for (let i = 0; i < GROUP_SIZE; i++) q[at + i] = scale === 0 ? 0 : Math.max(-127, Math.min(127, roundHalfEven(w[at + i] / scale)));
    }
  }
  return { q, scales };
}

export function checkInt8Shape(q: Int8Array, scales: Uint16Array, rows: number, cols: number): void {
  if (cols % GROUP_SIZE !== 0) throw new Error(`int8 matrix: in_features ${cols} is not a multiple of ${GROUP_SIZE}`);
  if (q.length !== rows * cols) throw new Error(`int8 matrix [${rows}, ${cols}]: ${q.length} weights, want ${rows * cols}`);
  if (scales.length !== (rows * cols) / GROUP_SIZE) throw new Error(`int8 matrix [${rows}, ${cols}]: ${scales.length} scales, want ${(rows * cols) / GROUP_SIZE}`);
}

/** Dequantize a whole [rows, cols] int8 matrix into row-major f32 (exact: 8 bits × a bf16 scale). */
export function dequantInt8(q: Int8Array, scales: Uint16Array, rows: number, cols: number): Float32Array {
  checkInt8Shape(q, scales, rows, cols);
  const out = new Float32Array(rows * cols);
  const G = cols / GROUP_SIZE;
  for (let n = 0; n < rows; n++) {
    for (let g = 0; g < G; g++) {
      const s = bf16ToF32(scales[n * G + g]);
      for (let i = 0; i < GROUP_SIZE; i++) out[n * cols + g * GROUP_SIZE + i] = q[n * cols + g * GROUP_SIZE + i] * s;
    }
  }
  return out;
}
