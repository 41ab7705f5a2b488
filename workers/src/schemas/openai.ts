/**
 * zod schemas for the OpenAI-compatible request bodies: the only validation in the request path.
 * Past these, handlers trust the types.
 *
 * Every field OpenAI documents is declared here with OpenAI's range, and the objects are `loose`:
 * a field we do not list (a vendor's own, such as vLLM's `guided_json`) is kept, not stripped. What
 * happens to each kept field is decided by who serves the request (schemas/request-surface.ts):
 * our node pool honours it or refuses it with a 400 naming it; an OpenAI-compatible upstream gets
 * it forwarded unchanged. Nothing is silently dropped.
 */
import { z } from 'zod';

const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const streamOptions = z.object({ include_usage: z.boolean().optional() }).loose().nullish();
const penalty = z.number().min(-2).max(2).nullish();
/** Token id (as a decimal string, as JSON object keys are) → bias added to its logit. */
const logitBias = z.record(z.string().regex(/^\d+$/, 'logit_bias keys must be token ids'), z.number().min(-100).max(100)).nullish();

/** Sampling fields shared by both endpoints, with OpenAI's ranges; the last group are vLLM's and SGLang's. */
const sampling = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: streamOptions,
  n: z.number().int().min(1).max(128).nullish(),
  presence_penalty: penalty,
  frequency_penalty: penalty,
  logit_bias: logitBias,
  user: z.string().nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(2).nullish(),
  min_tokens: z.number().int().min(0).nullish(),
};

/** An empty conversation has nothing to answer: refused here, before any limit slot or credit is held. */
export const NO_MESSAGES = 'must contain at least one message';

const textPart = z.object({ type: z.literal('text'), text: z.string() }).loose();
const content = z.union([z.string(), z.array(textPart).min(1)]);

const toolCall = z
  .object({
    id: z.string(),
    type: z.literal('function'),
    function: z.object({ name: z.string(), arguments: z.string() }),
  })
  .loose();

export const chatMessage = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content, name: z.string().optional() }).loose(),
  z.object({ role: z.literal('developer'), content, name: z.string().optional() }).loose(),
  z.object({ role: z.literal('user'), content, name: z.string().optional() }).loose(),
  z
    .object({
      role: z.literal('assistant'),
      content: content.nullish(),
      reasoning_content: z.string().nullish(),
      tool_calls: z.array(toolCall).optional(),
      name: z.string().optional(),
      /** Moonshot's partial mode: continue this (last) assistant message instead of answering after it. */
      partial: z.boolean().optional(),
    })
    .loose(),
  z.object({ role: z.literal('tool'), content, tool_call_id: z.string() }).loose(),
]);

export const tool = z
  .object({
    type: z.literal('function'),
    function: z
      .object({
        name: z.string().min(1),
        description: z.string().optional(),
        parameters: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().optional(),
      })
      .loose(),
  })
  .loose();

const responseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).loose(),
  z.object({ type: z.literal('json_object') }).loose(),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z.object({ name: z.string().min(1), description: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullish() }).loose(),
    })
    .loose(),
]);

export const chatCompletionRequest = z
  .object({
    model: z.string().min(1),
    messages: z.array(chatMessage).min(1, NO_MESSAGES),
    max_tokens: z.number().int().positive().nullish(),
    max_completion_tokens: z.number().int().positive().nullish(),
    tools: z.array(tool).optional(),
    tool_choice: z
      .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1) }).loose() }).loose()])
      .optional(),
    parallel_tool_calls: z.boolean().nullish(),
    /** vLLM's spelling of partial mode: continue the last (assistant) message. */
    continue_final_message: z.boolean().nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    response_format: responseFormat.nullish(),
    reasoning_effort: z.string().nullish(),
    verbosity: z.string().nullish(),
    modalities: z.array(z.string()).nullish(),
    audio: z.record(z.string(), z.unknown()).nullish(),
    prediction: z.record(z.string(), z.unknown()).nullish(),
    web_search_options: z.record(z.string(), z.unknown()).nullish(),
    metadata: z.record(z.string(), z.string()).nullish(),
    store: z.boolean().nullish(),
    service_tier: z.string().nullish(),
    prompt_cache_key: z.string().nullish(),
    safety_identifier: z.string().nullish(),
    functions: z.array(z.record(z.string(), z.unknown())).nullish(),
    function_call: z.union([z.string(), z.record(z.string(), z.unknown())]).nullish(),
    ...sampling,
  })
  .loose();

export const completionRequest = z
  .object({
    model: z.string().min(1),
    // An empty prompt has nothing to complete: refused here, before any limit slot or credit is held.
    prompt: z
      .union([z.string(), z.array(z.string()).length(1, 'Only one prompt per request is supported.')])
      .refine((p) => (typeof p === 'string' ? p : p[0]) !== '', 'must not be empty: send the text to complete'),
    max_tokens: z.number().int().positive().nullish(),
    echo: z.boolean().nullish(),
    logprobs: z.number().int().min(0).max(5).nullish(),
    best_of: z.number().int().min(1).max(20).nullish(),
    suffix: z.string().nullish(),
    ...sampling,
  })
  .loose();

export type ChatMessage = z.infer<typeof chatMessage>;
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;
export type CompletionRequest = z.infer<typeof completionRequest>;

/** POST /v1/tokenizers/estimate-token-count (the K2 platform's shape): what a chat request's prompt would count. */
export const tokenCountRequest = z
  .object({
    model: z.string().min(1),
    messages: z.array(chatMessage).min(1, NO_MESSAGES),
    tools: z.array(tool).optional(),
  })
  .strict();
