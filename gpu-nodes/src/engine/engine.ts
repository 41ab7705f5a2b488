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
import { checkGenerateRequest } from './admission.ts';
import { EngineError } from './errors.ts';
import type { KvCacheManager } from './kv-cache-manager.ts';
import { OutputProcessor, type StreamDecoder } from './output.ts';
import { cacheNamespace } from '../../../shared/prefix-hash.ts';
import { rootHash } from './prefix-cache.ts';
import { EngineRequest } from './request.ts';
import { Scheduler, type SchedulerConfig, type SchedulerOutput } from './scheduler.ts';

export type EventSink = (event: NodeEvent) => void;

/** What the engine needs from the model runner (model-runner.ts). */
export interface StepRunner {
  readonly vocabSize: number;
  readonly maxModelLen: number;
  /** Runs one scheduled step; returns the sampled token of every request whose chunk `samples`. */
  execute(out: SchedulerOutput): Promise<Map<EngineRequest, number>>;
  /** Drops per-request state (the sampler's PRNG). */
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
  private readonly active = new Map<string, Active>();
  private looping = false;
  /** Moving average of one step's duration, for Retry-After. */
  private stepMsEma = 0;
  private idleWaiters: (() => void)[] = [];
  readonly stats: EngineStats = { steps: 0, executeMs: 0, rowsComputed: 0, promptRowsComputed: 0, preemptions: 0, finished: 0 };

  constructor(runner: StepRunner, kv: KvCacheManager, newDecoder: () => StreamDecoder, options: EngineOptions) {
    this.runner = runner;
    this.kv = kv;
    this.newDecoder = newDecoder;
    this.options = options;
    this.scheduler = new Scheduler({ maxBatch: options.maxBatch, maxTokensPerStep: options.maxTokensPerStep, maxRunningPerTenant: options.maxRunningPerTenant }, kv);
  }

  /** Queues a request; events then flow to `sink`. Throws EngineError when it is refused outright. */
  submit(body: GenerateRequest, sink: EventSink): void {
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
    const req = new EngineRequest(body.request_id, body.prompt_token_ids, body.sampling, rootHash(cacheNamespace(body.model, body.cache_salt)), body.tenant);
    this.active.set(req.id, { req, sink: isolate(req, sink), output: new OutputProcessor(this.newDecoder(), body.sampling), started: false });
    this.scheduler.add(req);
    this.kick();
  }

  /** Marks the request cancelled; it is finished (blocks freed, usage sent) before the next step. */
  cancel(requestId: string): boolean {
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
      this.onToken(this.active.get(s.req.id)!, sampled.get(s.req)!);
    }
  }

  private onToken(a: Active, id: number): void {
    a.req.tokens.push(id);
    const { text, finish } = a.output.append(id);
    a.sink({ type: 'tokens', token_ids: [id], text });
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
    for (const a of [...this.active.values()]) {
      if (!a.started) this.sendStart(a);
      this.retire(a);
      a.sink({ type: 'error', code: 'internal_error', message: `engine step failed: ${String(err)}`, usage: this.usageOf(a.req) });
    }
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
