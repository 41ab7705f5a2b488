/**
 * The HTTP thread's side of the engine thread: starts engine-worker.ts on a worker thread and stands
 * in for the engine (EngineHandle). Submits and cancels become messages (messages.ts) answered
 * between engine steps; events come back in batches and go to each request's sink here, on the HTTP
 * thread; `load()` and `stats` answer at once from the latest snapshot the engine thread posted.
 *
 * If the engine thread dies (an uncaught error, a fatal out-of-memory inside it), every request in
 * flight gets a terminal `error` event whose usage counts exactly the tokens its sink received, new
 * submits are refused with 503, and `died` resolves so the process can exit and be restarted.
 */
import { Worker } from 'node:worker_threads';
import type { GenerateRequest, NodeEvent, NodeLoad } from '../../../shared/protocol.ts';
import type { EngineOptions, EngineStats, EventSink } from '../engine/engine.ts';
import { EngineError } from '../engine/errors.ts';
import type { EngineHandle } from './engine-handle.ts';
import type { EngineSnapshot, EngineThreadConfig, FromEngine, ToEngine } from './messages.ts';

/** A request the engine accepted (or is deciding on) whose terminal event has not arrived yet. */
interface InFlight {
  sink: EventSink;
  /** The engine answered the submit with acceptance (until then a death is the submit's error). */
  accepted: boolean;
  started: boolean;
  promptTokens: number;
  cachedTokens: number;
  /** Completion tokens delivered to the sink so far. */
  streamed: number;
}

interface Call {
  resolve(message: FromEngine): void;
  reject(err: Error): void;
}

export class EngineThread implements EngineHandle {
  readonly options: EngineOptions;
  /** Name of the kernel backend the engine thread chose (kernels/select.ts). */
  readonly kernels: string;
  /** The worker thread's id: never the HTTP thread's. */
  readonly threadId: number;
  /** Resolves with the reason once the engine thread has stopped without close() being called. */
  readonly died: Promise<Error>;
  private readonly worker: Worker;
  private snapshot: EngineSnapshot;
  private readonly inFlight = new Map<string, InFlight>();
  private readonly calls = new Map<number, Call>();
  private nextCall = 0;
  private dead: Error | undefined;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  private onDeath!: (err: Error) => void;

  /** Starts the thread and resolves once the model is loaded; rejects with the load error. */
  static async start(config: EngineThreadConfig): Promise<EngineThread> {
    const worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { workerData: config });
    const ready = await new Promise<Extract<FromEngine, { type: 'ready' }>>((resolve, reject) => {
      const exited = (code: number) => fail(new Error(`engine thread exited with code ${code} while loading the model`));
      const detach = () => {
        worker.off('message', onMessage);
        worker.off('error', fail);
        worker.off('exit', exited);
      };
      const fail = (err: Error) => {
        detach();
        void worker.terminate();
        reject(err);
      };
      const onMessage = (m: FromEngine) => {
        if (m.type === 'ready') {
          detach();
          resolve(m);
        } else if (m.type === 'load_failed') fail(new Error(m.message));
      };
      worker.on('message', onMessage);
      worker.on('error', fail);
      worker.on('exit', exited);
    });
    return new EngineThread(worker, ready);
  }

  private constructor(worker: Worker, ready: Extract<FromEngine, { type: 'ready' }>) {
    this.worker = worker;
    this.threadId = worker.threadId;
    this.options = ready.options;
    this.kernels = ready.kernels;
    this.snapshot = ready.snapshot;
    this.died = new Promise((resolve) => (this.onDeath = resolve));
    worker.on('message', (m: FromEngine) => this.receive(m));
    worker.on('error', (err) => this.die(err));
    worker.on('exit', (code) => this.die(new Error(`engine thread exited with code ${code}`)));
  }

  get stats(): EngineStats {
    return this.snapshot.stats;
  }

  load(): NodeLoad {
    return this.snapshot.load;
  }

  async submit(body: GenerateRequest, sink: EventSink): Promise<void> {
    if (this.dead) throw new EngineError('not_ready', 503, `the engine thread stopped (${this.dead.message}); retry on another node`, 5);
    const id = body?.request_id;
    // The sink must be in place before the engine can emit; a second request with a live id would
    // take over the first one's sink, so it is refused here as the engine would refuse it.
    if (typeof id === 'string' && this.inFlight.has(id)) {
      throw new EngineError('invalid_request', 400, `request_id ${id} is already in flight on this node`);
    }
    const tracked = typeof id === 'string' ? id : undefined;
    if (tracked !== undefined) this.inFlight.set(tracked, { sink, accepted: false, started: false, promptTokens: body.prompt_token_ids?.length ?? 0, cachedTokens: 0, streamed: 0 });
    let answer: FromEngine;
    try {
      answer = await this.call((call) => ({ type: 'submit', call, body }));
    } catch (err) {
      if (tracked !== undefined) this.inFlight.delete(tracked);
      throw err;
    }
    if (answer.type !== 'submitted' || answer.refused || answer.failed !== undefined) {
      if (tracked !== undefined) this.inFlight.delete(tracked);
      this.settleIdle();
      if (answer.type === 'submitted' && answer.refused) {
        const r = answer.refused;
        throw new EngineError(r.code, r.status, r.message, r.retryAfterS, r.param);
      }
      throw new Error(`engine thread could not take the request: ${answer.type === 'submitted' ? answer.failed : answer.type}`);
    }
    const accepted = tracked === undefined ? undefined : this.inFlight.get(tracked);
    if (accepted) accepted.accepted = true;
  }

  async cancel(requestId: string): Promise<boolean> {
    if (this.dead) return false;
    const answer = await this.call((call) => ({ type: 'cancel', call, request_id: requestId }));
    return answer.type === 'cancelled' && answer.cancelled;
  }

  /** Resolves once every accepted request has delivered its terminal event here. */
  idle(): Promise<void> {
    if (this.inFlight.size === 0 && this.calls.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops the engine thread (tests; the server process otherwise ends with it). */
  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private call(message: (call: number) => ToEngine): Promise<FromEngine> {
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(call, { resolve, reject });
      this.worker.postMessage(message(call));
    });
  }

  private receive(m: FromEngine): void {
    if ('snapshot' in m) this.snapshot = m.snapshot;
    switch (m.type) {
      case 'submitted':
      case 'cancelled': {
        const call = this.calls.get(m.call);
        this.calls.delete(m.call);
        call?.resolve(m);
        break;
      }
      case 'events':
        for (const [id, event] of m.events) this.deliver(id, event);
        break;
    }
    this.settleIdle();
  }

  private deliver(id: string, event: NodeEvent): void {
    const f = this.inFlight.get(id);
    if (!f) return;
    if (event.type === 'start') {
      f.started = true;
      f.promptTokens = event.prompt_tokens;
      f.cachedTokens = event.cached_tokens;
    } else if (event.type === 'tokens') f.streamed += event.token_ids.length;
    else this.inFlight.delete(id);
    try {
      f.sink(event);
    } catch (err) {
      // As in the engine: a sink that throws fails its own request only.
      console.error(`request ${id}: event sink failed, cancelling it`, err);
      if (event.type !== 'finish' && event.type !== 'error') void this.cancel(id);
    }
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    if (this.closing) return;
    console.error('k2node: the engine thread stopped; failing every request in flight', err);
    for (const call of this.calls.values()) call.reject(new EngineError('not_ready', 503, `the engine thread stopped (${err.message}); retry on another node`, 5));
    this.calls.clear();
    for (const [id, f] of [...this.inFlight]) {
      // A request still waiting for its submit's answer gets the rejection above instead.
      if (!f.accepted) continue;
      if (!f.started) this.deliver(id, { type: 'start', request_id: id, prompt_tokens: f.promptTokens, cached_tokens: 0, node_id: this.options.nodeId });
      this.deliver(id, {
        type: 'error',
        code: 'internal_error',
        message: `engine thread stopped: ${err.message}`,
        usage: { prompt_tokens: f.promptTokens, cached_tokens: f.cachedTokens, completion_tokens: f.streamed },
      });
    }
    this.settleIdle();
    this.onDeath(err);
  }

  private settleIdle(): void {
    if (this.inFlight.size > 0 || this.calls.size > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
