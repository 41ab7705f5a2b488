/**
 * One generation from the worker's point of view: resolve the model (price in force, nodes), open
 * the node stream, and own the request's meter and cancel handle. The route files only turn its
 * events into OpenAI JSON or SSE.
 */
import type { Context } from 'hono';
import { PROTOCOL_VERSION, type SamplingParams } from '../../../shared/protocol.ts';
import { database, modelEntryAt, type ModelBackendRow, type ModelRow, type PriceRow } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { ContextLengthError, ModelNotFoundError, UpstreamUnavailableError } from '../errors.ts';
import { UsageMeter, type MeterInfo } from '../billing/meter.ts';
import { cancelGeneration, type NodeGeneration } from '../node-client.ts';
import { lookupResponse } from '../response-cache/lookup.ts';
import { openRoutedGeneration } from '../routing/open.ts';

export interface ModelTarget {
  model: ModelRow;
  price: PriceRow;
  nodeUrls: string[];
  /** The model's configured backends (upstreams/serve.ts); empty: served by the default node pool. */
  backends: ModelBackendRow[];
}

/** 404 for an unknown model. The price is fixed here, at the request's start (one D1 round trip). */
export async function resolveModel(env: Env, modelId: string, at: number): Promise<ModelTarget> {
  const entry = await modelEntryAt(database(env.DB), modelId, at);
  if (!entry) throw new ModelNotFoundError(modelId);
  const { model, price, poolNodeUrls, backends } = entry;
  // A model without a price in force cannot be billed, so it cannot be served.
  if (!price) throw new UpstreamUnavailableError(`model '${modelId}' has no price in force`);
  const fallback = env.GPU_NODE_URLS.split(',').map((u) => u.trim().replace(/\/+$/, '')).filter(Boolean);
  return { model, price, nodeUrls: poolNodeUrls.length > 0 ? poolNodeUrls : fallback, backends };
}

export interface Generation {
  requestId: string;
  /** Unix seconds, for the OpenAI `created` field. */
  created: number;
  model: ModelRow;
  meter: UsageMeter;
  node: NodeGeneration;
  /** Stops the node exchange and asks the node to cancel (client disconnected). Idempotent. */
  cancel(): Promise<void>;
}

export interface GenerationInput {
  target: ModelTarget;
  startedAt: number;
  endpoint: MeterInfo['endpoint'];
  promptTokenIds: number[];
  sampling: Omit<SamplingParams, 'max_tokens'> & { max_tokens: number | null };
}

/**
 * Sends the prompt to a node. A failure before the node accepted it still writes the request's
 * usage row (failed, zero tokens, zero cost), so every request that reached a node has exactly one row.
 */
export async function startGeneration(c: Context<AppEnv>, input: GenerationInput): Promise<Generation> {
  const { target, startedAt, endpoint, promptTokenIds, sampling } = input;
  const requestId = c.var.requestId;
  const meter = new UsageMeter(
    database(c.env.DB),
    { requestId, orgId: c.var.apiKey.orgId, keyId: c.var.apiKey.id, modelId: target.model.id, endpoint, price: target.price, startedAt },
    promptTokenIds.length,
    (cost, tokens) => c.var.billing.settle(cost, tokens),
  );
  const room = target.model.contextLength - promptTokenIds.length;
  if (room <= 0) {
    throw new ContextLengthError(promptTokenIds.length, target.model.contextLength);
  }
  // Without an explicit limit the answer may use the whole remaining context.
  const maxTokens = Math.min(sampling.max_tokens ?? room, room);
  // Limits and credit, now that the prompt's exact size is known: 429 / 402 before any node work.
  await c.var.billing.admit({ promptTokens: promptTokenIds.length, maxTokens, price: target.price });
  const nodeSampling = { ...sampling, max_tokens: maxTokens };
  // Opt-in exact-match response cache (response-cache/): a hit is replayed, a miss recorded.
  const cache = await lookupResponse(c, target.model.id, promptTokenIds, nodeSampling);
  let node: NodeGeneration;
  try {
    // Cache-aware routing (routing/): the node most likely to hold this prompt's prefix first.
    node =
      cache.hit ??
      cache.record(
        await openRoutedGeneration(c.env, {
          pool: target.model.pool,
          nodeUrls: target.nodeUrls,
          req: {
            version: PROTOCOL_VERSION,
            request_id: requestId,
            model: target.model.nodeModel,
            prompt_token_ids: promptTokenIds,
            sampling: nodeSampling,
            cache_salt: c.var.apiKey.orgId,
          },
          // A client that leaves while we connect aborts the connect too.
          signal: c.req.raw.signal,
          waitUntil: (p) => c.executionCtx.waitUntil(p),
        }),
      );
  } catch (err) {
    // The node processed nothing, so the row records zero tokens (and zero cost).
    c.executionCtx.waitUntil(meter.finish('failed', 'error', { prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0 }));
    throw err;
  }
  let cancelled: Promise<void> | undefined;
  return {
    requestId,
    created: Math.floor(startedAt / 1000),
    model: target.model,
    meter,
    node,
    cancel() {
      cancelled ??= (async () => {
        node.close();
        if (cache.hit) return;
        await cancelGeneration(node.nodeUrl, requestId).catch((err: unknown) => {
          // The node also stops when its connection closes; the explicit cancel just frees it sooner.
          console.warn(`cancel ${requestId} on ${node.nodeUrl} failed: ${String(err)}`);
        });
      })();
      return cancelled;
    },
  };
}
