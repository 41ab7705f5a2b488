// Sampling: greedy, seeded reproducibility, temperature and nucleus behaviour.
import { describe, expect, it } from 'vitest';
import { argmax, createSampler, SamplingError, type SamplingConfig, type SamplingHistory } from './sampler.ts';

const logits = Float32Array.from([1, 3, 2.5, -1, 0, 2.9, 0.5, 1.5]);

function draws(seed: number, temperature: number, topP: number, n: number): number[] {
  const s = createSampler({ temperature, topP, seed });
  return Array.from({ length: n }, () => s.sample(logits));
}

describe('sampler', () => {
  it('is greedy at temperature 0, ties to the lower id', () => {
    expect(draws(1, 0, 1, 5)).toEqual([1, 1, 1, 1, 1]);
    expect(argmax(Float32Array.of(0, 2, 2, 1))).toBe(1);
    // a row inside a larger buffer
    expect(createSampler({ temperature: 0, topP: 1 }).sample(Float32Array.of(9, 9, 0, 5, 1), 2, 3)).toBe(1);
  });

  it('gives the same tokens for the same seed and different ones for another seed', () => {
    expect(draws(42, 1, 0.9, 50)).toEqual(draws(42, 1, 0.9, 50));
    expect(draws(42, 1, 1, 50)).not.toEqual(draws(43, 1, 1, 50));
  });

  it('top_p keeps only the nucleus', () => {
    // softmax at T=1: ids 1 (3), 5 (2.9), 2 (2.5) hold ~75% together; top_p 0.5 keeps ids 1 and 5 only
    const seen = new Set(draws(7, 1, 0.5, 400));
    expect([...seen].sort()).toEqual([1, 5]);
    // a tiny nucleus is greedy
    expect(new Set(draws(7, 1, 1e-6, 100))).toEqual(new Set([1]));
  });

  it('follows the softmax distribution at the temperature', () => {
    const n = 20000;
    const counts = new Array(logits.length).fill(0);
    for (const t of draws(123, 0.7, 1, n)) counts[t]++;
    const z = Array.from(logits).reduce((a, v) => a + Math.exp(v / 0.7), 0);
    logits.forEach((v, i) => {
      const p = Math.exp(v / 0.7) / z;
      // 5 standard deviations of a binomial count: a wrong distribution misses by far more
      expect(Math.abs(counts[i] - n * p), `id ${i}`).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)) + 1);
    });
  });

  it('rejects invalid parameters', () => {
    expect(() => createSampler({ temperature: -1, topP: 1 })).toThrow(/temperature/);
    expect(() => createSampler({ temperature: 1, topP: 0 })).toThrow(/top_p/);
    expect(() => createSampler({ temperature: 1, topP: 1, topK: 1.5 })).toThrow(/top_k/);
    expect(() => createSampler({ temperature: 1, topP: 1, minP: 2 })).toThrow(/min_p/);
    expect(() => createSampler({ temperature: 1, topP: 1, repetitionPenalty: 0 })).toThrow(/repetition_penalty/);
  });
});

describe('logits processors', () => {
  // logits: id 1 (3) > id 5 (2.9) > id 2 (2.5) > id 7 (1.5) > ...; id 3 is -1.
  const greedy = (cfg: Partial<SamplingConfig>, history?: SamplingHistory) => createSampler({ temperature: 0, topP: 1, ...cfg }).sample(logits, 0, logits.length, history);
  /** A history whose prompt is `prompt` and whose output so far is `output`. */
  const hist = (prompt: number[], output: number[]): SamplingHistory => ({ tokens: [...prompt, ...output], numPromptTokens: prompt.length });

  it('logit_bias moves a token up or down, and never writes the model buffer', () => {
    const before = Float32Array.from(logits);
    expect(greedy({ logitBias: new Map([[3, 100]]) })).toBe(3);
    expect(greedy({ logitBias: new Map([[1, -100]]) })).toBe(5);
    expect(logits).toEqual(before);
  });

  it('min_tokens masks the stop ids until the output is long enough', () => {
    const cfg = { stopTokenIds: [1], minTokens: 2 };
    expect(greedy(cfg, hist([0, 4], []))).toBe(5);
    expect(greedy(cfg, hist([0, 4], [6]))).toBe(5);
    expect(greedy(cfg, hist([0, 4], [6, 6]))).toBe(1);
  });

  it('presence and frequency penalties count output tokens only', () => {
    expect(greedy({ presencePenalty: 0.2 }, hist([], [1]))).toBe(5);
    expect(greedy({ presencePenalty: 0.2 }, hist([1], []))).toBe(1);
    // 3 - 0.04 × count: still ahead of 2.9 after 2, behind after 3
    expect(greedy({ frequencyPenalty: 0.04 }, hist([], [1, 1]))).toBe(1);
    expect(greedy({ frequencyPenalty: 0.04 }, hist([], [1, 1, 1]))).toBe(5);
  });

  it('repetition_penalty divides positive and multiplies negative logits of prompt and output tokens', () => {
    expect(greedy({ repetitionPenalty: 1.2 }, hist([1], []))).toBe(5);
    expect(greedy({ repetitionPenalty: 1.2 }, hist([], [1]))).toBe(5);
    // a negative logit is multiplied (pushed further down), not divided (which would pull it up): -1 × 2 < -1.5
    const negative = Float32Array.of(-1, -1.5);
    expect(createSampler({ temperature: 0, topP: 1, repetitionPenalty: 2 }).sample(negative, 0, 2, hist([0], []))).toBe(1);
  });

  it('top_k keeps the k most likely tokens', () => {
    const seen = new Set(Array.from({ length: 400 }, (_, i) => createSampler({ temperature: 1, topP: 1, topK: 2, seed: i }).sample(logits)));
    expect([...seen].sort()).toEqual([1, 5]);
    const one = new Set(Array.from({ length: 100 }, (_, i) => createSampler({ temperature: 2, topP: 1, topK: 1, seed: i }).sample(logits)));
    expect(one).toEqual(new Set([1]));
  });

  it('min_p drops tokens below min_p × the top probability', () => {
    // p(5) / p(1) = e^-0.1 ≈ 0.905; p(2) / p(1) = e^-0.5 ≈ 0.61
    const kept = (minP: number) => new Set(Array.from({ length: 400 }, (_, i) => createSampler({ temperature: 1, topP: 1, minP, seed: i }).sample(logits)));
    expect([...kept(0.9)].sort()).toEqual([1, 5]);
    expect(kept(0.95)).toEqual(new Set([1]));
    expect(kept(0.5).has(2)).toBe(true);
  });

  it('an allowed-token bitmask limits the draw to its tokens, greedy or not', () => {
    const mask = Int32Array.of((1 << 3) | (1 << 6)); // tokens 3 and 6 only
    expect(createSampler({ temperature: 0, topP: 1 }).sample(logits, 0, logits.length, undefined, mask)).toBe(6);
    const seen = new Set(Array.from({ length: 200 }, (_, i) => createSampler({ temperature: 1, topP: 0.9, seed: i }).sample(logits, 0, logits.length, undefined, mask)));
    expect([...seen].sort()).toEqual([3, 6]);
  });

  it('refuses a row it cannot draw from with SamplingError: NaN, +Infinity, everything masked', () => {
    for (const temperature of [0, 1]) {
      const s = createSampler({ temperature, topP: 0.9 });
      expect(() => s.sample(Float32Array.of(1, NaN, 2))).toThrow(SamplingError);
      expect(() => s.sample(Float32Array.of(1, Infinity, 2))).toThrow(SamplingError);
      expect(() => s.sample(Float32Array.of(-Infinity, -Infinity))).toThrow(/every logit is -Infinity/);
      expect(() => s.sample(logits, 0, logits.length, undefined, Int32Array.of(0))).toThrow(SamplingError);
    }
  });
});
