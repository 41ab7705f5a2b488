/**
 * Shared inputs for the `route` conformance tests of every backend (reference, wasm-simd, webgpu):
 * crafted cases where the rule's corners decide the answer (exact ties, ties made by the bias, group
 * selection and its ties, no bias at all) and random ones at K2-like sizes. Expected answers are never
 * stored here: the fast backends are compared with reference.ts, and reference.ts with model/moe-router.ts.
 */
import type { Kernels, RouterParams } from './kernels.ts';
import { routeRow, RouterScratch } from '../model/moe-router.ts';
import { mulberry32 } from '../model/prng.ts';

export interface RouteCase {
  name: string;
  p: RouterParams;
  rows: number;
  logits: Float32Array; // (rows, nExperts)
  bias: Float32Array | null; // (nExperts)
}

const K2 = { normTopkProb: true, scalingFactor: 2.827 };
const logit = (p: number) => Math.log(p / (1 - p));

function randomCase(name: string, seed: number, rows: number, p: RouterParams, withBias: boolean): RouteCase {
  const r = mulberry32(seed);
  const logits = Float32Array.from({ length: rows * p.nExperts }, () => (r() * 2 - 1) * 4);
  const bias = withBias ? Float32Array.from({ length: p.nExperts }, () => (r() * 2 - 1) * 0.1) : null;
  return { name, p, rows, logits, bias };
}

export const ROUTE_CASES: RouteCase[] = [
  {
    name: 'exact ties go to the lower id (all logits equal)',
    p: { ...K2, nExperts: 8, k: 3, nGroup: 1, topkGroup: 1 },
    rows: 2,
    logits: new Float32Array(16),
    bias: null,
  },
  {
    name: 'ties created by the bias, and a bias that chooses but does not weigh',
    p: { ...K2, nExperts: 4, k: 2, nGroup: 1, topkGroup: 1 },
    rows: 2,
    logits: Float32Array.of(0, 0, 0, 0, 2, 1, 0, -1),
    bias: Float32Array.of(0, 0.25, 0.25, 0),
  },
  {
    name: 'groups ranked by their top-2 sum; the bias counts in the group score',
    p: { ...K2, nExperts: 8, k: 2, nGroup: 2, topkGroup: 1 },
    rows: 2,
    logits: Float32Array.from([0.9, 0.1, 0.1, 0.1, 0.6, 0.6, 0.05, 0.05, 0.9, 0.1, 0.1, 0.1, 0.6, 0.6, 0.05, 0.05].map(logit)),
    bias: Float32Array.of(0, 0.5, 0, 0, 0, 0, 0, 0),
  },
  {
    name: 'equal group scores go to the lower group',
    p: { ...K2, nExperts: 8, k: 3, nGroup: 4, topkGroup: 2 },
    rows: 1,
    logits: new Float32Array(8),
    bias: null,
  },
  randomCase('random, K2 shape (384 experts, top-8, one group)', 7, 3, { ...K2, nExperts: 384, k: 8, nGroup: 1, topkGroup: 1 }, true),
  randomCase('random, DeepSeek-V3 groups (8 groups, keep 4)', 11, 5, { ...K2, nExperts: 256, k: 8, nGroup: 8, topkGroup: 4 }, true),
  randomCase('random, no renormalisation, no bias', 13, 4, { normTopkProb: false, scalingFactor: 1.5, nExperts: 96, k: 6, nGroup: 4, topkGroup: 3 }, false),
];

/** model/moe-router.ts on the host: the expected ids (as f32, the tensor encoding) and weights. */
export function routeOnHost(c: RouteCase): { ids: Float32Array; weights: Float32Array } {
  const ids = new Int32Array(c.rows * c.p.k);
  const weights = new Float32Array(c.rows * c.p.k);
  const s = new RouterScratch(c.p.nExperts, c.p.nGroup);
  for (let r = 0; r < c.rows; r++) routeRow(c.p, c.logits, r, c.bias, ids, weights, s);
  return { ids: Float32Array.from(ids), weights };
}

/** The backend's `route` on the case's inputs, read back. */
export async function routeOn(k: Kernels, c: RouteCase): Promise<{ ids: Float32Array; weights: Float32Array }> {
  const ids = k.tensor(c.rows * c.p.k);
  const weights = k.tensor(c.rows * c.p.k);
  k.route(ids, weights, k.uploadF32(c.logits), c.bias ? k.uploadF32(c.bias) : null, c.rows, c.p);
  return { ids: await k.read(ids), weights: await k.read(weights) };
}
