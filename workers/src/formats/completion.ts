/** OpenAI text_completion objects (the legacy /v1/completions endpoint) from a generation. */
import type { FinishReason, Usage } from '../../../shared/protocol.ts';
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
    choices: [{ index: 0, text: out.text, logprobs: null, finish_reason: openAIFinish(out.finishReason) }],
    usage: openAIUsage(out.usage),
  };
}

export function completionChunks(gen: Generation, includeUsage: boolean): ChunkFormatter {
  const chunk = (text: string, finish: 'stop' | 'length' | null = null) => ({
    id: `cmpl-${gen.requestId}`,
    object: 'text_completion' as const,
    created: gen.created,
    model: gen.model.id,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  return {
    start: () => [],
    // '' while a UTF-8 sequence is incomplete: nothing to send yet.
    text: (text) => (text ? [chunk(text)] : []),
    finish(reason: FinishReason, usage: Usage) {
      const last: unknown[] = [chunk('', openAIFinish(reason))];
      if (includeUsage) last.push({ ...chunk(''), choices: [], usage: openAIUsage(usage) });
      return last;
    },
  };
}
