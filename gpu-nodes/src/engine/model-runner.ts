/**
 * Runs one scheduled step on the model (vLLM's gpu_model_runner): scheduler output → StepBatch →
 * Model.forward → one sampled token per request that samples this step. Holds each request's sampler,
 * so a seeded request's PRNG advances exactly once per token it generates, however it is batched,
 * chunked or preempted. A request with a grammar (structured outputs) has its row masked to the tokens
 * the grammar allows, and the grammar advances by the sampled token.
 *
 * Sampling is per sequence: a row that cannot be sampled (SamplingError: non-finite logits, everything
 * masked) or a sampler that throws gives that request a SequenceFailure; the rest of the batch goes on.
 *
 * Greedy rows skip the host: a request whose sampler is plain greedy (Sampler.greedy) and that has no
 * grammar, no logprobs and no logits hook gets the argmax taken where the logits are (Model.argmaxLogits,
 * one wasm pass over shared memory) instead of a 400 KB copy and a JS scan per row. Only the other rows
 * are copied out, and a greedy row the backend reports as unsampleable (-1) goes the host way, whose
 * sampler says why.
 */
import type { Model } from '../model/forward.ts';
import type { TokenLogprob } from '../../../shared/protocol.ts';
import { tokenLogprob } from '../model/logprobs.ts';
import { createSampler, type Sampler } from '../model/sampler.ts';
import { SequenceFailure } from './errors.ts';
import type { KvCacheManager } from './kv-cache-manager.ts';
import type { EngineRequest } from './request.ts';
import type { SchedulerOutput } from './scheduler.ts';
import { buildStepBatch } from './step-batch.ts';
import type { StepRunner } from './engine.ts';

/** Sees, and may change, each sampled row before the sampler does (tests inject faults into one sequence with it). */
export type LogitsHook = (requestId: string, row: Float32Array) => void;

/** One request's token from a step, with its logprobs when the request asked for them. */
export interface SampledToken {
  id: number;
  logprob?: TokenLogprob;
}

export class ModelRunner implements StepRunner {
  readonly model: Model;
  readonly vocabSize: number;
  readonly maxModelLen: number;
  private readonly kv: KvCacheManager;
  private readonly samplers = new Map<string, Sampler>();
  /**
   * Host copy of the step's logits, reused: sampling is done with them before the next step, and a
   * fresh 400 KB-per-row array every step cost more than the copy into it (its pages fault in).
   */
  private logits = new Float32Array(0);

  private readonly logitsHook: LogitsHook | undefined;

  constructor(model: Model, kv: KvCacheManager, logitsHook?: LogitsHook) {
    this.model = model;
    this.kv = kv;
    this.logitsHook = logitsHook;
    this.vocabSize = model.config.vocabSize;
    this.maxModelLen = model.maxPositions;
  }

  async execute(out: SchedulerOutput): Promise<Map<EngineRequest, SampledToken | SequenceFailure>> {
    const batch = buildStepBatch(out, (id) => this.kv.blockTable(id), this.kv.blockSize);
    const need = batch.logitRows.length * this.vocabSize;
    if (this.logits.length < need) this.logits = new Float32Array(need);
    const nLogits = await this.model.step(batch);
    const sampled = new Map<EngineRequest, SampledToken | SequenceFailure>();
    const V = this.vocabSize;
    const logits = this.logits;
    // Logit row of each sampling request, in the scheduler's order (buildStepBatch's logitRows order).
    const rows: { req: EngineRequest; row: number }[] = [];
    for (const { req, samples } of out.scheduled) if (samples) rows.push({ req, row: rows.length });
    if (rows.length !== nLogits) throw new Error(`model step gave ${nLogits} logit rows for ${rows.length} sampling requests`);
    const onDevice = this.model.canArgmax && !this.logitsHook ? rows.filter(({ req }) => this.argmaxOnly(req)) : [];
    const argmaxes = onDevice.length > 0 ? await this.model.argmaxLogits(Int32Array.from(onDevice, (r) => r.row)) : new Int32Array(0);
    const onHost: typeof rows = [];
    let j = 0;
    for (const r of rows) {
      if (j < onDevice.length && onDevice[j] === r) {
        const id = argmaxes[j++];
        if (id >= 0) sampled.set(r.req, { id });
        else onHost.push(r);
      } else onHost.push(r);
    }
    // One copy when every row is wanted (contiguous), else one per row; none for a step that sampled
    // nothing (a prefill chunk has no logits to read).
    if (rows.length > 0 && onHost.length === rows.length) await this.model.readLogits(0, rows.length, logits);
    else for (const { row } of onHost) await this.model.readLogits(row, 1, logits.subarray(row * V, (row + 1) * V));
    for (const { req, row } of onHost) {
      try {
        if (this.logitsHook) this.logitsHook(req.id, logits.subarray(row * V, (row + 1) * V));
        const allowed = req.grammar ? await req.grammar.nextTokenBitmask() : undefined;
        const id = this.samplerOf(req).sample(logits, row * V, V, req, allowed);
        if (req.grammar && !req.grammar.accept(id)) throw new Error(`the grammar rejected token ${id} it had allowed`);
        const k = req.sampling.logprobs;
        sampled.set(req, k === undefined ? { id } : { id, logprob: tokenLogprob(logits, row * V, V, id, k) });
      } catch (err) {
        sampled.set(req, new SequenceFailure(`sampling failed for this sequence: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
    return sampled;
  }

  /** This request's next token is the raw row's argmax: nothing else reads the row. */
  private argmaxOnly(req: EngineRequest): boolean {
    if (req.grammar || req.sampling.logprobs !== undefined) return false;
    try {
      return this.samplerOf(req).greedy;
    } catch {
      return false; // a sampler that cannot be made fails this request on the host path, in its try
    }
  }

  release(req: EngineRequest): void {
    this.samplers.delete(req.id);
    req.grammar?.dispose();
  }

  private samplerOf(req: EngineRequest): Sampler {
    let s = this.samplers.get(req.id);
    if (!s) {
      const p = req.sampling;
      s = createSampler({
        temperature: p.temperature,
        topP: p.top_p,
        seed: p.seed,
        topK: p.top_k,
        minP: p.min_p,
        presencePenalty: p.presence_penalty,
        frequencyPenalty: p.frequency_penalty,
        repetitionPenalty: p.repetition_penalty,
        minTokens: p.min_tokens,
        stopTokenIds: p.stop_token_ids,
        logitBias: p.logit_bias ? new Map(Object.entries(p.logit_bias).map(([id, bias]) => [Number(id), bias])) : undefined,
      });
      this.samplers.set(req.id, s);
    }
    return s;
  }
}
