/**
 * OpenAI response objects built from the engine's events, for the node's own OpenAI-compatible
 * endpoint. Chat text goes through K2's output parser, so reasoning and tool calls come out in
 * OpenAI's fields (`reasoning_content`, `tool_calls`), exactly as the edge formats them.
 */
import { chatLogprobContent, chatLogprobs, completionLogprobs } from '../../../shared/openai-logprobs.ts';
import type { FinishReason, TokenLogprob, Usage } from '../../../shared/protocol.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { OutputParser, openAIChunkDelta, parseOutput } from '../../../shared/tokenizer/index.ts';

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function openAIUsage(u: Usage) {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens },
  };
}

const finish = (reason: FinishReason, toolCalls: boolean) => (reason === 'length' ? 'length' : toolCalls ? 'tool_calls' : 'stop');

/** Turns streamed text into chunk objects; with n > 1 each choice has its own `index`. */
export interface ChunkWriter {
  start(): unknown[];
  /** `logprobs`: the entries of the tokens that made this text (when the request asked for logprobs). */
  text(text: string, logprobs?: TokenLogprob[], index?: number): unknown[];
  /** Each choice's finish chunk (reasons by index, or one for a single choice), then the usage chunk when asked for. */
  finish(reasons: FinishReason[], usage: Usage): unknown[];
}

/** One choice's text and logprobs, collected for a non-streamed answer. */
export interface CollectedChoice {
  text: string;
  reason: FinishReason;
  logprobs: TokenLogprob[] | undefined;
}

/**
 * Chat chunks; a token's logprobs ride on the first chunk its text produces (the output parser may hold
 * text back, e.g. a possible marker, so entries wait for the next chunk, at the latest the finish chunk).
 */
export function chatChunkWriter(meta: ResponseMeta, includeUsage: boolean, tokenizer: Tokenizer, n = 1): ChunkWriter {
  const choices = Array.from({ length: n }, () => ({ parser: new OutputParser(), toolCalls: false, pending: [] as TokenLogprob[] }));
  const chunk = (index: number, delta: unknown, reason: string | null = null) => {
    const c = choices[index];
    const logprobs = c.pending.length > 0 ? { content: chatLogprobContent(tokenizer, c.pending), refusal: null } : null;
    c.pending = [];
    return {
      ...meta,
      object: 'chat.completion.chunk',
      choices: [{ index, delta, logprobs, finish_reason: reason }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  const deltas = (index: number, text: string | null) => {
    const c = choices[index];
    return (text === null ? c.parser.finish() : c.parser.push(text)).map((d) => {
      if (d.type === 'tool_call_start') c.toolCalls = true;
      return chunk(index, openAIChunkDelta(d));
    });
  };
  return {
    start: () => choices.map((_, i) => chunk(i, { role: 'assistant', content: '' })),
    text(text, logprobs, index = 0) {
      if (logprobs) choices[index].pending.push(...logprobs);
      return deltas(index, text);
    },
    finish(reasons, usage) {
      const out: unknown[] = choices.flatMap((c, i) => [...deltas(i, null), chunk(i, {}, finish(reasons[i] ?? reasons[0], c.toolCalls))]);
      if (includeUsage) out.push({ ...meta, object: 'chat.completion.chunk', choices: [], usage: openAIUsage(usage) });
      return out;
    },
  };
}

export function completionChunkWriter(meta: ResponseMeta, includeUsage: boolean, tokenizer: Tokenizer, n = 1): ChunkWriter {
  const choices = Array.from({ length: n }, () => ({ pending: [] as TokenLogprob[], offset: 0 }));
  const chunk = (index: number, text: string, reason: string | null = null) => {
    const c = choices[index];
    const logprobs = c.pending.length > 0 ? completionLogprobs(tokenizer, c.pending, c.offset) : null;
    c.pending = [];
    c.offset += text.length;
    return {
      ...meta,
      object: 'text_completion',
      choices: [{ index, text, logprobs, finish_reason: reason }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  return {
    start: () => [],
    text(text, logprobs, index = 0) {
      if (logprobs) choices[index].pending.push(...logprobs);
      return text ? [chunk(index, text)] : [];
    },
    finish(reasons, usage) {
      const out: unknown[] = choices.map((_, i) => chunk(i, '', finish(reasons[i] ?? reasons[0], false)));
      if (includeUsage) out.push({ ...meta, object: 'text_completion', choices: [], usage: openAIUsage(usage) });
      return out;
    },
  };
}

export function chatCompletionBody(meta: ResponseMeta, choices: CollectedChoice[], usage: Usage, tokenizer: Tokenizer) {
  return {
    ...meta,
    object: 'chat.completion',
    choices: choices.map((c, index) => {
      const parsed = parseOutput(c.text);
      const message: Record<string, unknown> = { role: 'assistant', content: parsed.content };
      if (parsed.reasoning_content !== null) message.reasoning_content = parsed.reasoning_content;
      if (parsed.tool_calls.length > 0) message.tool_calls = parsed.tool_calls;
      return { index, message, logprobs: c.logprobs ? chatLogprobs(tokenizer, c.logprobs) : null, finish_reason: finish(c.reason, parsed.tool_calls.length > 0) };
    }),
    usage: openAIUsage(usage),
  };
}

export function textCompletionBody(meta: ResponseMeta, choices: CollectedChoice[], usage: Usage, tokenizer: Tokenizer) {
  return {
    ...meta,
    object: 'text_completion',
    choices: choices.map((c, index) => ({ index, text: c.text, logprobs: c.logprobs ? completionLogprobs(tokenizer, c.logprobs) : null, finish_reason: finish(c.reason, false) })),
    usage: openAIUsage(usage),
  };
}
