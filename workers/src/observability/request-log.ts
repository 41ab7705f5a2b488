/**
 * One structured JSON log line per metered request, and the same figures as one Workers Analytics
 * Engine data point (binding REQUEST_METRICS), written when the request's usage is recorded.
 *
 * Never a key, a prompt or any generated text: ids, counts, money and timings only.
 */
import { env } from 'cloudflare:workers';
import { requestContext, type RequestContext } from './request-context.ts';

export interface RequestRecord {
  requestId: string;
  orgId: string;
  keyId: string;
  modelId: string;
  /** model_backends.name; null for the default node pool. */
  backend: string | null;
  status: string;
  finishReason: string | null;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
  ttftMs: number | null;
  startedAt: number;
  finishedAt: number;
}

/** The log line's fields, in a stable order; trace and node come from the request's context. */
export function requestLogLine(r: RequestRecord, context = requestContext.getStore()): Record<string, unknown> {
  return {
    msg: 'request',
    request_id: r.requestId,
    trace_id: context?.trace.traceId ?? null,
    org_id: r.orgId,
    key_id: r.keyId,
    model: r.modelId,
    backend: r.backend ?? 'pool',
    node: context?.nodeUrl ?? null,
    status: r.status,
    finish_reason: r.finishReason,
    prompt_tokens: r.promptTokens,
    cached_tokens: r.cachedTokens,
    output_tokens: r.completionTokens,
    cost_micros: r.costMicros,
    ttft_ms: r.ttftMs,
    total_ms: r.finishedAt - r.startedAt,
  };
}

/**
 * The Analytics Engine data point: blobs are the dimensions a query groups by, doubles the figures
 * it sums or takes quantiles of, the index the sampling key (one org's requests sample together).
 */
export function requestDataPoint(r: RequestRecord): AnalyticsEngineDataPoint {
  return {
    indexes: [r.orgId],
    blobs: [r.modelId, r.backend ?? 'pool', r.status, r.keyId, r.requestId],
    doubles: [r.ttftMs ?? -1, r.finishedAt - r.startedAt, r.promptTokens, r.cachedTokens, r.completionTokens, r.costMicros],
  };
}

/** `context`: the request's, captured while its handler ran (the default is the caller's current one). */
export function logRequest(r: RequestRecord, context = requestContext.getStore()): void {
  console.log(JSON.stringify(requestLogLine(r, context)));
  // Absent in a worker deployed without the binding: the log line alone still tells the story.
  (env as Partial<Env>).REQUEST_METRICS?.writeDataPoint(requestDataPoint(r));
}
