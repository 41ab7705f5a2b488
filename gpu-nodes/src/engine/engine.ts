/**
 * The engine's busy loop (vLLM v1's EngineCore): schedule → run the model → update, one step at a
 * time, for as long as any request is waiting or running. Between two steps the loop yields to the
 * event loop, which is where new HTTP requests arrive and cancellations land: that yield is what makes
 * batching continuous (a request joins at the next step, not after the current batch drains).
 *
 * Events go out through each request's sink in protocol order: `start` when the request is first
 * scheduled (its prefix lookup has happened), `tokens` after every step that sampled for it, then
 * exactly one `finish` or `error` whose usage counts exactly the tokens that were streamed.
 */
import type { GenerateRequest, NodeEvent, NodeLoad, Usage } from '../../../shared/protocol.ts';
import { PROTOCOL_VERSION } from '../../../shared/protocol.ts';
import { checkGenerateRequest, MAX_CHOICES } from './admission.ts';
import { ChoiceGroup } from './choice-group.ts';
import { EngineError, SequenceFailure } from './errors.ts';
import type { KvCacheManager } from './kv-cache-manager.ts';
import { OutputProcessor, type StreamDecoder } from './output.ts';
import { cacheNamespace } from '../../../shared/prefix-hash.ts';
import { rootHash } from './prefix-cache.ts';
import type { SampledToken } from './model-runner.ts';
import { EngineRequest } from './request.ts';
import { Scheduler, type SchedulerConfig, type SchedulerOutput } from './scheduler.ts';
import { InvalidResponseFormat, type GrammarCompiler, type GrammarState } from './structured-output/grammar-compiler.ts';

export type EventSink = (event: NodeEvent) => void;

/** What the engine needs from the model runner (model-runner.ts). */
export interface StepRunner {
  readonly vocabSize: number;
  readonly maxModelLen: number;
  /**
   * Runs one scheduled step; returns the sampled token of every request whose chunk `samples`, or why
   * that one request could not be sampled (the others are unaffected).
   */
  execute(out: SchedulerOutput): Promise<Map<EngineRequest, SampledToken | SequenceFailure>>;
  /** Drops per-request state (the sampler's PRNG, the grammar matcher). */
  release(req: EngineRequest): void;
}

export interface EngineOptions extends SchedulerConfig {
  nodeId: string;
  modelId: string;
  /** Most requests waiting to be scheduled; past it, submit() answers queue_full (HTTP 429). */
  maxQueue: number;
}

export interface EngineStats {
  steps: number;
  /** Wall time inside the model runner (forward + sampling); the rest of a step is engine overhead. */
  executeMs: number;
  rowsComputed: number;
  promptRowsComputed: number;
  preemptions: number;
  finished: number;
}

interface Active {
  req: EngineRequest;
  sink: EventSink;
  output: OutputProcessor;
  /** Whether `start` has been sent (a request cancelled while still queued gets it at finish). */
  started: boolean;
}

export class Engine {
  readonly options: EngineOptions;
  private readonly runner: StepRunner;
  private readonly kv: KvCacheManager;
  private readonly scheduler: Scheduler;
  private readonly newDecoder: () => StreamDecoder;
  private readonly grammars: GrammarCompiler | undefined;
  private readonly active = new Map<string, Active>();
  /** Requests with n > 1, by their request id (their choices are in `active` under choice ids). */
  private readonly groups = new Map<string, ChoiceGroup>();
  private looping = false;
  /** Moving average of one step's duration, for Retry-After. */
  private stepMsEma = 0;
  private idleWaiters: (() => void)[] = [];
  readonly stats: EngineStats = { steps: 0, executeMs: 0, rowsComputed: 0, promptRowsComputed: 0, preemptions: 0, finished: 0 };

  /** Without `grammars` the engine refuses requests with a response_format. */
  constructor(runner: StepRunner, kv: KvCacheManager, newDecoder: () => StreamDecoder, options: EngineOptions, grammars?: GrammarCompiler) {
    this.runner = runner;
    this.grammars = grammars;
    this.kv = kv;
    this.newDecoder = newDecoder;
    this.options = options;
    this.scheduler = new Scheduler({ maxBatch: options.maxBatch, maxTokensPerStep: options.maxTokensPerStep, maxRunningPerTenant: options.maxRunningPerTenant }, kv);
  }

  /**
   * Queues a request; events then flow to `sink`. Rejects with EngineError when it is refused outright.
   * Without a response_format the request is queued before this returns; with one, once its grammar is
   * compiled (cached per schema, so usually at once).
   */
  async submit(body: GenerateRequest, sink: EventSink): Promise<void> {
    const n = body?.sampling?.n;
    if (n === undefined || n === 1) return this.submitOne(body, sink);
    if (!(Number.isInteger(n) && n >= 1 && n <= MAX_CHOICES)) throw new EngineError('invalid_request', 400, `sampling.n must be an integer in [1, ${MAX_CHOICES}]`, undefined, 'n');
    if (this.groups.has(body.request_id)) throw new EngineError('invalid_request', 400, `request_id ${body.request_id} is already in flight on this node`);
    const choice = (i: number): GenerateRequest => {
      const { n: _n, ...sampling } = body.sampling;
      return { ...body, request_id: ChoiceGroup.choiceId(body.request_id, i), sampling: sampling.seed === undefined ? sampling : { ...sampling, seed: sampling.seed + i } };
    };
    const group: ChoiceGroup = new ChoiceGroup(body.request_id, n, sink, {
      submitRest: () => {
        for (let i = 1; i < n; i++) {
          group.markSubmitted(i);
          this.submitOne(choice(i), group.sinkFor(i)).catch((err: unknown) => group.failToSubmit(i, err instanceof Error ? err.message : String(err)));
        }
      },
      cancel: (indexes) => {
        for (const i of indexes) this.cancel(ChoiceGroup.choiceId(body.request_id, i));
      },
    });
    // Choice 0's refusal (bad params, queue full) is the request's: it throws before any event.
    await this.submitOne(choice(0), group.sinkFor(0));
    group.markSubmitted(0);
    this.groups.set(body.request_id, group);
    group.onDone(() => this.groups.delete(body.request_id));
  }

  private async submitOne(body: GenerateRequest, sink: EventSink): Promise<void> {
    const check = () => {
      checkGenerateRequest(body, {
        modelId: this.options.modelId,
        vocabSize: this.runner.vocabSize,
        maxModelLen: this.runner.maxModelLen,
        kvCapacityTokens: this.kv.numBlocks * this.kv.blockSize,
      });
      if (this.active.has(body.request_id)) {
        throw new EngineError('invalid_request', 400, `request_id ${body.request_id} is already in flight on this node`);
      }
      if (this.scheduler.waiting.length >= this.options.maxQueue) {
        throw new EngineError('queue_full', 429, `node queue is full (${this.options.maxQueue} waiting); retry later or route elsewhere`, this.retryAfterS());
      }
    };
    check();
    let grammar: GrammarState | undefined;
    const format = body.sampling.response_format;
    const toolCalls = body.sampling.tool_calls;
    if ((format !== undefined && format.type !== 'text') || toolCalls !== undefined) {
      grammar = await this.grammarFor(body.sampling);
      try {
        check(); // the queue or the request id may have changed while the grammar compiled
      } catch (err) {
        grammar.dispose();
        throw err;
      }
    }
    const req = new EngineRequest(body.request_id, body.prompt_token_ids, body.sampling, rootHash(cacheNamespace(body.model, body.cache_salt)), grammar, body.tenant);
    this.active.set(req.id, { req, sink: isolate(req, sink), output: new OutputProcessor(this.newDecoder(), body.sampling), started: false });
    this.scheduler.add(req);
    this.kick();
  }

  /** The request's own grammar state, built here from its plain sampling params. */
  private async grammarFor(sampling: GenerateRequest['sampling']): Promise<GrammarState> {
    const format = sampling.response_format;
    const tools = sampling.tool_calls;
    const param = tools ? 'tool_choice' : 'response_format';
    if (!this.grammars) throw new EngineError('invalid_request', 400, `${param} is not supported by this node (it has no grammar compiler)`, undefined, param);
    try {
      if (tools) {
        if (format !== undefined && format.type !== 'text') throw new InvalidResponseFormat('response_format cannot be combined with tool_choice required / a named function or parallel_tool_calls false');
        return await this.grammars.toolCalls(tools, sampling.stop_token_ids);
      }
      return await this.grammars.matcher(format as Exclude<NonNullable<typeof format>, { type: 'text' }>, sampling.stop_token_ids);
    } catch (err) {
      if (err instanceof InvalidResponseFormat) throw new EngineError('invalid_request', 400, `${param}: ${err.message}`, undefined, param);
      throw err;
    }
  }

  /** Marks the request cancelled; it is finished (blocks freed, usage sent) before the next step. */
  cancel(requestId: string): boolean {
    const group = this.groups.get(requestId);
    if (group) return group.cancel();
    const a = this.active.get(requestId);
    if (!a || a.req.cancelled) return false;
    a.req.cancelled = true;
    this.kick();
    return true;
  }

  load(): NodeLoad {
    const usage = this.kv.usage();
    return {
      node_id: this.options.nodeId,
      version: PROTOCOL_VERSION,
      models: [this.options.modelId],
      queue_depth: this.scheduler.waiting.length,
      max_queue: this.options.maxQueue,
      running: this.scheduler.running.length,
      max_batch: this.options.maxBatch,
      kv_blocks_total: usage.total,
      kv_blocks_free: usage.free,
      block_size: this.kv.blockSize,
      cached_blocks: usage.cachedBlocks,
      cached_tokens: usage.cachedBlocks * this.kv.blockSize,
    };
  }

  /**
   * Seconds until a queue slot is likely to open: a waiting request is admitted when a running one
   * ends, and the nearest end is at most its remaining max_tokens steps away (stop sequences only make
   * it sooner). Clamped to [1, 60] so a client neither hammers nor gives up.
   */
  private retryAfterS(): number {
    let steps = Infinity;
    for (const r of this.scheduler.running) steps = Math.min(steps, r.sampling.max_tokens - r.numOutputTokens);
    if (!Number.isFinite(steps)) return 1;
    return Math.min(60, Math.max(1, Math.ceil((steps * this.stepMsEma) / 1000)));
  }

  /** Resolves once no request is waiting or running (tests and graceful shutdown). */
  idle(): Promise<void> {
    if (!this.looping && !this.scheduler.hasWork()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.reapCancelled();
        if (!this.scheduler.hasWork()) break;
        await this.step();
        // Let arrivals and cancellations in between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      console.error('engine step failed; failing every in-flight request', err);
      this.failAll(err);
    } finally {
      this.looping = false;
      if (this.scheduler.hasWork()) this.kick();
      else for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async step(): Promise<void> {
    const out = this.scheduler.schedule();
    for (const req of out.started) this.sendStart(this.active.get(req.id)!);
    // Admission guarantees any single request fits the cache alone, so an empty step means a bug, not load.
    if (out.scheduled.length === 0) throw new Error('scheduler produced an empty step with work pending');
    const t0 = performance.now();
    const sampled = await this.runner.execute(out);
    const ms = performance.now() - t0;
    this.stats.executeMs += ms;
    this.stepMsEma += 0.1 * (ms - this.stepMsEma);
    this.scheduler.updateFromOutput(out);
    this.stats.steps++;
    this.stats.rowsComputed += out.numRows;
    this.stats.preemptions += out.preempted.length;
    for (const s of out.scheduled) {
      const promptRows = Math.max(0, Math.min(s.req.numComputedTokens, s.req.numPromptTokens) - (s.req.numComputedTokens - s.numNewTokens));
      this.stats.promptRowsComputed += promptRows;
      if (!s.samples || s.req.status !== 'running') continue;
      // A token sampled for a request cancelled during this step is dropped: it was never streamed, so it is not billed.
      if (s.req.cancelled) continue;
      const token = sampled.get(s.req)!;
      if (token instanceof SequenceFailure) this.fail(this.active.get(s.req.id)!, token.message);
      else this.onToken(this.active.get(s.req.id)!, token);
    }
  }

  private onToken(a: Active, { id, logprob }: SampledToken): void {
    a.req.tokens.push(id);
    const { text, finish } = a.output.append(id);
    // A stop id ends the output without being part of it: billed, but it has no logprob entry.
    const output = logprob !== undefined && !a.req.sampling.stop_token_ids.includes(id);
    a.sink({ type: 'tokens', token_ids: [id], text, ...(logprob !== undefined ? { logprobs: output ? [logprob] : [] } : {}) });
    if (finish) this.finish(a, finish);
  }

  private reapCancelled(): void {
    for (const a of this.active.values()) if (a.req.cancelled) this.finish(a, 'cancelled');
  }

  private sendStart(a: Active): void {
    a.started = true;
    const { req } = a;
    a.sink({ type: 'start', request_id: req.id, prompt_tokens: req.numPromptTokens, cached_tokens: Math.max(0, req.numCachedTokens), node_id: this.options.nodeId });
  }

  private finish(a: Active, reason: 'stop' | 'length' | 'cancelled'): void {
    if (!a.started) this.sendStart(a);
    this.retire(a);
    a.sink({ type: 'finish', finish_reason: reason, usage: this.usageOf(a.req) });
  }

  private failAll(err: unknown): void {
    for (const a of [...this.active.values()]) this.fail(a, `engine step failed: ${String(err)}`);
  }

  /** Ends one request with an error event; its usage counts the tokens it streamed before. */
  private fail(a: Active, message: string): void {
    if (!a.started) this.sendStart(a);
    this.retire(a);
    a.sink({ type: 'error', code: 'internal_error', message, usage: this.usageOf(a.req) });
  }

  private retire(a: Active): void {
    this.scheduler.finish(a.req);
    this.runner.release(a.req);
    this.active.delete(a.req.id);
    this.stats.finished++;
  }

  private usageOf(req: EngineRequest): Usage {
    return { prompt_tokens: req.numPromptTokens, cached_tokens: Math.max(0, req.numCachedTokens), completion_tokens: req.numOutputTokens };
  }
}

/**
 * A sink that throws (its connection broke in a way the server did not catch) must not fail the whole
 * batch's step: the error is logged and that request alone is cancelled.
 */
function isolate(req: EngineRequest, sink: EventSink): EventSink {
  return function guardedSink(event) {
    try {
      sink(event);
    } catch (err) {
      console.error(`request ${req.id}: event sink failed, cancelling it`, err);
      req.cancelled = true;
    }
  };
}
