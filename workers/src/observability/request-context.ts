/**
 * What the edge knows about the request in flight, reachable from code that has no Hono context
 * (node-client.ts, billing/meter.ts) through AsyncLocalStorage: its W3C trace context, and the
 * node that accepted it once one has. Set up by middleware/trace.ts for the whole request,
 * including the stream that outlives the handler.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface TraceContext {
  /** 32 lowercase hex digits, shared by every span of the request (the client's when it sent one). */
  traceId: string;
  /** 16 hex digits: the edge's own span. */
  spanId: string;
  /** trace-flags, two hex digits ("01" = sampled). */
  flags: string;
}

export interface RequestContext {
  trace: TraceContext;
  /** Base URL of the GPU node that accepted the generation (node-client.ts sets it). */
  nodeUrl?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

const hex = (bytes: number) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * The trace context to continue from an incoming `traceparent` header (version 00 format), or a
 * fresh one when it is absent or malformed: https://www.w3.org/TR/trace-context/#traceparent-header
 */
export function continueTrace(header: string | undefined): TraceContext {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(header?.trim() ?? '');
  // Version ff and all-zero ids are invalid by the spec: start a new trace instead.
  if (m && m[1] !== 'ff' && !/^0+$/.test(m[2]) && !/^0+$/.test(m[3])) return { traceId: m[2], spanId: hex(8), flags: m[4] };
  return { traceId: hex(16), spanId: hex(8), flags: '01' };
}

/** The `traceparent` to send on an outgoing call: same trace, the edge's span as the parent. */
export function traceparent(trace: TraceContext): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`;
}
