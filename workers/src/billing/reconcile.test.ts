import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../index.ts';
import { describe, expect, it } from 'vitest';
import { adminFetch, createTenant, expectReconciled } from '../../test/fixtures.ts';
import { IDEMPOTENCY_RETENTION_MS } from './idempotency.ts';
import { grantCredit } from './ledger.ts';
import { reconcile } from './reconcile.ts';

describe('reconciliation', () => {
  it('reports zero drift for an org whose object and ledger agree', async () => {
    const t = await createTenant({ creditMicros: 12_345 });
    expect(await expectReconciled(t.orgId)).toMatchObject({ ledger_micros: 12_345, object_micros: 12_345, drift_micros: 0 });
  });

  it('reports the drift of a ledger row the object never applied', async () => {
    const t = await createTenant({ creditMicros: 1_000 });
    await expectReconciled(t.orgId);
    // A grant written to D1 whose object call never happened (what a crash between the two leaves).
    await grantCredit(env.DB, t.orgId, 250, 'written behind the object');
    const report = await reconcile(env, [t.orgId]);
    expect(report.drifted).toEqual([{ orgId: t.orgId, ledgerMicros: 1_250, objectMicros: 1_000, driftMicros: -250, openReservations: 0 }]);
    const res = (await (await adminFetch(`/reconcile?org_id=${t.orgId}`)).json()) as { ok: boolean };
    expect(res.ok).toBe(false);
  });

  it('the scheduled handler reconciles every org and trims idempotency records past their retention', async () => {
    const old = Date.now() - IDEMPOTENCY_RETENTION_MS - 1;
    await env.DB.prepare("INSERT INTO idempotency_keys (scope, key, request_hash, status, response_body, created_at) VALUES ('POST /admin/credit', ?, 'h', 201, '{}', ?)")
      .bind(`old-${crypto.randomUUID()}`, old)
      .run();
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: new Date(), cron: '*/10 * * * *' }), env, ctx);
    await waitOnExecutionContext(ctx);
    const left = await env.DB.prepare('SELECT count(*) AS n FROM idempotency_keys WHERE created_at <= ?').bind(old).first<{ n: number }>();
    expect(left!.n).toBe(0);
  });
});
