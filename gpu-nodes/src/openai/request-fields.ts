/**
 * The node's OpenAI endpoint reads request bodies here: every field it knows is checked against
 * OpenAI's range (a 400 naming the field otherwise), every field it does not know is refused with a
 * 400 naming it, never dropped. Null is taken as absent, as OpenAI does. Callers of this endpoint
 * reach the node without the edge's zod schemas in front, so nothing is trusted.
 */
import type { ResponseFormat, SamplingParams, ToolCallConstraint } from '../../../shared/protocol.ts';
import { toolCallConstraint } from '../../../shared/tool-choice.ts';
import { MAX_CHOICES } from '../engine/admission.ts';
import { MAX_TOP_LOGPROBS } from '../model/logprobs.ts';

export class BadRequest extends Error {
  readonly param: string | null;
  readonly code: string | null;
  constructor(message: string, param: string | null = null, code: string | null = null) {
    super(message);
    this.name = 'BadRequest';
    this.param = param;
    this.code = code;
  }
}

export type Endpoint = 'chat' | 'completions';

const SHARED = [
  'model', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'user', 'n',
  'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'top_k', 'min_p', 'min_tokens', 'logit_bias', 'logprobs',
];
const KNOWN: Record<Endpoint, ReadonlySet<string>> = {
  chat: new Set([...SHARED, 'messages', 'max_completion_tokens', 'tools', 'tool_choice', 'parallel_tool_calls', 'top_logprobs', 'response_format']),
  completions: new Set([...SHARED, 'prompt', 'echo', 'best_of', 'suffix']),
};

/** Refuses the first field this endpoint does not know. */
export function refuseUnknownFields(body: Record<string, unknown>, endpoint: Endpoint): void {
  for (const key of Object.keys(body)) {
    if (!KNOWN[endpoint].has(key)) throw new BadRequest(`'${key}' is not a parameter this endpoint understands; remove it`, key, 'unsupported_parameter');
  }
}

const present = (v: unknown) => v !== undefined && v !== null;

/** A finite number in [lo, hi] (open at `lo` when `openLo`), or undefined when absent. */
export function numberIn(body: Record<string, unknown>, name: string, lo: number, hi: number, { integer = false, openLo = false } = {}): number | undefined {
  const v = body[name];
  if (!present(v)) return undefined;
  const range = `${openLo ? '(' : '['}${lo}, ${hi}]`;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v > hi || v < lo || (openLo && v === lo)) {
    throw new BadRequest(`${name} must be ${integer ? 'an integer' : 'a number'} in ${range}`, name, 'invalid_value');
  }
  return v;
}

function stopStrings(stop: unknown): string[] {
  if (!present(stop)) return [];
  if (typeof stop === 'string') return [stop];
  if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) return stop as string[];
  throw new BadRequest('stop must be a string or an array of strings', 'stop');
}

function logitBias(v: unknown, vocabSize: number): Record<string, number> | undefined {
  if (!present(v)) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new BadRequest('logit_bias must be an object of token id → bias', 'logit_bias');
  const entries = Object.entries(v as Record<string, unknown>);
  for (const [id, bias] of entries) {
    // A bias on an id outside the vocabulary would silently do nothing: the caller meant another token.
    if (!/^\d+$/.test(id) || Number(id) >= vocabSize) throw new BadRequest(`logit_bias: token id ${id} is outside this model's vocabulary [0, ${vocabSize})`, 'logit_bias', 'invalid_value');
    if (typeof bias !== 'number' || !Number.isFinite(bias) || bias < -100 || bias > 100) throw new BadRequest(`logit_bias for token ${id} must be a number in [-100, 100]`, 'logit_bias', 'invalid_value');
  }
  return entries.length > 0 ? (v as Record<string, number>) : undefined;
}

/** OpenAI's response_format, checked for shape; whether its schema compiles is the engine's answer. */
function responseFormat(v: unknown): ResponseFormat | undefined {
  if (!present(v)) return undefined;
  const bad = () => new BadRequest("response_format must be {type: 'text'}, {type: 'json_object'} or {type: 'json_schema', json_schema: {name, schema, strict}}", 'response_format');
  if (typeof v !== 'object' || Array.isArray(v)) throw bad();
  const f = v as { type?: unknown; json_schema?: unknown };
  if (f.type === 'text') return undefined;
  if (f.type === 'json_object') return { type: 'json_object' };
  if (f.type !== 'json_schema' || typeof f.json_schema !== 'object' || f.json_schema === null) throw bad();
  const js = f.json_schema as { name?: unknown; schema?: unknown; strict?: unknown };
  if (typeof js.name !== 'string' || js.name === '') throw new BadRequest('response_format.json_schema.name must be a non-empty string', 'response_format.json_schema.name');
  if (present(js.schema) && (typeof js.schema !== 'object' || Array.isArray(js.schema))) {
    throw new BadRequest('response_format.json_schema.schema must be a JSON Schema object', 'response_format.json_schema.schema');
  }
  if (present(js.strict) && typeof js.strict !== 'boolean') throw new BadRequest('response_format.json_schema.strict must be a boolean', 'response_format.json_schema.strict');
  return {
    type: 'json_schema',
    json_schema: { name: js.name, ...(present(js.schema) ? { schema: js.schema as Record<string, unknown> } : {}), ...(typeof js.strict === 'boolean' ? { strict: js.strict } : {}) },
  };
}

/** The logprobs the request asks for: the number of alternatives per token, or undefined for none. */
function logprobs(body: Record<string, unknown>, endpoint: Endpoint): number | undefined {
  if (endpoint === 'completions') return numberIn(body, 'logprobs', 0, MAX_TOP_LOGPROBS, { integer: true });
  const on = body.logprobs;
  if (present(on) && typeof on !== 'boolean') throw new BadRequest('logprobs must be a boolean', 'logprobs');
  const top = numberIn(body, 'top_logprobs', 0, MAX_TOP_LOGPROBS, { integer: true });
  if (top !== undefined && on !== true) throw new BadRequest('top_logprobs needs logprobs: true', 'top_logprobs');
  return on === true ? (top ?? 0) : undefined;
}

/** tool_choice required / named and parallel_tool_calls false, as the constraint the engine enforces. */
function toolCalls(body: Record<string, unknown>): ToolCallConstraint | undefined {
  if (present(body.parallel_tool_calls) && typeof body.parallel_tool_calls !== 'boolean') throw new BadRequest('parallel_tool_calls must be a boolean', 'parallel_tool_calls');
  const { constraint, error } = toolCallConstraint(body.tools, body.tool_choice, body.parallel_tool_calls);
  if (error !== undefined) throw new BadRequest(error, 'tool_choice');
  return constraint;
}

/** Asks-for-nothing values of fields this node does not act on yet; anything else is refused, naming the field. */
function refuseUnsupported(body: Record<string, unknown>): void {
  const neutral: Record<string, (v: unknown) => boolean> = {
    echo: (v) => v === false,
    best_of: (v) => v === 1,
    suffix: (v) => v === '',
  };
  for (const [field, ok] of Object.entries(neutral)) {
    const v = body[field];
    if (present(v) && !ok(v)) throw new BadRequest(`${field} ${JSON.stringify(v)} is not supported by this node`, field, 'unsupported_parameter');
  }
}

/** Every sampling field of an OpenAI body, validated; max_tokens and the stop ids come from the route. */
export function samplingFields(body: Record<string, unknown>, endpoint: Endpoint, vocabSize: number): Omit<SamplingParams, 'max_tokens' | 'stop_token_ids'> {
  refuseUnknownFields(body, endpoint);
  refuseUnsupported(body);
  const opt = <K extends keyof SamplingParams>(key: K, v: SamplingParams[K] | undefined) => (v === undefined ? {} : { [key]: v });
  const rf = endpoint === 'chat' ? responseFormat(body.response_format) : undefined;
  const seed = numberIn(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, { integer: true });
  return {
    temperature: numberIn(body, 'temperature', 0, 2) ?? 1,
    top_p: numberIn(body, 'top_p', 0, 1, { openLo: true }) ?? 1,
    ...opt('seed', seed),
    stop: stopStrings(body.stop),
    ...opt('presence_penalty', numberIn(body, 'presence_penalty', -2, 2)),
    ...opt('frequency_penalty', numberIn(body, 'frequency_penalty', -2, 2)),
    ...opt('repetition_penalty', numberIn(body, 'repetition_penalty', 0, 2, { openLo: true })),
    ...opt('top_k', numberIn(body, 'top_k', -1, Number.MAX_SAFE_INTEGER, { integer: true })),
    ...opt('min_p', numberIn(body, 'min_p', 0, 1)),
    ...opt('min_tokens', numberIn(body, 'min_tokens', 0, Number.MAX_SAFE_INTEGER, { integer: true })),
    ...opt('logit_bias', logitBias(body.logit_bias, vocabSize)),
    ...opt('response_format', rf),
    ...opt('logprobs', logprobs(body, endpoint)),
    ...opt('n', numberIn(body, 'n', 1, MAX_CHOICES, { integer: true })),
    ...opt('tool_calls', endpoint === 'chat' ? toolCalls(body) : undefined),
  };
}
