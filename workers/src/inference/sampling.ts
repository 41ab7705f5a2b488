import type { ResponseFormat, SamplingParams } from '../../../shared/protocol.ts';
import { toolCallConstraint } from '../../../shared/tool-choice.ts';

/** The OpenAI sampling fields both endpoints share, after zod. */
export interface OpenAISampling {
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  min_tokens?: number | null;
  logit_bias?: Record<string, number> | null;
  /** Chat: a boolean (with top_logprobs alternatives); completions: the number of alternatives. */
  logprobs?: boolean | number | null;
  top_logprobs?: number | null;
  n?: number | null;
  /** Chat only: the node enforces tool_choice required / named and parallel_tool_calls false. */
  tools?: unknown;
  tool_choice?: unknown;
  parallel_tool_calls?: boolean | null;
  /** Chat only; the node enforces json_object / json_schema by grammar. */
  response_format?: ResponseFormat | null;
}

/** The optional logit processors the client set (null and absent are both "off"). */
function processors(body: OpenAISampling): Partial<SamplingParams> {
  const out: Partial<SamplingParams> = {};
  if (body.presence_penalty != null) out.presence_penalty = body.presence_penalty;
  if (body.frequency_penalty != null) out.frequency_penalty = body.frequency_penalty;
  if (body.repetition_penalty != null) out.repetition_penalty = body.repetition_penalty;
  if (body.top_k != null) out.top_k = body.top_k;
  if (body.min_p != null) out.min_p = body.min_p;
  if (body.min_tokens != null) out.min_tokens = body.min_tokens;
  if (body.logit_bias != null && Object.keys(body.logit_bias).length > 0) out.logit_bias = body.logit_bias;
  if (body.response_format != null && body.response_format.type !== 'text') out.response_format = body.response_format;
  if (body.n != null && body.n > 1) out.n = body.n;
  // An impossible combination was refused already (schemas/request-surface.ts); here it asks for nothing.
  const tools = toolCallConstraint(body.tools, body.tool_choice, body.parallel_tool_calls).constraint;
  if (tools) out.tool_calls = tools;
  if (typeof body.logprobs === 'number') out.logprobs = body.logprobs;
  else if (body.logprobs === true) out.logprobs = body.top_logprobs ?? 0;
  return out;
}

/** OpenAI fields → protocol sampling, with OpenAI's defaults (temperature 1, top_p 1). */
export function samplingParams(
  body: OpenAISampling,
  maxTokens: number | null,
  stopTokenIds: number[],
): Omit<SamplingParams, 'max_tokens'> & { max_tokens: number | null } {
  return {
    max_tokens: maxTokens,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    ...(body.seed != null ? { seed: body.seed } : {}),
    stop_token_ids: stopTokenIds,
    stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    ...processors(body),
  };
}
