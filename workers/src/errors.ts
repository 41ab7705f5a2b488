/**
 * One class per failure the worker reports. Each carries its HTTP status (via hono's HTTPException)
 * and the OpenAI error fields, so `app.onError` can answer `{error:{message,type,param,code}}` and
 * OpenAI clients handle it unchanged. Messages say what the caller should do next.
 */
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends HTTPException {
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;
  constructor(
    status: ContentfulStatusCode,
    message: string,
    opts: { type: string; code?: string | null; param?: string | null; headers?: Record<string, string> },
  ) {
    super(status, { message });
    this.name = 'ApiError';
    this.type = opts.type;
    this.code = opts.code ?? null;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export class InvalidRequestError extends ApiError {
  constructor(message: string, param: string | null = null, code: string | null = null) {
    super(400, message, { type: 'invalid_request_error', param, code });
    this.name = 'InvalidRequestError';
  }
}

export class MissingApiKeyError extends ApiError {
  constructor() {
    super(401, 'Missing API key. Send it as "Authorization: Bearer sk-..." (or "x-api-key: sk-...").', {
      type: 'invalid_request_error',
      code: 'missing_api_key',
    });
    this.name = 'MissingApiKeyError';
  }
}

export class InvalidApiKeyError extends ApiError {
  constructor() {
    super(401, 'Incorrect API key provided. Check the key, or create a new one.', {
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });
    this.name = 'InvalidApiKeyError';
  }
}

export class RevokedApiKeyError extends ApiError {
  constructor(reason: 'revoked' | 'expired') {
    super(403, `This API key has been ${reason}. Create a new key.`, { type: 'permission_error', code: `key_${reason}` });
    this.name = 'RevokedApiKeyError';
  }
}

export class ScopeError extends ApiError {
  constructor(scope: string) {
    super(403, `This API key lacks the "${scope}" scope. Use a key created with it.`, {
      type: 'permission_error',
      code: 'insufficient_scope',
    });
    this.name = 'ScopeError';
  }
}

export class InsufficientCreditError extends ApiError {
  constructor() {
    super(402, 'Your organization has no remaining credit. Add credit to continue.', {
      type: 'insufficient_quota',
      code: 'insufficient_quota',
    });
    this.name = 'InsufficientCreditError';
  }
}

/** A grant refused by the credit ceilings (billing/credit-ceilings.ts): nothing was granted. */
export class CreditCeilingError extends ApiError {
  constructor(reason: string) {
    super(400, `Credit not granted: ${reason}.`, { type: 'invalid_request_error', param: 'amount_micros', code: 'credit_ceiling_exceeded' });
    this.name = 'CreditCeilingError';
  }
}

/** A Stripe route on a deployment without its Stripe secret (`wrangler secret put <name>`). */
export class StripeNotConfiguredError extends ApiError {
  constructor(missing: 'STRIPE_SECRET_KEY' | 'STRIPE_WEBHOOK_SECRET') {
    super(501, `Paid top-ups are not enabled on this deployment: the Worker secret ${missing} is not set. Ask the operator to add credit instead.`, {
      type: 'server_error',
      code: 'stripe_not_configured',
    });
    this.name = 'StripeNotConfiguredError';
  }
}

/** A webhook whose Stripe-Signature does not verify against the webhook secret (or is missing). */
export class StripeSignatureError extends ApiError {
  constructor(detail: string) {
    super(400, `Stripe signature verification failed: ${detail}`, {
      type: 'invalid_request_error',
      param: 'Stripe-Signature',
      code: 'invalid_signature',
    });
    this.name = 'StripeSignatureError';
  }
}

/**
 * A refund of a top-up whose grant is not recorded yet (its paying event is still being retried):
 * a non-2xx makes Stripe deliver the refund again later, after the grant it takes back.
 */
export class TopupNotGrantedError extends ApiError {
  constructor(topupId: string) {
    super(409, `The top-up ${topupId} has no recorded grant yet; its refund can only be applied after it. Stripe retries this event.`, {
      type: 'invalid_request_error',
      code: 'topup_not_granted',
    });
    this.name = 'TopupNotGrantedError';
  }
}

/** Stripe's API refused or failed a call the edge made (creating a Checkout Session). */
export class PaymentProviderError extends ApiError {
  constructor(detail: string) {
    super(502, `Stripe could not create the checkout session (${detail}). Retry shortly.`, {
      type: 'server_error',
      code: 'payment_provider_error',
    });
    this.name = 'PaymentProviderError';
  }
}

export class ModelNotFoundError extends ApiError {
  constructor(model: string) {
    super(404, `The model '${model}' does not exist. GET /v1/models lists the available ones.`, {
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    });
    this.name = 'ModelNotFoundError';
  }
}

export class NotFoundError extends ApiError {
  constructor(what: string) {
    super(404, `${what} not found.`, { type: 'invalid_request_error', code: 'not_found' });
    this.name = 'NotFoundError';
  }
}

export class ContextLengthError extends ApiError {
  constructor(promptTokens: number, contextLength: number) {
    super(
      400,
      `This model's maximum context length is ${contextLength} tokens; your prompt has ${promptTokens}. Shorten the messages.`,
      { type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' },
    );
    this.name = 'ContextLengthError';
  }
}

export class OverloadedError extends ApiError {
  constructor(retryAfterSeconds: number) {
    super(429, `All GPU nodes for this model are busy. Retry after ${retryAfterSeconds} s.`, {
      type: 'rate_limit_error',
      code: 'overloaded',
      headers: { 'retry-after': String(retryAfterSeconds) },
    });
    this.name = 'OverloadedError';
  }
}

export class UpstreamUnavailableError extends ApiError {
  constructor(detail: string) {
    super(503, `No GPU node could serve this request (${detail}). Retry shortly.`, {
      type: 'server_error',
      code: 'upstream_unavailable',
    });
    this.name = 'UpstreamUnavailableError';
  }
}

export class AdminAuthError extends ApiError {
  constructor() {
    super(401, 'Admin token missing or wrong. Send "Authorization: Bearer <ADMIN_TOKEN>".', {
      type: 'invalid_request_error',
      code: 'invalid_admin_token',
    });
    this.name = 'AdminAuthError';
  }
}

/** Body for an error no class describes: the request id lets an operator find the logged details. */
export function internalErrorBody(requestId: string): OpenAIErrorBody {
  return {
    error: {
      message: `Internal error. Quote request id ${requestId} when reporting it.`,
      type: 'server_error',
      param: null,
      code: 'internal_error',
    },
  };
}

export class UpstreamError extends ApiError {
  constructor(detail: string) {
    super(502, `The GPU node failed while generating (${detail}). Retry the request.`, {
      type: 'server_error',
      code: 'upstream_error',
    });
    this.name = 'UpstreamError';
  }
}

// ── rate limits and prepaid credit ────────────────────────────────────────────

export class RateLimitError extends ApiError {
  /**
   * `headers` carries Retry-After and the x-ratelimit-* set (see limits/headers.ts), so clients
   * back off exactly as long as needed. `tooLarge`: the request alone exceeds the per-minute
   * token limit, so waiting never helps: lower max_tokens or shorten the prompt.
   */
  constructor(
    scope: 'key' | 'organization',
    reason: 'requests' | 'tokens' | 'concurrency' | 'tokens_per_day',
    tooLarge: boolean,
    headers: Record<string, string>,
  ) {
    const what = { requests: 'requests per minute', tokens: 'tokens per minute', concurrency: 'concurrent requests', tokens_per_day: 'tokens per day (UTC)' }[reason];
    const message = tooLarge
      ? `This request needs more tokens than your ${scope}'s limit of ${what} allows. Lower max_tokens or shorten the prompt.`
      : `Rate limit reached for your ${scope}: ${what}. Retry after ${headers['retry-after']} s.`;
    super(429, message, { type: 'rate_limit_error', code: `rate_limit_${reason}`, headers });
    this.name = 'RateLimitError';
  }
}

/**
 * The key's budget for its period cannot cover this request's worst case. 402 like an empty
 * balance (OpenAI's insufficient_quota type, so clients treat it as "stop, not retry"), with a
 * code naming the cap and the instant it resets.
 */
export class KeyBudgetExceededError extends ApiError {
  constructor(budget: { limitMicros: number; period: string; timeZone: string; spentMicros: number; heldMicros: number; resetsAt: number | null }, requiredMicros: number) {
    const usd = (micros: number) => `$${(micros / 1_000_000).toFixed(6).replace(/\.?0+$/, '')}`;
    const resets = budget.resetsAt === null ? 'It never resets: ask for a higher budget.' : `It resets at ${new Date(budget.resetsAt).toISOString()} (${budget.period}, ${budget.timeZone}).`;
    const inFlight = budget.heldMicros > 0 ? `, ${usd(budget.heldMicros)} held by requests in flight` : '';
    super(
      402,
      `This API key's ${budget.period} budget of ${usd(budget.limitMicros)} cannot cover this request (up to ${usd(requiredMicros)}): ${usd(budget.spentMicros)} spent${inFlight}. ${resets} Lower max_tokens or wait for the reset.`,
      {
        type: 'insufficient_quota',
        code: 'key_budget_exceeded',
        headers: budget.resetsAt === null ? {} : { 'x-key-budget-resets-at': new Date(budget.resetsAt).toISOString() },
      },
    );
    this.name = 'KeyBudgetExceededError';
  }
}

/** The key may only use the models on its allowlist. */
export class ModelNotAllowedError extends ApiError {
  constructor(model: string) {
    super(403, `This API key may not use the model '${model}'. GET /v1/key lists the models it may use.`, {
      type: 'permission_error',
      param: 'model',
      code: 'model_not_allowed',
    });
    this.name = 'ModelNotAllowedError';
  }
}

export class DuplicateRequestError extends ApiError {
  constructor(requestId: string) {
    super(409, `Request ${requestId} was already billed or is still running; it is not run again.`, {
      type: 'invalid_request_error',
      code: 'duplicate_request',
    });
    this.name = 'DuplicateRequestError';
  }
}

// ── usage dashboard ──────────────────────────────────────────────────────────

export class NotSignedInError extends ApiError {
  constructor() {
    super(401, 'Not signed in. Sign in at /dashboard with an API key, or send "Authorization: Bearer sk-...".', {
      type: 'invalid_request_error',
      code: 'not_signed_in',
    });
    this.name = 'NotSignedInError';
  }
}

export class OrgAccessError extends ApiError {
  constructor(orgId: string) {
    super(403, `This key cannot see organization '${orgId}'. A key sees only its own organization; use the admin token for others.`, {
      type: 'permission_error',
      param: 'org',
      code: 'org_forbidden',
    });
    this.name = 'OrgAccessError';
  }
}

export class OwnKeyControlsError extends ApiError {
  constructor() {
    super(403, "A key cannot change its own budget or model allowlist. Sign in with another key that has keys:write, or ask an admin.", {
      type: 'permission_error',
      code: 'own_key_controls',
    });
    this.name = 'OwnKeyControlsError';
  }
}

export class CrossOriginError extends ApiError {
  constructor() {
    super(403, 'Cross-origin request refused. Call the dashboard API from the dashboard page, or with an Authorization header.', {
      type: 'permission_error',
      code: 'cross_origin',
    });
    this.name = 'CrossOriginError';
  }
}

// ── hostile input ───────────────────────────────────────────────────────────

export class PayloadTooLargeError extends ApiError {
  constructor(maxBytes: number) {
    super(413, `Request body too large: at most ${maxBytes} bytes. Shorten the prompt or split the request.`, {
      type: 'invalid_request_error',
      code: 'request_too_large',
    });
    this.name = 'PayloadTooLargeError';
  }
}

/** An Idempotency-Key reused with a different body, or while its first request is still running. */
export class IdempotencyConflictError extends ApiError {
  constructor(reason: 'different_body' | 'in_progress') {
    super(
      409,
      reason === 'different_body'
        ? 'This Idempotency-Key was already used with a different request body. Use a new key for a new request.'
        : 'A request with this Idempotency-Key is still being processed. Retry after it finishes.',
      { type: 'invalid_request_error', param: 'Idempotency-Key', code: 'idempotency_key_conflict' },
    );
    this.name = 'IdempotencyConflictError';
  }
}
