/**
 * The token-batch protocol between the edge worker and a GPU node.
 *
 * The edge tokenizes (so the token counts it bills are the ones the node runs), then POSTs a
 * `GenerateRequest` as JSON to `POST {node}/v1/generate`. The node answers with a stream of
 * newline-delimited JSON `NodeEvent`s (`content-type: application/x-ndjson`): one `start`, any
 * number of `tokens`, then exactly one terminal event (`finish` or `error`). Usage is always
 * carried by the terminal event and counts exactly the tokens the node produced and streamed.
 *
 * Other node endpoints:
 *   POST {node}/v1/cancel   body `CancelRequest`  → 200 `{cancelled: boolean}`; 403 `unauthorized`
 *                           when its cancel_key is not the generate request's
 *   GET  {node}/v1/load     → `NodeLoad`
 *   GET  {node}/health      → `{ok: true, version}` (liveness: the process answers)
 *   GET  {node}/ready       → 200 once the model is loaded and the node is not draining, else 503
 *   GET  {node}/metrics     → Prometheus text format (vLLM's metric names)
 *
 * Every token-batch request (generate, cancel, load) carries the edge's HMAC signature
 * (shared/node-auth.ts); an unsigned, stale, replayed or tampered one is a 401 `unauthorized`.
 *
 * Errors before the stream starts are HTTP errors with body `NodeErrorBody`
 * (400 bad request / protocol mismatch, 401 bad signature, 404 unknown model, 413 prompt too long,
 * 429 queue full with a `Retry-After` header, 503 not ready or draining, also with `Retry-After`).
 *
 * Pure types and constants only: this file is imported by both the worker and the node.
 */

export const PROTOCOL_VERSION = 1 as const;
export type ProtocolVersion = typeof PROTOCOL_VERSION;

/** Header each side sends so a mismatch is visible even on a non-JSON path. */
export const PROTOCOL_HEADER = 'x-token-batch-protocol';

export interface SamplingParams {
  /** Maximum completion tokens; the node stops with finish_reason "length" there. */
  max_tokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables. */
  top_p: number;
  /** Makes sampling reproducible for the same prompt and params. */
  seed?: number;
  /** Generation stops when one of these ids is produced (it is not part of the output text). */
  stop_token_ids: number[];
  /** Generation stops when the text contains one of these; the text is cut before it. */
  stop: string[];
  // Optional logit processors (OpenAI's, vLLM's and SGLang's); absent means off.
  /** Subtracted once from the logit of every token already in the output (OpenAI, in [-2, 2]). */
  presence_penalty?: number;
  /** Subtracted from each output token's logit times its count so far (OpenAI, in [-2, 2]). */
  frequency_penalty?: number;
  /** > 1 discourages tokens seen in the prompt or output: positive logits divided, negative multiplied (vLLM). */
  repetition_penalty?: number;
  /** Keep only the k most likely tokens; 0 or -1 disables. */
  top_k?: number;
  /** Drop tokens whose probability is below min_p × the top token's; 0 disables. */
  min_p?: number;
  /** The stop_token_ids cannot be sampled before this many output tokens. */
  min_tokens?: number;
  /** Token id (decimal string) → bias added to its logit, as OpenAI's `logit_bias`. */
  logit_bias?: Record<string, number>;
  /**
   * OpenAI's `response_format`: json_object / json_schema constrain the output by grammar (the node masks
   * every token the JSON, or the schema, cannot continue with); text or absent leaves it free.
   */
  response_format?: ResponseFormat;
  /**
   * Report each output token's log-probability under the model and this many most likely alternatives
   * (0–20) in the `tokens` events; absent: no logprobs.
   */
  logprobs?: number;
  /**
   * Choices (1–8, absent = 1): decoded as separate sequences sharing the prompt through the prefix cache;
   * `tokens` events carry their choice's `index`, and the one terminal event counts the prompt once and
   * every choice's output. With a seed, choice i samples with seed + i.
   */
  n?: number;
  /** Constrains the output to K2's tool-call format (tool_choice required / named, parallel_tool_calls false). */
  tool_calls?: ToolCallConstraint;
}

/** What OpenAI's tool_choice and parallel_tool_calls ask of the output, with the tools' argument schemas. */
export interface ToolCallConstraint {
  /** The functions a call may name (one for a named tool_choice), with their `parameters` JSON schemas. */
  functions: { name: string; parameters?: Record<string, unknown> }[];
  /** The output must be tool calls (tool_choice "required" or a named function); false: the model may answer in text. */
  required: boolean;
  /** More than one call allowed (parallel_tool_calls, default true); false: the section closes after the first. */
  parallel: boolean;
}

/**
 * One output token's log-probability and the most likely alternatives at its position, from the model's
 * own distribution: log-softmax of the raw logits, before penalties, logit_bias, the response_format
 * mask and temperature (what OpenAI and vLLM report).
 */
export interface TokenLogprob {
  id: number;
  logprob: number;
  /** Most likely first; as many as `sampling.logprobs` asked. */
  top: { id: number; logprob: number }[];
}

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      /** `strict: true` also forbids properties and array items the schema does not name. */
      json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null };
    };

export interface GenerateRequest {
  version: ProtocolVersion;
  /** Idempotency key chosen by the edge; also the handle for cancellation. */
  request_id: string;
  /** Model id as the node knows it (the edge maps public ids to node model ids). */
  model: string;
  prompt_token_ids: number[];
  sampling: SamplingParams;
  // Tenancy, set by the edge only (this body is signed, shared/node-auth.ts); the node's OpenAI
  // routes refuse these fields from a caller. Opaque: derived from the org id with an edge secret
  // (workers/src/tenant-ids.ts), so the node never learns org ids and no caller can name another's.
  /**
   * Namespace for the prefix cache: prefixes are only shared between requests with the same salt,
   * so one tenant cannot probe another's cached prompts by timing or by `cached_tokens`.
   */
  cache_salt?: string;
  /** Who the request is for: the node schedules fairly between tenants (gpu-nodes/src/engine/scheduler.ts). */
  tenant?: string;
  /**
   * A secret only the edge that opened the request knows; `CancelRequest.cancel_key` must match it,
   * so no one else can cancel the request, whatever its (client-visible) request id.
   */
  cancel_key?: string;
}

export interface CancelRequest {
  version: ProtocolVersion;
  request_id: string;
  /** The generate request's `cancel_key`; required when it had one. */
  cancel_key?: string;
}

export interface Usage {
  /** All prompt tokens, including the cached ones. */
  prompt_tokens: number;
  /** Prompt tokens whose KV came from the prefix cache (billed at the cache-hit price). */
  cached_tokens: number;
  /** Tokens generated and streamed to the edge. */
  completion_tokens: number;
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export type NodeEvent =
  | {
      type: 'start';
      request_id: string;
      /** Known as soon as the prefix cache has been consulted, before any decode step. */
      prompt_tokens: number;
      cached_tokens: number;
      /** Which node served it (for cache-aware routing and debugging). */
      node_id: string;
    }
  | {
      type: 'tokens';
      /** New token ids since the last event (at least one). */
      token_ids: number[];
      /**
       * Text these ids add; may be '' while a UTF-8 sequence is incomplete. The output markers (`<think>`,
       * tool-call markers: shared/tokenizer OUTPUT_MARKERS) are rendered as their names for the edge to
       * parse; every other special token (EOS, turn markers, reserved ids) adds no text.
       */
      text: string;
      /**
       * When `sampling.logprobs` is set: one entry per token of `token_ids` that is output (a stop id that
       * ends generation is billed but is not output, so it has none).
       */
      logprobs?: TokenLogprob[];
      /** Which choice these tokens belong to, when the request asked for n > 1. */
      index?: number;
    }
  | {
      type: 'finish';
      /** Choice 0's reason (or cancelled, when the request was). */
      finish_reason: Exclude<FinishReason, 'error'>;
      /** With n > 1: every choice's reason, by index. */
      finish_reasons?: Exclude<FinishReason, 'error'>[];
      /** The prompt once (choice 0's cache hits) and every choice's output tokens. */
      usage: Usage;
    }
  | {
      type: 'error';
      code: NodeErrorCode;
      message: string;
      /** Tokens produced before the failure: recorded on the edge's usage row (a stream is billed what it was sent; a non-streamed answer that failed, nothing). */
      usage: Usage;
    };

export type NodeErrorCode =
  | 'protocol_mismatch'
  | 'invalid_request'
  | 'model_not_found'
  | 'context_length_exceeded'
  | 'queue_full'
  | 'not_ready'
  | 'draining'
  | 'unauthorized'
  | 'internal_error';

export interface NodeErrorBody {
  /** `param`: the OpenAI request field at fault (`temperature`, `response_format`), when one is. */
  error: { code: NodeErrorCode; message: string; param?: string };
}

export interface NodeLoad {
  node_id: string;
  version: ProtocolVersion;
  models: string[];
  /** Requests waiting to be scheduled. */
  queue_depth: number;
  max_queue: number;
  running: number;
  max_batch: number;
  kv_blocks_total: number;
  kv_blocks_free: number;
  /** Tokens per KV block; the edge hashes prompts in this unit for cache-aware routing. */
  block_size: number;
  /** Cached full blocks (prefix cache entries) and their tokens. */
  cached_blocks: number;
  cached_tokens: number;
  /** The node is shutting down: it finishes what it runs and admits nothing new (route elsewhere). */
  draining?: boolean;
}
