/**
 * The node's OpenAI-compatible endpoint, for deployments that put an OpenAI-speaking gateway in
 * front of our nodes and for the edge's upstream tests (workers/src/upstreams/):
 *
 *   POST /v1/chat/completions   K2 chat template → engine → content / reasoning_content / tool_calls
 *   POST /v1/completions        raw prompt → engine → text
 *
 * Both stream SSE when `stream` is true and report usage with prompt_tokens_details.cached_tokens
 * (the prefix cache's hits); in a stream only when stream_options.include_usage asks, as OpenAI does.
 * The node trusts its caller less here than on the token-batch path, so a malformed body is a 400
 * in OpenAI's error shape rather than an assertion.
 */
import { Hono, type Context } from 'hono';
import { createHash, randomUUID } from 'node:crypto';
import type { GenerateRequest, Usage } from '../../../shared/protocol.ts';
import { PROTOCOL_VERSION } from '../../../shared/protocol.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { chatStopTokenIds, renderChat } from '../../../shared/tokenizer/index.ts';
import type { EngineHandle } from '../engine-thread/engine-handle.ts';
import { EngineError } from '../engine/errors.ts';
import { chatMessages, chatTools } from './chat-messages.ts';
import { EventQueue } from './event-queue.ts';
import { chatChunkWriter, chatCompletionBody, completionChunkWriter, textCompletionBody, type ChunkWriter, type CollectedChoice, type ResponseMeta } from './format.ts';
import { BadRequest, numberIn, type Endpoint, samplingFields } from './request-fields.ts';

/** What a client whose generation was cancelled on the node is told (its answer is incomplete). */
const CANCELLED_MESSAGE = 'the generation was cancelled on the GPU node before it finished; the output is incomplete';

/** Without max_tokens a chat answer may run this long (OpenAI's "until the context ends" would tie up KV for minutes on CPU). */
const DEFAULT_CHAT_MAX_TOKENS = 256;
/** OpenAI's default for the legacy endpoint. */
const DEFAULT_COMPLETION_MAX_TOKENS = 16;

type Env = { Variables: { engine: EngineHandle } };

function errorJson(c: Context, status: 400 | 404 | 413 | 429 | 503 | 500, message: string, type: string, code: string | null, param: string | null = null, headers: Record<string, string> = {}) {
  return c.json({ error: { message, type, param, code } }, status, headers);
}

/**
 * Fields of the token-batch request that only the edge may set, on the signed hop (shared/protocol.ts):
 * a caller naming another tenant's cache_salt could probe its prompts through cached_tokens. Refused,
 * not ignored, so a caller never believes it got the isolation it asked for.
 */
const EDGE_ONLY_FIELDS = ['cache_salt', 'tenant', 'cancel_key'] as const;

function refuseEdgeOnlyFields(body: Record<string, unknown>): void {
  for (const field of EDGE_ONLY_FIELDS) {
    if (field in body) throw new BadRequest(`${field} is set by the platform, not by the caller: prefix caches are isolated per API key`, field);
  }
}

/**
 * The caller's fair-scheduling tenant: the API key it authenticated with, hashed (never logged or
 * passed on in the clear). Without auth (--insecure-no-auth) every caller is one tenant.
 */
function callerTenant(c: Context): string {
  const authorization = c.req.header('authorization') ?? '';
  return authorization === '' ? 'openai' : `openai:${createHash('sha256').update(authorization).digest('base64url').slice(0, 22)}`;
}

/** The token-batch request the engine runs for an OpenAI body (every field validated by request-fields.ts); its request_id is the response's id. */
function generateRequest(engine: EngineHandle, body: Record<string, unknown>, endpoint: Endpoint, promptTokenIds: number[], maxTokens: number, stopIds: number[], vocabSize: number, requestId: string, tenant: string): GenerateRequest {
  if (typeof body.model !== 'string' || body.model !== engine.options.modelId) {
    throw new EngineError('model_not_found', 404, `this node serves '${engine.options.modelId}', not '${String(body.model)}'`);
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw new BadRequest('stream must be a boolean', 'stream');
  return {
    version: PROTOCOL_VERSION,
    request_id: requestId,
    model: body.model,
    prompt_token_ids: promptTokenIds,
    // Per caller: one key's prompts are never a cache hit (or a cached_tokens count) for another's.
    cache_salt: tenant,
    tenant,
    sampling: { max_tokens: maxTokens, stop_token_ids: stopIds, ...samplingFields(body, endpoint, vocabSize) },
  };
}

/** Submits and answers: SSE when streaming, one JSON object otherwise. Engine refusals throw before any byte. */
async function run(
  c: Context<Env>,
  req: GenerateRequest,
  stream: boolean,
  meta: ResponseMeta,
  writer: ChunkWriter,
  whole: (choices: CollectedChoice[], usage: Usage) => unknown,
): Promise<Response> {
  const engine = c.var.engine;
  const queue = new EventQueue();
  await engine.submit(req, queue.push);
  if (!stream) {
    const choices: CollectedChoice[] = Array.from({ length: req.sampling.n ?? 1 }, () => ({
      text: '',
      reason: 'stop',
      logprobs: req.sampling.logprobs !== undefined ? [] : undefined,
    }));
    for (;;) {
      const ev = await queue.next();
      if (ev.type === 'tokens') {
        const choice = choices[ev.index ?? 0];
        choice.text += ev.text;
        if (ev.logprobs) choice.logprobs?.push(...ev.logprobs);
      } else if (ev.type === 'finish' && ev.finish_reason === 'cancelled') return errorJson(c, 503, CANCELLED_MESSAGE, 'server_error', 'cancelled');
      else if (ev.type === 'finish') {
        choices.forEach((ch, i) => (ch.reason = ev.finish_reasons?.[i] ?? ev.finish_reason));
        return c.json(whole(choices, ev.usage));
      } else if (ev.type === 'error') return errorJson(c, 500, ev.message, 'server_error', ev.code);
    }
  }
  const encoder = new TextEncoder();
  const sse = (data: unknown) => encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  let done = false;
  let opened = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!opened) {
        opened = true;
        const first = writer.start();
        for (const chunk of first) controller.enqueue(sse(chunk));
        if (first.length > 0) return;
      }
      for (;;) {
        const ev = await queue.next();
        if (ev.type === 'start') continue;
        if (ev.type === 'tokens') {
          const chunks = writer.text(ev.text, ev.logprobs, ev.index);
          for (const chunk of chunks) controller.enqueue(sse(chunk));
          if (chunks.length > 0) return;
          continue;
        }
        done = true;
        if (ev.type === 'finish' && ev.finish_reason !== 'cancelled') for (const chunk of writer.finish(ev.finish_reasons ?? [ev.finish_reason], ev.usage)) controller.enqueue(sse(chunk));
        // Cancelled on the node, or failed mid-stream: one error event in OpenAI's shape, then the end
        // marker; never a finish_reason, which would tell the client its answer is complete.
        else if (ev.type === 'finish') controller.enqueue(sse({ error: { message: CANCELLED_MESSAGE, type: 'server_error', param: null, code: 'cancelled' } }));
        else controller.enqueue(sse({ error: { message: ev.message, type: 'server_error', param: null, code: ev.code } }));
        controller.enqueue(sse('[DONE]'));
        controller.close();
        return;
      }
    },
    cancel() {
      // The client left: free the sequence at the next engine step.
      if (!done) void engine.cancel(req.request_id);
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } });
}

function includeUsageOf(body: Record<string, unknown>): boolean {
  const so = body.stream_options;
  if (so === undefined || so === null) return false;
  if (typeof so !== 'object' || Array.isArray(so)) throw new BadRequest('stream_options must be an object', 'stream_options');
  return (so as { include_usage?: unknown }).include_usage === true;
}

function meta(prefix: string, model: string): ResponseMeta {
  return { id: `${prefix}-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
}

async function readBody(c: Context): Promise<Record<string, unknown>> {
  try {
    const body = (await c.req.json()) as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest('the body must be a JSON object');
    refuseEdgeOnlyFields(body as Record<string, unknown>);
    return body as Record<string, unknown>;
  } catch (err) {
    if (err instanceof BadRequest) throw err;
    throw new BadRequest('the body must be JSON');
  }
}

/** Mounted at /v1 after requireEngine (server.ts); `getTokenizer` is the loaded model's tokenizer. */
export function openAIRoutes(getTokenizer: () => Tokenizer | undefined): Hono<Env> {
  const app = new Hono<Env>();

  app.post('/chat/completions', async (c) => {
    const tokenizer = getTokenizer();
    if (!tokenizer) return errorJson(c, 503, 'the tokenizer is still loading; retry shortly', 'server_error', 'not_ready', null, { 'retry-after': '5' });
    const body = await readBody(c);
    const messages = chatMessages(body.messages);
    const tools = chatTools(body.tools);
    // tool_choice 'none': the model is not told about the tools at all.
    const ids = renderChat(tokenizer, messages, { tools: body.tool_choice === 'none' ? undefined : tools });
    const maxTokens = numberIn(body, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER, { integer: true }) ?? numberIn(body, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, { integer: true }) ?? DEFAULT_CHAT_MAX_TOKENS;
    const m = meta('chatcmpl', String(body.model));
    const req = generateRequest(c.var.engine, body, 'chat', ids, maxTokens, chatStopTokenIds(tokenizer), tokenizer.vocabSize, m.id, callerTenant(c));
    const includeUsage = includeUsageOf(body);
    const n = req.sampling.n ?? 1;
    return run(c, req, body.stream === true, m, chatChunkWriter(m, includeUsage, tokenizer, n), (choices, usage) => chatCompletionBody(m, choices, usage, tokenizer));
  });

  app.post('/completions', async (c) => {
    const tokenizer = getTokenizer();
    if (!tokenizer) return errorJson(c, 503, 'the tokenizer is still loading; retry shortly', 'server_error', 'not_ready', null, { 'retry-after': '5' });
    const body = await readBody(c);
    const prompt = Array.isArray(body.prompt) && body.prompt.length === 1 ? body.prompt[0] : body.prompt;
    if (typeof prompt !== 'string' || prompt === '') throw new BadRequest('prompt must be a non-empty string', 'prompt');
    // allowSpecial false: a prompt that spells "<|im_end|>" gets ordinary tokens, not the marker.
    const ids = tokenizer.encode(prompt, { allowSpecial: false });
    const maxTokens = numberIn(body, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, { integer: true }) ?? DEFAULT_COMPLETION_MAX_TOKENS;
    const m = meta('cmpl', String(body.model));
    const req = generateRequest(c.var.engine, body, 'completions', ids, maxTokens, [tokenizer.specialId('[EOS]')], tokenizer.vocabSize, m.id, callerTenant(c));
    const includeUsage = includeUsageOf(body);
    const n = req.sampling.n ?? 1;
    return run(c, req, body.stream === true, m, completionChunkWriter(m, includeUsage, tokenizer, n), (choices, usage) => textCompletionBody(m, choices, usage, tokenizer));
  });

  // OpenAI's error shape here, not the token-batch protocol's: these callers are OpenAI clients.
  app.onError((err, c) => {
    if (err instanceof BadRequest) return errorJson(c, 400, err.message, 'invalid_request_error', err.code, err.param);
    if (err instanceof EngineError) {
      const headers: Record<string, string> = err.retryAfterS !== undefined ? { 'retry-after': String(err.retryAfterS) } : {};
      const type = err.status === 429 ? 'rate_limit_error' : err.status === 503 ? 'server_error' : 'invalid_request_error';
      // 413 (prompt + max_tokens too long) is OpenAI's 400 context_length_exceeded.
      return errorJson(c, err.status === 413 ? 400 : err.status, err.message, type, err.code, err.param ?? null, headers);
    }
    console.error('openai endpoint failed', err);
    return errorJson(c, 500, 'internal error on the GPU node; see its log', 'server_error', 'internal_error');
  });

  return app;
}
