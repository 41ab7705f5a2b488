/**
 * Paying for credit from the dashboard, end to end in headless Chromium: the worker in wrangler's
 * local runtime with Stripe configured, its real Stripe SDK pointed (STRIPE_API_BASE) at a local
 * stand-in for api.stripe.com. A customer with a `billing` key tops up $25: the form creates a
 * Checkout Session and sends the browser to Stripe's page (answered locally: no network); Stripe's
 * webhook, signed by the SDK's test-header generator, then grants the credit; the dashboard shows
 * the new balance and the receipt, whose page and the month's printable statement carry the amount.
 *
 * Needs Debian's chromium at /usr/bin/chromium; skips, saying so, where it is absent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLocalMigrations, seedTenant, startLocalWorker, type LocalWorker } from '../scripts/local-worker.ts';
import { startFakeStripe, type FakeStripe, type RecordedStripeRequest } from './support/fake-stripe.ts';
import { chromiumAvailable, launchChromium, SCREENSHOT_DIR } from './support/headless-chromium.ts';

const ADMIN_TOKEN = 'dashboard-billing-e2e-admin-token';
const WEBHOOK_SECRET = 'whsec_dashboard_billing_e2e';
const haveChromium = chromiumAvailable('dashboard billing e2e');

describe.skipIf(!haveChromium)('dashboard top-up in headless Chromium', () => {
  let worker: LocalWorker;
  let stripe: FakeStripe;
  let browser: Browser;
  let persistTo: string;
  let orgId: string;
  let key: string;

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'edge-billing-'));
    stripe = await startFakeStripe();
    applyLocalMigrations(persistTo);
    // No inference here: the node URL is never called.
    worker = await startLocalWorker({
      adminToken: ADMIN_TOKEN,
      nodeUrl: 'http://127.0.0.1:9',
      nodeSecret: 'unused-node-secret',
      persistTo,
      secrets: { STRIPE_SECRET_KEY: 'sk_test_dashboard_e2e', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_API_BASE: stripe.url },
    });
    const tenant = await seedTenant(worker.url, ADMIN_TOKEN, 'billing-e2e', 0);
    orgId = tenant.orgId;
    const res = await fetch(`${worker.url}/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ org_id: orgId, name: 'payer', scopes: ['models:read', 'billing'] }),
    });
    key = String(((await res.json()) as { key: string }).key);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await stripe?.stop();
    if (persistTo) rmSync(persistTo, { recursive: true, force: true });
  });

  it('tops up $25 through Stripe Checkout; the webhook’s credit, the receipt and the statement show on the dashboard', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Stripe's hosted page, answered locally (this machine has no network).
    await context.route('https://checkout.stripe.com/**', (route) => route.fulfill({ contentType: 'text/html', body: '<p>Stripe Checkout stand-in</p>' }));

    await page.goto(`${worker.url}/dashboard`);
    await page.getByLabel('API key or admin token').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('body[data-loaded]');
    await page.locator('#top-up').waitFor({ state: 'visible' });
    await page.getByLabel('Amount (USD)').fill('25');
    await Promise.all([page.waitForURL(/^https:\/\/checkout\.stripe\.com\/c\/pay\//), page.getByRole('button', { name: 'Pay with Stripe' }).click()]);
    const sessionId = page.url().split('/').pop()!;

    const sent = ((await (await fetch(`${stripe.url}/requests`)).json()) as RecordedStripeRequest[]).filter((r) => r.form.client_reference_id === orgId);
    expect(sent).toHaveLength(1);
    expect(sent[0].form).toMatchObject({ 'line_items[0][price_data][unit_amount]': '2500', 'line_items[0][price_data][currency]': 'usd', 'metadata[org_id]': orgId });

    // Stripe reports the session paid.
    const event = {
      id: `evt_e2e_${Date.now()}`,
      object: 'event',
      created: Math.floor(Date.now() / 1000),
      type: 'checkout.session.completed',
      livemode: false,
      data: {
        object: {
          id: sessionId,
          object: 'checkout.session',
          amount_total: 2_500,
          currency: 'usd',
          client_reference_id: orgId,
          metadata: { org_id: orgId, purpose: 'prepaid_credit' },
          mode: 'payment',
          payment_intent: 'pi_e2e_dashboard',
          payment_status: 'paid',
          status: 'complete',
          customer_details: { email: 'payer@example.com' },
        },
      },
    };
    const payload = JSON.stringify(event);
    const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    const hook = await fetch(`${worker.url}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, body: payload });
    expect(await hook.json()).toMatchObject({ action: 'granted', amount_micros: 25_000_000 });

    // Back from Stripe (its success_url).
    await page.goto(`${worker.url}/dashboard?topup=success`);
    await page.waitForSelector('body[data-loaded]');
    expect(await page.locator('#top-up-result').textContent()).toContain('Payment received');
    expect(page.url()).toBe(`${worker.url}/dashboard`);
    expect(await page.locator('#stat-balance').textContent()).toBe('$25.00');
    const receipt = page.locator('#receipts-table tbody tr').first();
    expect(await receipt.locator('[data-col=amount]').textContent()).toBe('$25.00');
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard-billing.png'), fullPage: true });

    const [receiptPage] = await Promise.all([context.waitForEvent('page'), receipt.getByRole('link').click()]);
    await receiptPage.waitForLoadState();
    const receiptText = (await receiptPage.textContent('body'))!;
    for (const s of ['$25.000000', sessionId, event.id, 'pi_e2e_dashboard', orgId]) expect(receiptText).toContain(s);

    const [statementPage] = await Promise.all([context.waitForEvent('page'), page.locator('#statement-page').click()]);
    await statementPage.waitForLoadState();
    expect(await statementPage.locator('#closing [data-micros]').getAttribute('data-micros')).toBe('25000000');
    expect(await statementPage.locator('#granted [data-micros]').getAttribute('data-micros')).toBe('25000000');
    expect(errors).toEqual([]);
    await context.close();
  });
});
