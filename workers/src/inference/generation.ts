/**
 * The model a request names, as the serving path needs it (the price in force at the request's
 * start, the pool's nodes, the configured backends), and the Generation the stream formatters read.
 */
import { cachedModelEntry } from '../db/read-cache.ts';
import { priceInForce, type ModelBackendRow, type ModelRow, type PriceRow } from '../db/queries.ts';
import { ModelNotFoundError, UpstreamUnavailableError } from '../errors.ts';
import type { UsageMeter } from '../billing/meter.ts';
import type { NodeGeneration } from '../node-client.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';

export interface ModelTarget {
  model: ModelRow;
  price: PriceRow;
  nodeUrls: string[];
  /** The model's configured backends (inference/serve.ts); empty: served by its default node pool. */
  backends: ModelBackendRow[];
}

/** 404 for an unknown model. The price is fixed here, at the request's start (cached catalogue, db/read-cache.ts). */
export async function resolveModel(env: Env, modelId: string, at: number): Promise<ModelTarget> {
  const entry = await cachedModelEntry(env, modelId);
  if (!entry) throw new ModelNotFoundError(modelId);
  const { model, prices, poolNodeUrls, backends } = entry;
  const price = priceInForce(prices, at);
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
  /** The model's tokenizer: logprob entries name token ids, and clients get their text and bytes. */
  tokenizer: Tokenizer;
  /** Stops the node exchange and asks the node to cancel (client disconnected). Idempotent. */
  cancel(): Promise<void>;
}
