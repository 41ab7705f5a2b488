/**
 * What the HTTP layer (server.ts, openai/routes.ts, metrics.ts, cli/serve.ts) needs from an engine.
 * Both the in-process `Engine` (engine/engine.ts, used directly by tests) and the `EngineThread`
 * that runs it on a worker thread (engine-client.ts, what `k2node serve` uses) satisfy it, so callers
 * `await` submit and cancel whichever they hold.
 */
import type { GenerateRequest, NodeLoad } from '../../../shared/protocol.ts';
import type { EngineOptions, EngineStats, EventSink } from '../engine/engine.ts';

export interface EngineHandle {
  readonly options: EngineOptions;
  /** Counters of the engine's work (steps, execute time, preemptions), as of the latest snapshot. */
  readonly stats: EngineStats;
  /** Queues a request; events then flow to `sink`. Throws (or rejects with) EngineError when refused outright. */
  submit(body: GenerateRequest, sink: EventSink): void | Promise<void>;
  /** Whether a request of that id was in flight and is now being cancelled. */
  cancel(requestId: string): boolean | Promise<boolean>;
  load(): NodeLoad;
  /** Resolves once nothing is waiting or running. */
  idle(): Promise<void>;
}
