// The K2 routing rule on crafted inputs: ties, the correction bias (chooses but never weighs),
// renormalisation and scaling, and expert groups (n_group / topk_group).
import { describe, expect, it } from 'vitest';
import { routeRow, RouterScratch } from './moe-router.ts';
import type { RouterParams } from './moe-router.ts';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) => Math.log(p / (1 - p));

function route(p: RouterParams, logits: number[], bias: number[] = logits.map(() => 0)) {
  const ids = new Int32Array(p.k);
  const weights = new Float32Array(p.k);
  routeRow(p, Float32Array.from(logits), 0, Float32Array.from(bias), ids, weights, new RouterScratch(p.nExperts, p.nGroup));
  return { ids: Array.from(ids), weights: Array.from(weights) };
}

const K2: Omit<RouterParams, 'nExperts' | 'k'> = { nGroup: 1, topkGroup: 1, normTopkProb: true, scalingFactor: 2.827 };

describe('router', () => {
  it('breaks exact ties toward the lower expert id', () => {
    const r = route({ ...K2, nExperts: 4, k: 2 }, [0, 0, 0, 0]);
    expect(r.ids).toEqual([0, 1]);
    // equal scores renormalise to 1/2 each, times the scaling factor
    r.weights.forEach((w) => expect(w).toBeCloseTo(2.827 / 2, 6));
  });

  it('uses the bias to choose experts but the unbiased scores to weigh them', () => {
    const logits = [2, 1, 0, -1];
    const r = route({ ...K2, nExperts: 4, k: 2 }, logits, [0, 0, 5, 0]);
    expect(r.ids).toEqual([2, 0]); // expert 2 only wins through its bias
    const s2 = sigmoid(0);
    const s0 = sigmoid(2);
    expect(r.weights[0]).toBeCloseTo((s2 / (s2 + s0)) * 2.827, 6);
    expect(r.weights[1]).toBeCloseTo((s0 / (s2 + s0)) * 2.827, 6);
  });

  it('ties created by the bias also go to the lower id', () => {
    const r = route({ ...K2, nExperts: 4, k: 2 }, [0, 0, 0, 0], [0, 0.25, 0.25, 0]);
    expect(r.ids).toEqual([1, 2]);
  });

  it('weights sum to routed_scaling_factor with norm_topk_prob, raw scores × factor without', () => {
    const logits = [0.3, -1.2, 2.5, 0.9, -0.1, 1.7];
    const normed = route({ ...K2, nExperts: 6, k: 3 }, logits);
    expect(normed.ids).toEqual([2, 5, 3]);
    expect(normed.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(2.827, 5);
    const raw = route({ ...K2, normTopkProb: false, scalingFactor: 2, nExperts: 6, k: 3 }, logits);
    expect(raw.weights).toEqual([2, 5, 3].map((e) => Math.fround(sigmoid(logits[e]) * 2)));
  });

  it('with groups, picks the best topk_group groups by their top-2 sum before the top-k', () => {
    // group 0 holds the single best expert (0.9) but its top-2 sum is 1.0; group 1 sums 0.6+0.6 = 1.2
    const p = [0.9, 0.1, 0.1, 0.1, 0.6, 0.6, 0.05, 0.05];
    const r = route({ ...K2, nExperts: 8, k: 2, nGroup: 2, topkGroup: 1 }, p.map(logit));
    expect(r.ids).toEqual([4, 5]);
    // without grouping the best single expert would be chosen first
    expect(route({ ...K2, nExperts: 8, k: 2 }, p.map(logit)).ids).toEqual([0, 4]);
    // the bias counts in the group score too: lifting expert 1 (0.1 + 0.5) makes group 0 sum 1.5 and win
    expect(route({ ...K2, nExperts: 8, k: 2, nGroup: 2, topkGroup: 1 }, p.map(logit), [0, 0.5, 0, 0, 0, 0, 0, 0]).ids).toEqual([0, 1]);
  });

  it('equal group scores go to the lower group; topk_group = n_group disables the restriction', () => {
    const r = route({ ...K2, nExperts: 4, k: 2, nGroup: 2, topkGroup: 1 }, [0, 0, 0, 0]);
    expect(r.ids).toEqual([0, 1]);
    const p = [0.9, 0.1, 0.6, 0.6];
    expect(route({ ...K2, nExperts: 4, k: 2, nGroup: 2, topkGroup: 2 }, p.map(logit)).ids).toEqual([0, 2]);
  });
});
