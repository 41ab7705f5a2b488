/**
 * The one serving path of an admitted request: try the model's backends in order (failover.ts) —
 * our GPU node pool is one backend kind, OpenAI-compatible engines (vLLM, SGLang, hosted APIs) the
 * other; a model with no model_backends rows is served by its default pool — then stream or return
 * what the accepting backend produced.
 *
 * One request = one reservation (taken by the route before calling this), one meter, one usage row,
 * however many backends were tried: the meter finishes once, with zero tokens when all failed.
 */
import type { Context } from 'hono';
import { PROTOCOL_VERSION } from '../../../shared/protocol.ts';
import { chatStopTokenIds, parseOutput } from '../../../shared/tokenizer/index.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { UsageMeter } from '../billing/meter.ts';
import { database, nodeUrlsForPool } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { ApiError, UpstreamUnavailableError } from '../errors.ts';
import { endReason, nodeEventFormatter, parsedFromChatMessage, type ApiFormat, type RenderContext } from '../formats/api-format.ts';
import { chatChunks, chatCompletion } from '../formats/chat.ts';
import { completionChunks, textCompletion } from '../formats/completion.ts';
import { cancelGeneration, nodeTenantIds, type NodeGeneration } from '../node-client.ts';
import type { KeyedNodeRequest } from '../response-cache/key.ts';
import { lookupResponse } from '../response-cache/lookup.ts';
import { openRoutedGeneration } from '../routing/open.ts';
import type { ChatCompletionRequest, CompletionRequest } from '../schemas/openai.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { attemptOrder, type Backend } from '../upstreams/backends.ts';
import { AllBackendsFailed, AttemptError, firstAccepting } from '../upstreams/failover.ts';
import { openStream, requestJson, resolveApiKey, type UpstreamStream } from '../upstreams/openai-client.ts';
import type { CountedPrompt, UpstreamRequest } from '../upstreams/prompt.ts';
import { relayJson, relayStream, type RelayContext } from '../upstreams/relay.ts';
import type { Generation, ModelTarget } from './generation.ts';
import type { OpenAIUsage } from './openai-usage.ts';
import { samplingParams } from './sampling.ts';
import { collect, sseResponse } from './stream.ts';

/** The response header naming the backend that served the request (configured backends only). */
export const BACKEND_HEADER = 'x-backend';

/** What an accepted backend hands back: our node's event stream, an upstream SSE stream, or a whole JSON answer. */
type Opened =
  | { kind: 'node'; node: NodeGeneration; replayed: boolean }
  | { kind: 'stream'; stream: UpstreamStream }
  | { kind: 'json'; body: Record<string, unknown> };

/** The backends to try: the configured rows in their order, or the model's own pool. */
function backendsFor(target: ModelTarget): Backend[] {
  if (target.backends.length > 0) return attemptOrder(target.backends);
  return [{ kind: 'pool', name: target.model.pool, pool: target.model.pool }];
}

export async function serve(c: Context<AppEnv>, target: ModelTarget, startedAt: number, req: UpstreamRequest, prompt: CountedPrompt): Promise<Response> {
  const configured = target.backends.length > 0;
  const backends = backendsFor(target);
  const requestId = c.var.requestId;
  const { promptTokenIds, maxTokens, tokenizer, exact } = prompt;
  const chat = req.endpoint === 'chat.completions';
  const endpoint = req.endpoint === 'chat.completions' && req.format ? req.format.endpoint : req.endpoint;
  const meter = new UsageMeter(
    c.env,
    { requestId, orgId: c.var.apiKey.orgId, keyId: c.var.apiKey.id, modelId: target.model.id, endpoint, price: target.price, startedAt },
    promptTokenIds.length,
    c.var.billing,
  );

  const stream = req.body.stream === true;
  // A model served by one backend answers with that backend's own refusal (429 busy, 503 down).
  let lastRefusal: ApiError | undefined;
  const open = async (backend: Backend): Promise<Opened> => {
    if (backend.kind === 'pool') {
      // Our nodes run token ids, so they need this edge's exact vocabulary.
      if (!exact) throw new AttemptError(`the tokenizer for '${target.model.id}' is not bundled at this edge`, false);
      refuseWhatThePoolCannotHonour(req.endpoint, req.body, tokenizer.vocabSize);
      const urls = backend.pool === target.model.pool ? target.nodeUrls : await poolUrls(c.env, backend.pool, target.nodeUrls);
      const stopIds = chat ? chatStopTokenIds(tokenizer) : [tokenizer.specialId('[EOS]')];
      const sampling = { ...samplingParams(req.body, maxTokens, stopIds), max_tokens: maxTokens };
      // What the node is asked, less the per-request fields: also the response cache's key.
      const asked: KeyedNodeRequest = { version: PROTOCOL_VERSION, model: target.model.nodeModel, prompt_token_ids: promptTokenIds, sampling };
      // Opt-in exact-match response cache (response-cache/): a hit is replayed, a miss recorded.
      const cache = await lookupResponse(c, { modelId: target.model.id, pool: backend.pool, api: endpoint, node: asked });
      if (cache.hit) return { kind: 'node', node: cache.hit, replayed: true };
      try {
        // The org as the node sees it: opaque ids under the pool's secret (tenant-ids.ts).
        const ids = await nodeTenantIds(backend.pool, c.var.apiKey.orgId);
        // Cache-aware routing (routing/): the node most likely to hold this prompt's prefix first.
        const node = await openRoutedGeneration(c.env, {
          pool: backend.pool,
          nodeUrls: urls,
          req: {
            ...asked,
            request_id: requestId,
            cache_salt: ids.cacheSalt,
            tenant: ids.tenant,
            // Only this edge holds it, so only this edge can cancel the generation.
            cancel_key: crypto.randomUUID(),
          },
          // A client that leaves while we connect aborts the connect too.
          signal: c.req.raw.signal,
          waitUntil: (p) => c.executionCtx.waitUntil(p),
        });
        return { kind: 'node', node: cache.record(node), replayed: false };
      } catch (err) {
        // Every node of the pool was already tried; another round now would fail the same way.
        if (err instanceof ApiError && (err.status >= 500 || err.status === 429)) {
          lastRefusal = err;
          throw new AttemptError(err.message, false);
        }
        throw err;
      }
    }
    const call = {
      backend,
      apiKey: resolveApiKey(c.env, backend),
      path: chat ? ('/chat/completions' as const) : ('/completions' as const),
      body: upstreamBody(req, backend.upstreamModel, maxTokens, stream && backend.streamUsage),
      signal: c.req.raw.signal,
    };
    return stream ? { kind: 'stream', stream: await openStream(call) } : { kind: 'json', body: await requestJson(call) };
  };

  let accepted;
  try {
    accepted = await firstAccepting(backends, open, { signal: c.req.raw.signal });
  } catch (err) {
    // Nothing was generated: the request's one row records zero tokens, and the hold is released.
    c.executionCtx.waitUntil(meter.finish('failed', 'error', { prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0 }));
    if (err instanceof AllBackendsFailed) {
      if (backends.length === 1 && lastRefusal) throw lastRefusal;
      throw new UpstreamUnavailableError(err.message);
    }
    throw err;
  }
  if (accepted.failures.length > 0) console.warn(`request ${requestId} served by ${accepted.backend.name} after: ${accepted.failures.join('; ')}`);
  if (configured) meter.servedBy(accepted.backend.name);
  const out = await respond(c, req, { requestId, startedAt, target, meter, promptTokens: promptTokenIds.length, tokenizer }, accepted.value);
  if (configured) out.headers.set(BACKEND_HEADER, accepted.backend.name);
  out.headers.set('x-request-id', requestId);
  return out;
}

/** A pool other than the model's own (a backend row naming it): its registered nodes. */
async function poolUrls(env: Env, pool: string, fallback: string[]): Promise<string[]> {
  const registered = await nodeUrlsForPool(database(env.DB), pool);
  return registered.length > 0 ? registered : fallback;
}

/** The body sent upstream: the client's request with the upstream's model name and our max_tokens (what was reserved). */
function upstreamBody(req: UpstreamRequest, model: string, maxTokens: number, askUsage: boolean): Record<string, unknown> {
  const { stream_options: _dropped, max_completion_tokens: _alsoDropped, ...rest } = req.body as ChatCompletionRequest & CompletionRequest;
  return { ...rest, model, max_tokens: maxTokens, ...(askUsage ? { stream_options: { include_usage: true } } : {}) };
}

interface Served {
  requestId: string;
  startedAt: number;
  target: ModelTarget;
  meter: UsageMeter;
  promptTokens: number;
  tokenizer: Tokenizer;
}

async function respond(c: Context<AppEnv>, req: UpstreamRequest, s: Served, opened: Opened): Promise<Response> {
  const created = Math.floor(s.startedAt / 1000);
  const includeUsage = req.body.stream_options?.include_usage === true;
  const chat = req.endpoint === 'chat.completions';
  if (req.endpoint === 'chat.completions' && req.format) return respondTranslated(c, req.format, req.body.stream === true, s, created, opened);
  if (opened.kind === 'node') {
    const gen = nodeGeneration(s, created, opened.node, opened.replayed);
    const n = req.body.n ?? 1;
    if (req.body.stream) return sseResponse(c, gen, chat ? chatChunks(gen, includeUsage, n) : completionChunks(gen, includeUsage, n));
    const out = await collect(c, gen);
    return c.json(chat ? chatCompletion(gen, out) : textCompletion(gen, out));
  }
  const rc: RelayContext = {
    id: `${chat ? 'chatcmpl' : 'cmpl'}-${s.requestId}`,
    chunkObject: chat ? 'chat.completion.chunk' : 'text_completion',
    created,
    model: s.target.model.id,
    meter: s.meter,
    promptTokens: s.promptTokens,
    tokenizer: s.tokenizer,
  };
  if (opened.kind === 'stream') return relayStream(c, rc, opened.stream, includeUsage);
  return c.json(relayJson(c, rc, opened.body));
}

/** A translated API (Anthropic Messages, Responses): the same generation, rendered by its format. */
async function respondTranslated(c: Context<AppEnv>, format: ApiFormat, stream: boolean, s: Served, created: number, opened: Opened): Promise<Response> {
  const ctx: RenderContext = { requestId: s.requestId, created, model: s.target.model.id, countTokens: (text) => (text ? s.tokenizer.encode(text).length : 0) };
  if (opened.kind === 'node') {
    const gen = nodeGeneration(s, created, opened.node, opened.replayed);
    if (stream) return sseResponse(c, gen, nodeEventFormatter(format.events(ctx)));
    const out = await collect(c, gen);
    const [only] = out.choices;
    return c.json(format.json(ctx, { output: parseOutput(only.text), end: endReason(only.finishReason), usage: out.usage }));
  }
  const rc: RelayContext = { id: s.requestId, chunkObject: 'chat.completion.chunk', created, model: s.target.model.id, meter: s.meter, promptTokens: s.promptTokens, tokenizer: s.tokenizer };
  if (opened.kind === 'stream') return relayStream(c, rc, opened.stream, false, format.events(ctx));
  const body = relayJson(c, rc, opened.body);
  const choice = (Array.isArray(body.choices) ? body.choices[0] : undefined) as { message?: unknown; finish_reason?: unknown } | undefined;
  const billed = body.usage as OpenAIUsage;
  const usage = { prompt_tokens: billed.prompt_tokens, cached_tokens: billed.prompt_tokens_details.cached_tokens, completion_tokens: billed.completion_tokens };
  return c.json(format.json(ctx, { output: parsedFromChatMessage(choice?.message), end: endReason(choice?.finish_reason), usage }));
}

/** The Generation inference/stream.ts expects, for a request our own pool accepted (or the response cache replayed). */
function nodeGeneration(s: Served, created: number, node: NodeGeneration, replayed: boolean): Generation {
  let cancelled: Promise<void> | undefined;
  return {
    requestId: s.requestId,
    created,
    model: s.target.model,
    meter: s.meter,
    node,
    tokenizer: s.tokenizer,
    cancel() {
      cancelled ??= (async () => {
        node.close();
        if (replayed) return;
        // The node also stops when its connection closes; the explicit cancel just frees it sooner.
        await cancelGeneration(node.nodeUrl, s.requestId, node.cancelKey).catch((err: unknown) => {
          console.warn(`cancel ${s.requestId} on ${node.nodeUrl} failed: ${String(err)}`);
        });
      })();
      return cancelled;
    },
  };
}
