/**
 * OpenAI response objects built from the engine's events, for the node's own OpenAI-compatible
 * endpoint. Chat text goes through K2's output parser, so reasoning and tool calls come out in
 * OpenAI's fields (`reasoning_content`, `tool_calls`), exactly as the edge formats them.
 */
import { chatLogprobContent, completionLogprobs } from '../../../shared/openai-logprobs.ts';
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

/** Turns streamed text into chat.completion.chunk objects. */
export interface ChunkWriter {
  start(): unknown[];
  /** `logprobs`: the entries of the tokens that made this text (when the request asked for logprobs). */
  text(text: string, logprobs?: TokenLogprob[]): unknown[];
  /** The finish chunk, then the usage chunk when the client asked for include_usage. */
  finish(reason: FinishReason, usage: Usage): unknown[];
}

/**
 * Chat chunks; a token's logprobs ride on the first chunk its text produces (the output parser may hold
 * text back, e.g. a possible marker, so entries wait for the next chunk, at the latest the finish chunk).
 */
export function chatChunkWriter(meta: ResponseMeta, includeUsage: boolean, tokenizer: Tokenizer): ChunkWriter {
  const parser = new OutputParser();
  let toolCalls = false;
  let pending: TokenLogprob[] = [];
  const chunk = (delta: unknown, reason: string | null = null) => {
    const logprobs = pending.length > 0 ? { content: chatLogprobContent(tokenizer, pending), refusal: null } : null;
    pending = [];
    return {
      ...meta,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, logprobs, finish_reason: reason }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  const deltas = (text: string | null) =>
    (text === null ? parser.finish() : parser.push(text)).map((d) => {
      if (d.type === 'tool_call_start') toolCalls = true;
      return chunk(openAIChunkDelta(d));
    });
  return {
    start: () => [chunk({ role: 'assistant', content: '' })],
    text(text, logprobs) {
      if (logprobs) pending.push(...logprobs);
      return deltas(text);
    },
    finish(reason, usage) {
      const out: unknown[] = [...deltas(null), chunk({}, finish(reason, toolCalls))];
      if (includeUsage) out.push({ ...chunk({}), choices: [], usage: openAIUsage(usage) });
      return out;
    },
  };
}

export function completionChunkWriter(meta: ResponseMeta, includeUsage: boolean, tokenizer: Tokenizer): ChunkWriter {
  let pending: TokenLogprob[] = [];
  let offset = 0;
  const chunk = (text: string, reason: string | null = null) => {
    const logprobs = pending.length > 0 ? completionLogprobs(tokenizer, pending, offset) : null;
    pending = [];
    offset += text.length;
    return {
      ...meta,
      object: 'text_completion',
      choices: [{ index: 0, text, logprobs, finish_reason: reason }],
      ...(includeUsage ? { usage: null } : {}),
    };
  };
  return {
    start: () => [],
    text(text, logprobs) {
      if (logprobs) pending.push(...logprobs);
      return text ? [chunk(text)] : [];
    },
    finish(reason, usage) {
      const out: unknown[] = [chunk('', finish(reason, false))];
      if (includeUsage) out.push({ ...chunk(''), choices: [], usage: openAIUsage(usage) });
      return out;
    },
  };
}

export function chatCompletionBody(meta: ResponseMeta, text: string, reason: FinishReason, usage: Usage, logprobs: unknown = null) {
  const parsed = parseOutput(text);
  const message: Record<string, unknown> = { role: 'assistant', content: parsed.content };
  if (parsed.reasoning_content !== null) message.reasoning_content = parsed.reasoning_content;
  if (parsed.tool_calls.length > 0) message.tool_calls = parsed.tool_calls;
  return {
    ...meta,
    object: 'chat.completion',
    choices: [{ index: 0, message, logprobs, finish_reason: finish(reason, parsed.tool_calls.length > 0) }],
    usage: openAIUsage(usage),
  };
}

export function textCompletionBody(meta: ResponseMeta, text: string, reason: FinishReason, usage: Usage, logprobs: unknown = null) {
  return {
    ...meta,
    object: 'text_completion',
    choices: [{ index: 0, text, logprobs, finish_reason: finish(reason, false) }],
    usage: openAIUsage(usage),
  };
}
