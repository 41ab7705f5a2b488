/**
 * The request surface: for every field a client may send, what our own node pool does with it.
 *
 * The rule: a field is **honoured** (the pool acts on it), **forwarded unchanged** (an OpenAI-compatible
 * upstream serves the request and gets the client's body as sent: inference/serve.ts), or **refused**
 * with a 400 whose `param` names it. Never silently dropped. This file is the pool's half: the tables
 * below list every field of OpenAI's chat-completions and completions requests (and the vLLM/SGLang
 * sampling extensions); a field absent from them, a vendor field we cannot know, is refused by the pool.
 *
 * A refusable field is refused only when it asks for something: null, absent or its neutral value
 * (n: 1, logprobs: false, response_format text, ...) asks for nothing and passes.
 */
import { toolCallConstraint } from '../../../shared/tool-choice.ts';
import { InvalidRequestError } from '../errors.ts';
import type { ChatCompletionRequest, CompletionRequest } from './openai.ts';

/** 'honoured', or a check that returns why the value cannot be served by the pool (null: it asks for nothing). */
export type PoolRule = 'honoured' | ((value: unknown, body: Record<string, unknown>) => string | null);

const refused =
  (why: string, neutral: (v: unknown) => boolean = () => false): PoolRule =>
  (v) =>
    neutral(v) ? null : why;
const is = (x: unknown) => (v: unknown) => v === x;

/** Sampling fields both endpoints share. */
const SAMPLING: Record<string, PoolRule> = {
  model: 'honoured',
  max_tokens: 'honoured',
  temperature: 'honoured',
  top_p: 'honoured',
  seed: 'honoured',
  stop: 'honoured',
  stream: 'honoured',
  stream_options: 'honoured',
  // An end-user id for abuse tracking: accepted; it does not change the output.
  user: 'honoured',
  // 1–8 choices decoded as separate sequences sharing the prompt (more is refused below).
  n: 'honoured',
  // The node's sampler applies these (gpu-nodes/src/model/sampler.ts); logit_bias ids are checked against its vocabulary.
  presence_penalty: 'honoured',
  frequency_penalty: 'honoured',
  repetition_penalty: 'honoured',
  logit_bias: 'honoured',
  top_k: 'honoured',
  min_p: 'honoured',
  min_tokens: 'honoured',
};

/** POST /v1/chat/completions: OpenAI's request fields plus the shared sampling extensions. */
export const CHAT_POOL_FIELDS: Record<string, PoolRule> = {
  ...SAMPLING,
  messages: 'honoured',
  max_completion_tokens: 'honoured',
  tools: 'honoured',
  // required / a named function / parallel_tool_calls false: the node constrains the output to K2's
  // tool-call markers, the allowed names and each function's argument schema (shared/tool-choice.ts).
  tool_choice: 'honoured',
  parallel_tool_calls: 'honoured',
  // The edge renders the last assistant message open, so the model goes on writing it.
  continue_final_message: (v, body) =>
    v === false || (body.messages as { role?: unknown }[]).at(-1)?.role === 'assistant' ? null : 'continue_final_message needs an assistant message last',
  // The node reports the model's log-probabilities per output token (shared/openai-logprobs.ts shapes).
  logprobs: 'honoured',
  top_logprobs: (v, body) => (v === 0 || body.logprobs === true ? null : 'top_logprobs needs logprobs: true'),
  // The node constrains decoding by grammar (gpu-nodes/src/engine/structured-output/); a schema it cannot compile is its 400.
  response_format: 'honoured',
  reasoning_effort: refused('reasoning_effort is not supported: this model has no effort levels'),
  verbosity: refused('verbosity is not supported by this model'),
  modalities: refused('this model only answers with text', (v) => Array.isArray(v) && v.every((m) => m === 'text')),
  audio: refused('this model has no audio output'),
  prediction: refused('predicted outputs are not supported by this model\'s serving nodes'),
  web_search_options: refused('web search is not available for this model'),
  // Stored completions are an OpenAI product; nothing is stored here, and metadata only tags stored ones.
  store: refused('stored completions are not offered; send store: false or leave it out', is(false)),
  metadata: refused('metadata tags stored completions, which are not offered'),
  service_tier: refused('there is one service tier; send "auto" or "default" or leave it out', (v) => v === 'auto' || v === 'default'),
  // Identifiers that do not change the output; our prefix cache is already per organisation.
  prompt_cache_key: 'honoured',
  safety_identifier: 'honoured',
  functions: refused('functions is deprecated; send tools instead'),
  function_call: refused('function_call is deprecated; send tool_choice instead'),
};

/** POST /v1/completions. */
export const COMPLETION_POOL_FIELDS: Record<string, PoolRule> = {
  ...SAMPLING,
  prompt: 'honoured',
  echo: refused('echo is not supported by this model\'s serving nodes', is(false)),
  logprobs: 'honoured',
  best_of: refused('best_of > 1 is not supported by this model\'s serving nodes', is(1)),
  suffix: refused('suffix (insertion) is not supported by this model', is('')),
};

/** Keys the chat template renders, per message role; any other key on a message would be lost. */
const MESSAGE_KEYS: Record<string, readonly string[]> = {
  system: ['role', 'content', 'name'],
  developer: ['role', 'content', 'name'],
  user: ['role', 'content', 'name'],
  assistant: ['role', 'content', 'name', 'reasoning_content', 'tool_calls'],
  tool: ['role', 'content', 'tool_call_id'],
};

const unsupported = (message: string, param: string) => new InvalidRequestError(message, param, 'unsupported_parameter');

function checkFields(body: Record<string, unknown>, rules: Record<string, PoolRule>, path = ''): void {
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    const rule = rules[key];
    const param = path + key;
    if (rule === undefined) throw unsupported(`'${param}' is not a parameter this model's serving nodes understand; remove it`, param);
    if (rule === 'honoured') continue;
    const why = rule(value, body);
    if (why !== null) throw unsupported(`${param}: ${why}`, param);
  }
}

/**
 * Throws the 400 for the first field of `body` the node pool would not honour (or a logit_bias id
 * outside the model's vocabulary of `vocabSize` ids). Call it where a
 * request is about to be served by the pool (the default path, or a `pool` backend).
 */
/** Most choices the pool decodes for one request. */
export const POOL_MAX_CHOICES = 8;

export function refuseWhatThePoolCannotHonour(endpoint: 'chat.completions' | 'completions', body: ChatCompletionRequest | CompletionRequest, vocabSize: number): void {
  if (body.n != null && body.n > POOL_MAX_CHOICES) throw unsupported(`n: at most ${POOL_MAX_CHOICES} choices per request on this model's serving nodes; send several requests`, 'n');
  for (const id of Object.keys(body.logit_bias ?? {})) {
    // A bias on an id outside the vocabulary would silently do nothing: the caller meant another token.
    if (Number(id) >= vocabSize) throw new InvalidRequestError(`logit_bias: token id ${id} is outside this model's vocabulary [0, ${vocabSize})`, 'logit_bias', 'invalid_value');
  }
  if (endpoint === 'completions') return checkFields(body, COMPLETION_POOL_FIELDS);
  const chat = body as ChatCompletionRequest;
  checkFields(chat, CHAT_POOL_FIELDS);
  const tools = toolCallConstraint(chat.tools, chat.tool_choice, chat.parallel_tool_calls);
  if (tools.error !== undefined) throw new InvalidRequestError(tools.error, 'tool_choice', 'invalid_value');
  chat.messages.forEach((m, i) => {
    const known = MESSAGE_KEYS[m.role];
    for (const [key, value] of Object.entries(m)) {
      if (value === undefined || value === null || known.includes(key)) continue;
      if (key === 'partial' && (value === false || (m.role === 'assistant' && i === chat.messages.length - 1))) continue;
      const param = `messages.${i}.${key}`;
      throw unsupported(key === 'partial' ? `${param}: partial mode continues the last message, which must be the assistant's` : `'${param}' is not a message field this model's serving nodes understand; remove it`, param);
    }
    if (Array.isArray(m.content)) {
      m.content.forEach((part, j) => {
        const extra = Object.keys(part).find((k) => k !== 'type' && k !== 'text');
        if (extra) throw unsupported(`'messages.${i}.content.${j}.${extra}' is not supported by this model's serving nodes; remove it`, `messages.${i}.content.${j}.${extra}`);
      });
    }
  });
  chat.tools?.forEach((t, i) => {
    if (t.function.strict === true) throw unsupported(`tools.${i}.function.strict: strict function calling is not enforced by this model's serving nodes`, `tools.${i}.function.strict`);
  });
}
