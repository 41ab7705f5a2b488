/**
 * Opens a generation on the pool's nodes in cache-aware order (node-choice.ts) and, once a node accepted
 * it, records that node as the holder of the prompt's prefix. A node that fails to accept it (down,
 * full) loses its polled state, so the next request sees it as it is now.
 */
import type { GenerateRequest } from '../../../shared/protocol.ts';
import { openGeneration, type NodeGeneration } from '../node-client.ts';
import { forgetNodeState } from './node-load-poll.ts';
import { remember, rememberOnlyNode, routeGeneration, type RouteQuery } from './node-choice.ts';

export interface RoutedOpen {
  pool: string;
  nodeUrls: readonly string[];
  req: GenerateRequest;
  signal: AbortSignal;
  /** Runs the prefix-map write after the response (ExecutionContext.waitUntil). */
  waitUntil(p: Promise<unknown>): void;
}

export async function openRoutedGeneration(env: Env, o: RoutedOpen): Promise<NodeGeneration> {
  const query: RouteQuery = {
    pool: o.pool,
    nodeUrls: o.nodeUrls,
    nodeModel: o.req.model,
    cacheSalt: o.req.cache_salt ?? '',
    promptTokenIds: o.req.prompt_token_ids,
  };
  if (o.nodeUrls.length === 1) return openOnlyNode(env, query, o);
  const route = await routeGeneration(env, query);
  try {
    const node = await openGeneration(route.order, o.req, o.signal, o.pool);
    for (const skipped of route.order.slice(0, route.order.indexOf(node.nodeUrl))) forgetNodeState(skipped);
    o.waitUntil(remember(route, node.nodeUrl));
    return node;
  } catch (err) {
    for (const url of route.order) forgetNodeState(url);
    throw err;
  }
}

/**
 * A pool of one node: every policy puts it first (healthy, or down as the last resort), so the load
 * poll and the prefix-map lookup cannot change where the request goes and are not waited for. The
 * node is still recorded in the map after the response, so the map is warm when the pool grows.
 */
async function openOnlyNode(env: Env, query: RouteQuery, o: RoutedOpen): Promise<NodeGeneration> {
  let node: NodeGeneration;
  try {
    node = await openGeneration([...o.nodeUrls], o.req, o.signal, o.pool);
  } catch (err) {
    forgetNodeState(o.nodeUrls[0]);
    throw err;
  }
  o.waitUntil(rememberOnlyNode(env, query, node.nodeUrl));
  return node;
}
