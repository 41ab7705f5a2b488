/**
 * zod schema for OpenAI's Responses API (`POST /v1/responses`), with OpenAI's ranges. Objects are
 * strict: a field not listed is refused with a 400 naming it (schemas/validate.ts), because the
 * request is translated into a chat request (formats/responses-request.ts) and a field without a
 * translation would otherwise be lost. Listed fields that ask for something we do not offer are
 * refused there, naming the field; the README's API section has the table.
 */
import { z } from 'zod';

const inputText = z.object({ type: z.literal('input_text'), text: z.string() }).strict();
/** Earlier assistant output sent back as input. */
const outputText = z.object({ type: z.literal('output_text'), text: z.string(), annotations: z.array(z.unknown()).max(0).optional(), logprobs: z.array(z.unknown()).optional() }).strict();

const messageItem = z
  .object({
    type: z.literal('message').optional(),
    id: z.string().optional(),
    status: z.string().optional(),
    role: z.enum(['user', 'system', 'developer', 'assistant']),
    content: z.union([z.string(), z.array(z.discriminatedUnion('type', [inputText, outputText]))]),
  })
  .strict();

const functionCallItem = z
  .object({
    type: z.literal('function_call'),
    id: z.string().optional(),
    status: z.string().optional(),
    call_id: z.string().min(1),
    name: z.string().min(1),
    arguments: z.string(),
  })
  .strict();

const functionCallOutputItem = z
  .object({
    type: z.literal('function_call_output'),
    id: z.string().nullish(),
    status: z.string().nullish(),
    call_id: z.string().min(1),
    output: z.union([z.string(), z.array(inputText)]),
  })
  .strict();

/** Earlier reasoning sent back: its text becomes the next assistant turn's reasoning_content. */
const reasoningItem = z
  .object({
    type: z.literal('reasoning'),
    id: z.string().optional(),
    status: z.string().optional(),
    summary: z.array(z.object({ type: z.literal('summary_text'), text: z.string() }).strict()),
    content: z.array(z.object({ type: z.literal('reasoning_text'), text: z.string() }).strict()).optional(),
    // We never issue encrypted reasoning, so there is none to read back.
    encrypted_content: z.null().optional(),
  })
  .strict();

/** A message item may omit `type`, so it is tried last. */
export const inputItem = z.union([functionCallItem, functionCallOutputItem, reasoningItem, messageItem]);

const functionTool = z
  .object({
    type: z.literal('function'),
    name: z.string().min(1),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  })
  .strict();

const textFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z.object({ type: z.literal('json_schema'), name: z.string().min(1), schema: z.record(z.string(), z.unknown()), description: z.string().optional(), strict: z.boolean().nullish() }).strict(),
]);

export const responsesRequest = z
  .object({
    model: z.string().min(1),
    // Empty input has nothing to answer: refused here, before any limit slot or credit is held.
    input: z.union([z.string(), z.array(inputItem).min(1, 'must contain at least one item')]).refine((i) => i !== '', 'must not be empty: send the text to answer'),
    instructions: z.string().nullish(),
    tools: z.array(functionTool).optional(),
    tool_choice: z
      .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string().min(1) }).strict()])
      .optional(),
    parallel_tool_calls: z.boolean().nullish(),
    max_output_tokens: z.number().int().min(1).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_obfuscation: z.boolean().optional() }).strict().nullish(),
    reasoning: z.object({ effort: z.string().nullish(), summary: z.string().nullish(), generate_summary: z.string().nullish() }).strict().nullish(),
    text: z.object({ format: textFormat.optional(), verbosity: z.string().nullish() }).strict().nullish(),
    previous_response_id: z.string().nullish(),
    store: z.boolean().nullish(),
    include: z.array(z.string()).nullish(),
    metadata: z.record(z.string(), z.string()).nullish(),
    user: z.string().nullish(),
    safety_identifier: z.string().nullish(),
    prompt_cache_key: z.string().nullish(),
    service_tier: z.string().nullish(),
    truncation: z.enum(['auto', 'disabled']).nullish(),
    background: z.boolean().nullish(),
    max_tool_calls: z.number().int().min(1).nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
  })
  .strict();

export type ResponsesRequest = z.infer<typeof responsesRequest>;
export type ResponsesInputItem = z.infer<typeof inputItem>;
