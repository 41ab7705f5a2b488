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
    choices: out.choices.map((c, index) => ({
      index,
      text: c.text,
      logprobs: c.logprobs ? completionLogprobs(gen.tokenizer, c.logprobs) : null,
      finish_reason: openAIFinish(c.finishReason),
    })),
    usage: openAIUsage(out.usage, { price: gen.meter.info.price }),
  };
}

export function completionChunks(gen: Generation, includeUsage: boolean, n = 1): ChunkFormatter {
  // Logprob entries of tokens whose text is not complete yet (part of a UTF-8 character) wait for it.
  const choices = Array.from({ length: n }, () => ({ pending: [] as TokenLogprob[], offset: 0 }));
  const chunk = (index: number, text: string, finish: 'stop' | 'length' | null = null) => {
    const c = choices[index];
    const logprobs = c.pending.length > 0 ? completionLogprobs(gen.tokenizer, c.pending, c.offset) : null;
    c.pending = [];
    c.offset += text.length;
    return {
      id: `cmpl-${gen.requestId}`,
      object: 'text_completion' as const,
      created: gen.created,
      model: gen.model.id,
      choices: [{ index, text, logprobs, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  return {
    start: () => [],
    // '' while a UTF-8 sequence is incomplete: nothing to send yet.
    text(text, logprobs, index = 0) {
      if (logprobs) choices[index].pending.push(...logprobs);
      return text ? [chunk(index, text)] : [];
    },
    finish(reasons: FinishReason[], usage: Usage) {
      const last: unknown[] = choices.map((_, i) => chunk(i, '', openAIFinish(reasons[i] ?? reasons[0])));
      if (includeUsage) last.push({ ...chunk(0, ''), choices: [], usage: openAIUsage(usage, { price: gen.meter.info.price }) });
      return last;
    },
  };
}
