/** OpenAI chat.completion / chat.completion.chunk objects from a generation. */
import { chatLogprobContent, chatLogprobs } from '../../../shared/openai-logprobs.ts';
import type { FinishReason, TokenLogprob, Usage } from '../../../shared/protocol.ts';
import { OutputParser, parseOutput, type OutputDelta } from '../../../shared/tokenizer/index.ts';
import type { Generation } from '../inference/generation.ts';
import type { ChunkFormatter, Collected } from '../inference/stream.ts';
import { openAIUsage } from '../inference/openai-usage.ts';

type OpenAIFinish = 'stop' | 'length' | 'tool_calls';

function finishReason(reason: FinishReason, madeToolCalls: boolean): OpenAIFinish {
  if (reason === 'length') return 'length';
  return madeToolCalls ? 'tool_calls' : 'stop';
}

/** The reasoning text's tokens (K2's think section), re-encoded: what `reasoning_tokens` reports. */
const reasoningTokens = (gen: Generation, texts: string[]) => texts.reduce((n, t) => n + (t ? gen.tokenizer.encode(t).length : 0), 0);

export function chatCompletion(gen: Generation, out: Collected) {
  const parsed = out.choices.map((choice) => parseOutput(choice.text));
  return {
    id: `chatcmpl-${gen.requestId}`,
    object: 'chat.completion' as const,
    created: gen.created,
    model: gen.model.id,
    choices: out.choices.map((choice, index) => {
      const { content, reasoning_content, tool_calls } = parsed[index];
      const message: Record<string, unknown> = { role: 'assistant', content };
      if (reasoning_content !== null) message.reasoning_content = reasoning_content;
      if (tool_calls.length > 0) message.tool_calls = tool_calls;
      return {
        index,
        message,
        logprobs: choice.logprobs ? chatLogprobs(gen.tokenizer, choice.logprobs) : null,
        finish_reason: finishReason(choice.finishReason, tool_calls.length > 0),
      };
    }),
    usage: openAIUsage(out.usage, { price: gen.meter.info.price, reasoningTokens: reasoningTokens(gen, parsed.map((p) => p.reasoning_content ?? '')) }),
  };
}

/**
 * Streaming: text goes through K2's output parser (one per choice) so reasoning and tool calls get
 * their own fields. A token's logprobs ride on the first chunk its text produces (the parser may hold
 * text back while it could still be a marker; the entries then wait, at the latest for the finish chunk).
 */
export function chatChunks(gen: Generation, includeUsage: boolean, n = 1): ChunkFormatter {
  const choices = Array.from({ length: n }, () => ({ parser: new OutputParser(), madeToolCalls: false, pending: [] as TokenLogprob[], reasoning: '' }));
  const chunk = (index: number, delta: Record<string, unknown>, finish: OpenAIFinish | null = null) => {
    const c = choices[index];
    const logprobs = c.pending.length > 0 ? { content: chatLogprobContent(gen.tokenizer, c.pending), refusal: null } : null;
    c.pending = [];
    return {
      id: `chatcmpl-${gen.requestId}`,
      object: 'chat.completion.chunk' as const,
      created: gen.created,
      model: gen.model.id,
      choices: [{ index, delta, logprobs, finish_reason: finish }],
      // With include_usage every chunk carries `usage: null` and one extra chunk carries the totals.
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  const deltas = (index: number, ds: OutputDelta[]) =>
    ds.map((d) => {
      switch (d.type) {
        case 'content':
          return chunk(index, { content: d.text });
        case 'reasoning':
          choices[index].reasoning += d.text;
          return chunk(index, { reasoning_content: d.text });
        case 'tool_call_start':
          choices[index].madeToolCalls = true;
          return chunk(index, { tool_calls: [{ index: d.index, id: d.id, type: 'function', function: { name: d.name, arguments: '' } }] });
        case 'tool_call_arguments':
          return chunk(index, { tool_calls: [{ index: d.index, function: { arguments: d.text } }] });
      }
    });
  return {
    start: () => choices.map((_, i) => chunk(i, { role: 'assistant', content: '' })),
    text(text, logprobs, index = 0) {
      if (logprobs) choices[index].pending.push(...logprobs);
      return deltas(index, choices[index].parser.push(text));
    },
    finish(reasons: FinishReason[], usage: Usage) {
      const last: unknown[] = choices.flatMap((c, i) => [...deltas(i, c.parser.finish()), chunk(i, {}, finishReason(reasons[i] ?? reasons[0], c.madeToolCalls))]);
      if (includeUsage) last.push({ ...chunk(0, {}), choices: [], usage: openAIUsage(usage, { price: gen.meter.info.price, reasoningTokens: reasoningTokens(gen, choices.map((c) => c.reasoning)) }) });
      return last;
    },
  };
}
