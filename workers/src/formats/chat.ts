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

export function chatCompletion(gen: Generation, out: Collected) {
  const parsed = parseOutput(out.text);
  const message: Record<string, unknown> = { role: 'assistant', content: parsed.content };
  if (parsed.reasoning_content !== null) message.reasoning_content = parsed.reasoning_content;
  if (parsed.tool_calls.length > 0) message.tool_calls = parsed.tool_calls;
  return {
    id: `chatcmpl-${gen.requestId}`,
    object: 'chat.completion' as const,
    created: gen.created,
    model: gen.model.id,
    choices: [
      {
        index: 0,
        message,
        logprobs: out.logprobs ? chatLogprobs(gen.tokenizer, out.logprobs) : null,
        finish_reason: finishReason(out.finishReason, parsed.tool_calls.length > 0),
      },
    ],
    usage: openAIUsage(out.usage),
  };
}

/**
 * Streaming: text goes through K2's output parser so reasoning and tool calls get their own fields. A
 * token's logprobs ride on the first chunk its text produces (the parser may hold text back while it
 * could still be a marker; the entries then wait, at the latest for the finish chunk).
 */
export function chatChunks(gen: Generation, includeUsage: boolean): ChunkFormatter {
  const parser = new OutputParser();
  let madeToolCalls = false;
  let pending: TokenLogprob[] = [];
  const chunk = (delta: Record<string, unknown>, finish: OpenAIFinish | null = null) => {
    const logprobs = pending.length > 0 ? { content: chatLogprobContent(gen.tokenizer, pending), refusal: null } : null;
    pending = [];
    return {
      id: `chatcmpl-${gen.requestId}`,
      object: 'chat.completion.chunk' as const,
      created: gen.created,
      model: gen.model.id,
      choices: [{ index: 0, delta, logprobs, finish_reason: finish }],
      // With include_usage every chunk carries `usage: null` and one extra chunk carries the totals.
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  const deltas = (ds: OutputDelta[]) =>
    ds.map((d) => {
      switch (d.type) {
        case 'content':
          return chunk({ content: d.text });
        case 'reasoning':
          return chunk({ reasoning_content: d.text });
        case 'tool_call_start':
          madeToolCalls = true;
          return chunk({ tool_calls: [{ index: d.index, id: d.id, type: 'function', function: { name: d.name, arguments: '' } }] });
        case 'tool_call_arguments':
          return chunk({ tool_calls: [{ index: d.index, function: { arguments: d.text } }] });
      }
    });
  return {
    start: () => [chunk({ role: 'assistant', content: '' })],
    text(text, logprobs) {
      if (logprobs) pending.push(...logprobs);
      return deltas(parser.push(text));
    },
    finish(reason: FinishReason, usage: Usage) {
      const last: unknown[] = [...deltas(parser.finish()), chunk({}, finishReason(reason, madeToolCalls))];
      if (includeUsage) last.push({ ...chunk({}), choices: [], usage: openAIUsage(usage) });
      return last;
    },
  };
}
