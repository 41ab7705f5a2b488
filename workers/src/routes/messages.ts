import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';
import { inClientTerms } from '../formats/api-format.ts';
import { anthropicMessages } from '../formats/anthropic-messages.ts';
import { chatRequestForCount, chatRequestFromMessages, messagesParam } from '../formats/anthropic-request.ts';
import { resolveModel } from '../inference/generation.ts';
import { serve } from '../inference/serve.ts';
import { requireScope } from '../middleware/auth.ts';
import { countTokensRequest, messagesRequest } from '../schemas/anthropic.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { jsonBody } from '../schemas/validate.ts';
import { countPrompt } from '../upstreams/prompt.ts';

/**
 * Anthropic's Messages API over the chat path: the request becomes a chat body
 * (formats/anthropic-request.ts), which is tokenized with K2's template, admitted and served exactly
 * like POST /v1/chat/completions; the answer is rendered as Anthropic's (formats/anthropic-messages.ts).
 * Errors on these paths have Anthropic's shape (error-response.ts).
 */
export const messages = new Hono<AppEnv>()
  /** POST /v1/messages */
  .post('/', requireScope('chat'), jsonBody(messagesRequest), async (c) => {
    const body = c.req.valid('json');
    const startedAt = Date.now();
    const target = await resolveModel(c.env, body.model, startedAt);
    const omitThinking = body.thinking !== undefined && 'display' in body.thinking && body.thinking.display === 'omitted';
    const req = { endpoint: 'chat.completions', body: chatRequestFromMessages(body), format: anthropicMessages({ omitThinking }) } as const;
    try {
      const prompt = countPrompt(target, req);
      if (target.backends.length === 0) refuseWhatThePoolCannotHonour(req.endpoint, req.body, prompt.tokenizer.vocabSize);
      await c.var.billing.admit({ model: body.model, promptTokens: prompt.promptTokenIds.length, maxTokens: prompt.maxTokens, price: target.price });
      return await serve(c, target, startedAt, req, prompt);
    } catch (err) {
      throw inClientTerms(err, messagesParam);
    }
  })
  /** POST /v1/messages/count_tokens: the prompt tokens a Messages request would be billed; bills nothing. */
  .post('/count_tokens', requireScope('chat'), jsonBody(countTokensRequest), async (c) => {
    const body = c.req.valid('json');
    const target = await resolveModel(c.env, body.model, Date.now());
    try {
      const prompt = countPrompt(target, { endpoint: 'chat.completions', body: chatRequestForCount(body) });
      return c.json({ input_tokens: prompt.promptTokenIds.length });
    } catch (err) {
      throw inClientTerms(err, messagesParam);
    }
  });
