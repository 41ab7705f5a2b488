import type { Usage } from '../../../shared/protocol.ts';

/** OpenAI's usage object. `prompt_tokens` includes the cached ones, as OpenAI and K2 report it. */
export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export function openAIUsage(u: Usage): OpenAIUsage {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens },
  };
}
