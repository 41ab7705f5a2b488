import { Hono } from 'hono';
import { chatStopTokenIds, renderChat } from '../../../shared/tokenizer/index.ts';
import type { AppEnv } from '../env.ts';
import { chatChunks, chatCompletion } from '../formats/chat.ts';
import { resolveModel, startGeneration } from '../inference/generation.ts';
import { samplingParams } from '../inference/sampling.ts';
import { collect, sseResponse } from '../inference/stream.ts';
import { edgeTokenizer } from '../inference/tokenizers.ts';
import { requireScope } from '../middleware/auth.ts';
import { serveViaBackends } from '../upstreams/serve.ts';
import { chatCompletionRequest } from '../schemas/openai.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { jsonBody } from '../schemas/validate.ts';

/** POST /v1/chat/completions */
export const chatCompletions = new Hono<AppEnv>().post('/', requireScope('chat'), jsonBody(chatCompletionRequest), async (c) => {
  const body = c.req.valid('json');
  const startedAt = Date.now();
  const target = await resolveModel(c.env, body.model, startedAt);
  // Models with configured backends (vLLM, SGLang, hosted APIs, pools) go through upstreams/ (issue 11).
  const viaBackends = await serveViaBackends(c, target, startedAt, { endpoint: 'chat.completions', body });
  if (viaBackends) return viaBackends;
  const { tokenizer, thinking } = edgeTokenizer(target.model);
  refuseWhatThePoolCannotHonour('chat.completions', body, tokenizer.vocabSize);
  const tools = body.tool_choice === 'none' ? undefined : body.tools;
  const gen = await startGeneration(c, {
    target,
    startedAt,
    endpoint: 'chat.completions',
    promptTokenIds: renderChat(tokenizer, body.messages, { tools, thinking }),
    sampling: samplingParams(body, body.max_completion_tokens ?? body.max_tokens ?? null, chatStopTokenIds(tokenizer)),
  });
  if (body.stream) return sseResponse(c, gen, chatChunks(gen, body.stream_options?.include_usage === true));
  return c.json(chatCompletion(gen, await collect(c, gen)));
});
