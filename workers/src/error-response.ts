import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AppEnv } from './env.ts';
import type { OpenAIErrorBody } from './errors.ts';
import { anthropicError, isAnthropicPath } from './formats/anthropic-errors.ts';

/**
 * An error answered in the dialect of the API called: Anthropic's under /v1/messages (its shape and
 * statuses, formats/anthropic-errors.ts), OpenAI's everywhere else.
 */
export function errorResponse(c: Context<AppEnv>, status: ContentfulStatusCode, body: OpenAIErrorBody, headers: Record<string, string> = {}): Response {
  if (!isAnthropicPath(c.req.path)) return c.json(body, status, headers);
  const anthropic = anthropicError(status, body);
  return c.json(anthropic.body, anthropic.status, headers);
}
