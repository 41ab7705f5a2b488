/**
 * Cache-aware routing of one generation: poll the pool's nodes (node-load-poll.ts), hash the tokenized
 * prompt in the nodes' block size exactly as the node does (shared/prefix-hash.ts), ask the prefix
 * map (durable/prefix-router.ts) who holds the longest prefix, and order the nodes (policy.ts).
 * After a node accepts the request, `remember` records that it now holds the prompt's blocks.
 */
import { promptBlockHashes } from '../../../shared/prefix-hash.ts';
import type { PrefixRouter } from '../durable/prefix-router.ts';
import { nodeStates, type NodeState } from './node-load-poll.ts';
import { routeRequest, type RouteDecision, type RoutingMode } from './policy.ts';

export interface RouteQuery {
  pool: string;
  /** Node URLs of the pool (D1 registrations, or GPU_NODE_URLS). */
  nodeUrls: readonly string[];
  /** Model id as the node knows it, and the request's cache_salt: the node's hash namespace. */
  nodeModel: string;
  cacheSalt: string;
  promptTokenIds: readonly number[];
}

export interface Route extends RouteDecision {
  /** Where `remember` writes; undefined when the prompt has no full block (nothing to remember). */
  shard: DurableObjectStub<PrefixRouter> | undefined;
  hashes: string[];
  /** Nodes the map says hold this prefix but that did not answer their load poll. */
  downHolders: string[];
}

/** ROUTING_POLICY=random turns cache affinity off (for the benchmark's baseline); anything else is 'prefix'. */
export function routingMode(env: Env): RoutingMode {
  return env.ROUTING_POLICY === 'random' ? 'random' : 'prefix';
}

export async function routeGeneration(env: Env, q: RouteQuery): Promise<Route> {
  const mode = routingMode(env);
  const nodes = await nodeStates(q.nodeUrls, q.pool);
  const { hashes, shard } = prefixShard(env, q, nodes);
  // The random baseline neither reads nor needs the map, but still records, so switching back is warm.
  const matches = shard && mode === 'prefix' ? await shard.match(hashes) : [];
  const decision = routeRequest({ nodes, matches, firstBlock: hashes[0], mode });
  const down = new Set(nodes.filter((n) => !n.load).map((n) => n.url));
  return { ...decision, shard, hashes, downHolders: matches.filter((m) => down.has(m.node)).map((m) => m.node) };
}

/** The prompt's block hashes in the pool's block size, and the prefix-map shard that owns them. */
function prefixShard(env: Env, q: RouteQuery, nodes: readonly NodeState[]): Pick<Route, 'hashes' | 'shard'> {
  // Nodes of one pool share a block size; take it from the first that answered.
  const blockSize = nodes.find((n) => n.load)?.load?.block_size;
  const hashes = blockSize ? promptBlockHashes(q.promptTokenIds, blockSize, q.nodeModel, q.cacheSalt) : [];
  const shard = hashes.length > 0 ? env.PREFIX_ROUTER.get(env.PREFIX_ROUTER.idFromName(`${q.pool}:${blockSize}:${hashes[0]}`)) : undefined;
  return { hashes, shard };
}

/**
 * For a pool of one node, after it accepted the request: records it as the holder of the prompt's
 * blocks (so the map is warm when the pool grows) without the map read routing would make, since
 * no match can change where a one-node pool sends a request. The load poll, cached, gives the block size.
 */
export async function rememberOnlyNode(env: Env, q: RouteQuery, nodeUrl: string): Promise<void> {
  const { hashes, shard } = prefixShard(env, q, await nodeStates(q.nodeUrls, q.pool));
  if (shard) await shard.record(hashes, nodeUrl);
}

/** `nodeUrl` accepted the request, so it will hold the prompt's full blocks in its prefix cache. */
export async function remember(route: Route, nodeUrl: string): Promise<void> {
  if (!route.shard) return;
  await route.shard.record(route.hashes, nodeUrl);
  // A node that held this prefix but is down will come back with an empty cache: drop its claims.
  for (const node of route.downHolders) await route.shard.forget(node);
}
