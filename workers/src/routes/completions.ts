import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';
import { resolveModel } from '../inference/generation.ts';
import { serve } from '../inference/serve.ts';
import { requireScope } from '../middleware/auth.ts';
import { completionRequest } from '../schemas/openai.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { jsonBody } from '../schemas/validate.ts';
import { countPrompt } from '../upstreams/prompt.ts';

/** POST /v1/completions: raw text in, raw text out (no chat template). */
export const completions = new Hono<AppEnv>().post('/', requireScope('completions'), jsonBody(completionRequest), async (c) => {
  const body = c.req.valid('json');
  const startedAt = Date.now();
  const target = await resolveModel(c.env, body.model, startedAt);
  const req = { endpoint: 'completions', body } as const;
  const prompt = countPrompt(target, req);
  // Served by our own pool only: a field the node cannot honour is a 400 now, before anything is held.
  if (target.backends.length === 0) refuseWhatThePoolCannotHonour(req.endpoint, body, prompt.tokenizer.vocabSize);
  // Key and org limits and the worst-case credit hold: 429 / 402 before any backend is contacted.
  // With n choices each may run to max_tokens: the worst case held is n × max_tokens of output.
  await c.var.billing.admit({ model: body.model, promptTokens: prompt.promptTokenIds.length, maxTokens: prompt.maxTokens * (body.n ?? 1), price: target.price });
  return serve(c, target, startedAt, req, prompt);
});
