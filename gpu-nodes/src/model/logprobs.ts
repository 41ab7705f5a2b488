/**
 * Log-probabilities for OpenAI's `logprobs` / `top_logprobs`: log-softmax of one logits row, the chosen
 * token's value and the k most likely tokens. Computed on the raw row the model produced, so they are
 * the model's distribution (before penalties, logit_bias, grammar masks and temperature), as OpenAI and
 * vLLM (its default "raw_logprobs") report them.
 */
import type { TokenLogprob } from '../../../shared/protocol.ts';

/** Most alternatives a request may ask for (OpenAI's top_logprobs range is 0–20). */
export const MAX_TOP_LOGPROBS = 20;

export function tokenLogprob(logits: Float32Array, offset: number, vocab: number, chosen: number, k: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (logits[offset + i] > max) max = logits[offset + i];
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i] - max);
  const logZ = max + Math.log(sum);
  // The k best so far, best first: one pass with insertion into a k-long list (k ≤ 20).
  const ids: number[] = [];
  const vals: number[] = [];
  if (k > 0) {
    for (let i = 0; i < vocab; i++) {
      const x = logits[offset + i];
      if (ids.length === k && !(x > vals[k - 1])) continue;
      let j = ids.length < k ? ids.length : k - 1;
      while (j > 0 && vals[j - 1] < x) {
        if (j < k) {
          ids[j] = ids[j - 1];
          vals[j] = vals[j - 1];
        }
        j--;
      }
      ids[j] = i;
      vals[j] = x;
    }
  }
  return { id: chosen, logprob: logits[offset + chosen] - logZ, top: ids.map((id, j) => ({ id, logprob: vals[j] - logZ })) };
}
