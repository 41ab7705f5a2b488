/**
 * The engine thread's entry point: loads the kernels and the model, then runs the engine (scheduler,
 * KV cache, forward passes) here, off the HTTP thread, so a long step never delays `/health`,
 * `/v1/load` or `/metrics`. It speaks only messages.ts: requests in, events and snapshots out.
 *
 * The engine yields between steps (engine.ts), which is when submits and cancels posted by the HTTP
 * thread are handled, exactly as HTTP requests were handled between steps when both shared a thread.
 * Events a step emits are gathered and posted as one message when the step's synchronous part ends
 * (a microtask), with a snapshot taken after them, so the HTTP thread's load never lags its events.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { NodeEvent } from '../../../shared/protocol.ts';
import type { Engine } from '../engine/engine.ts';
import { EngineError } from '../engine/errors.ts';
import { loadEngine } from '../engine/load-engine.ts';
import { selectKernels } from '../kernels/select.ts';
import type { EngineSnapshot, EngineThreadConfig, FromEngine, ToEngine } from './messages.ts';

const port = parentPort;
if (!port) throw new Error('engine-worker.ts runs as a worker thread (engine-client.ts starts it)');
const config = workerData as EngineThreadConfig;
const post = (message: FromEngine) => port.postMessage(message);

function snapshot(engine: Engine): EngineSnapshot {
  return { load: engine.load(), stats: { ...engine.stats } };
}

/** Collects events and posts them once per turn, after the code that emitted them has finished. */
function outbox(engine: Engine): (requestId: string, event: NodeEvent) => void {
  let pending: [string, NodeEvent][] = [];
  const flush = () => {
    const events = pending;
    pending = [];
    post({ type: 'events', events, snapshot: snapshot(engine) });
  };
  return (requestId, event) => {
    if (pending.length === 0) queueMicrotask(flush);
    pending.push([requestId, event]);
  };
}

function serve(engine: Engine): void {
  const emit = outbox(engine);
  port!.on('message', (message: ToEngine) => {
    switch (message.type) {
      case 'submit': {
        const { call, body } = message;
        // submit is async (a structured-output grammar compiles before the request queues): its refusal is a rejection.
        engine.submit(body, (event) => emit(body.request_id, event)).then(
          () => post({ type: 'submitted', call, snapshot: snapshot(engine) }),
          (err: unknown) => {
            if (err instanceof EngineError) {
              const { code, status, message: text, retryAfterS, param } = err;
              post({ type: 'submitted', call, refused: { code, status, message: text, retryAfterS, param }, snapshot: snapshot(engine) });
            } else {
              console.error(`engine thread: submit of ${body?.request_id} failed`, err);
              post({ type: 'submitted', call, failed: err instanceof Error ? err.message : String(err), snapshot: snapshot(engine) });
            }
          },
        );
        break;
      }
      case 'cancel':
        post({ type: 'cancelled', call: message.call, cancelled: engine.cancel(message.request_id), snapshot: snapshot(engine) });
        break;
    }
  });
}

try {
  const quiet = config.quiet === true ? () => {} : undefined;
  const kernels = await selectKernels({ backend: config.backend, threads: config.threads, log: quiet ?? ((line) => console.log(`k2node: ${line}`)) });
  const engine = await loadEngine(config.modelDir, { ...config.engine, kernels, log: quiet });
  serve(engine);
  post({ type: 'ready', options: engine.options, kernels: kernels.name, snapshot: snapshot(engine) });
} catch (err) {
  post({ type: 'load_failed', message: err instanceof Error ? err.message : String(err) });
}
