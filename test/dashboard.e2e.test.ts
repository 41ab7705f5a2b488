/**
 * The usage dashboard end to end, in headless Chromium: real API calls (worker in wrangler's local
 * runtime → real GPU node → usage rows in local D1), then a customer signs in with an API key and
 * must see numbers equal to those D1 rows, creates and revokes a key, and downloads the usage CSV.
 * Screenshots (desktop and 375px phone width) go to test-output/ for review.
 *
 * Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`); skips, saying
 * so, where it is absent.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../scripts/local-node.ts';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from '../scripts/local-worker.ts';
import { startTestNode, type TestNode } from './support/test-node.ts';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN_TOKEN = 'dashboard-e2e-admin-token';
const OUT = join(REPO_ROOT, 'test-output');
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`[dashboard e2e] skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);

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

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    mkdirSync(OUT, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await node?.stop();
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

    await page.screenshot({ path: join(OUT, 'dashboard.png'), fullPage: true });
    await page.setViewportSize({ width: 375, height: 812 });
    await page.waitForTimeout(100);
    // Usable at phone width: nothing wider than the screen except inside the scrollable tables.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(OUT, 'dashboard-phone.png'), fullPage: true });

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
