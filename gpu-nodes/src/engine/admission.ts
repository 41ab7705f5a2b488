/**
 * Invariants a `GenerateRequest` must satisfy before it may enter the engine. The edge already
 * validated the user's request with zod, so this is not schema validation: it asserts the things the
 * engine would otherwise trip over later, mid-step, where one bad request could fail a whole batch
 * (a token id outside the embedding table, a prompt that can never fit in the KV cache).
 */
import { PROTOCOL_VERSION, type GenerateRequest } from '../../../shared/protocol.ts';
import { EngineError } from './errors.ts';

export interface AdmissionLimits {
  modelId: string;
  vocabSize: number;
  /** Longest prompt + completion the model (and the rope tables) support. */
  maxModelLen: number;
  /** Tokens the whole KV cache holds: a request longer than this could never run, even alone. */
  kvCapacityTokens: number;
}

export function checkGenerateRequest(body: GenerateRequest, limits: AdmissionLimits): void {
  if (body?.version !== PROTOCOL_VERSION) {
    throw new EngineError('protocol_mismatch', 400, `node speaks token-batch protocol v${PROTOCOL_VERSION}, request has version ${String(body?.version)}`);
  }
  const bad = (message: string) => new EngineError('invalid_request', 400, message);
  if (typeof body.request_id !== 'string' || body.request_id.length === 0) throw bad('request_id must be a non-empty string');
  if (typeof body.model !== 'string') throw bad('model must be a string');
  if (body.model !== limits.modelId) throw new EngineError('model_not_found', 404, `this node serves ${limits.modelId}, not ${String(body.model)}`);
  const ids = body.prompt_token_ids;
  if (!Array.isArray(ids) || ids.length === 0) throw bad('prompt_token_ids must be a non-empty array');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= limits.vocabSize) throw bad(`prompt token id ${id} is outside [0, ${limits.vocabSize})`);
  }
  const s = body.sampling;
  if (typeof s !== 'object' || s === null) throw bad('sampling is required');
  if (!Number.isInteger(s.max_tokens) || s.max_tokens < 1) throw bad('sampling.max_tokens must be an integer ≥ 1');
  if (!(s.temperature >= 0)) throw bad('sampling.temperature must be ≥ 0');
  if (!(s.top_p > 0 && s.top_p <= 1)) throw bad('sampling.top_p must be in (0, 1]');
  if (s.seed !== undefined && !Number.isInteger(s.seed)) throw bad('sampling.seed must be an integer');
  if (!Array.isArray(s.stop_token_ids) || !s.stop_token_ids.every((id) => Number.isInteger(id))) throw bad('sampling.stop_token_ids must be integers');
  if (!Array.isArray(s.stop) || !s.stop.every((x) => typeof x === 'string')) throw bad('sampling.stop must be strings');
  const finiteIn = (v: unknown, lo: number, hi: number) => typeof v === 'number' && v >= lo && v <= hi;
  if (s.presence_penalty !== undefined && !finiteIn(s.presence_penalty, -2, 2)) throw bad('sampling.presence_penalty must be in [-2, 2]');
  if (s.frequency_penalty !== undefined && !finiteIn(s.frequency_penalty, -2, 2)) throw bad('sampling.frequency_penalty must be in [-2, 2]');
  if (s.repetition_penalty !== undefined && !(finiteIn(s.repetition_penalty, 0, 2) && s.repetition_penalty > 0)) throw bad('sampling.repetition_penalty must be in (0, 2]');
  if (s.top_k !== undefined && !(Number.isInteger(s.top_k) && s.top_k >= -1)) throw bad('sampling.top_k must be an integer ≥ -1');
  if (s.min_p !== undefined && !finiteIn(s.min_p, 0, 1)) throw bad('sampling.min_p must be in [0, 1]');
  if (s.min_tokens !== undefined && !(Number.isInteger(s.min_tokens) && s.min_tokens >= 0)) throw bad('sampling.min_tokens must be an integer ≥ 0');
  if (s.logit_bias !== undefined) {
    if (typeof s.logit_bias !== 'object' || s.logit_bias === null) throw bad('sampling.logit_bias must be an object');
    for (const [id, bias] of Object.entries(s.logit_bias)) {
      // A bias on an id past the vocabulary would silently do nothing: the caller meant another token.
      if (!/^\d+$/.test(id) || Number(id) >= limits.vocabSize) throw bad(`logit_bias token id ${id} is outside this model's vocabulary [0, ${limits.vocabSize})`);
      if (!finiteIn(bias, -100, 100)) throw bad(`logit_bias for token ${id} must be in [-100, 100]`);
    }
  }
  if (body.cache_salt !== undefined && typeof body.cache_salt !== 'string') throw bad('cache_salt must be a string');
  if (body.tenant !== undefined && typeof body.tenant !== 'string') throw bad('tenant must be a string');
  if (body.cancel_key !== undefined && typeof body.cancel_key !== 'string') throw bad('cancel_key must be a string');
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
