// Absorbed MLA attention over the paged KV cache, see Kernels.mlaAttention.
// Cache layout: (numBlocks, numLayers, blockSize, kvLoraRank + ropeDim) f32.
// One unit of work is a token row with all its heads: every head reads the same cached latent, so each
// cached row is fetched once (from L2 or memory) and reused from L1 by all heads, instead of once per
// head (8× less cache traffic in a k2-tiny prefill, where this op was 70 % of the time). Threads take
// rows round-robin: in a causal prefill later rows see more context, so contiguous ranges would leave
// the first thread idle half the time. Each thread's score scratch is heads × maxContext floats at
// scratch + tid * heads * maxContext.
#include "common.h"

#define PCHUNK 32

// Σ a[i]·b[i] with two accumulators (one chain would be add-latency-bound); n a multiple of 4 or not.
INLINE float dot_f32(const float *a, const float *b, int n) {
  v128_t acc0 = wasm_f32x4_splat(0.0f), acc1 = acc0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
    acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(wasm_v128_load(a + i + 4), wasm_v128_load(b + i + 4)));
  }
  for (; i + 4 <= n; i += 4) acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  float s = hsum_f32x4(wasm_f32x4_add(acc0, acc1));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// seqDesc: per sequence 4 ints {rowStart, rowCount, contextLen, blockTableOffset into blockTables}.
EXPORT(mla_attention)
void mla_attention(float *out, const float *qLatent, const float *qRope, const float *cache, int numLayers,
                   int blockSize, int L, int R, int layer, int heads, const int32_t *seqDesc, int numSeqs,
                   const int32_t *blockTables, int totalRows, float scale, float *scratch, int maxContext, int tid,
                   int nth) {
  float *scores = scratch + (long)tid * heads * maxContext;
  const int W = L + R;
  int seq = 0;
  for (int r = tid; r < totalRows; r += nth) {
    while (r >= seqDesc[seq * 4] + seqDesc[seq * 4 + 1]) seq++;
    const int32_t *d = seqDesc + seq * 4;
    const int32_t *table = blockTables + d[3];
    int pos = d[2] - d[1] + (r - d[0]);
    const float *ql = qLatent + (long)r * heads * L;
    const float *qr = qRope + (long)r * heads * R;
    // scores of every head against each cached row, the row loaded once
    for (int p = 0; p <= pos; p++) {
      const float *kv = cache + (((long)table[p / blockSize] * numLayers + layer) * blockSize + p % blockSize) * W;
      for (int h = 0; h < heads; h++) {
        scores[(long)h * maxContext + p] = (dot_f32(ql + (long)h * L, kv, L) + dot_f32(qr + (long)h * R, kv + L, R)) * scale;
      }
    }
    // softmax per head; 1/sum is applied to the output at the end
    float inv[heads];
    for (int h = 0; h < heads; h++) {
      float *sc = scores + (long)h * maxContext;
      float max = -__builtin_inff();
      for (int p = 0; p <= pos; p++) max = sc[p] > max ? sc[p] : max;
      float sum = 0.0f;
      for (int p = 0; p <= pos; p++) {
        sc[p] = expf_(sc[p] - max);
        sum += sc[p];
      }
      inv[h] = 1.0f / sum;
    }
    // weighted sum of the cached latents, in chunks of PCHUNK positions: the chunk's rows stay in L1
    // while each head accumulates 16 output floats at a time in registers, so the output is loaded and
    // stored once per chunk instead of once per position
    float *o = out + (long)r * heads * L;
    for (int j = 0; j < heads * L; j++) o[j] = 0.0f;
    const float *rowsOf[PCHUNK];
    for (int p0 = 0; p0 <= pos; p0 += PCHUNK) {
      int n = pos + 1 - p0 < PCHUNK ? pos + 1 - p0 : PCHUNK;
      for (int i = 0; i < n; i++) {
        int p = p0 + i;
        rowsOf[i] = cache + (((long)table[p / blockSize] * numLayers + layer) * blockSize + p % blockSize) * W;
      }
      for (int h = 0; h < heads; h++) {
        float *oh = o + (long)h * L;
        const float *sc = scores + (long)h * maxContext + p0;
        int j = 0;
        for (; j + 16 <= L; j += 16) {
          v128_t a0 = wasm_v128_load(oh + j), a1 = wasm_v128_load(oh + j + 4), a2 = wasm_v128_load(oh + j + 8), a3 = wasm_v128_load(oh + j + 12);
          for (int i = 0; i < n; i++) {
            const float *kv = rowsOf[i] + j;
            v128_t sp = wasm_f32x4_splat(sc[i]);
            a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(sp, wasm_v128_load(kv)));
            a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(sp, wasm_v128_load(kv + 4)));
            a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(sp, wasm_v128_load(kv + 8)));
            a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(sp, wasm_v128_load(kv + 12)));
          }
          wasm_v128_store(oh + j, a0), wasm_v128_store(oh + j + 4, a1), wasm_v128_store(oh + j + 8, a2), wasm_v128_store(oh + j + 12, a3);
        }
        for (; j < L; j++) {
          float a = oh[j];
          for (int i = 0; i < n; i++) a += sc[i] * rowsOf[i][j];
          oh[j] = a;
        }
      }
    }
    for (int h = 0; h < heads; h++) {
      float *oh = o + (long)h * L;
      for (int j = 0; j < L; j++) oh[j] *= inv[h];
    }
  }
}
