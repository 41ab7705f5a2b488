// Row-wise and elementwise ops. Cheap next to the matmuls, so they run on the calling thread only.
#include "common.h"

EXPORT(rmsnorm)
void rmsnorm(float *out, const float *x, const float *weight, int rows, int dim, float eps) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * dim;
    float *o = out + (long)r * dim;
    v128_t acc = wasm_f32x4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= dim; i += 4) {
      v128_t v = wasm_v128_load(xr + i);
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v));
    }
    float ss = hsum_f32x4(acc);
    for (; i < dim; i++) ss += xr[i] * xr[i];
    float inv = 1.0f / __builtin_sqrtf(ss / (float)dim + eps);
    for (i = 0; i < dim; i++) o[i] = xr[i] * inv * weight[i];
  }
}

EXPORT(add)
void add(float *x, const float *y, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(x + i, wasm_f32x4_add(wasm_v128_load(x + i), wasm_v128_load(y + i)));
  for (; i < n; i++) x[i] += y[i];
}

EXPORT(silu_mul)
void silu_mul(float *out, const float *gate, const float *up, int n) {
  for (int i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + expf_(-g)) * up[i];
  }
}

// Interleaved-pair RoPE (DeepSeek-V3/K2), see Kernels.rope.
EXPORT(rope)
void rope(float *x, int rows, const int32_t *positions, int heads, int headStride, int offset, int ropeDim,
          const float *cosT, const float *sinT) {
  int half = ropeDim / 2;
  for (int r = 0; r < rows; r++) {
    const float *c = cosT + (long)positions[r] * half;
    const float *s = sinT + (long)positions[r] * half;
    for (int h = 0; h < heads; h++) {
      float *b = x + ((long)r * heads + h) * headStride + offset;
      for (int i = 0; i < half; i++) {
        float x0 = b[2 * i], x1 = b[2 * i + 1];
        b[2 * i] = x0 * c[i] - x1 * s[i];
        b[2 * i + 1] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

// MoE dispatch helpers: rows of one expert are gathered into a contiguous batch, run through the
// expert's matmuls once, and scattered back with their routing weights.
EXPORT(gather_rows)
void gather_rows(float *dst, const float *src, const int32_t *idx, int n, int dim) {
  for (int i = 0; i < n; i++) __builtin_memcpy(dst + (long)i * dim, src + (long)idx[i] * dim, dim * 4);
}

EXPORT(scatter_add_rows)
void scatter_add_rows(float *out, const float *src, const int32_t *idx, const float *weights, int n, int dim) {
  for (int i = 0; i < n; i++) {
    float *o = out + (long)idx[i] * dim;
    const float *s = src + (long)i * dim;
    v128_t wv = wasm_f32x4_splat(weights[i]);
    int k = 0;
    for (; k + 4 <= dim; k += 4) wasm_v128_store(o + k, wasm_f32x4_add(wasm_v128_load(o + k), wasm_f32x4_mul(wv, wasm_v128_load(s + k))));
    for (; k < dim; k++) o[k] += weights[i] * s[k];
  }
}

// Greedy sampling's argmax, row by row: out[i] = index of the largest value of row rowIdx[i] of x
// (width V), ties to the lower index, as model/sampler.ts `argmax`; -1 when the row holds a NaN or its
// maximum is ±Infinity, so the caller can take the host path that says which. Written to split rows
// across threads, but the backend runs it on one (see wasm-kernels.ts `argmaxRows`).
// Per lane: the running maximum and the first index reaching it; `>` (not `>=`) keeps the earlier one.
EXPORT(argmax_rows)
void argmax_rows(int32_t *out, const float *x, const int32_t *rowIdx, int n, int V, int tid, int nth) {
  int lo, hi;
  split(n, tid, nth, &lo, &hi);
  for (int i = lo; i < hi; i++) {
    const float *row = x + (long)rowIdx[i] * V;
    v128_t best = wasm_f32x4_splat(-__builtin_inff()), bestIdx = wasm_i32x4_splat(0);
    v128_t idx = wasm_i32x4_make(0, 1, 2, 3), four = wasm_i32x4_splat(4), nan = wasm_i32x4_splat(0);
    int k = 0;
    for (; k + 4 <= V; k += 4) {
      v128_t v = wasm_v128_load(row + k);
      v128_t gt = wasm_f32x4_gt(v, best);
      best = wasm_v128_bitselect(v, best, gt);
      bestIdx = wasm_v128_bitselect(idx, bestIdx, gt);
      nan = wasm_v128_or(nan, wasm_f32x4_ne(v, v));
      idx = wasm_i32x4_add(idx, four);
    }
    float m = -__builtin_inff();
    int at = 0;
    for (int l = 0; l < 4; l++) {
      float bl = ((float *)&best)[l];
      int il = ((int32_t *)&bestIdx)[l];
      if (bl > m || (bl == m && il < at)) { m = bl; at = il; }
    }
    int bad = wasm_v128_any_true(nan);
    for (; k < V; k++) {
      float v = row[k];
      if (v > m) { m = v; at = k; }
      if (v != v) bad = 1;
    }
    // All -Infinity leaves m = -Infinity: no token can be sampled, as +Infinity or a NaN cannot.
    out[i] = bad || m == __builtin_inff() || m == -__builtin_inff() ? -1 : at;
  }
}
