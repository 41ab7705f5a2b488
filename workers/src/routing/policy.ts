/**
 * The routing policy: given the nodes' states and what the prefix map knows, the order in which to
 * try the nodes. Pure, so every branch is tested without a network.
 *
 *   1. prefix:  the healthy node holding the longest prefix of this prompt (prefix map, longest match).
 *   2. hash:    no node is known to hold it: rendezvous (highest-random-weight) hashing of the prompt's
 *               first block over the healthy nodes, so requests sharing a system prompt converge on one
 *               node even before the map has learnt where it went, and only 1/n of them move when a
 *               node joins or leaves.
 *   3. least-loaded: prompts shorter than one block (nothing to cache) go to the least-loaded node.
 * A preferred node is skipped when it is saturated (queue full) or much busier than the least-loaded
 * node (more than SPILL_MARGIN batches of work ahead): a cache hit does not pay for a long queue.
 * After the chosen node come the other healthy nodes, least loaded first, then the nodes that did
 * not answer their load poll (a last resort: the poll may have been a blip).
 */
import { hashBlock } from '../../../shared/prefix-hash.ts';
import type { NodeState } from './node-load-poll.ts';

export type RoutingMode = 'prefix' | 'random';
export type RouteReason = 'prefix' | 'hash' | 'least-loaded' | 'random';

/** What the prefix map says one node holds of this prompt. */
export interface PrefixMatch {
  node: string;
  /** Leading full blocks of the prompt this node was last seen to hold. */
  blocks: number;
}

export interface RouteInput {
  nodes: readonly NodeState[];
  /** Longest match per node, any order. */
  matches: readonly PrefixMatch[];
  /** Hash of the prompt's first full block; undefined for a prompt shorter than one block. */
  firstBlock: string | undefined;
  mode: RoutingMode;
  /** For random mode; Math.random by default. */
  random?: () => number;
}

export interface RouteDecision {
  /** Node URLs in the order to try them. */
  order: string[];
  reason: RouteReason;
  /** Blocks the chosen node is expected to hold (0 unless reason is 'prefix'). */
  expectedBlocks: number;
}

/** A preferred node may be this many full batches busier than the least-loaded one before we spill. */
export const SPILL_MARGIN = 1;

/** Requests ahead of a new one on this node, in units of its batch size. */
export function loadScore(node: NodeState): number {
  const l = node.load;
  if (!l) return Number.POSITIVE_INFINITY;
  return (l.queue_depth + l.running) / Math.max(1, l.max_batch);
}

export function routeRequest(input: RouteInput): RouteDecision {
  const healthy = input.nodes.filter((n) => n.load !== undefined);
  const down = input.nodes.filter((n) => n.load === undefined).map((n) => n.url);
  const byLoad = healthy.slice().sort((a, b) => loadScore(a) - loadScore(b) || b.load!.kv_blocks_free - a.load!.kv_blocks_free);
  if (input.mode === 'random') {
    const shuffled = shuffle(healthy.map((n) => n.url), input.random ?? Math.random);
    return { order: [...shuffled, ...down], reason: 'random', expectedBlocks: 0 };
  }
  const least = byLoad.length > 0 ? loadScore(byLoad[0]) : 0;
  const usable = (n: NodeState) => n.load!.queue_depth < n.load!.max_queue && loadScore(n) - least <= SPILL_MARGIN;
  const then = (first: NodeState, reason: RouteReason, expectedBlocks: number): RouteDecision => ({
    order: [first.url, ...byLoad.filter((n) => n !== first).map((n) => n.url), ...down],
    reason,
    expectedBlocks,
  });

  const blocksOf = new Map<string, number>();
  for (const m of input.matches) blocksOf.set(m.node, Math.max(m.blocks, blocksOf.get(m.node) ?? 0));
  const holders = healthy.filter((n) => (blocksOf.get(n.url) ?? 0) > 0 && usable(n));
  if (holders.length > 0) {
    // Longest prefix wins; among equals the less loaded one.
    holders.sort((a, b) => blocksOf.get(b.url)! - blocksOf.get(a.url)! || loadScore(a) - loadScore(b));
    return then(holders[0], 'prefix', blocksOf.get(holders[0].url)!);
  }
  if (input.firstBlock !== undefined) {
    const candidates = healthy.filter(usable);
    if (candidates.length > 0) return then(rendezvous(input.firstBlock, candidates), 'hash', 0);
  }
  if (byLoad.length > 0) return then(byLoad[0], 'least-loaded', 0);
  return { order: down, reason: 'least-loaded', expectedBlocks: 0 };
}

/** Highest random weight: each node scores hash(key ‖ url); the best score wins. Stable under membership changes. */
function rendezvous(key: string, nodes: readonly NodeState[]): NodeState {
  let best = nodes[0];
  let bestScore = '';
  for (const n of nodes) {
    const score = hashBlock(key, Array.from(new TextEncoder().encode(n.url)));
    if (score > bestScore) {
      best = n;
      bestScore = score;
    }
  }
  return best;
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
