import { Hono } from 'hono';
import { continuesFinalMessage, k2TinyTokenizer, renderChat } from '../../../shared/tokenizer/index.ts';
import { database, getModel } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { ModelNotFoundError, UpstreamUnavailableError } from '../errors.ts';
import { edgeTokenizer } from '../inference/tokenizers.ts';
import { requireScope } from '../middleware/auth.ts';
import { tokenCountRequest } from '../schemas/openai.ts';
import { jsonBody } from '../schemas/validate.ts';

/**
 * POST /v1/tokenizers/estimate-token-count: `{model, messages, tools?}` → `{data: {total_tokens}}`, the
 * prompt tokens a chat request with these messages would be billed. Bills nothing and reserves nothing
 * (no node is involved); it goes through the same per-key rate limit as every /v1 route, like /v1/models.
 * Exact for models whose tokenizer this edge bundles; for the others, cl100k's count, the same
 * estimate the edge reserves credit with (upstreams/prompt.ts), flagged `estimated: true`.
 */
export const tokenCount = new Hono<AppEnv>().post('/', requireScope('chat'), jsonBody(tokenCountRequest), async (c) => {
  const body = c.req.valid('json');
  const model = await getModel(database(c.env.DB), body.model);
  if (!model) throw new ModelNotFoundError(body.model);
  let bundled: ReturnType<typeof edgeTokenizer> | null = null;
  try {
    bundled = edgeTokenizer(model);
  } catch (err) {
    if (!(err instanceof UpstreamUnavailableError)) throw err;
  }
  const tokenizer = bundled?.tokenizer ?? k2TinyTokenizer();
  const ids = renderChat(tokenizer, body.messages, { tools: body.tools, thinking: bundled?.thinking ?? false, continueFinalMessage: continuesFinalMessage(body.messages) });
  return c.json({ data: { total_tokens: ids.length, estimated: bundled === null } });
});
