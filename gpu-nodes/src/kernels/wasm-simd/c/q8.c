// INT8 (q8_0: group 32, symmetric, bf16 scales) weights × int16 activations, for matrices quantized at
// load (the lm_head under `--lm-head int8`). Half the bytes of bf16, and integer dot products where bf16
// needs a widening, a multiply and an add per 4 values.
//
// Weights are stored as the host gives them: int8 row-major [N, K], q ∈ [-127, 127], widened to i16 in
// registers. Activations are quantized to int16 with one step per token row (d = max|x_row|/32767),
// once per call and reused for all N rows. The product is i32x4.dot_i16x8_s (x86: one pmaddwd per 8
// products) in both builds.
// - int16, not int8 as the int4 kernels use: the dot product takes i16 either way, so it costs nothing,
//   and on k2-tiny int8 activations (per 32-group) doubled the int8 head's logit error (0.63 % vs
//   0.38 % of the logit range, median over 240 positions).
// - one step per row, not per 32-group: the group epilogue is then one convert and one multiply-add by
//   the weight scale (shared by the token tile) instead of a per-token scalar product and splat. On
//   k2-tiny (bench:lm-head) that took a 32-row decode step from 0.64× to 1.5× the bf16 head's speed.
//   With 15 bits, a row whose largest value is 1000× its typical one still gets ~5 bits on the typical
//   values.
// - the relaxed i8 dot would need one operand in [0, 128), which neither a signed int8 weight nor an
//   activation is.
//   out[t, n] = d[t] · Σ_g dw[n, g] · Σ_{k∈g} q[n, k] · a[t, k]
// A lane sums 8 products per group (≤ 8·127·32767 < 2^31: no overflow); it becomes f32 once per group.
#include "common.h"

/** x [rows, K] → a [rows, K] as i16 in [-32767, 32767] and one step d [rows] per row; K a multiple of 8. */
EXPORT(quantize_a16)
void quantize_a16(const float *x, int rows, int K, int16_t *a, float *d) {
  for (int r = 0; r < rows; r++) {
    const float *src = x + (long)r * K;
    v128_t m = wasm_f32x4_splat(0.0f);
    for (int k = 0; k < K; k += 4) m = wasm_f32x4_max(m, wasm_f32x4_abs(wasm_v128_load(src + k)));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
    float amax = wasm_f32x4_extract_lane(m, 0);
    float dr = amax / 32767.0f;
    v128_t id = wasm_f32x4_splat(dr > 0.0f ? 1.0f / dr : 0.0f);
    int16_t *dst = a + (long)r * K;
    for (int k = 0; k < K; k += 8) {
      v128_t lo = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(src + k), id)));
      v128_t hi = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(src + k + 4), id)));
      wasm_v128_store(dst + k, wasm_i16x8_narrow_i32x4(lo, hi));
    }
    d[r] = dr;
  }
}

// T token rows (1..4) against one weight row; each weight group is widened once for all T, and its
// scale applied once per token to the group's converted integer sum (the token's step comes last).
INLINE void q8_row(float *out, int outStride, const int16_t *a, const float *d, int K, const int8_t *w,
                   const uint16_t *s, const int T) {
  const int G = K / 32;
  v128_t acc[4];
  const int16_t *at[4];
  for (int t = 0; t < T; t++) {
    acc[t] = wasm_f32x4_splat(0.0f);
    at[t] = a + (long)t * K;
  }
  for (int g = 0; g < G; g++, w += 32) {
    v128_t v0 = wasm_v128_load(w), v1 = wasm_v128_load(w + 16);
    v128_t w0 = wasm_i16x8_extend_low_i8x16(v0), w1 = wasm_i16x8_extend_high_i8x16(v0);
    v128_t w2 = wasm_i16x8_extend_low_i8x16(v1), w3 = wasm_i16x8_extend_high_i8x16(v1);
    v128_t dw = wasm_f32x4_splat(bf16_to_f32(s[g]));
    for (int t = 0; t < T; t++) {
      const int16_t *x = at[t];
      v128_t p = wasm_i32x4_add(wasm_i32x4_dot_i16x8(w0, wasm_v128_load(x)), wasm_i32x4_dot_i16x8(w1, wasm_v128_load(x + 8)));
      p = wasm_i32x4_add(p, wasm_i32x4_add(wasm_i32x4_dot_i16x8(w2, wasm_v128_load(x + 16)), wasm_i32x4_dot_i16x8(w3, wasm_v128_load(x + 24))));
      acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p), dw));
      at[t] = x + 32;
    }
  }
  for (int t = 0; t < T; t++) out[(long)t * outStride] = hsum_f32x4(acc[t]) * d[t];
}

// out[r, n] for r < rows and this thread's share of n < N; weight rows outer so each streams once.
EXPORT(q8_matmul)
void q8_matmul(float *out, const int16_t *a, const float *d, const int8_t *w, const uint16_t *s, int N, int K, int rows,
               int tid, int nth) {
  int lo, hi;
  split(N, tid, nth, &lo, &hi);
  const int G = K / 32;
  for (int n = lo; n < hi; n++) {
    const int8_t *wr = w + (long)n * K;
    const uint16_t *sr = s + (long)n * G;
    int r = 0;
    for (; r + 4 <= rows; r += 4) q8_row(out + (long)r * N + n, N, a + (long)r * K, d + r, K, wr, sr, 4);
    switch (rows - r) {
      case 3: q8_row(out + (long)r * N + n, N, a + (long)r * K, d + r, K, wr, sr, 3); break;
      case 2: q8_row(out + (long)r * N + n, N, a + (long)r * K, d + r, K, wr, sr, 2); break;
      case 1: q8_row(out + (long)r * N + n, N, a + (long)r * K, d + r, K, wr, sr, 1); break;
    }
  }
}
