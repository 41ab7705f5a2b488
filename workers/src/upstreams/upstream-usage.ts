/**
 * An upstream's usage object → our Usage, and our own estimate when the upstream sent none.
 *
 * Engines disagree on cache hits: OpenAI, vLLM and SGLang report `prompt_tokens_details.cached_tokens`
 * (a subset of prompt_tokens); DeepSeek-style APIs report `prompt_cache_hit_tokens`. Either is
 * billed at our cache-hit price; a count larger than the prompt is clamped, never billed twice.
 * An upstream that reports neither (vLLM sends `prompt_tokens_details: null` unless its prefix-cache
 * stats are enabled) is billed the whole prompt at the miss price, and the row is marked estimated,
 * because the real hit count is unknown, not zero.
 *
 * What the client sees keeps the upstream's own detail fields (`completion_tokens_details.reasoning_tokens`,
 * ...) with the counts we bill written over them.
 */
import type { Usage } from '../../../shared/protocol.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import type { OpenAIUsage } from '../inference/openai-usage.ts';

const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

/** null when `raw` is not a usable usage object (missing, null, or counts that are not integers). */
export function mapUpstreamUsage(raw: unknown): Usage | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const u = raw as Record<string, unknown>;
  const prompt = count(u.prompt_tokens);
  const completion = count(u.completion_tokens);
  if (prompt === undefined || completion === undefined) return null;
  const details = (typeof u.prompt_tokens_details === 'object' && u.prompt_tokens_details) as Record<string, unknown> | false;
  const cached = (details && count(details.cached_tokens)) || count(u.prompt_cache_hit_tokens) || 0;
  return { prompt_tokens: prompt, cached_tokens: Math.min(cached, prompt), completion_tokens: completion };
}

/** False when the upstream's usage says nothing about prompt-cache hits (no details object, no hit count). */
export function cacheHitsReported(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const u = raw as Record<string, unknown>;
  const details = u.prompt_tokens_details as Record<string, unknown> | null | undefined;
  return (typeof details === 'object' && details !== null && count(details.cached_tokens) !== undefined) || count(u.prompt_cache_hit_tokens) !== undefined;
}

/** The usage object for the client: the upstream's fields kept, the counts we billed written over them. */
export function clientUsage(billed: OpenAIUsage, raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null) return { ...billed };
  const u = raw as Record<string, unknown>;
  const details = typeof u.prompt_tokens_details === 'object' && u.prompt_tokens_details !== null ? u.prompt_tokens_details : {};
  return { ...u, ...billed, prompt_tokens_details: { ...details, ...billed.prompt_tokens_details } };
}

/**
 * What we bill when the upstream reports nothing: our own prompt count with no cache hits (a hit we
 * cannot see is not a discount we can give; the reservation assumed the same), and our tokenizer's
 * count of the text the upstream sent. The usage row is marked `estimated`.
 */
export function estimateUsage(tokenizer: Tokenizer, promptTokens: number, completionText: string): Usage {
  return { prompt_tokens: promptTokens, cached_tokens: 0, completion_tokens: completionText ? tokenizer.encode(completionText).length : 0 };
}

/** The text an upstream chunk or message adds, for the estimate: content, reasoning, tool names and arguments. */
export function generatedText(choice: unknown): string {
  if (typeof choice !== 'object' || choice === null) return '';
  const c = choice as Record<string, unknown>;
  // Legacy completions put text on the choice; chat puts it in `delta` (streams) or `message`.
  if (typeof c.text === 'string') return c.text;
  const m = (c.delta ?? c.message) as Record<string, unknown> | undefined;
  if (!m) return '';
  let text = '';
  for (const field of ['content', 'reasoning_content', 'reasoning']) if (typeof m[field] === 'string') text += m[field];
  if (Array.isArray(m.tool_calls)) {
    for (const call of m.tool_calls as { function?: { name?: unknown; arguments?: unknown } }[]) {
      if (typeof call.function?.name === 'string') text += call.function.name;
      if (typeof call.function?.arguments === 'string') text += call.function.arguments;
    }
  }
  return text;
}
