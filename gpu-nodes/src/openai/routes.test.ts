import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { renderChat } from '../../../shared/tokenizer/index.ts';
import type { EngineThread } from '../engine-thread/engine-client.ts';
import { type OpenAINode, startOpenAINode } from '../test-support/openai-node.ts';

// The real engine on k2-tiny, on its own thread as `k2node serve` runs it, behind the real HTTP
// server, driven by the official openai client.
let node: OpenAINode<EngineThread>;
let engine: EngineThread;
let tokenizer: Tokenizer;
let client: OpenAI;
let base = '';
const API_KEY = 'node-routes-test-key';
const authorization = { authorization: `Bearer ${API_KEY}` };

beforeAll(async () => {
  node = await startOpenAINode({ apiKey: API_KEY, kvBlocks: 256, thread: true });
  ({ engine, tokenizer, client, baseURL: base } = node);
});

afterAll(() => node?.stop());

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

  it('validates every field: out of range, non-finite or unknown fields are a 400 naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: 1e308 }, 'temperature'],
      [{ temperature: 2.5 }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ top_p: 1.5 }, 'top_p'],
      [{ presence_penalty: -3 }, 'presence_penalty'],
      [{ frequency_penalty: 2.01 }, 'frequency_penalty'],
      [{ top_logprobs: 21, logprobs: true }, 'top_logprobs'],
      [{ top_logprobs: 2 }, 'top_logprobs'],
      [{ logit_bias: { '100512': 1 } }, 'logit_bias'],
      [{ logit_bias: { '7': -101 } }, 'logit_bias'],
      [{ logit_bias: { abc: 1 } }, 'logit_bias'],
      [{ max_tokens: 1e300 }, 'max_tokens'],
      [{ seed: 1.5 }, 'seed'],
      [{ n: 9 }, 'n'],
      [{ n: 0 }, 'n'],
      [{ tool_choice: 'required' }, 'tool_choice'],
      [{ reasoning_effort: 'low' }, 'reasoning_effort'],
      [{ guided_json: {} }, 'guided_json'],
      [{ messages: [{ role: 'user', content: 5 }] }, 'messages.0.content'],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages.0.role'],
      [{ messages: ['x'] }, 'messages.0'],
      [{ messages: [{ role: 'user', content: 'x', partial: true }] }, 'messages.0.partial'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages.0.content.0'],
      [{ tools: [5] }, 'tools.0'],
      [{ tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }, 'tool_choice'],
    ];
    for (const [over, param] of cases) {
      const res = await fetch(`${base}/chat/completions`, { method: 'POST', headers: authorization, body: JSON.stringify({ model: 'k2-tiny', messages, max_tokens: 1, ...over }) });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      const { error } = JSON.parse(text) as { error: { param: string; type: string; message: string } };
      expect(error, text).toMatchObject({ type: 'invalid_request_error', param });
    }
    // Hand-written JSON: 1e999 parses as Infinity, which JSON.stringify could not send.
    const inf = await fetch(`${base}/completions`, { method: 'POST', headers: authorization, body: '{"model":"k2-tiny","prompt":"x","max_tokens":1,"temperature":1e999}' });
    expect(inf.status).toBe(400);
    expect(((await inf.json()) as { error: { param: string } }).error.param).toBe('temperature');
  });

  it('chat logprobs: the model distribution per output token with top alternatives, the same streamed and not', async () => {
    const ask = { model: 'k2-tiny', messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 } as const;
    const res = await client.chat.completions.create(ask);
    const content = res.choices[0].logprobs!.content!;
    expect(content).toHaveLength(res.usage!.completion_tokens);
    for (const e of content) {
      expect(e.top_logprobs).toHaveLength(3);
      expect(e.logprob).toBeLessThanOrEqual(0);
      // Greedy: the chosen token is the most likely one.
      expect(e.token).toBe(e.top_logprobs[0].token);
      expect(e.logprob).toBeCloseTo(e.top_logprobs[0].logprob, 6);
      expect(e.top_logprobs[0].logprob).toBeGreaterThanOrEqual(e.top_logprobs[1].logprob);
      expect(e.top_logprobs.reduce((p, t) => p + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-6);
      expect(new TextDecoder().decode(Uint8Array.from(e.bytes!))).toBe(e.token);
    }
    expect(content.map((e) => e.token).join('')).toBe(res.choices[0].message.content);
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of await client.chat.completions.create({ ...ask, stream: true })) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    const without = await client.chat.completions.create({ model: 'k2-tiny', messages, max_tokens: 2, temperature: 0 });
    expect(without.choices[0].logprobs).toBeNull();
  });

  it('completions logprobs: tokens, token_logprobs, top_logprobs and text_offset columns', async () => {
    const res = await client.completions.create({ model: 'k2-tiny', prompt: 'Once upon a time', max_tokens: 3, temperature: 0, logprobs: 2 });
    const lp = res.choices[0].logprobs!;
    expect(lp.tokens).toHaveLength(res.usage!.completion_tokens);
    expect(lp.tokens!.join('')).toBe(res.choices[0].text);
    expect(lp.text_offset).toEqual(lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length));
    lp.top_logprobs!.forEach((top, i) => {
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
      expect(top[lp.tokens![i]]).toBeCloseTo(lp.token_logprobs![i], 6);
    });
  });

  it('n: 3 returns three choices, streamed with their index, usage counting the prompt once and every choice', async () => {
    const ask = { model: 'k2-tiny', messages, max_tokens: 3, temperature: 1, seed: 11, n: 3 } as const;
    const res = await client.chat.completions.create(ask);
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(res.choices.every((c) => c.finish_reason === 'length')).toBe(true);
    expect(res.usage!.prompt_tokens).toBe(renderChat(tokenizer, messages).length);
    expect(res.usage!.completion_tokens).toBe(9);
    const texts = ['', '', ''];
    const finishes: (string | null)[] = [null, null, null];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await client.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } })) {
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? '';
        finishes[c.index] = c.finish_reason ?? finishes[c.index];
      }
      usage = chunk.usage ?? usage;
    }
    // Same seed: the same three answers streamed as returned whole.
    expect(texts).toEqual(res.choices.map((c) => c.message.content));
    expect(finishes).toEqual(['length', 'length', 'length']);
    expect(usage!.completion_tokens).toBe(9);
    const text = await client.completions.create({ model: 'k2-tiny', prompt: 'Once upon', max_tokens: 2, temperature: 1, seed: 3, n: 2 });
    expect(text.choices).toHaveLength(2);
    expect(text.usage!.completion_tokens).toBe(4);
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
        if (chunks.length === 2) expect(await engine.cancel(chunk.id)).toBe(true);
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
        const queued = submit.call(engine, body, sink);
        resolve(body.request_id);
        return queued;
      };
    });
    const res = fetch(`${base}/completions`, { method: 'POST', headers: authorization, body: JSON.stringify({ model: 'k2-tiny', prompt: 'Once upon a time', max_tokens: 200 }) });
    const id = await submitted;
    engine.submit = submit;
    expect(await engine.cancel(id)).toBe(true);
    const answer = await res;
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('cancelled');
  });
});
