/**
 * Alert webhooks end to end: the worker in wrangler's local runtime (its alert-webhooks Queue run by
 * miniflare) → a real HTTP receiver started here. An org sets a balance threshold and a key-budget
 * percentage; real chat completions on the test GPU node spend across them. Each crossing must
 * arrive exactly once (one event id), signed (Standard Webhooks HMAC-SHA256, verified here with
 * node:crypto), retried after the receiver answers 500, and re-armed only after a top-up.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker, type SeededTenant } from '../scripts/local-worker.ts';
import { startTestNode, type TestNode } from './support/test-node.ts';

const ADMIN_TOKEN = 'alert-webhooks-e2e-admin-token';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}

/** Standard Webhooks: v1,base64(HMAC-SHA256(base64decode(secret without "whsec_"), "id.timestamp.body")). */
function signatureValid(secret: string, d: Delivery): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${d.headers['webhook-id']}.${d.headers['webhook-timestamp']}.${d.body}`).digest();
  const presented = Buffer.from(String(d.headers['webhook-signature']).replace(/^v1,/, ''), 'base64');
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

async function until<T>(read: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('alert webhooks', () => {
  let node: TestNode;
  let worker: LocalWorker;
  let receiver: Server;
  let receiverUrl: string;
  let persistTo: string;
  let tenant: SeededTenant;
  const deliveries: Delivery[] = [];
  const seen = new Set<string>();
  /** When set, the receiver answers 500 to the first attempt of the next event id it has not seen. */
  let failNextNewEvent = false;

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${worker.url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  const chat = async () => {
    const res = await fetch(`${worker.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    await res.json();
  };

  /** The object's balance once every request has settled (no open reservation). */
  const settledBalance = () =>
    until(async () => {
      const a = (await admin('GET', `/organizations/${tenant.orgId}/account`)).body;
      return a.open_reservations === 0 ? Number(a.balance_micros) : undefined;
    });

  const ofType = (type: string) => deliveries.filter((d) => JSON.parse(d.body).type === type);

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const id = String(req.headers['webhook-id']);
        const fail = failNextNewEvent && !seen.has(id);
        if (fail) failNextNewEvent = false;
        const answered = fail ? 500 : 200;
        seen.add(id);
        deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), answered });
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    persistTo = mkdtempSync(join(tmpdir(), 'edge-alerts-'));
    node = await startTestNode();
    applyLocalMigrations(persistTo);
    worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret: node.secret, persistTo });
    tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'alerts-e2e', 10_000);
  });

  afterAll(async () => {
    await worker?.stop();
    await node?.stop();
    await new Promise((r) => receiver?.close(r));
    if (persistTo) rmSync(persistTo, { recursive: true, force: true });
  });

  it('one signed delivery per balance crossing, retried after a 500, re-armed by a top-up', async () => {
    const set = await admin('PUT', `/organizations/${tenant.orgId}/alerts`, { webhook_url: receiverUrl, balance_below_micros: 9_990 });
    expect(set.status).toBe(200);
    const secret = String(set.body.webhook_secret);
    expect(secret).toMatch(/^whsec_/);

    await chat(); // 10 000 → below 9 990: the crossing
    const first = await until(() => deliveries.find((d) => JSON.parse(d.body).type === 'balance.below_threshold'));
    const eventId = String(first.headers['webhook-id']);
    expect(eventId).toMatch(/^evt_/);
    expect(signatureValid(secret, first)).toBe(true);
    expect(signatureValid('whsec_' + Buffer.from('wrong key').toString('base64'), first)).toBe(false);
    const payload = JSON.parse(first.body);
    const balance = await settledBalance();
    expect(payload).toMatchObject({ id: eventId, type: 'balance.below_threshold', org_id: tenant.orgId, data: { threshold_micros: 9_990, balance_micros: balance } });

    // Still below: more spend sends nothing new.
    await chat();
    await chat();
    const belowAgain = await settledBalance();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(ofType('balance.below_threshold')).toHaveLength(1);

    // A top-up to just above the threshold re-arms it; the next request crosses again, and this
    // time the receiver answers 500 first: the same event (same id and body) is retried.
    const grant = await admin('POST', '/credit', { org_id: tenant.orgId, amount_micros: 9_990 - belowAgain + 1 });
    expect(grant.status).toBe(201);
    failNextNewEvent = true;
    await chat();
    const second = await until(() => {
      const attempts = ofType('balance.below_threshold').slice(1);
      return attempts.length >= 2 ? attempts : undefined;
    });
    expect(second.map((d) => d.answered)).toEqual([500, 200]);
    expect(second[0].headers['webhook-id']).toBe(second[1].headers['webhook-id']);
    expect(second[0].headers['webhook-id']).not.toBe(eventId);
    expect(second[0].body).toBe(second[1].body);
    for (const d of second) expect(signatureValid(secret, d)).toBe(true);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(ofType('balance.below_threshold')).toHaveLength(3);

    // The dashboard's record: two events, the second delivered on its second attempt.
    const events = (await admin('GET', `/organizations/${tenant.orgId}/alerts/events`)).body.data as Record<string, unknown>[];
    expect(events.filter((e) => e.type === 'balance.below_threshold').map((e) => [e.id, e.attempts, e.last_status])).toEqual([
      [second[0].headers['webhook-id'], 2, 200],
      [eventId, 1, 200],
    ]);
  });

  it('a key reaching its budget percentage alerts once per period', async () => {
    const current = (await admin('GET', `/organizations/${tenant.orgId}/alerts`)).body;
    await admin('PUT', `/keys/${tenant.keyId}/budget`, { limit_micros: 1_000, period: 'daily' });
    // 1 % of 1 000 µ$: the first request reaches it.
    await admin('PUT', `/organizations/${tenant.orgId}/alerts`, { webhook_url: receiverUrl, balance_below_micros: current.balance_below_micros, key_budget_percent: 1 });
    await admin('POST', '/credit', { org_id: tenant.orgId, amount_micros: 100_000 });
    await chat();
    const alert = await until(() => ofType('key.budget_threshold')[0]);
    expect(JSON.parse(alert.body)).toMatchObject({ type: 'key.budget_threshold', data: { key_id: tenant.keyId, limit_micros: 1_000, percent: 1 } });
    await chat();
    await chat();
    await settledBalance();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(ofType('key.budget_threshold')).toHaveLength(1);
  });

});
