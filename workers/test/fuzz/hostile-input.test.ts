/**
 * Property-based fuzzing (fast-check) of what a client controls: request bodies, headers and SSE
 * options, through the real worker (SELF.fetch). Every hostile request must get a 4xx in the OpenAI
 * error shape, never a 500 or a hang, and must be refused before it is forwarded.
 *
 * "Before forwarding" is checked for real: the fuzzed model's pool points at a dead node
 * (127.0.0.1:1, connection refused), so anything forwarded comes back 503, which fails the property.
 */
import { env, SELF } from 'cloudflare:test';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { k2TinyTokenizer, renderChat, renderChatSegments, type ChatMessage } from '../../../shared/tokenizer/index.ts';
import { MAX_BODY_BYTES } from '../../src/middleware/body-size.ts';
import { adminFetch, createTenant, type Tenant } from '../fixtures.ts';
import { type Answer, readAnswer } from './answer.ts';

const BASE = 'https://edge.test';
/** A model of our own, with a tiny context, served by a pool whose only node is dead. */
const MODEL = 'fuzz-tiny';
const CONTEXT = 64;
const RUNS = 50;
/** Each run is one request through the worker (~20–40 ms on 2 cores). */
const TIMEOUT = 60_000;

let tenant: Tenant;

beforeAll(async () => {
  // The catalogue has no admin route for models (they come from migrations): insert one row the same way.
  await env.DB.batch([
    env.DB.prepare("INSERT INTO models (id, display_name, context_length, pool, node_model, owned_by, created_at) VALUES (?, 'fuzz', ?, 'fuzz-dead', 'k2-tiny', 'test', 0)").bind(MODEL, CONTEXT),
    env.DB.prepare('INSERT INTO prices (model_id, input_cache_miss, input_cache_hit, output, effective_from) VALUES (?, 600000, 150000, 2500000, 0)').bind(MODEL),
  ]);
  expect((await adminFetch('/nodes', { pool: 'fuzz-dead', url: 'http://127.0.0.1:1' })).status).toBe(201);
  tenant = await createTenant({ creditMicros: 1_000_000_000 });
  // Fuzzing sends thousands of requests with one key: lift its rate limits out of the way.
  await adminFetch(`/keys/${tenant.keyId}/limits`, { rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 1000 }, 'PUT');
  await adminFetch(`/organizations/${tenant.orgId}/limits`, { rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 1000 }, 'PUT');
});

/** POSTs and reads the whole answer, failing (not hanging) after 10 s. */
async function send(path: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await SELF.fetch(`${BASE}/v1${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json', ...headers },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  return readAnswer(res);
}

/** A 4xx whose body is exactly {error:{message,type,param,code}}, as JSON (never SSE). */
function expectClientError(r: Answer, what: unknown) {
  const label = JSON.stringify(what).slice(0, 300);
  expect(r.status, `${label} → ${JSON.stringify(r.body).slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(r.status, label).toBeLessThan(500);
  expect(r.contentType, label).toMatch(/^application\/json/);
  const err = (r.body as { error?: Record<string, unknown> }).error;
  expect(err && Object.keys(err).sort(), label).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof err!.message, label).toBe('string');
  expect(typeof err!.type, label).toBe('string');
  expect(err!.param === null || typeof err!.param === 'string', label).toBe(true);
  expect(err!.code === null || typeof err!.code === 'string', label).toBe(true);
}

const validChat = () => ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });

/** Values that are wrong for a field (type, range, or shape). */
const invalidField: fc.Arbitrary<[string, unknown]> = fc.oneof(
  fc.tuple(fc.constant('model'), fc.oneof(fc.constant(''), fc.integer(), fc.constant(null), fc.array(fc.string()))),
  fc.tuple(fc.constant('messages'), fc.oneof(fc.constant([]), fc.string(), fc.constant([{ role: 'hacker', content: 'x' }]), fc.constant([{ role: 'user' }]), fc.constant([{ role: 'user', content: 5 }]), fc.constant([{ role: 'user', content: [] }]), fc.constant([{ role: 'tool', content: 'x' }]))),
  fc.tuple(fc.constant('temperature'), fc.oneof(fc.double({ min: 2.0001, noNaN: true, noDefaultInfinity: true }), fc.double({ max: -0.0001, noNaN: true, noDefaultInfinity: true }), fc.string(), fc.boolean())),
  fc.tuple(fc.constant('top_p'), fc.oneof(fc.double({ min: 1.0001, noNaN: true, noDefaultInfinity: true }), fc.double({ max: 0, noNaN: true, noDefaultInfinity: true }), fc.string())),
  fc.tuple(fc.constant('max_tokens'), fc.oneof(fc.integer({ max: 0 }), fc.double({ min: 0.1, max: 100, noInteger: true }), fc.string(), fc.constant(1e308))),
  fc.tuple(fc.constant('max_completion_tokens'), fc.oneof(fc.integer({ max: 0 }), fc.constant('10'))),
  fc.tuple(fc.constant('seed'), fc.oneof(fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true }), fc.string())),
  fc.tuple(fc.constant('stop'), fc.oneof(fc.constant(''), fc.array(fc.string({ minLength: 1 }), { minLength: 5, maxLength: 8 }), fc.integer(), fc.constant(['']))),
  fc.tuple(fc.constant('stream'), fc.oneof(fc.string(), fc.integer(), fc.constant({}))),
  fc.tuple(fc.constant('stream_options'), fc.oneof(fc.string(), fc.constant([]), fc.record({ include_usage: fc.oneof(fc.string(), fc.integer()) }))),
  fc.tuple(fc.constant('n'), fc.oneof(fc.integer({ min: 9 }), fc.integer({ max: 0 }))),
  fc.tuple(fc.constant('logprobs'), fc.oneof(fc.string(), fc.integer())),
  fc.tuple(fc.constant('top_logprobs'), fc.oneof(fc.integer({ min: 21 }), fc.integer({ max: -1 }))),
  fc.tuple(fc.constant('tools'), fc.oneof(fc.constant([{ type: 'function' }]), fc.constant([{ type: 'function', function: { name: '' } }]), fc.string())),
  fc.tuple(fc.constant('tool_choice'), fc.oneof(fc.constant('sometimes'), fc.integer())),
);

describe('fuzzed request bodies', () => {
  it('arbitrary JSON values are refused with an OpenAI-shaped 4xx on both endpoints', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('/chat/completions', '/completions'), async (value, path) => {
        expectClientError(await send(path, JSON.stringify(value)), value);
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('arbitrary text (mostly malformed JSON, any unicode) is refused the same way', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), async (text) => {
        expectClientError(await send('/chat/completions', text), text);
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('a valid request with one field made invalid is refused, streaming or not', async () => {
    await fc.assert(
      fc.asyncProperty(invalidField, fc.boolean(), async ([field, value], stream) => {
        const body: Record<string, unknown> = { ...validChat(), stream, [field]: value };
        expectClientError(await send('/chat/completions', JSON.stringify(body)), body);
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('bodies over the size limit are refused with 413 before they are read', async () => {
    const big = JSON.stringify({ ...validChat(), messages: [{ role: 'user', content: 'a'.repeat(MAX_BODY_BYTES) }] });
    const r = await send('/chat/completions', big);
    expectClientError(r, 'oversized');
    expect(r.status).toBe(413);
    // Without a Content-Length (a stream): counted as it arrives, cut off at the limit.
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > MAX_BODY_BYTES + chunk.length) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await SELF.fetch(`${BASE}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
      body: stream,
      // @ts-expect-error: `duplex` is required for a streamed request body but missing from the lib types.
      duplex: 'half',
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
  });
});

describe('fuzzed headers', () => {
  const headerValue = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 });

  it('any Authorization value but a real key is a 401/403 in the OpenAI shape', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(headerValue, headerValue.map((v) => `Bearer ${v}`), headerValue.map((v) => `Bearer sk-${v}`)), async (auth) => {
        fc.pre(!auth.includes(tenant.key));
        const r = await send('/chat/completions', JSON.stringify(validChat()), { authorization: auth });
        expectClientError(r, auth);
        expect([401, 403]).toContain(r.status);
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('any content type other than JSON, with any accept or extra header, is refused', async () => {
    await fc.assert(
      fc.asyncProperty(headerValue, headerValue, fc.oneof(fc.constant('text/event-stream'), headerValue), async (contentType, anything, accept) => {
        fc.pre(!/json/i.test(contentType));
        const r = await send('/chat/completions', JSON.stringify(validChat()), { 'content-type': contentType, accept, 'x-anything': anything, 'x-request-id': anything });
        expectClientError(r, { contentType, accept });
      }),
      { numRuns: RUNS },
    );
  }, TIMEOUT);
});

describe('prompts beyond the context length', () => {
  const tokenizer = k2TinyTokenizer();

  it('are refused with 400 context_length_exceeded before forwarding, any unicode, streaming or not', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', minLength: 200, maxLength: 600 }),
        fc.boolean(),
        fc.option(fc.record({ include_usage: fc.boolean() }), { nil: undefined }),
        async (content, stream, streamOptions) => {
          // Lone surrogates are kept: JSON carries them, and the edge must not crash on them.
          fc.pre(renderChat(tokenizer, [{ role: 'user', content }]).length > CONTEXT);
          const body = { model: MODEL, messages: [{ role: 'user', content }], stream, stream_options: streamOptions, max_tokens: 4 };
          const r = await send('/chat/completions', JSON.stringify(body));
          expectClientError(r, body);
          expect(r.status).toBe(400);
          expect((r.body as { error: { code: string } }).error.code).toBe('context_length_exceeded');
        },
      ),
      { numRuns: 30 },
    );
  }, TIMEOUT);

  it('the legacy completions endpoint too', async () => {
    const r = await send('/completions', JSON.stringify({ model: MODEL, prompt: 'word '.repeat(CONTEXT * 2), stream: true }));
    expectClientError(r, 'long prompt');
    expect((r.body as { error: { code: string } }).error.code).toBe('context_length_exceeded');
  });

  it('nothing refused above reached a node: no usage row was written for the fuzzed model', async () => {
    const rows = await env.DB.prepare('SELECT count(*) AS n FROM usage_events WHERE model_id = ?').bind(MODEL).first<{ n: number }>();
    expect(rows!.n).toBe(0);
  });
});

describe('special-token injection', () => {
  const tokenizer = k2TinyTokenizer();
  const SPECIALS = ['<|im_end|>', '<|im_user|>', '<|im_assistant|>', '<|im_system|>', '<|im_middle|>', '[EOS]', '[BOS]', '[EOT]', '<think>', '</think>',
    '<|tool_calls_section_begin|>', '<|tool_call_begin|>', '<|tool_call_argument_begin|>', '<|tool_call_end|>', '<|tool_calls_section_end|>', '[PAD]', '[UNK]'];
  /** Text that spells control tokens, whole or split, between arbitrary unicode. */
  const hostileText = fc
    .array(fc.oneof(fc.constantFrom(...SPECIALS), fc.string({ unit: 'grapheme', maxLength: 8 }), fc.constantFrom('<|', '|>', '<|im_', 'end|>')), { maxLength: 12 })
    .map((parts) => parts.join(''));
  const specialIds = (ids: number[]) => ids.filter((id) => tokenizer.isSpecial(id));
  /** The control tokens the template itself places: one per special segment, whatever the text says. */
  const templateSpecials = (messages: ChatMessage[]) =>
    renderChatSegments(messages).flatMap((seg) => ('special' in seg ? [tokenizer.specialId(seg.special)] : []));

  it('text in any message role never becomes a control token (chat template)', () => {
    fc.assert(
      fc.property(fc.constantFrom('system', 'user', 'assistant'), hostileText, hostileText, (role, content, name) => {
        const messages = [{ role, content, name }, { role: 'user', content }] as ChatMessage[];
        expect(specialIds(renderChat(tokenizer, messages))).toEqual(templateSpecials(messages));
      }),
      { numRuns: 300 },
    );
  });

  it('a raw completion prompt is encoded with no control token at all', () => {
    fc.assert(
      fc.property(hostileText, (prompt) => {
        expect(specialIds(tokenizer.encode(prompt, { allowSpecial: false }))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('every special token spelled in text round-trips as text', () => {
    for (const s of SPECIALS) {
      const ids = tokenizer.encode(s, { allowSpecial: false });
      expect(specialIds(ids), s).toEqual([]);
      expect(tokenizer.decode(ids), s).toBe(s);
    }
  });
});
