import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { continueTrace, traceparent } from './request-context.ts';
import { requestDataPoint, requestLogLine, type RequestRecord } from './request-log.ts';

const record: RequestRecord = {
  requestId: 'req_1',
  orgId: 'org_a',
  keyId: 'key_1',
  modelId: 'k2-tiny',
  backend: null,
  status: 'completed',
  finishReason: 'length',
  promptTokens: 40,
  cachedTokens: 32,
  completionTokens: 12,
  costMicros: 345,
  ttftMs: 87,
  startedAt: 1_000_000,
  finishedAt: 1_000_420,
};

describe('request log line and Analytics Engine data point', () => {
  it('carries the figures, the trace and the node; total_ms is finish minus start', () => {
    const trace = continueTrace('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(requestLogLine(record, { trace, nodeUrl: 'http://n1' })).toMatchObject({
      request_id: 'req_1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      org_id: 'org_a',
      key_id: 'key_1',
      backend: 'pool',
      node: 'http://n1',
      output_tokens: 12,
      cost_micros: 345,
      ttft_ms: 87,
      total_ms: 420,
    });
  });

  it('writes one data point per request to the REQUEST_METRICS binding (latency and tokens as doubles)', () => {
    const point = requestDataPoint(record);
    expect(point.doubles).toEqual([87, 420, 40, 32, 12, 345]);
    expect(point.blobs?.slice(0, 3)).toEqual(['k2-tiny', 'pool', 'completed']);
    // The binding from wrangler.toml exists and accepts the point as built.
    expect(() => env.REQUEST_METRICS.writeDataPoint(point)).not.toThrow();
  });

  it('continues a valid traceparent with a new edge span, and starts a new trace for an invalid one', () => {
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const next = traceparent(continueTrace(incoming));
    expect(next).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(next).not.toBe(incoming);
    for (const bad of [undefined, 'garbage', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']) {
      const fresh = continueTrace(bad);
      expect(fresh.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(fresh.traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    }
  });
});
