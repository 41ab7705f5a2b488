/**
 * Serves a request through the model's configured backends (issue 11), when it has any: admit the
 * request once, try the backends in order (failover.ts), then stream or return what the accepting
 * backend produced. A model with no model_backends rows is not handled here (the route goes on to
 * the default node pool), so deployments without upstreams behave exactly as before.
 *
 * One request = one reservation, one meter, one usage row, however many backends were tried: the
 * meter is created before the first attempt and finishes once, with zero tokens when all failed.
 */
import type { Context } from 'hono';
import { PROTOCOL_VERSION } from '../../../shared/protocol.ts';
import { chatStopTokenIds } from '../../../shared/tokenizer/index.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import { database, nodeUrlsForPool } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { ApiError, UpstreamUnavailableError } from '../errors.ts';
import { chatChunks, chatCompletion } from '../formats/chat.ts';
import { completionChunks, textCompletion } from '../formats/completion.ts';
import type { Generation, ModelTarget } from '../inference/generation.ts';
import { samplingParams } from '../inference/sampling.ts';
import { collect, sseResponse } from '../inference/stream.ts';
import { UsageMeter } from '../metering/meter.ts';
import { cancelGeneration, type NodeGeneration } from '../node-client.ts';
import { openRoutedGeneration } from '../routing/open.ts';
import type { ChatCompletionRequest, CompletionRequest } from '../schemas/openai.ts';
import { refuseWhatThePoolCannotHonour } from '../schemas/request-surface.ts';
import { attemptOrder, type Backend } from './backends.ts';
import { AllBackendsFailed, AttemptError, firstAccepting } from './failover.ts';
import { openStream, requestJson, resolveApiKey, type UpstreamStream } from './openai-client.ts';
import { countPrompt, type UpstreamRequest } from './prompt.ts';
import { relayJson, relayStream, type RelayContext } from './relay.ts';

/** The response header naming the backend that served the request. */
export const BACKEND_HEADER = 'x-backend';

/** What an accepted backend hands back: our node's event stream, an upstream SSE stream, or a whole JSON answer. */
type Opened = { kind: 'node'; node: NodeGeneration } | { kind: 'stream'; stream: UpstreamStream } | { kind: 'json'; body: Record<string, unknown> };

/** The Response, or undefined when the model has no backends configured (use the default pool). */
export async function serveViaBackends(c: Context<AppEnv>, target: ModelTarget, startedAt: number, req: UpstreamRequest): Promise<Response | undefined> {
  // The rows came with the model (resolveModel's one D1 round trip).
  if (target.backends.length === 0) return undefined;
  const db = database(c.env.DB);
  const backends = attemptOrder(target.backends);
  const requestId = c.var.requestId;

  const { promptTokenIds, maxTokens, tokenizer, exact } = countPrompt(target.model, req);
  const chat = req.endpoint === 'chat.completions';

  const meter = new UsageMeter(
    db,
    { requestId, orgId: c.var.apiKey.orgId, keyId: c.var.apiKey.id, modelId: target.model.id, endpoint: req.endpoint, price: target.price, startedAt },
    promptTokenIds.length,
    (cost, tokens) => c.var.billing.settle(cost, tokens),
  );
  // Once, before any backend: retries and fallbacks run under this one reservation.
  await c.var.billing.admit({ promptTokens: promptTokenIds.length, maxTokens, price: target.price });

  const stream = req.body.stream === true;
  const open = async (backend: Backend): Promise<Opened> => {
    if (backend.kind === 'pool') {
      // Our nodes run token ids, so they need this edge's exact vocabulary.
      if (!exact) throw new AttemptError(`the tokenizer for '${target.model.id}' is not bundled at this edge`, false);
      refuseWhatThePoolCannotHonour(req.endpoint, req.body, tokenizer.vocabSize);
      const registered = await nodeUrlsForPool(db, backend.pool);
      const urls = registered.length > 0 ? registered : target.nodeUrls;
      const stopIds = chat ? chatStopTokenIds(tokenizer) : [tokenizer.specialId('[EOS]')];
      const sampling = samplingParams(req.body, maxTokens, stopIds);
      try {
        // The pool's own cache-aware routing (routing/) picks the node, as on the default path.
        const node = await openRoutedGeneration(c.env, {
          pool: backend.pool,
          nodeUrls: urls,
          req: { version: PROTOCOL_VERSION, request_id: requestId, model: target.model.nodeModel, prompt_token_ids: promptTokenIds, sampling: { ...sampling, max_tokens: maxTokens }, cache_salt: c.var.apiKey.orgId },
          signal: c.req.raw.signal,
          waitUntil: (p) => c.executionCtx.waitUntil(p),
        });
        return { kind: 'node', node };
      } catch (err) {
        // Every node of the pool was already tried; another round now would fail the same way.
        if (err instanceof ApiError && err.status >= 500) throw new AttemptError(err.message, false);
        if (err instanceof ApiError && err.status === 429) throw new AttemptError(err.message, false);
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
    if (err instanceof AllBackendsFailed) throw new UpstreamUnavailableError(err.message);
    throw err;
  }
  if (accepted.failures.length > 0) console.warn(`request ${requestId} served by ${accepted.backend.name} after: ${accepted.failures.join('; ')}`);
  meter.servedBy(accepted.backend.name);
  const out = await respond(c, req, { requestId, startedAt, target, meter, promptTokens: promptTokenIds.length, tokenizer }, accepted.value);
  out.headers.set(BACKEND_HEADER, accepted.backend.name);
  out.headers.set('x-request-id', requestId);
  return out;
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
  if (opened.kind === 'node') {
    const gen = nodeGeneration(s, created, opened.node);
    if (req.body.stream) return sseResponse(c, gen, chat ? chatChunks(gen, includeUsage) : completionChunks(gen, includeUsage));
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

/** The Generation inference/stream.ts expects, for a request our own pool accepted. */
function nodeGeneration(s: Served, created: number, node: NodeGeneration): Generation {
  let cancelled: Promise<void> | undefined;
  return {
    requestId: s.requestId,
    created,
    model: s.target.model,
    meter: s.meter,
    node,
    cancel() {
      cancelled ??= (async () => {
        node.close();
        await cancelGeneration(node.nodeUrl, s.requestId).catch((err: unknown) => {
          console.warn(`cancel ${s.requestId} on ${node.nodeUrl} failed: ${String(err)}`);
        });
      })();
      return cancelled;
    },
  };
}
