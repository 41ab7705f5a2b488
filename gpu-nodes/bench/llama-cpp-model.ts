/**
 * llama.cpp running a whole model (a GGUF from ./k2-to-gguf.ts) as the serving benchmark's peer, through
 * node-llama-cpp on the prebuilt CPU libraries of `@node-llama-cpp/linux-x64` (never built here).
 * Benchmark only: the product never loads this.
 *
 * - `logitsCheck` compares llama.cpp's logits with our float reference at every position of a prompt,
 *   so a speed figure is only reported for a peer that computes the same model.
 * - `sweep` runs N sequences at once, each a fresh prompt then greedy decode; node-llama-cpp batches
 *   the sequences' tokens into one llama_decode per step, as our engine batches its running requests.
 * - `sequential` runs one stream's requests one after another and times each (first token, decode rate).
 * - `prefill` times one long prompt.
 * All in-process (no HTTP): the llama.cpp column is its engine alone. The thread count is per call:
 * ggml's threads spin while waiting for each other, which on a machine shared with other work can
 * cost 10× (measured 2 threads: 13-37 tok/s vs 1 thread: 150-350 on 2 loaded cores), so the benchmark
 * runs both and credits llama.cpp with the better.
 */
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import { ReferenceKernels } from '../src/kernels/reference.ts';
import { Model } from '../src/model/forward.ts';
import { Sequence } from '../src/cli/sequence.ts';

export interface SweepResult {
  sequences: number;
  tokens: number;
  wallS: number;
}

/** One request of a single stream: time to its first token, and decode tok/s from its first token to its last. */
export interface RequestRate {
  tokens: number;
  ttftMs: number;
  decodeTokS: number;
}

export interface LogitsCheck {
  positions: number;
  top1Agree: number;
  /** Per position: max |ours − llama.cpp| / max |ours| over the vocabulary; its median and max. */
  medianRelDiff: number;
  maxRelDiff: number;
}

export class LlamaCppModel {
  private readonly llama: Llama;
  readonly model: LlamaModel;

  private constructor(llama: Llama, model: LlamaModel) {
    this.llama = llama;
    this.model = model;
  }

  static async load(ggufPath: string): Promise<LlamaCppModel> {
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
    return new LlamaCppModel(llama, model);
  }

  /** Logits (vocab) after every token of `tokens`, one fresh sequence. */
  async allLogits(tokens: number[]): Promise<Float32Array[]> {
    const ctx = await this.model.createContext({ contextSize: Math.max(256, tokens.length + 16), sequences: 1, threads: 1 });
    try {
      const seq = ctx.getSequence();
      const out = await seq.controlledEvaluate(tokens.map((t) => [t as Token, { generateNext: { logits: true } }]));
      return out.map((o, i) => {
        const m = o?.next.logits;
        if (!m) throw new Error(`llama.cpp returned no logits at position ${i}`);
        const row = new Float32Array(m.size);
        for (const [tok, v] of m) row[tok] = v;
        return row;
      });
    } finally {
      await ctx.dispose();
    }
  }

  /**
   * `sequences` streams at once, each running `requests` prompts back to back (`promptOf(stream,
   * request)`, its history cleared in between), each decoded greedily for `maxTokens`.
   */
  async sweep(threads: number, sequences: number, requests: number, promptOf: (s: number, r: number) => number[], maxTokens: number): Promise<SweepResult> {
    let longest = 0;
    for (let s = 0; s < sequences; s++) for (let r = 0; r < requests; r++) longest = Math.max(longest, promptOf(s, r).length);
    const ctx = await this.model.createContext({ contextSize: sequences * (longest + maxTokens + 16), sequences, threads, batchSize: 512 });
    try {
      const warm = await warmUp(ctx, sequences);
      const t0 = performance.now();
      const counts = await Promise.all(
        warm.map(async (seq, s) => {
          let n = 0;
          for (let r = 0; r < requests; r++) {
            await seq.clearHistory();
            let got = 0;
            for await (const _token of seq.evaluate(promptOf(s, r) as Token[], { temperature: 0 })) {
              if (++got >= maxTokens) break;
            }
            n += got;
          }
          return n;
        }),
      );
      return { sequences, tokens: counts.reduce((a, b) => a + b, 0), wallS: (performance.now() - t0) / 1000 };
    } finally {
      await ctx.dispose();
    }
  }

  /**
   * One stream: each prompt in turn on a fresh history, decoded greedily for `maxTokens`. Per request,
   * the time to its first token and its decode rate (tokens after the first over the time from the
   * first to the last), as the serving benchmark measures our node's requests.
   */
  async sequential(threads: number, prompts: number[][], maxTokens: number): Promise<RequestRate[]> {
    const longest = Math.max(...prompts.map((p) => p.length));
    const ctx = await this.model.createContext({ contextSize: longest + maxTokens + 16, sequences: 1, threads, batchSize: 512 });
    try {
      const [seq] = await warmUp(ctx, 1);
      const rates: RequestRate[] = [];
      for (const p of prompts) {
        await seq.clearHistory();
        const t0 = performance.now();
        let first = 0;
        let last = 0;
        let got = 0;
        for await (const _token of seq.evaluate(p as Token[], { temperature: 0 })) {
          last = performance.now();
          if (++got === 1) first = last;
          if (got >= maxTokens) break;
        }
        rates.push({ tokens: got, ttftMs: first - t0, decodeTokS: (got - 1) / ((last - first) / 1000) });
      }
      return rates;
    } finally {
      await ctx.dispose();
    }
  }

  /** Seconds to prefill `tokens` into a fresh sequence (no token generated). */
  async prefill(threads: number, tokens: number[]): Promise<number> {
    const ctx = await this.model.createContext({ contextSize: tokens.length + 64, sequences: 1, threads, batchSize: 512 });
    try {
      const [seq] = await warmUp(ctx, 1);
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(tokens as Token[]);
      return (performance.now() - t0) / 1000;
    } finally {
      await ctx.dispose();
    }
  }

  async close(): Promise<void> {
    await this.model.dispose();
    await this.llama.dispose();
  }
}

/**
 * A new context's first decodes are several times slower (compute buffers reserved and graphs built on
 * first use, per batch shape), so each context runs a short prompt + decode on every sequence slot
 * untimed, as our node gets a warm-up request before its sweep. Returns the sequences, history cleared.
 */
async function warmUp(ctx: LlamaContext, sequences: number): Promise<LlamaContextSequence[]> {
  const seqs = Array.from({ length: sequences }, () => ctx.getSequence());
  await Promise.all(
    seqs.map(async (seq, s) => {
      let n = 0;
      for await (const _token of seq.evaluate([1000 + s, 2000, 3000, 4000] as Token[], { temperature: 0 })) if (++n >= 4) break;
    }),
  );
  for (const seq of seqs) await seq.clearHistory();
  return seqs;
}

/** llama.cpp's logits against our reference kernels' (scalar, f64-accumulated) for the same tokens. */
export async function logitsCheck(peer: LlamaCppModel, modelDir: string, tokens: number[]): Promise<LogitsCheck> {
  const theirs = await peer.allLogits(tokens);
  const model = await Model.load(modelDir, { kernels: new ReferenceKernels(), kvBlocks: Math.ceil(tokens.length / 16) + 1, blockSize: 16, log: () => {} });
  const V = model.config.vocabSize;
  const ours = await new Sequence(model).append(tokens, true);
  const rel: number[] = [];
  let agree = 0;
  for (let p = 0; p < tokens.length; p++) {
    let best = 0;
    let bestTheirs = 0;
    let maxAbs = 0;
    let maxDiff = 0;
    for (let v = 0; v < V; v++) {
      const o = ours[p * V + v];
      const t = theirs[p][v];
      maxAbs = Math.max(maxAbs, Math.abs(o));
      maxDiff = Math.max(maxDiff, Math.abs(o - t));
      if (o > ours[p * V + best]) best = v;
      if (t > theirs[p][bestTheirs]) bestTheirs = v;
    }
    rel.push(maxDiff / maxAbs);
    if (best === bestTheirs) agree++;
  }
  rel.sort((a, b) => a - b);
  return { positions: tokens.length, top1Agree: agree, medianRelDiff: rel[rel.length >> 1], maxRelDiff: rel[rel.length - 1] };
}
