/**
 * Errors in Anthropic's shape for the Messages API routes: `{"type":"error","error":{"type","message"}}`
 * with Anthropic's statuses, so Anthropic SDKs raise their own error classes and retry what they retry.
 * Every failure is first an ApiError (errors.ts, OpenAI's fields); this maps the status and type.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { OpenAIErrorBody } from '../errors.ts';

/** Paths answered in Anthropic's dialect (errors included: a bad key, a bad body, an unknown sub-path). */
export const isAnthropicPath = (path: string) => path === '/v1/messages' || path.startsWith('/v1/messages/');

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

/**
 * Our status and OpenAI error → Anthropic's. 402 (no credit) is Anthropic's `billing_error`; a pool
 * with every node busy (our 429 `overloaded`) or none up (503) is Anthropic's 529 `overloaded_error`,
 * which its clients back off and retry; a node failing mid-generation (502) is its 500 `api_error`.
 */
export function anthropicError(status: number, body: OpenAIErrorBody): { status: ContentfulStatusCode; body: AnthropicErrorBody } {
  const { message, code } = body.error;
  const out = (s: number, type: string) => ({ status: s as ContentfulStatusCode, body: { type: 'error' as const, error: { type, message } } });
  if (status === 429 && code === 'overloaded') return out(529, 'overloaded_error');
  switch (status) {
    case 400:
    case 409:
    case 422:
      return out(status, 'invalid_request_error');
    case 401:
      return out(401, 'authentication_error');
    case 402:
      return out(402, 'billing_error');
    case 403:
      return out(403, 'permission_error');
    case 404:
      return out(404, 'not_found_error');
    case 413:
      return out(413, 'request_too_large');
    case 429:
      return out(429, 'rate_limit_error');
    case 503:
      return out(529, 'overloaded_error');
    case 504:
      return out(504, 'timeout_error');
    default:
      return status >= 500 ? out(500, 'api_error') : out(status, 'invalid_request_error');
  }
}
