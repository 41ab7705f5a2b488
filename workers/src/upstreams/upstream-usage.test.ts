import { describe, expect, it } from 'vitest';
import { k2TinyTokenizer } from '../../../shared/tokenizer/index.ts';
import { cacheHitsReported, clientUsage, estimateUsage, generatedText, mapUpstreamUsage } from './upstream-usage.ts';
import { SseReader } from './sse.ts';

describe('mapUpstreamUsage', () => {
  it('takes cached tokens from prompt_tokens_details (OpenAI, vLLM, SGLang)', () => {
    expect(mapUpstreamUsage({ prompt_tokens: 40, completion_tokens: 5, total_tokens: 45, prompt_tokens_details: { cached_tokens: 32 } })).toEqual({
      prompt_tokens: 40,
      cached_tokens: 32,
      completion_tokens: 5,
    });
  });

  it('takes DeepSeek-style prompt_cache_hit_tokens, and treats no report as no hits', () => {
    expect(mapUpstreamUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_cache_hit_tokens: 4 })?.cached_tokens).toBe(4);
    expect(mapUpstreamUsage({ prompt_tokens: 10, completion_tokens: 1 })?.cached_tokens).toBe(0);
    expect(mapUpstreamUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: null })?.cached_tokens).toBe(0);
  });

  it('never lets cached exceed prompt tokens (a hit cannot be billed below zero miss tokens)', () => {
    expect(mapUpstreamUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 99 } })?.cached_tokens).toBe(10);
  });

  it('rejects missing or malformed usage so the edge estimates instead', () => {
    for (const bad of [undefined, null, {}, { prompt_tokens: 1.5, completion_tokens: 1 }, { prompt_tokens: -1, completion_tokens: 1 }, { prompt_tokens: '3', completion_tokens: 1 }]) {
      expect(mapUpstreamUsage(bad)).toBeNull();
    }
  });
});

describe('estimate', () => {
  it('counts every kind of generated text: content, reasoning, tool names and arguments, legacy text', () => {
    const choice = { delta: { content: 'a', reasoning_content: 'b', tool_calls: [{ function: { name: 'c', arguments: '{"d":1}' } }] } };
    expect(generatedText(choice)).toBe('abc{"d":1}');
    expect(generatedText({ message: { content: 'x' } })).toBe('x');
    expect(generatedText({ text: 'y' })).toBe('y');
    const tokenizer = k2TinyTokenizer();
    const text = 'The quick brown fox jumps over the lazy dog.';
    expect(estimateUsage(tokenizer, 7, text)).toEqual({ prompt_tokens: 7, cached_tokens: 0, completion_tokens: tokenizer.encode(text).length });
  });
});

describe('SseReader', () => {
  it('yields data payloads across chunk boundaries, CRLF and comments, then undefined', async () => {
    const parts = [': keep-alive\r\n\r\ndata: {"a"', ':1}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\n', 'data: [DONE]'];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of parts) c.enqueue(new TextEncoder().encode(p));
        c.close();
      },
    });
    const reader = new SseReader(body);
    const got: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) got.push(await reader.next());
    expect(got).toEqual(['{"a":1}', 'line1\nline2', '[DONE]', undefined]);
  });
});

describe('cacheHitsReported / clientUsage', () => {
  it('knows when an upstream said nothing about cache hits (vLLM sends prompt_tokens_details: null)', () => {
    expect(cacheHitsReported({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 0 } })).toBe(true);
    expect(cacheHitsReported({ prompt_tokens: 10, completion_tokens: 1, prompt_cache_hit_tokens: 0 })).toBe(true);
    expect(cacheHitsReported({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: null })).toBe(false);
    expect(cacheHitsReported({ prompt_tokens: 10, completion_tokens: 1 })).toBe(false);
  });

  it('keeps the upstream detail fields and writes the billed counts over its own', () => {
    const raw = { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, prompt_tokens_details: { cached_tokens: 99, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 3 } };
    const billed = { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, prompt_tokens_details: { cached_tokens: 10 } };
    expect(clientUsage(billed, raw)).toEqual({ ...raw, prompt_tokens_details: { cached_tokens: 10, audio_tokens: 0 } });
    expect(clientUsage(billed, null)).toEqual(billed);
  });
});
