/**
 * The money check a cross-process test runs after a fault: the request's D1 usage row, its ledger
 * debit, the org's Durable Object balance and the ledger sum all agree (GET /admin/reconcile), and
 * nothing is still reserved. Everything is read through the worker's admin API, as an operator would.
 */
import { expect } from 'vitest';
import { costMicros } from '../../shared/pricing.ts';

export interface UsageRow {
  status: string;
  finishReason: string | null;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
  priceId: number;
  startedAt: number;
}

export class Books {
  private readonly workerUrl: string;
  private readonly adminToken: string;
  private readonly orgId: string;

  constructor(workerUrl: string, adminToken: string, orgId: string) {
    this.workerUrl = workerUrl;
    this.adminToken = adminToken;
    this.orgId = orgId;
  }

  async admin<T>(path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.workerUrl}/admin${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  /** The request's row and debit, waiting for the row (it is written after the response). */
  async recorded(requestId: string): Promise<{ event: UsageRow; debit: { amountMicros: number } | null }> {
    for (let i = 0; i < 150; i++) {
      const res = await this.admin<{ event: UsageRow; debit: { amountMicros: number } | null }>(`/usage/${requestId}`);
      if (res.status === 200) return res.body;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no usage row for ${requestId}`);
  }

  /** Row, debit, the org object's balance and the ledger all agree; nothing is still reserved. */
  async expectSettledExactly(requestId: string): Promise<UsageRow> {
    const { event, debit } = await this.recorded(requestId);
    const price = (await this.admin<{ inputCacheMiss: number; inputCacheHit: number; output: number; id: number }>(`/prices/k2-tiny?at=${event.startedAt}`)).body;
    expect(event.priceId).toBe(price.id);
    expect(event.costMicros).toBe(costMicros(price, event));
    // `0 - cost`, not `-cost`: a zero-cost debit is stored as 0, and -0 is not 0 to toBe.
    expect(debit?.amountMicros).toBe(0 - event.costMicros);
    // The reconciliation endpoint: the org's object against its ledger, once nothing is in flight.
    for (let i = 0; ; i++) {
      const report = (await this.admin<{ orgs: { drift_micros: number; open_reservations: number }[] }>(`/reconcile?org_id=${this.orgId}`)).body;
      const org = report.orgs[0];
      if (org.open_reservations === 0 && org.drift_micros === 0) break;
      if (i > 100) throw new Error(`org did not reconcile: ${JSON.stringify(org)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return event;
  }
}
