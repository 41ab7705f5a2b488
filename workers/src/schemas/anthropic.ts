/**
 * zod schemas for Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`),
 * with Anthropic's ranges. Objects are strict: a field not listed here is refused with a 400 naming
 * it (schemas/validate.ts), because a Messages request is translated into a chat request
 * (formats/anthropic-request.ts) and a field without a translation would otherwise be lost.
 * What each listed field does is in the README's API section.
 */
import { z } from 'zod';
import { NO_MESSAGES } from './openai.ts';

/** Anthropic's prompt-caching marker. Our prefix cache is automatic, so it is accepted and changes nothing. */
const cacheControl = z.object({ type: z.literal('ephemeral'), ttl: z.enum(['5m', '1h']).optional() }).strict().nullish();

const textBlock = z.object({ type: z.literal('text'), text: z.string(), cache_control: cacheControl, citations: z.array(z.unknown()).max(0).nullish() }).strict();

const toolResultBlock = z
  .object({
    type: z.literal('tool_result'),
    tool_use_id: z.string().min(1),
    content: z.union([z.string(), z.array(textBlock)]).optional(),
    is_error: z.boolean().optional(),
    cache_control: cacheControl,
  })
  .strict();

const toolUseBlock = z
  .object({ type: z.literal('tool_use'), id: z.string().min(1), name: z.string().min(1), input: z.record(z.string(), z.unknown()), cache_control: cacheControl })
  .strict();

/** Earlier reasoning sent back: rendered as the assistant turn's reasoning_content. Signatures are ours to ignore (we issue none). */
const thinkingBlock = z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string().optional() }).strict();

const block = z.discriminatedUnion('type', [textBlock, toolResultBlock, toolUseBlock, thinkingBlock]);

export const anthropicMessage = z
  .object({
    role: z.enum(['user', 'assistant']),
    content: z.union([z.string(), z.array(block)]),
  })
  .strict();

export const anthropicTool = z
  .object({
    // Client tools only; Anthropic's server tools (web search, code execution, ...) have other types.
    type: z.literal('custom').optional(),
    name: z.string().min(1).max(128),
    description: z.string().optional(),
    input_schema: z.record(z.string(), z.unknown()),
    cache_control: cacheControl,
  })
  .strict();

const toolChoice = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }).strict(),
  z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }).strict(),
  z.object({ type: z.literal('tool'), name: z.string().min(1), disable_parallel_tool_use: z.boolean().optional() }).strict(),
  z.object({ type: z.literal('none') }).strict(),
]);

/** `display: omitted` returns thinking blocks with their text left out (the tokens are still generated and billed). */
const display = z.enum(['summarized', 'omitted']).nullish();
const thinking = z.discriminatedUnion('type', [
  z.object({ type: z.literal('enabled'), budget_tokens: z.number().int().min(1024), display }).strict(),
  z.object({ type: z.literal('adaptive'), display }).strict(),
  z.object({ type: z.literal('between_tools') }).strict(),
  z.object({ type: z.literal('disabled') }).strict(),
]);

/** Structured output (`format`: a JSON schema) and effort, translated to chat's response_format and reasoning_effort. */
const outputConfig = z
  .object({
    effort: z.enum(['low', 'medium', 'high', 'xhigh', 'max']).nullish(),
    format: z.object({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).strict().nullish(),
  })
  .strict();

const system = z.union([z.string(), z.array(textBlock)]);

/** The prompt-shaping fields, shared by messages.create and count_tokens. */
const promptFields = {
  model: z.string().min(1),
  messages: z.array(anthropicMessage).min(1, NO_MESSAGES),
  system: system.optional(),
  tools: z.array(anthropicTool).optional(),
  tool_choice: toolChoice.optional(),
  thinking: thinking.optional(),
  cache_control: cacheControl,
  output_config: outputConfig.optional(),
};

export const messagesRequest = z
  .object({
    ...promptFields,
    max_tokens: z.number().int().min(1),
    stop_sequences: z.array(z.string().min(1)).optional(),
    temperature: z.number().min(0).max(1).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    top_k: z.number().int().min(1).optional(),
    stream: z.boolean().optional(),
    // An end-user id for abuse tracking: accepted, no effect on the output (as chat's `user`).
    metadata: z.object({ user_id: z.string().max(256).nullish() }).strict().optional(),
    // There is one service tier.
    service_tier: z.enum(['auto', 'standard_only']).optional(),
  })
  .strict()
  .refine((b) => b.thinking?.type !== 'enabled' || b.thinking.budget_tokens < b.max_tokens, {
    message: 'thinking.budget_tokens must be less than max_tokens',
    path: ['thinking', 'budget_tokens'],
  });

export const countTokensRequest = z.object(promptFields).strict();

export type AnthropicMessage = z.infer<typeof anthropicMessage>;
export type MessagesRequest = z.infer<typeof messagesRequest>;
export type CountTokensRequest = z.infer<typeof countTokensRequest>;
