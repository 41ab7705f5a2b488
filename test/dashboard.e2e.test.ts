/**
 * The usage dashboard end to end, in headless Chromium: real API calls (worker in wrangler's local
 * runtime → real GPU node → usage rows in local D1), then a customer signs in with an API key and
 * must see numbers equal to those D1 rows, creates and revokes a key, downloads the usage CSV, puts
 * a budget on another key and sees that key refused, and sets up alerts whose webhook (a receiver
 * started here) fires and shows in the alerts table.
 * Screenshots (desktop and 375px phone width) go to test-output/ for review.
 *
 * Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`); skips, saying
 * so, where it is absent.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from '../scripts/local-worker.ts';
import { startTestNode, type TestNode } from './support/test-node.ts';
import { chromiumAvailable, launchChromium, SCREENSHOT_DIR } from './support/headless-chromium.ts';

const ADMIN_TOKEN = 'dashboard-e2e-admin-token';
const haveChromium = chromiumAvailable('dashboard e2e');

interface UsageRow {
  requestId: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  costMicros: number;
}

/** "$1,234.5" / "1,234" as shown on the page → integer micro-dollars / integer. */
function micros(text: string): number {
  const [whole, frac = ''] = text.replace(/[$,]/g, '').split('.');
  return Number(whole) * 1_000_000 + Number(frac.padEnd(6, '0'));
}
const integer = (text: string) => Number(text.replace(/,/g, ''));

describe.skipIf(!haveChromium)('usage dashboard in headless Chromium', () => {
  let node: TestNode;
  let worker: LocalWorker;
  let browser: Browser;
  let persistTo: string;
  let key: string;
  let orgId: string;
  let tenantKey: string;
  let tenantKeyId: string;
  let receiver: Server;
  const webhooks: string[] = [];
  const rows: UsageRow[] = [];

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${worker.url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** Usage is written in waitUntil, just after the response: poll the admin API for the row. */
  async function usageRow(requestId: string): Promise<UsageRow> {
    for (let i = 0; i < 100; i++) {
      const res = await admin('GET', `/usage/${requestId}`);
      if (res.status === 200) return res.body.event as unknown as UsageRow;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no usage row for ${requestId}`);
  }

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'edge-dashboard-'));
    node = await startTestNode();
    applyLocalMigrations(persistTo);
    worker = await startLocalWorker({ adminToken: ADMIN_TOKEN, nodeUrl: node.url, nodeSecret: node.secret, persistTo });
    const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'dash-e2e', 5_000_000);
    orgId = tenant.orgId;
    tenantKey = tenant.key;
    tenantKeyId = tenant.keyId;
    // Where the org's alert webhooks go.
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        webhooks.push(body);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    // The customer's own key may manage keys; requests are made with the seeded key.
    const manager = await admin('POST', '/keys', { org_id: orgId, name: 'owner', scopes: ['models:read', 'chat', 'keys:write'] });
    key = String(manager.body.key);

    // Real API calls; the same long prompt twice gives the prefix cache a chance to hit.
    const prompt = 'You are a careful assistant. Summarise the following notes about edge inference in one line.';
    for (const [content, maxTokens] of [[prompt, 6], [prompt, 6], ['Hello!', 4]] as const) {
      const res = await fetch(`${worker.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0 }),
      });
      expect(res.status).toBe(200);
      await res.json();
      rows.push(await usageRow(res.headers.get('x-request-id')!));
    }

    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await node?.stop();
    await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
    if (persistTo) rmSync(persistTo, { recursive: true, force: true });
  });

  async function signedIn(page: Page): Promise<void> {
    await page.goto(`${worker.url}/dashboard`);
    await page.getByLabel('API key or admin token').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('body[data-loaded]');
  }

  it('signs in with a key and shows exactly the D1 rows the API calls made', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await signedIn(page);

    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === '__Host-dashboard_session')!;
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    expect(await page.evaluate('document.cookie')).toBe(''); // HttpOnly: not readable by script

    const sum = (f: (r: UsageRow) => number) => rows.reduce((a, r) => a + f(r), 0);
    const text = async (id: string) => (await page.locator(`#${id}`).textContent())!;
    expect(integer(await text('stat-requests'))).toBe(rows.length);
    expect(micros(await text('stat-spend'))).toBe(sum((r) => r.costMicros));
    expect(integer(await text('stat-cached'))).toBe(sum((r) => r.cachedTokens));
    expect(integer(await text('stat-uncached'))).toBe(sum((r) => r.promptTokens - r.cachedTokens));
    expect(integer(await text('stat-output'))).toBe(sum((r) => r.completionTokens));
    // Balance: the seeded credit minus exactly what the rows cost.
    expect(micros(await text('stat-balance'))).toBe(5_000_000 - sum((r) => r.costMicros));
    for (const r of rows) expect(await page.locator('#requests').getByText(r.requestId).count()).toBe(1);
    expect(await page.locator('#by-model tbody tr').count()).toBe(1);
    expect(await page.locator('#spend-chart canvas').count()).toBe(1);
    // Latency and errors (GET /dashboard/api/latency): one model · backend line, none of the rows failed.
    expect(await page.locator('#ttft-chart canvas').count()).toBe(1);
    expect(await page.locator('#errors-chart canvas').count()).toBe(1);
    expect(await text('ttft-chart-desc')).toContain('k2-tiny · pool');
    expect(await text('errors-chart-desc')).toContain(`k2-tiny · pool: 0 of ${rows.length} requests failed`);

    await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard.png'), fullPage: true });
    await page.setViewportSize({ width: 375, height: 812 });
    await page.waitForTimeout(100);
    // Usable at phone width: nothing wider than the screen except inside the scrollable tables.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard-phone.png'), fullPage: true });

    // Accessibility basics: every form control has an accessible name, landmarks exist.
    // (Browser-side code as a string: this project's TypeScript has no DOM types.)
    const unlabelled = await page.evaluate(`[...document.querySelectorAll('input, select, button')].filter((el) =>
      el.offsetParent !== null && !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim())).length`);
    expect(unlabelled).toBe(0);
    for (const role of ['banner', 'main', 'contentinfo'] as const) expect(await page.getByRole(role).count()).toBe(1);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('creates a key (shown once), which works, then revokes it, which stops it', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('dialog', (d) => void d.accept());
    await signedIn(page);
    await page.getByLabel('Name').fill('from the dashboard');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.locator('#created-key').waitFor({ state: 'visible' });
    const created = (await page.locator('#created-key-value').textContent())!;
    expect(created).toMatch(/^sk-[0-9a-f]{48}$/);
    const models = () => fetch(`${worker.url}/v1/models`, { headers: { authorization: `Bearer ${created}` } });
    expect((await models()).status).toBe(200);

    const row = page.locator('#keys-table tbody tr', { hasText: 'from the dashboard' });
    expect(await row.locator('[data-col=status]').textContent()).toBe('active');
    await row.getByRole('button', { name: /Revoke/ }).click();
    await expect.poll(() => row.locator('[data-col=status]').textContent()).toBe('revoked');
    expect((await models()).status).toBe(403);
    await context.close();
  });

  it('puts a budget on another key, which is then refused with key_budget_exceeded; shows its spend', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signedIn(page);
    const row = page.locator('#keys-table tbody tr', { hasText: tenantKeyId });
    expect(await row.locator('[data-col=budget]').textContent()).toBe('none');
    // The session's own key has no Limits button: a key cannot lift its own cap.
    expect(await page.locator('#keys-table tbody tr', { hasText: 'owner' }).getByRole('button', { name: /Edit budget/ }).count()).toBe(0);

    // A budget of $1 a day, and only k2-tiny: one request goes through and its cost shows as spent.
    await row.getByRole('button', { name: /Edit budget/ }).click();
    await page.getByLabel('Budget in USD').fill('1');
    await page.locator('#budget-period').selectOption('daily');
    await page.getByLabel(/Allowed models/).fill('k2-tiny');
    await page.getByRole('button', { name: 'Save limits' }).click();
    await expect.poll(() => row.locator('[data-col=budget]').textContent()).toBe('$1.00 / daily');
    expect(await row.locator('[data-col=models]').textContent()).toBe('k2-tiny');
    const call = () =>
      fetch(`${worker.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenantKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 4, temperature: 0 }),
      });
    const ok = await call();
    expect(ok.status).toBe(200);
    await ok.json();
    const spent = await usageRow(ok.headers.get('x-request-id')!);
    rows.push(spent);
    await expect
      .poll(async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        await page.waitForSelector('body[data-loaded]');
        return (await row.locator('[data-col=spent]').textContent())!.split(' · ')[0];
      })
      .toBe(`$0.${String(spent.costMicros).padStart(6, '0').replace(/0+$/, '').padEnd(2, '0')}`);

    // Lower it to one micro-dollar: the key's next request is refused.
    await row.getByRole('button', { name: /Edit budget/ }).click();
    await page.getByLabel('Budget in USD').fill('0.000001');
    await page.getByRole('button', { name: 'Save limits' }).click();
    await expect.poll(() => row.locator('[data-col=budget]').textContent()).toBe('$0.000001 / daily');
    const refused = await call();
    expect(refused.status).toBe(402);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('key_budget_exceeded');
    expect(body.error.message).toMatch(/resets at \d{4}-\d\d-\d\dT00:00:00\.000Z/);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard-key-budget.png'), fullPage: true });
    await context.close();
  });

  it('sets alert thresholds; a crossing is delivered to the webhook and listed on the dashboard', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signedIn(page);
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    await page.getByLabel('Webhook URL').fill(url);
    // Above the balance: the next request the org makes is a crossing.
    await page.getByLabel(/balance falls below/).fill('100');
    await page.getByRole('button', { name: 'Save alerts' }).click();
    await expect.poll(() => page.locator('#alert-secret').textContent()).toMatch(/^whsec_/);
    const res = await fetch(`${worker.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'k2-tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    await res.json();
    rows.push(await usageRow(res.headers.get('x-request-id')!));
    await expect.poll(() => webhooks.length, { timeout: 20_000 }).toBe(1);
    expect(JSON.parse(webhooks[0])).toMatchObject({ type: 'balance.below_threshold', org_id: orgId, data: { threshold_micros: 100_000_000 } });
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: 'Refresh' }).click();
          await page.waitForSelector('body[data-loaded]');
          return page.locator('#alerts-table [data-col=delivery]').first().textContent();
        },
        { timeout: 20_000 },
      )
      .toBe('delivered (1 attempt)');
    expect(await page.locator('#alerts-table [data-col=alert-type]').first().textContent()).toBe('balance.below_threshold');
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard-alerts.png'), fullPage: true });
    await context.close();
  });

  it('downloads a usage CSV whose lines add up to the D1 rows', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await signedIn(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#usage-csv').click()]);
    const csv = readFileSync((await download.path())!, 'utf8').trim().split('\r\n').map((l) => l.split(','));
    const [header, ...lines] = csv;
    const col = (name: string) => header.indexOf(name);
    expect(lines.every((l) => l[col('org_id')] === orgId)).toBe(true);
    expect(lines.reduce((a, l) => a + Number(l[col('cost_micros')]), 0)).toBe(rows.reduce((a, r) => a + r.costMicros, 0));
    expect(lines.reduce((a, l) => a + Number(l[col('requests')]), 0)).toBe(rows.length);
    await context.close();
  });
});
