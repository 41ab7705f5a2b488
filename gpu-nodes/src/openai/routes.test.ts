import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { renderChat } from '../../../shared/tokenizer/index.ts';
import type { Engine } from '../engine/engine.ts';
import { loadEngine } from '../engine/load-engine.ts';
import { selectKernels } from '../kernels/select.ts';
import { ensureModel } from '../model/make-model.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import { createApp } from '../server.ts';

// The real engine on k2-tiny behind the real HTTP server, driven by the official openai client.
const MODEL_DIR = fileURLToPath(new URL('../../../models/k2-tiny', import.meta.url));

let engine: Engine;
let tokenizer: Tokenizer;
let close: () => Promise<void>;
let client: OpenAI;
let base = '';
const API_KEY = 'node-routes-test-key';
const authorization = { authorization: `Bearer ${API_KEY}` };

beforeAll(async () => {
  ensureModel(MODEL_DIR, 'k2-tiny');
  const kernels = await selectKernels({ backend: 'reference' });
  [engine, tokenizer] = await Promise.all([loadEngine(MODEL_DIR, { kernels, kvBlocks: 256, log: () => {} }), loadTokenizer(MODEL_DIR)]);
  const server = serve({ fetch: createApp(() => engine, () => tokenizer, { auth: { secrets: [], apiKeys: [API_KEY], insecureNoAuth: false } }).fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((ok) => server.once('listening', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  close = () => new Promise<void>((ok) => server.close(() => ok()));
  client = new OpenAI({ apiKey: API_KEY, baseURL: base, maxRetries: 0 });
});

afterAll(() => close?.());

const messages = [{ role: 'user' as const, content: 'Tell me a story about the sea.' }];

describe('node OpenAI-compatible endpoint', () => {
  it('answers a chat completion with usage counting the rendered prompt', async () => {
    const res = await client.chat.completions.create({ model: 'k2-tiny', messages, max_tokens: 4, temperature: 0 });
    expect(res.object).toBe('chat.completion');
    expect(res.choices[0].message.role).toBe('assistant');
    expect(res.usage!.prompt_tokens).toBe(renderChat(tokenizer, messages).length);
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
    expect(res.usage!.completion_tokens).toBeLessThanOrEqual(4);
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + res.usage!.completion_tokens);
  });

  it('streams chunks and ends with a usage chunk (cache hits included) only when asked', async () => {
    const ask = (include_usage: boolean) =>
      client.chat.completions.create({ model: 'k2-tiny', messages, max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage } });
    const withUsage: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of await ask(true)) withUsage.push(chunk);
    const last = withUsage.at(-1)!;
    expect(last.choices).toEqual([]);
    // The same prompt ran just before: its full blocks come from the prefix cache.
    expect(last.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
    expect(last.usage!.prompt_tokens_details!.cached_tokens).toBeLessThanOrEqual(last.usage!.prompt_tokens);
    expect(withUsage.some((c) => c.choices[0]?.finish_reason)).toBe(true);
    const withoutUsage: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of await ask(false)) withoutUsage.push(chunk);
    expect(withoutUsage.every((c) => c.usage === undefined)).toBe(true);
    const text = (cs: OpenAI.ChatCompletionChunk[]) => cs.map((c) => c.choices[0]?.delta.content ?? '').join('');
    // Greedy decoding: the same prompt gives the same text with or without usage.
    expect(text(withoutUsage)).toBe(text(withUsage));
  });

  it('serves the legacy completions endpoint', async () => {
    const res = await client.completions.create({ model: 'k2-tiny', prompt: 'Once upon a time', max_tokens: 3, temperature: 0 });
    expect(res.object).toBe('text_completion');
    expect(res.usage!.prompt_tokens).toBe(tokenizer.encode('Once upon a time').length);
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('answers errors in OpenAI shape: unknown model 404, bad body 400', async () => {
    const wrong = await fetch(`${base}/chat/completions`, { method: 'POST', headers: authorization, body: JSON.stringify({ model: 'nope', messages }) });
    expect(wrong.status).toBe(404);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    const bad = await fetch(`${base}/chat/completions`, { method: 'POST', headers: authorization, body: JSON.stringify({ model: 'k2-tiny', messages: [] }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('messages');
  });

  it('refuses a missing or wrong API key with 401 invalid_api_key', async () => {
    const body = JSON.stringify({ model: 'k2-tiny', messages, max_tokens: 1 });
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer not-the-key' }, { authorization: API_KEY }]) {
      const res = await fetch(`${base}/chat/completions`, { method: 'POST', headers, body });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    }
    const wrongClient = new OpenAI({ apiKey: 'sk-wrong', baseURL: base, maxRetries: 0 });
    await expect(wrongClient.completions.create({ model: 'k2-tiny', prompt: 'x', max_tokens: 1 })).rejects.toMatchObject({ status: 401 });
  });

  it('refuses cache_salt, tenant and cancel_key from the body with a 400 naming the field', async () => {
    for (const field of ['cache_salt', 'tenant', 'cancel_key']) {
      for (const path of ['/chat/completions', '/completions']) {
        const body = { model: 'k2-tiny', messages, prompt: 'Hello', max_tokens: 1, [field]: 'org_victim' };
        const res = await fetch(base + path, { method: 'POST', headers: authorization, body: JSON.stringify(body) });
        expect(res.status).toBe(400);
        const { error } = (await res.json()) as { error: { param: string; type: string } };
        expect(error).toMatchObject({ param: field, type: 'invalid_request_error' });
      }
    }
  });

  it('ends a stream cancelled on the node with an error event, never a finish_reason', async () => {
    const stream = await client.chat.completions.create({ model: 'k2-tiny', messages, max_tokens: 200, temperature: 0, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    let failure: unknown;
    try {
      for await (const chunk of stream) {
        chunks.push(chunk);
        // The response id is the engine's request id: cancel it the way the engine reaps any cancel.
        if (chunks.length === 2) expect(engine.cancel(chunk.id)).toBe(true);
      }
    } catch (err) {
      failure = err;
    }
    // The openai client raises the stream's error event as an APIError.
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect((failure as InstanceType<typeof OpenAI.APIError>).message).toContain('cancelled');
    expect(chunks.every((c) => c.choices.every((ch) => ch.finish_reason === null))).toBe(true);
    await engine.idle();
  });

  it('answers a non-streamed request cancelled on the node with an error, not a completion', async () => {
    // Its id is only in the answer, so watch the engine's submit for it (the real submit still runs).
    const submit = engine.submit;
    const submitted = new Promise<string>((resolve) => {
      engine.submit = (body, sink) => {
        submit.call(engine, body, sink);
        resolve(body.request_id);
      };
    });
    const res = fetch(`${base}/completions`, { method: 'POST', headers: authorization, body: JSON.stringify({ model: 'k2-tiny', prompt: 'Once upon a time', max_tokens: 200 }) });
    const id = await submitted;
    engine.submit = submit;
    expect(engine.cancel(id)).toBe(true);
    const answer = await res;
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('cancelled');
  });
});
