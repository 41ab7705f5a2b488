/**
 * Invariants a `GenerateRequest` must satisfy before it may enter the engine. The edge already
 * validated the user's request with zod, so this is not schema validation: it asserts the things the
 * engine would otherwise trip over later, mid-step, where one bad request could fail a whole batch
 * (a token id outside the embedding table, a prompt that can never fit in the KV cache).
 */
import { PROTOCOL_VERSION, type GenerateRequest } from '../../../shared/protocol.ts';
import { MAX_TOP_LOGPROBS } from '../model/logprobs.ts';
import { EngineError } from './errors.ts';

export interface AdmissionLimits {
  modelId: string;
  vocabSize: number;
  /** Longest prompt + completion the model (and the rope tables) support. */
  maxModelLen: number;
  /** Tokens the whole KV cache holds: a request longer than this could never run, even alone. */
  kvCapacityTokens: number;
}

/** The fields of `GenerateRequest` and `SamplingParams` (shared/protocol.ts); keep in step with it. */
const REQUEST_KEYS: ReadonlySet<string> = new Set(['version', 'request_id', 'model', 'prompt_token_ids', 'sampling', 'cache_salt', 'tenant', 'cancel_key']);
/** Most choices one request may ask for (`sampling.n`). */
export const MAX_CHOICES = 8;

const SAMPLING_KEYS: ReadonlySet<string> = new Set([
  'n', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop_token_ids', 'stop', 'presence_penalty', 'frequency_penalty',
  'repetition_penalty', 'top_k', 'min_p', 'min_tokens', 'logit_bias', 'response_format', 'logprobs', 'tool_calls',
]);

export function checkGenerateRequest(body: GenerateRequest, limits: AdmissionLimits): void {
  if (body?.version !== PROTOCOL_VERSION) {
    throw new EngineError('protocol_mismatch', 400, `node speaks token-batch protocol v${PROTOCOL_VERSION}, request has version ${String(body?.version)}`);
  }
  const bad = (message: string, param?: string) => new EngineError('invalid_request', 400, message, undefined, param);
  if (typeof body.request_id !== 'string' || body.request_id.length === 0) throw bad('request_id must be a non-empty string');
  if (typeof body.model !== 'string') throw bad('model must be a string');
  if (body.model !== limits.modelId) throw new EngineError('model_not_found', 404, `this node serves ${limits.modelId}, not ${String(body.model)}`);
  const ids = body.prompt_token_ids;
  if (!Array.isArray(ids) || ids.length === 0) throw bad('prompt_token_ids must be a non-empty array');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= limits.vocabSize) throw bad(`prompt token id ${id} is outside [0, ${limits.vocabSize})`);
  }
  const s = body.sampling;
  if (typeof s !== 'object' || s === null) throw bad('sampling is required', 'sampling');
  // A field this node does not know would be silently ignored (an edge newer than the node): refuse it.
  for (const key of Object.keys(body)) if (!REQUEST_KEYS.has(key)) throw bad(`'${key}' is not a field of token-batch protocol v${PROTOCOL_VERSION}`, key);
  for (const key of Object.keys(s)) if (!SAMPLING_KEYS.has(key)) throw bad(`'sampling.${key}' is not a sampling field this node understands`, key);
  // Ranges are OpenAI's (the edge checked them already): a value outside them, or not a finite number,
  // must never reach the sampler, which is shared by the whole batch's step.
  const finiteIn = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
  const int = (v: unknown, lo: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo;
  if (!int(s.max_tokens, 1)) throw bad('sampling.max_tokens must be an integer ≥ 1', 'max_tokens');
  if (!finiteIn(s.temperature, 0, 2)) throw bad('sampling.temperature must be a number in [0, 2]', 'temperature');
  if (!(finiteIn(s.top_p, 0, 1) && s.top_p > 0)) throw bad('sampling.top_p must be in (0, 1]', 'top_p');
  if (s.seed !== undefined && !(typeof s.seed === 'number' && Number.isSafeInteger(s.seed))) throw bad('sampling.seed must be an integer', 'seed');
  if (!Array.isArray(s.stop_token_ids) || !s.stop_token_ids.every((id) => Number.isInteger(id) && id >= 0 && id < limits.vocabSize)) {
    throw bad(`sampling.stop_token_ids must be token ids in [0, ${limits.vocabSize})`, 'stop_token_ids');
  }
  if (!Array.isArray(s.stop) || !s.stop.every((x) => typeof x === 'string')) throw bad('sampling.stop must be strings', 'stop');
  if (s.presence_penalty !== undefined && !finiteIn(s.presence_penalty, -2, 2)) throw bad('sampling.presence_penalty must be in [-2, 2]', 'presence_penalty');
  if (s.frequency_penalty !== undefined && !finiteIn(s.frequency_penalty, -2, 2)) throw bad('sampling.frequency_penalty must be in [-2, 2]', 'frequency_penalty');
  if (s.repetition_penalty !== undefined && !(finiteIn(s.repetition_penalty, 0, 2) && s.repetition_penalty > 0)) throw bad('sampling.repetition_penalty must be in (0, 2]', 'repetition_penalty');
  if (s.top_k !== undefined && !int(s.top_k, -1)) throw bad('sampling.top_k must be an integer ≥ -1', 'top_k');
  if (s.min_p !== undefined && !finiteIn(s.min_p, 0, 1)) throw bad('sampling.min_p must be in [0, 1]', 'min_p');
  if (s.min_tokens !== undefined && !int(s.min_tokens, 0)) throw bad('sampling.min_tokens must be an integer ≥ 0', 'min_tokens');
  if (s.logit_bias !== undefined) {
    if (typeof s.logit_bias !== 'object' || s.logit_bias === null || Array.isArray(s.logit_bias)) throw bad('sampling.logit_bias must be an object', 'logit_bias');
    for (const [id, bias] of Object.entries(s.logit_bias)) {
      // A bias on an id past the vocabulary would silently do nothing: the caller meant another token.
      if (!/^\d+$/.test(id) || Number(id) >= limits.vocabSize) throw bad(`logit_bias token id ${id} is outside this model's vocabulary [0, ${limits.vocabSize})`, 'logit_bias');
      if (!finiteIn(bias, -100, 100)) throw bad(`logit_bias for token ${id} must be in [-100, 100]`, 'logit_bias');
    }
  }
  if (s.logprobs !== undefined && !(int(s.logprobs, 0) && s.logprobs <= MAX_TOP_LOGPROBS)) {
    throw bad(`sampling.logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}]`, 'top_logprobs');
  }
  if (s.n !== undefined && !(int(s.n, 1) && s.n <= MAX_CHOICES)) throw bad(`sampling.n must be an integer in [1, ${MAX_CHOICES}]`, 'n');
  const rf = s.response_format;
  if (rf !== undefined) {
    const ok =
      typeof rf === 'object' && rf !== null &&
      (rf.type === 'text' || rf.type === 'json_object' ||
        (rf.type === 'json_schema' && typeof rf.json_schema === 'object' && rf.json_schema !== null &&
          (rf.json_schema.schema === undefined || (typeof rf.json_schema.schema === 'object' && rf.json_schema.schema !== null && !Array.isArray(rf.json_schema.schema)))));
    if (!ok) throw bad("sampling.response_format must be {type: 'text' | 'json_object'} or {type: 'json_schema', json_schema: {name, schema: object, strict?}}", 'response_format');
  }
  const tc = s.tool_calls;
  if (tc !== undefined) {
    const ok =
      typeof tc === 'object' && tc !== null && typeof tc.required === 'boolean' && typeof tc.parallel === 'boolean' && Array.isArray(tc.functions) &&
      tc.functions.every((f) => typeof f === 'object' && f !== null && typeof f.name === 'string' && f.name !== '' && (f.parameters === undefined || (typeof f.parameters === 'object' && f.parameters !== null)));
    if (!ok) throw bad('sampling.tool_calls must be {functions: [{name, parameters?}], required: boolean, parallel: boolean}', 'tool_choice');
  }
  if (body.cache_salt !== undefined && typeof body.cache_salt !== 'string') throw bad('cache_salt must be a string', 'cache_salt');
  if (body.tenant !== undefined && typeof body.tenant !== 'string') throw bad('tenant must be a string', 'tenant');
  if (body.cancel_key !== undefined && typeof body.cancel_key !== 'string') throw bad('cancel_key must be a string', 'cancel_key');
  const total = ids.length + s.max_tokens;
  const limit = Math.min(limits.maxModelLen, limits.kvCapacityTokens);
  if (total > limit) {
    throw new EngineError(
      'context_length_exceeded',
      413,
      `prompt (${ids.length}) + max_tokens (${s.max_tokens}) = ${total} tokens exceeds this node's limit of ${limit}; shorten the prompt or lower max_tokens`,
    );
  }
}
