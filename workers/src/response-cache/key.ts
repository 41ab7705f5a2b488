/**
 * The exact-match key of a request: a hash of the whole request our node is sent, not of a chosen
 * list of its fields, so a field added to the node protocol (a new sampling parameter, say) is
 * keyed without anyone remembering to key it. Only the fields in UNKEYED_NODE_FIELDS are left out,
 * each with the reason it cannot change the answer.
 *
 * Why a request's client-side fields need no key of their own: what is stored is the node's answer
 * (its text, logprobs and finish reasons per choice: replay.ts), and a hit is rendered afresh for the
 * asking request (its stream flag, stream_options, response shape). A client field that changes the
 * answer reaches the node as part of the prompt token ids or the sampling parameters, which are keyed.
 */
import { createHash } from 'node:crypto';
import type { GenerateRequest } from '../../../shared/protocol.ts';

/** GenerateRequest fields left out of the key, each with why it cannot change the answer. */
export const UNKEYED_NODE_FIELDS = {
  request_id: 'fresh for every request: it names the generation, it does not shape it',
  cancel_key: 'a fresh secret for every request, only compared by the node cancel endpoint',
  cache_salt: 'derived from the org, which is keyed; it only scopes which prefix-cache KV may be reused, and reused KV is the KV the prompt would compute',
  tenant: "derived from the org, which is keyed; it orders the node's scheduling between tenants, not what is sampled",
} as const satisfies Partial<Record<keyof GenerateRequest, string>>;

/** The node request as keyed: every field but the unkeyed ones, so a new protocol field is keyed by default. */
export type KeyedNodeRequest = Omit<GenerateRequest, keyof typeof UNKEYED_NODE_FIELDS>;

/**
 * The client API that asked (the usage row's endpoint). Keyed so an answer is only replayed to the API
 * whose request produced it: a hit is rendered afresh, so sharing would be correct today, but keying
 * it keeps every format's rendering independent of what the other APIs stored.
 */
export type CacheApi = 'chat.completions' | 'completions' | 'messages' | 'responses';

export interface ResponseCacheKeyInput {
  orgId: string;
  /** The public model id the client asked for. */
  modelId: string;
  /** The node pool the request goes to (a model may be served by another pool as a fallback backend). */
  pool: string;
  api: CacheApi;
  node: KeyedNodeRequest;
}

/**
 * sha256 of the input as JSON. Not key-sorted: every object in the input is built by our code in a
 * fixed field order (inference/sampling.ts), so the client's key order and whitespace never reach it;
 * the objects the client supplies inside it keep the client's order on purpose, because there order
 * can change the answer (a json_schema's `properties` are generated in the order they are listed, and
 * the node's grammar cache keys on that order too). Two requests that differ only in such an order
 * get two entries, which costs a miss, never a wrong answer.
 */
export function responseCacheKey(input: ResponseCacheKeyInput): string {
  const { orgId, modelId, pool, api, node } = input;
  // Rebuilt field by field so the input's own key order (how the caller spread it) does not matter,
  // while every KeyedNodeRequest field is required here by the type: a new one fails to compile until keyed.
  const keyed: Required<{ [K in keyof KeyedNodeRequest]: KeyedNodeRequest[K] | null }> = {
    version: node.version,
    model: node.model,
    prompt_token_ids: node.prompt_token_ids,
    sampling: node.sampling,
  };
  return createHash('sha256').update(JSON.stringify([orgId, modelId, pool, api, keyed])).digest('hex');
}
