/**
 * The boundary between the node's HTTP thread and its engine thread (node:worker_threads): every
 * message that crosses it, in both directions. Messages are plain structured-cloneable data, and
 * requests and events cross whole: a `GenerateRequest` goes in as the HTTP thread received it and each
 * `NodeEvent` comes out as the engine emitted it, so a field added to either type crosses unchanged.
 *
 *   HTTP thread → engine thread              engine thread → HTTP thread
 *   submit {call, body}                      submitted {call, refused?, snapshot}
 *   cancel {call, request_id}                cancelled {call, cancelled, snapshot}
 *                                            events {events: [request_id, event][], snapshot}
 *
 * Before these, the engine thread sends one `ready` (model loaded) or `load_failed`. Every answer
 * carries an `EngineSnapshot`, the engine's load and counters as of that moment, which the HTTP thread
 * keeps: `/v1/load` and `/metrics` read it without waiting for the engine, which may be mid-step.
 */
import type { GenerateRequest, NodeErrorCode, NodeEvent, NodeLoad } from '../../../shared/protocol.ts';
import type { EngineOptions, EngineStats } from '../engine/engine.ts';
import type { LoadEngineOptions } from '../engine/load-engine.ts';
import type { BackendName } from '../kernels/select.ts';

/** What the engine thread is started with (its `workerData`): where the model is and how to run it. */
export interface EngineThreadConfig {
  modelDir: string;
  backend: BackendName;
  /** wasm threads; default the cores. */
  threads?: number;
  /** Everything of loadEngine's options except the kernels (chosen in the thread) and the log callback. */
  engine: Omit<LoadEngineOptions, 'kernels' | 'log'>;
  /** Drop the kernel choice and model load progress lines (tests); default: they go to stdout / stderr. */
  quiet?: boolean;
}

/** The engine's state as the HTTP thread serves it. */
export interface EngineSnapshot {
  load: NodeLoad;
  stats: EngineStats;
}

/** An EngineError refusal, as data (the HTTP thread rebuilds the EngineError from it). */
export interface Refusal {
  code: NodeErrorCode;
  status: 400 | 404 | 413 | 429 | 503;
  message: string;
  retryAfterS?: number;
  /** The request field at fault, when one is. */
  param?: string;
}

export type ToEngine =
  | { type: 'submit'; call: number; body: GenerateRequest }
  | { type: 'cancel'; call: number; request_id: string };

export type FromEngine =
  | { type: 'ready'; options: EngineOptions; kernels: string; snapshot: EngineSnapshot }
  | { type: 'load_failed'; message: string }
  /** `refused` when the engine turned the request away; `failed` for any other error thrown by submit. */
  | { type: 'submitted'; call: number; refused?: Refusal; failed?: string; snapshot: EngineSnapshot }
  | { type: 'cancelled'; call: number; cancelled: boolean; snapshot: EngineSnapshot }
  /** Every event the engine emitted since the last message, in emission order. */
  | { type: 'events'; events: [requestId: string, event: NodeEvent][]; snapshot: EngineSnapshot };
