/**
 * One JSON log line per token-batch request when it ends, carrying the trace id from the edge's W3C
 * `traceparent` header, so the edge's request log line and this one are found by the same id.
 * Counts and timings only: never prompt or output text.
 */
import type { GenerateRequest, NodeEvent } from '../../shared/protocol.ts';
import type { EventSink } from './engine/engine.ts';

/** The trace id of a version-00 `traceparent`, or null when absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string | null {
  return /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent?.trim() ?? '')?.[1] ?? null;
}

/** Wraps the request's sink: passes every event on, logs once at the terminal one. */
export function loggedSink(body: GenerateRequest, traceparent: string | undefined, nodeId: string, sink: EventSink, log = console.log): EventSink {
  const started = performance.now();
  let firstTokenAt: number | undefined;
  return (event: NodeEvent) => {
    if (event.type === 'tokens') firstTokenAt ??= performance.now();
    if (event.type === 'finish' || event.type === 'error') {
      log(
        JSON.stringify({
          msg: 'generate',
          request_id: body.request_id,
          trace_id: traceIdOf(traceparent),
          node_id: nodeId,
          model: body.model,
          finish_reason: event.type === 'finish' ? event.finish_reason : 'error',
          error_code: event.type === 'error' ? event.code : null,
          prompt_tokens: event.usage.prompt_tokens,
          cached_tokens: event.usage.cached_tokens,
          output_tokens: event.usage.completion_tokens,
          ttft_ms: firstTokenAt === undefined ? null : Math.round(firstTokenAt - started),
          total_ms: Math.round(performance.now() - started),
        }),
      );
    }
    sink(event);
  };
}
