/** Test helpers that go through the worker's own admin API, as an operator would. */
import { env, SELF } from 'cloudflare:test';
import { inject } from 'vitest';

const BASE = 'http://edge.test';

export async function adminFetch(path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST'): Promise<Response> {
  return SELF.fetch(`${BASE}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export interface Tenant {
  orgId: string;
  keyId: string;
  key: string;
}

/** A new organization with one key and `creditMicros` of credit (0 = none granted). */
export async function createTenant(opts: { creditMicros?: number; scopes?: string[]; expiresAt?: number } = {}): Promise<Tenant> {
  const org = (await (await adminFetch('/organizations', { name: 'test org' })).json()) as { id: string };
  const res = await adminFetch('/keys', { org_id: org.id, scopes: opts.scopes, expires_at: opts.expiresAt });
  const key = (await res.json()) as { id: string; key: string };
  const credit = opts.creditMicros ?? 10_000_000;
  if (credit > 0) await adminFetch('/credit', { org_id: org.id, amount_micros: credit });
  return { orgId: org.id, keyId: key.id, key: key.key };
}

/** Points the k2-tiny pool at the node started by global-setup.ts. */
export async function useTestNode(): Promise<string> {
  const url = inject('nodeUrl');
  const res = await adminFetch('/nodes', { pool: 'k2-tiny', url });
  if (res.status !== 201) throw new Error(`registering node failed: ${res.status} ${await res.text()}`);
  return url;
}

export async function api(path: string, key: string | null, body?: unknown, init: RequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return SELF.fetch(`${BASE}/v1${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

/** Polls until `read` returns a value: usage is written in waitUntil, after the response. */
export async function eventually<T>(read: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for a value');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface OrgReconciliation {
  org_id: string;
  ledger_micros: number;
  object_micros: number;
  drift_micros: number;
  open_reservations: number;
}

/**
 * The org's reconciliation once everything in flight has settled and been written (no open
 * reservation, the usage queue drained): its drift must then be 0. Returns the final report.
 */
export async function expectReconciled(orgId: string, timeoutMs = 15_000): Promise<OrgReconciliation> {
  let last: OrgReconciliation | undefined;
  try {
    return await eventually(async () => {
      const report = (await (await adminFetch(`/reconcile?org_id=${orgId}`)).json()) as { orgs: OrgReconciliation[] };
      last = report.orgs[0];
      return last && last.open_reservations === 0 && last.drift_micros === 0 ? last : undefined;
    }, timeoutMs);
  } catch {
    throw new Error(`org ${orgId} did not reconcile: ${JSON.stringify(last)}`);
  }
}
