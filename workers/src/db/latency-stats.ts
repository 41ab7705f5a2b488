/**
 * Latency and errors per model and backend over time, for the dashboard's latency charts: per UTC
 * hour or day, the request count, the failed ones, and time-to-first-token p50 / p95 from
 * usage_events.ttft_ms (requests that sent no token have none and are left out of the quantiles).
 *
 * Quantiles are nearest-rank (the value at rank ⌈p·n⌉ among the bucket's TTFTs), computed by
 * SQLite's window functions in one pass, so nothing is pre-aggregated and the chart always agrees
 * with the rows. Scope and ranges as in usage-stats.ts: `orgId: null` = every org (admins only),
 * epoch ms, half-open [from, to), a request belongs to the instant it finished.
 */
import { BUCKET_MS, type Bucket, type StatsQuery } from './usage-stats.ts';

export interface LatencyPoint {
  /** Start of the UTC hour or day, epoch ms. */
  t: number;
  model: string;
  /** model_backends.name, or "pool" for the default node pool. */
  backend: string;
  requests: number;
  /** Requests that ended in status "failed" (a client's cancel is not an error). */
  errors: number;
  /** null when no request in the bucket sent a token. */
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
}

export async function latencyTimeseries(db: D1Database, q: StatsQuery, bucket: Bucket): Promise<LatencyPoint[]> {
  const ms = BUCKET_MS[bucket];
  const org = q.orgId === null ? '' : 'AND org_id = ?3';
  // The bucket width is inlined, not bound: D1 binds JS numbers as REAL, and integer division needs
  // integers (it comes from BUCKET_MS, never from the request).
  // rn numbers the TTFTs of a (bucket, model, backend) in ascending order, apart from the rows
  // without one (their own partition); m counts the TTFTs. Rank ⌈p·m⌉ in integers: (m·P + 99) / 100.
  const sql = `
    SELECT t, model, backend, count(*) AS requests, sum(status = 'failed') AS errors,
      max(CASE WHEN ttft_ms IS NOT NULL AND rn = (m * 50 + 99) / 100 THEN ttft_ms END) AS p50,
      max(CASE WHEN ttft_ms IS NOT NULL AND rn = (m * 95 + 99) / 100 THEN ttft_ms END) AS p95
    FROM (
      SELECT (finished_at / ${ms}) * ${ms} AS t, model_id AS model, coalesce(backend, 'pool') AS backend, status, ttft_ms,
        row_number() OVER (PARTITION BY finished_at / ${ms}, model_id, coalesce(backend, 'pool'), ttft_ms IS NULL ORDER BY ttft_ms) AS rn,
        count(ttft_ms) OVER (PARTITION BY finished_at / ${ms}, model_id, coalesce(backend, 'pool')) AS m
      FROM usage_events
      WHERE finished_at >= ?1 AND finished_at < ?2 ${org}
    )
    GROUP BY t, model, backend
    ORDER BY t, model, backend`;
  const params: (number | string)[] = [q.from, q.to];
  if (q.orgId !== null) params.push(q.orgId);
  const { results } = await db
    .prepare(sql)
    .bind(...params)
    .all<{ t: number; model: string; backend: string; requests: number; errors: number; p50: number | null; p95: number | null }>();
  return results.map((r) => ({
    t: Number(r.t),
    model: r.model,
    backend: r.backend,
    requests: Number(r.requests),
    errors: Number(r.errors),
    ttftP50Ms: r.p50 === null ? null : Number(r.p50),
    ttftP95Ms: r.p95 === null ? null : Number(r.p95),
  }));
}
