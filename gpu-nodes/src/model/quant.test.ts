// Number formats: bf16 rounding, and int4 dequantization checked bit for bit against the
// compressed-tensors definition re-derived here from raw little-endian bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bf16ToF32, dequantInt4, dequantInt8, f32ToBf16, quantizeInt4, quantizeInt8 } from './quant.ts';

/** compressed-tensors, from the bytes: int32 words little-endian, value i of a word at bits 4i..4i+3
 *  (so byte i/2, low nibble for even i), unsigned with offset 8; scale = upper half of an f32. */
function definition(packed: Int32Array, scales: Uint16Array, rows: number, cols: number, n: number, k: number): number {
  const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  const word = n * (cols / 8) + Math.floor(k / 8);
  const i = k % 8;
  const byte = bytes[word * 4 + Math.floor(i / 2)];
  const u = i % 2 === 0 ? byte & 0x0f : byte >> 4;
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint16(2, scales[n * (cols / 32) + Math.floor(k / 32)], true); // high half, little-endian f32
  dv.setUint16(0, 0, true);
  return Math.fround((u - 8) * dv.getFloat32(0, true));
}

describe('bf16', () => {
  it('rounds to nearest even and keeps specials', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(-2)).toBe(0xc000);
    // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0)
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    // 1 + 3·2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16(Infinity)).toBe(0x7f80);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
    expect(bf16ToF32(0x3ec0)).toBe(0.375);
  });

  it('round-trips every bf16 pattern that is a number', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = bf16ToF32(b);
      if (!Number.isNaN(v)) expect(f32ToBf16(v)).toBe(b);
    }
  });
});

describe('int4 pack-quantized', () => {
  it('dequantizes bit for bit as the compressed-tensors definition, on arbitrary words and scales', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: 36, maxLength: 36 }),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 9, maxLength: 9 }),
        (rows, groups, words, scaleBits) => {
          const cols = groups * 32;
          const packed = Int32Array.from(words.slice(0, (rows * cols) / 8));
          // finite scales only: a NaN/Inf scale is a corrupt checkpoint, not a rounding question
          const scales = Uint16Array.from(scaleBits.slice(0, rows * groups).map((b) => b & 0x7f7f));
          const got = dequantInt4(packed, scales, rows, cols);
          for (let n = 0; n < rows; n++) {
            for (let k = 0; k < cols; k++) expect(Object.is(got[n * cols + k], definition(packed, scales, rows, cols, n, k))).toBe(true);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('quantizes within half a step of the group scale, with q in [-8, 7]', () => {
    const rows = 3;
    const cols = 64;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
    const { packed, scales } = quantizeInt4(w, rows, cols);
    const back = dequantInt4(packed, scales, rows, cols);
    for (let n = 0; n < rows; n++) {
      for (let k = 0; k < cols; k++) {
        const scale = bf16ToF32(scales[n * 2 + Math.floor(k / 32)]);
        // the largest magnitude maps to ±7.5 steps, so clamping at 7 costs at most one step there
        expect(Math.abs(back[n * cols + k] - w[n * cols + k])).toBeLessThanOrEqual(scale * 0.5 + 1e-6 + (Math.abs(w[n * cols + k]) > 6.5 * scale ? scale * 0.5 : 0));
      }
    }
  });
});

describe('int8 (q8_0, made at load)', () => {
  it('round-trips within half a step of the stored group scale, q in [-127, 127], a zero group all zeros', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true }), { minLength: 96, maxLength: 96 }), fc.integer({ min: 0, max: 2 }), (values, zeroGroup) => {
        const rows = 1;
        const cols = 96;
        const w = Float32Array.from(values);
        w.fill(0, zeroGroup * 32, zeroGroup * 32 + 32);
        const { q, scales } = quantizeInt8(w, rows, cols);
        const back = dequantInt8(q, scales, rows, cols);
        for (let k = 0; k < cols; k++) {
          const g = Math.floor(k / 32);
          const scale = bf16ToF32(scales[g]);
          let maxAbs = 0;
          for (let i = g * 32; i < g * 32 + 32; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i]));
          expect(Math.abs(q[k])).toBeLessThanOrEqual(127);
          // bf16 may round the scale below max/127 (by < 2^-8 relative): the clamp then adds up to 127·that.
          expect(Math.abs(back[k] - w[k])).toBeLessThanOrEqual(scale * 0.5 + maxAbs * 2 ** -8 + 1e-30);
          if (g === zeroGroup) expect(q[k]).toBe(0);
        }
        // The largest magnitude of a non-zero group uses the full range.
        for (let g = 0; g < 3; g++) {
          if (g === zeroGroup || !w.subarray(g * 32, g * 32 + 32).some((v) => v !== 0)) continue;
          expect(Math.max(...Array.from(q.subarray(g * 32, g * 32 + 32), Math.abs))).toBeGreaterThanOrEqual(126);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('refuses shapes that do not match', () => {
    expect(() => quantizeInt8(new Float32Array(40), 1, 40)).toThrow(/not a multiple of 32/);
    expect(() => dequantInt8(new Int8Array(64), new Uint16Array(1), 1, 64)).toThrow(/1 scales, want 2/);
  });
});
