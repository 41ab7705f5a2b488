/**
 * A local stand-in for api.stripe.com, for the edge's checkout tests (no network in tests). The
 * Worker's real Stripe SDK reaches it through its documented host/port/protocol settings
 * (STRIPE_API_BASE, billing/stripe.ts), so each call is a real HTTP request the SDK built and
 * sent. Stripe is an outside boundary, so a stand-in is fair; it answers only what the edge calls.
 *
 *   POST /v1/checkout/sessions   records the form the SDK sent; answers a Checkout Session built
 *                                from it (as Stripe does: id, url, amount_total, metadata, ...).
 *                                With the API key "sk_test_refused": 401 in Stripe's error shape.
 *   GET  /requests               every recorded request: {method, path, authorization, form}
 */
import { createServer, type IncomingMessage } from 'node:http';
import { REFUSED_STRIPE_KEY } from './stripe-test-keys.ts';
import { listenLocal } from './local-server.ts';

export interface FakeStripe {
  url: string;
  stop(): Promise<void>;
}

export interface RecordedStripeRequest {
  method: string;
  path: string;
  authorization: string | null;
  idempotencyKey: string | null;
  /** The form-encoded body as Stripe's bracket keys: "line_items[0][price_data][unit_amount]" → "500". */
  form: Record<string, string>;
}


function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => ok(s));
    req.on('error', fail);
  });
}

/** metadata[org_id]=x&metadata[purpose]=y → {org_id: x, purpose: y} */
function metadataOf(form: Record<string, string>, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(form)) {
    const m = new RegExp(`^${prefix.replace(/[[\]]/g, '\\$&')}\\[([^\\]]+)\\]$`).exec(k);
    if (m) out[m[1]] = v;
  }
  return out;
}

export async function startFakeStripe(): Promise<FakeStripe> {
  const recorded: RecordedStripeRequest[] = [];
  let n = 0;
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/requests') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(recorded));
      return;
    }
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    const authorization = req.headers.authorization ?? null;
    recorded.push({ method: req.method ?? '', path, authorization, idempotencyKey: (req.headers['idempotency-key'] as string | undefined) ?? null, form });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_fake_${recorded.length}` });
      res.end(JSON.stringify(body));
    };
    if (authorization === `Bearer ${REFUSED_STRIPE_KEY}`) {
      json(401, { error: { type: 'invalid_request_error', message: `Invalid API Key provided: ${REFUSED_STRIPE_KEY}` } });
      return;
    }
    if (req.method !== 'POST' || path !== '/v1/checkout/sessions') {
      json(404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${path}).` } });
      return;
    }
    n++;
    const id = `cs_test_fake${String(n).padStart(6, '0')}${Date.now().toString(36)}`;
    const amount = Number(form['line_items[0][price_data][unit_amount]']) * Number(form['line_items[0][quantity]']);
    const created = Math.floor(Date.now() / 1000);
    json(200, {
      id,
      object: 'checkout.session',
      amount_subtotal: amount,
      amount_total: amount,
      cancel_url: form.cancel_url,
      client_reference_id: form.client_reference_id ?? null,
      created,
      currency: form['line_items[0][price_data][currency]'],
      customer_details: null,
      expires_at: created + 24 * 3600,
      livemode: false,
      metadata: metadataOf(form, 'metadata'),
      mode: form.mode,
      payment_intent: null,
      payment_status: 'unpaid',
      status: 'open',
      success_url: form.success_url,
      url: `https://checkout.stripe.com/c/pay/${id}`,
    });
  });
  return listenLocal(server);
}
