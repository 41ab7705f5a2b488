/**
 * The K2 / DeepSeek-V3 "noaux_tc" router for one token row, on the host: the definition every
 * backend's `Kernels.route` matches (reference.ts and wasm-simd call it directly):
 *   1. scores = sigmoid(router logits)
 *   2. choice = scores + e_score_correction_bias      (the bias only decides *which* experts)
 *   3. with n_group > 1: score each group by the sum of its top-2 choice values, keep the best
 *      topk_group groups, drop the other groups' experts
 *   4. pick the top k experts by choice
 *   5. weights = the *unbiased* scores of those experts, renormalised to sum 1 (norm_topk_prob),
 *      times routed_scaling_factor
 * Ties (equal choice values, equal group scores) go to the lower index, so routing is deterministic
 * across backends; torch.topk leaves tie order unspecified.
 */

import type { RouterParams } from '../kernels/kernels.ts';

export type { RouterParams } from '../kernels/kernels.ts';

/** Reusable scratch so routing a step allocates nothing. */
export class RouterScratch {
  readonly scores: Float64Array;
  readonly choice: Float64Array;
  readonly groupScore: Float64Array;
  readonly groupChosen: Uint8Array;
  readonly excluded: Uint8Array;
  constructor(nExperts: number, nGroup: number) {
    this.scores = new Float64Array(nExperts);
    this.choice = new Float64Array(nExperts);
    this.groupScore = new Float64Array(nGroup);
    this.groupChosen = new Uint8Array(nGroup);
    this.excluded = new Uint8Array(nExperts);
  }
}

/**
 * Route row `row` of `logits` ([rows, nExperts]); writes k expert ids and weights at
 * outIds/outWeights[row*k ...], ordered by descending choice value.
 */
export function routeRow(
  p: RouterParams,
  logits: Float32Array,
  row: number,
  bias: Float32Array | null,
  outIds: Int32Array | Float32Array,
  outWeights: Float32Array,
  s: RouterScratch = new RouterScratch(p.nExperts, p.nGroup),
): void {
  const E = p.nExperts;
  for (let e = 0; e < E; e++) {
    s.scores[e] = 1 / (1 + Math.exp(-logits[row * E + e]));
    s.choice[e] = s.scores[e] + (bias ? bias[e] : 0);
  }
  s.excluded.fill(0);
  if (p.nGroup > 1) {
    const size = E / p.nGroup;
    for (let g = 0; g < p.nGroup; g++) {
      // sum of the group's top-2 choice values
      let a = -Infinity;
      let b = -Infinity;
      for (let e = g * size; e < (g + 1) * size; e++) {
        const v = s.choice[e];
        if (v > a) {
          b = a;
          a = v;
        } else if (v > b) b = v;
      }
      s.groupScore[g] = size >= 2 ? a + b : a;
    }
    // keep the best topk_group groups, drop every expert outside them
    s.groupChosen.fill(0);
    for (let j = 0; j < p.topkGroup; j++) {
      let best = -1;
      for (let g = 0; g < p.nGroup; g++) if (!s.groupChosen[g] && (best < 0 || s.groupScore[g] > s.groupScore[best])) best = g;
      s.groupChosen[best] = 1;
    }
    for (let e = 0; e < E; e++) if (!s.groupChosen[Math.floor(e / size)]) s.excluded[e] = 1;
  }
  let sum = 0;
  for (let j = 0; j < p.k; j++) {
    let best = -1;
    for (let e = 0; e < E; e++) if (!s.excluded[e] && (best < 0 || s.choice[e] > s.choice[best])) best = e;
    s.excluded[best] = 1;
    outIds[row * p.k + j] = best;
    outWeights[row * p.k + j] = s.scores[best];
    sum += s.scores[best];
  }
  const norm = p.normTopkProb ? 1 / (sum + 1e-20) : 1;
  for (let j = 0; j < p.k; j++) outWeights[row * p.k + j] = outWeights[row * p.k + j] * norm * p.scalingFactor;
}
