/**
 * Cost of the signed edge→node hop: `npm run bench:node-auth` (node shared/node-auth.bench.ts).
 *
 * The edge signs every node request and the node verifies it (HMAC-SHA-256 over the body's
 * SHA-256); both run once per generation, cancel and load poll. Timed here for a typical generate
 * body (a 2k-token prompt as JSON ids, ≈ 12 KB) and a full-context one (128k tokens, ≈ 0.8 MB), in
 * this runtime's WebCrypto (Node; workerd uses the same BoringSSL primitives).
 */
import { signNodeRequest, verifyNodeRequest } from './node-auth.ts';

const SECRET = 'bench-secret-0123456789abcdef';

function body(tokens: number): string {
  const ids = Array.from({ length: tokens }, (_, i) => (i * 7919) % 163_840);
  const sampling = { max_tokens: 256, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] };
  return JSON.stringify({ version: 1, request_id: 'req_bench', model: 'k2', prompt_token_ids: ids, sampling, cache_salt: 'org' });
}

async function time(label: string, text: string, n: number): Promise<void> {
  const bytes = new Uint8Array(new TextEncoder().encode(text));
  const now = Math.floor(Date.now() / 1000);
  // Warm-up: JIT and WebCrypto's first-call set-up are not what a running edge pays.
  for (let i = 0; i < 50; i++) await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: SECRET });
  let t0 = performance.now();
  const signed = [];
  for (let i = 0; i < n; i++) signed.push(await signNodeRequest({ method: 'POST', path: '/v1/generate', body: text, secret: SECRET, now }));
  const signUs = ((performance.now() - t0) * 1000) / n;
  t0 = performance.now();
  for (const headers of signed) {
    const r = await verifyNodeRequest({ method: 'POST', path: '/v1/generate', body: bytes, header: (h) => headers[h], secrets: [SECRET], now });
    if (!r.ok) throw new Error(r.reason);
  }
  const verifyUs = ((performance.now() - t0) * 1000) / n;
  console.log(`${label.padEnd(28)} ${(text.length / 1024).toFixed(0).padStart(5)} KiB   sign ${signUs.toFixed(1).padStart(7)} µs   verify ${verifyUs.toFixed(1).padStart(7)} µs`);
}

await time('load poll (empty body)', '', 5000);
await time('generate, 2k-token prompt', body(2048), 2000);
await time('generate, 128k-token prompt', body(131_072), 50);
