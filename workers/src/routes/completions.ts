import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';
import { completionChunks, textCompletion } from '../formats/completion.ts';
import { resolveModel, startGeneration } from '../inference/generation.ts';
import { samplingParams } from '../inference/sampling.ts';
import { collect, sseResponse } from '../inference/stream.ts';
import { edgeTokenizer } from '../inference/tokenizers.ts';
import { requireScope } from '../middleware/auth.ts';
import { serveViaBackends } from '../upstreams/serve.ts';
import { completionRequest } from '../schemas/openai.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { jsonBody } from '../schemas/validate.ts';

/** OpenAI's default for the legacy endpoint is 16 completion tokens. */
const DEFAULT_MAX_TOKENS = 16;

/** POST /v1/completions: raw text in, raw text out (no chat template). */
export const completions = new Hono<AppEnv>().post('/', requireScope('completions'), jsonBody(completionRequest), async (c) => {
  const body = c.req.valid('json');
  const startedAt = Date.now();
  const target = await resolveModel(c.env, body.model, startedAt);
  // Models with configured backends (vLLM, SGLang, hosted APIs, pools) go through upstreams/ (issue 11).
  const viaBackends = await serveViaBackends(c, target, startedAt, { endpoint: 'completions', body });
  if (viaBackends) return viaBackends;
  const { tokenizer } = edgeTokenizer(target.model);
  refuseWhatThePoolCannotHonour('completions', body, tokenizer.vocabSize);
  const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0];
  const gen = await startGeneration(c, {
    target,
    startedAt,
    endpoint: 'completions',
    // allowSpecial false: a prompt that spells "<|im_end|>" gets ordinary tokens, not the marker.
    promptTokenIds: tokenizer.encode(prompt, { allowSpecial: false }),
    sampling: samplingParams(body, body.max_tokens ?? DEFAULT_MAX_TOKENS, [tokenizer.specialId('[EOS]')]),
  });
  if (body.stream) return sseResponse(c, gen, completionChunks(gen, body.stream_options?.include_usage === true));
  return c.json(textCompletion(gen, await collect(c, gen)));
});
