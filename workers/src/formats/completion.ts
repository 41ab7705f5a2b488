/** OpenAI text_completion objects (the legacy /v1/completions endpoint) from a generation. */
import { completionLogprobs } from '../../../shared/openai-logprobs.ts';
import type { FinishReason, TokenLogprob, Usage } from '../../../shared/protocol.ts';
import type { Generation } from '../inference/generation.ts';
import type { ChunkFormatter, Collected } from '../inference/stream.ts';
import { openAIUsage } from '../inference/openai-usage.ts';

const openAIFinish = (reason: FinishReason) => (reason === 'length' ? 'length' : 'stop');

export function textCompletion(gen: Generation, out: Collected) {
  return {
    id: `cmpl-${gen.requestId}`,
    object: 'text_completion' as const,
    created: gen.created,
    model: gen.model.id,
    choices: [{ index: 0, text: out.text, logprobs: out.logprobs ? completionLogprobs(gen.tokenizer, out.logprobs) : null, finish_reason: openAIFinish(out.finishReason) }],
    usage: openAIUsage(out.usage),
  };
}

export function completionChunks(gen: Generation, includeUsage: boolean): ChunkFormatter {
  // Logprob entries of tokens whose text is not complete yet (part of a UTF-8 character) wait for it.
  let pending: TokenLogprob[] = [];
  let offset = 0;
  const chunk = (text: string, finish: 'stop' | 'length' | null = null) => {
    const logprobs = pending.length > 0 ? completionLogprobs(gen.tokenizer, pending, offset) : null;
    pending = [];
    offset += text.length;
    return {
      id: `cmpl-${gen.requestId}`,
      object: 'text_completion' as const,
      created: gen.created,
      model: gen.model.id,
      choices: [{ index: 0, text, logprobs, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  return {
    start: () => [],
    // '' while a UTF-8 sequence is incomplete: nothing to send yet.
    text(text, logprobs) {
      if (logprobs) pending.push(...logprobs);
      return text ? [chunk(text)] : [];
    },
    finish(reason: FinishReason, usage: Usage) {
      const last: unknown[] = [chunk('', openAIFinish(reason))];
      if (includeUsage) last.push({ ...chunk(''), choices: [], usage: openAIUsage(usage) });
      return last;
    },
  };
}
