/**
 * Next-token sampling for one request, in vLLM's order:
 *   logits processors (on a copy of the row, only when one is set): logit_bias → min_tokens (stop ids
 *   masked) → repetition_penalty (prompt + output) → frequency / presence penalties (output)
 *   → greedy at temperature 0, otherwise softmax at the temperature → top_k → min_p → top_p (nucleus)
 *   → a draw from a PRNG seeded per request, so the same seed and logits give the same tokens.
 * A grammar's allowed-token bitmask (structured outputs), when given, comes first: every other token
 * is -Infinity before any processor runs. Stop sequences and max_tokens are the engine's business.
 *
 * A row the sampler cannot draw from (a NaN or +Infinity logit, or every token masked) throws
 * SamplingError for this sequence alone; the engine fails that request and its batch-mates go on.
 *
 * The PRNG is xorshift32 over a 32-bit state derived from the seed (as llama2.c's `random_u32`):
 * small, fast, and identical on every platform. Without a seed the state comes from Math.random.
 */

export interface SamplingConfig {
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables. */
  topP: number;
  seed?: number;
  /** Keep the k most likely tokens (ties at the k-th probability are all kept); 0 or -1 disables. */
  topK?: number;
  /** Drop tokens below minP × the top probability; 0 disables. */
  minP?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** 1 disables. */
  repetitionPenalty?: number;
  /** stopTokenIds are masked until the output has this many tokens. */
  minTokens?: number;
  stopTokenIds?: readonly number[];
  /** token id → bias added to its logit. */
  logitBias?: ReadonlyMap<number, number>;
}

/** This sequence's logits row cannot be sampled from; only its request fails. */
export class SamplingError extends Error {
  override readonly name = 'SamplingError';
}

/** What the sampler may look at besides the logits: the request's tokens so far. */
export interface SamplingHistory {
  /** Prompt then output ids. */
  readonly tokens: readonly number[];
  readonly numPromptTokens: number;
}

/** One sampler per request; it carries that request's PRNG state across its tokens. */
export function createSampler(cfg: SamplingConfig): Sampler {
  return new Sampler(cfg);
}

export class Sampler {
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly minP: number;
  private readonly presence: number;
  private readonly frequency: number;
  private readonly repetition: number;
  private readonly minTokens: number;
  private readonly stopTokenIds: readonly number[];
  private readonly logitBias: ReadonlyMap<number, number>;
  /** Whether any processor reads or changes the logits before the draw. */
  private readonly processes: boolean;
  private state: number;
  // Scratch sized on first use to the vocabulary and reused for every token: probabilities, the
  // nucleus order, and the processed copy of the logits row (the model's buffer is never written).
  private probs: Float32Array = new Float32Array(0);
  private order: Int32Array = new Int32Array(0);
  private work: Float32Array = new Float32Array(0);

  constructor(cfg: SamplingConfig) {
    if (!(cfg.temperature >= 0)) throw new Error(`sampler: temperature ${cfg.temperature} must be ≥ 0`);
    if (!(cfg.topP > 0 && cfg.topP <= 1)) throw new Error(`sampler: top_p ${cfg.topP} must be in (0, 1]`);
    const topK = cfg.topK ?? 0;
    if (!Number.isInteger(topK) || topK < -1) throw new Error(`sampler: top_k ${topK} must be an integer ≥ -1`);
    const minP = cfg.minP ?? 0;
    if (!(minP >= 0 && minP <= 1)) throw new Error(`sampler: min_p ${minP} must be in [0, 1]`);
    const repetition = cfg.repetitionPenalty ?? 1;
    if (!(repetition > 0 && Number.isFinite(repetition))) throw new Error(`sampler: repetition_penalty ${repetition} must be > 0`);
    this.temperature = cfg.temperature;
    this.topP = cfg.topP;
    this.topK = topK > 0 ? topK : 0;
    this.minP = minP;
    this.presence = cfg.presencePenalty ?? 0;
    this.frequency = cfg.frequencyPenalty ?? 0;
    this.repetition = repetition;
    this.minTokens = cfg.minTokens ?? 0;
    this.stopTokenIds = cfg.stopTokenIds ?? [];
    this.logitBias = cfg.logitBias ?? new Map();
    this.processes =
      this.logitBias.size > 0 || (this.minTokens > 0 && this.stopTokenIds.length > 0) || this.repetition !== 1 || this.presence !== 0 || this.frequency !== 0;
    const seed = cfg.seed ?? Math.floor(Math.random() * 2 ** 32);
    // Mix the seed so nearby seeds start far apart; xorshift needs a non-zero state.
    let s = (Math.imul(seed >>> 0 ^ 0x9e3779b9, 0x85ebca6b) ^ Math.floor(seed / 2 ** 32)) >>> 0;
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
    this.state = s === 0 ? 0x2545f491 : s;
  }

  /**
   * Whether this sampler's choice is the plain argmax of the raw row: temperature 0 and no processor.
   * (A grammar's mask comes with the call, so the caller checks that.) The draw uses no PRNG then, so a
   * caller may take the argmax elsewhere (Kernels.argmaxRows) without desynchronising the seed.
   */
  get greedy(): boolean {
    return this.temperature === 0 && !this.processes;
  }

  /** A uniform float in [0, 1). */
  random(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return (this.state >>> 8) / 16777216;
  }

  /**
   * Sample from logits[offset, offset + vocab); the processors that need the request's tokens read
   * `history`; `allowed` (bit i of word i >> 5 set: token i may come next) masks the rest.
   */
  sample(logits: Float32Array, offset = 0, vocab = logits.length - offset, history?: SamplingHistory, allowed?: Int32Array): number {
    if (this.processes || allowed) {
      logits = this.processed(logits, offset, vocab, history, allowed);
      offset = 0;
    }
    const max = checkedMax(logits, offset, vocab);
    if (this.temperature === 0) return argmax(logits, offset, vocab);
    if (this.probs.length < vocab) {
      this.probs = new Float32Array(vocab);
      this.order = new Int32Array(vocab);
    }
    const p = this.probs;
    // softmax(logits / T), max-subtracted for stability
    let sum = 0;
    for (let i = 0; i < vocab; i++) {
      p[i] = Math.exp((logits[offset + i] - max) / this.temperature);
      sum += p[i];
    }
    // The top token contributes exp(0) = 1, so only a temperature that turns that into NaN gets here.
    if (!(sum >= 1 && Number.isFinite(sum))) throw new SamplingError(`softmax at temperature ${this.temperature} is not a distribution (sum ${sum})`);
    for (let i = 0; i < vocab; i++) p[i] /= sum;
    if (this.topK > 0 && this.topK < vocab) this.keepTopK(p, vocab);
    if (this.minP > 0) keepAbove(p, vocab, this.minP * maxOf(p, vocab));
    const coin = this.random();
    return this.topP >= 1 ? sampleAll(p, vocab, coin) : this.sampleTopP(p, vocab, coin);
  }

  /** The logits row with bias, min_tokens and penalties applied, in this sampler's scratch copy. */
  private processed(logits: Float32Array, offset: number, vocab: number, history: SamplingHistory | undefined, allowed: Int32Array | undefined): Float32Array {
    if (this.work.length < vocab) this.work = new Float32Array(vocab);
    const w = this.work;
    w.set(logits.subarray(offset, offset + vocab));
    if (allowed) for (let i = 0; i < vocab; i++) if (((allowed[i >> 5] >>> (i & 31)) & 1) === 0) w[i] = -Infinity;
    for (const [id, bias] of this.logitBias) if (id < vocab) w[id] += bias;
    const tokens = history?.tokens ?? [];
    const numPrompt = history?.numPromptTokens ?? tokens.length;
    if (tokens.length - numPrompt < this.minTokens) for (const id of this.stopTokenIds) if (id < vocab) w[id] = -Infinity;
    if (this.repetition !== 1) {
      const seen = new Set(tokens);
      for (const id of seen) if (id < vocab) w[id] = w[id] > 0 ? w[id] / this.repetition : w[id] * this.repetition;
    }
    if (this.presence !== 0 || this.frequency !== 0) {
      const counts = new Map<number, number>();
      for (let i = numPrompt; i < tokens.length; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
      for (const [id, n] of counts) if (id < vocab) w[id] -= this.presence + this.frequency * n;
    }
    return w;
  }

  /** Zeroes all but the topK largest probabilities (the k-th value found by quickselect on a scratch copy). */
  private keepTopK(p: Float32Array, vocab: number): void {
    if (this.work.length < vocab) this.work = new Float32Array(vocab);
    const copy = this.work.subarray(0, vocab);
    copy.set(p.subarray(0, vocab));
    keepAbove(p, vocab, kthLargest(copy, this.topK));
  }

  /**
   * Nucleus: the smallest set of most likely tokens whose mass reaches top_p, renormalised.
   * Tokens below (1 - top_p) / (vocab - 1) can never be in it, so they are dropped before sorting
   * (llama2.c's trick: sorting 100k entries per token is the cost otherwise).
   */
  private sampleTopP(p: Float32Array, vocab: number, coin: number): number {
    const cutoff = (1 - this.topP) / (vocab - 1);
    let n = 0;
    for (let i = 0; i < vocab; i++) if (p[i] >= cutoff) this.order[n++] = i;
    const cand = this.order.subarray(0, n);
    // descending probability, ties by lower id, so the nucleus is the same on every run
    cand.sort((a, b) => p[b] - p[a] || a - b);
    let mass = 0;
    let last = n - 1;
    for (let i = 0; i < n; i++) {
      mass += p[cand[i]];
      if (mass >= this.topP) {
        last = i;
        break;
      }
    }
    const r = coin * mass;
    let acc = 0;
    for (let i = 0; i <= last; i++) {
      acc += p[cand[i]];
      if (r < acc) return cand[i];
    }
    return cand[last];
  }
}

/**
 * The largest logit of a row that can be sampled from; throws SamplingError on a NaN or +Infinity logit
 * (the forward pass went wrong for this sequence) or when every logit is -Infinity (all masked).
 */
function checkedMax(logits: Float32Array, offset: number, vocab: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const x = logits[offset + i];
    if (x > max) max = x;
    else if (x !== x) throw new SamplingError(`logit of token ${i} is NaN`);
  }
  if (max === Infinity) throw new SamplingError('a logit is +Infinity');
  if (max === -Infinity) throw new SamplingError('no token can be sampled: every logit is -Infinity (masked by logit_bias, min_tokens or the response_format grammar)');
  return max;
}

/** Index of the largest logit; ties go to the lower id. */
export function argmax(logits: Float32Array, offset = 0, vocab = logits.length - offset): number {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (logits[offset + i] > logits[offset + best]) best = i;
  return best;
}

function maxOf(p: Float32Array, vocab: number): number {
  let m = 0;
  for (let i = 0; i < vocab; i++) if (p[i] > m) m = p[i];
  return m;
}

/** Zeroes probabilities below `threshold` and renormalises the rest. */
function keepAbove(p: Float32Array, vocab: number, threshold: number): void {
  let sum = 0;
  for (let i = 0; i < vocab; i++) {
    if (p[i] < threshold) p[i] = 0;
    sum += p[i];
  }
  for (let i = 0; i < vocab; i++) p[i] /= sum;
}

/** The k-th largest value of `a` (1-based), by in-place quickselect: O(n) on average, no sort. */
function kthLargest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target];
  }
  return a[target];
}

function sampleAll(p: Float32Array, vocab: number, coin: number): number {
  let acc = 0;
  for (let i = 0; i < vocab; i++) {
    acc += p[i];
    if (coin < acc) return i;
  }
  return vocab - 1; // rounding left the total a hair under 1
}
