import { costMicros, type Price } from '../../../shared/pricing.ts';
import type { Usage } from '../../../shared/protocol.ts';

/** OpenAI's usage object. `prompt_tokens` includes the cached ones, as OpenAI and K2 report it. */
export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  /** Tokens of the completion inside K2's think section (reasoning_content). */
  completion_tokens_details?: { reasoning_tokens: number };
  /**
   * OpenRouter's convention: this request's cost in dollars, the same integer micro-dollar
   * computation as the usage row's cost (shared/pricing.ts), divided by 10^6. What is charged is
   * never more than it (billing/README.md: a charge is capped by the reservation and the balance).
   */
  cost?: number;
}

export interface UsageExtras {
  /** The price the request is billed at: adds `cost`. */
  price?: Price;
  /** Completion tokens in the reasoning section: adds `completion_tokens_details`. */
  reasoningTokens?: number;
}

export function openAIUsage(u: Usage, extras: UsageExtras = {}): OpenAIUsage {
  const usage: OpenAIUsage = {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens },
  };
  if (extras.reasoningTokens !== undefined) usage.completion_tokens_details = { reasoning_tokens: Math.min(extras.reasoningTokens, u.completion_tokens) };
  if (extras.price) {
    const micros = costMicros(extras.price, { promptTokens: u.prompt_tokens, cachedTokens: u.cached_tokens, completionTokens: u.completion_tokens });
    usage.cost = micros / 1_000_000;
  }
  return usage;
}
