import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';
import { inClientTerms } from '../formats/api-format.ts';
import { responsesFormat } from '../formats/responses.ts';
import { chatRequestFromResponses, responsesParam } from '../formats/responses-request.ts';
import { resolveModel } from '../inference/generation.ts';
import { serve } from '../inference/serve.ts';
import { requireScope } from '../middleware/auth.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { responsesRequest } from '../schemas/responses.ts';
import { jsonBody } from '../schemas/validate.ts';
import { countPrompt } from '../upstreams/prompt.ts';

/**
 * POST /v1/responses: OpenAI's Responses API over the chat path. The request becomes a chat body
 * (formats/responses-request.ts), which is tokenized with K2's template, admitted and served exactly
 * like POST /v1/chat/completions; the answer is rendered as a Responses object or event stream
 * (formats/responses.ts). Nothing is stored.
 */
export const responses = new Hono<AppEnv>().post('/', requireScope('chat'), jsonBody(responsesRequest), async (c) => {
  const body = c.req.valid('json');
  const startedAt = Date.now();
  try {
    const chat = chatRequestFromResponses(body);
    const target = await resolveModel(c.env, body.model, startedAt);
    const req = { endpoint: 'chat.completions', body: chat, format: responsesFormat(body) } as const;
    const prompt = countPrompt(target, req);
    if (target.backends.length === 0) refuseWhatThePoolCannotHonour(req.endpoint, req.body, prompt.tokenizer.vocabSize);
    await c.var.billing.admit({ model: body.model, promptTokens: prompt.promptTokenIds.length, maxTokens: prompt.maxTokens, price: target.price });
    return await serve(c, target, startedAt, req, prompt);
  } catch (err) {
    throw inClientTerms(err, responsesParam);
  }
});
