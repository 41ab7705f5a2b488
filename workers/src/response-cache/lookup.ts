/**
 * The response cache on the generation path: a hit becomes a replayed generation; an opted-in,
 * deterministic miss is recorded into the org's ResponseCache object when it finishes.
 */
import type { Context } from 'hono';
import type { AppEnv } from '../env.ts';
import type { NodeGeneration } from '../node-client.ts';
import { responseCacheKey, type ResponseCacheKeyInput } from './key.ts';
import { isDeterministic } from './options.ts';
import { recordingGeneration, replayGeneration } from './replay.ts';

export interface CacheLookup {
  /** The replayed answer on a hit. */
  hit: NodeGeneration | undefined;
  /** Wraps the node's generation so a clean finish is stored (identity when not cacheable). */
  record(node: NodeGeneration): NodeGeneration;
}

const passThrough = (node: NodeGeneration) => node;

/** `request`: what this request would send the node (key.ts), with the model, pool and API that asked. */
export async function lookupResponse(c: Context<AppEnv>, request: Omit<ResponseCacheKeyInput, 'orgId'>): Promise<CacheLookup> {
  const opts = c.var.responseCache;
  if (!opts?.optIn || !isDeterministic(request.node.sampling)) return { hit: undefined, record: passThrough };
  const orgId = c.var.apiKey.orgId;
  const stub = c.env.RESPONSE_CACHE.get(c.env.RESPONSE_CACHE.idFromName(orgId));
  const key = responseCacheKey({ orgId, ...request });
  const entry = await stub.get(key);
  if (entry) {
    opts.status = 'hit';
    return { hit: replayGeneration(c.var.requestId, entry), record: passThrough };
  }
  opts.status = 'miss';
  return {
    hit: undefined,
    record: (node) => recordingGeneration(node, (e) => c.executionCtx.waitUntil(stub.put(key, e, opts.ttlMs))),
  };
}
