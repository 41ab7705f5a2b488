import { describe, expect, it } from 'vitest';
import type { NodeLoad } from '../../../shared/protocol.ts';
import type { NodeState } from './node-load-poll.ts';
import { routeRequest } from './policy.ts';

function node(url: string, load: Partial<NodeLoad> | null): NodeState {
  if (load === null) return { url, load: undefined };
  const base: NodeLoad = {
    node_id: url, version: 1, models: ['k2-tiny'], queue_depth: 0, max_queue: 8, running: 0, max_batch: 4,
    kv_blocks_total: 100, kv_blocks_free: 100, block_size: 16, cached_blocks: 0, cached_tokens: 0,
  };
  return { url, load: { ...base, ...load } };
}

describe('routeRequest', () => {
  it('prefers the healthy node holding the longest prefix, then the rest by load, down nodes last', () => {
    const nodes = [node('a', { running: 2 }), node('b', { running: 1 }), node('c', null), node('d', { running: 0 })];
    const d = routeRequest({ nodes, matches: [{ node: 'b', blocks: 3 }, { node: 'a', blocks: 5 }], firstBlock: 'h0', mode: 'prefix' });
    expect(d).toEqual({ order: ['a', 'd', 'b', 'c'], reason: 'prefix', expectedBlocks: 5 });
  });

  it('re-routes a prefix whose holder is down', () => {
    const nodes = [node('a', null), node('b', { running: 1 }), node('c', { running: 0 })];
    const d = routeRequest({ nodes, matches: [{ node: 'a', blocks: 9 }], firstBlock: 'h0', mode: 'prefix' });
    expect(d.reason).toBe('hash');
    expect(d.order.at(-1)).toBe('a');
    expect(d.order.slice(0, 2).sort()).toEqual(['b', 'c']);
  });

  it('spills off a holder with a full queue or more than a batch of extra work', () => {
    const full = [node('a', { queue_depth: 8 }), node('b', {})];
    expect(routeRequest({ nodes: full, matches: [{ node: 'a', blocks: 4 }], firstBlock: 'h', mode: 'prefix' }).order[0]).toBe('b');
    const busy = [node('a', { running: 4, queue_depth: 5 }), node('b', {})];
    expect(routeRequest({ nodes: busy, matches: [{ node: 'a', blocks: 4 }], firstBlock: 'h', mode: 'prefix' }).order[0]).toBe('b');
    const slightlyBusier = [node('a', { running: 3 }), node('b', {})];
    expect(routeRequest({ nodes: slightlyBusier, matches: [{ node: 'a', blocks: 4 }], firstBlock: 'h', mode: 'prefix' }).order[0]).toBe('a');
  });

  it('hashes an unknown prefix to a stable node, which moves only if that node leaves', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((u) => node(u, {}));
    const keys = Array.from({ length: 40 }, (_, i) => `block-${i}`);
    const first = keys.map((k) => routeRequest({ nodes, matches: [], firstBlock: k, mode: 'prefix' }).order[0]);
    const again = keys.map((k) => routeRequest({ nodes, matches: [], firstBlock: k, mode: 'prefix' }).order[0]);
    expect(again).toEqual(first);
    // Spread: every node owns some keys.
    expect(new Set(first).size).toBe(4);
    const without = nodes.filter((n) => n.url !== 'n2');
    keys.forEach((k, i) => {
      const now = routeRequest({ nodes: without, matches: [], firstBlock: k, mode: 'prefix' }).order[0];
      if (first[i] !== 'n2') expect(now).toBe(first[i]);
    });
  });

  it('sends a prompt shorter than one block to the least-loaded node', () => {
    const nodes = [node('a', { running: 3 }), node('b', { queue_depth: 1 }), node('c', { running: 1, kv_blocks_free: 10 }), node('d', {})];
    expect(routeRequest({ nodes, matches: [], firstBlock: undefined, mode: 'prefix' })).toEqual({
      order: ['d', 'b', 'c', 'a'],
      reason: 'least-loaded',
      expectedBlocks: 0,
    });
  });

  it('random mode ignores the map and shuffles the healthy nodes', () => {
    const nodes = [node('a', {}), node('b', {}), node('c', null)];
    let i = 0;
    const seq = [0.9, 0.1];
    const d = routeRequest({ nodes, matches: [{ node: 'a', blocks: 7 }], firstBlock: 'h', mode: 'random', random: () => seq[i++ % 2] });
    expect(d.reason).toBe('random');
    expect(d.order).toHaveLength(3);
    expect(d.order[2]).toBe('c');
  });

  it('with every node down still returns them all to try', () => {
    const d = routeRequest({ nodes: [node('a', null), node('b', null)], matches: [], firstBlock: 'h', mode: 'prefix' });
    expect(d.order).toEqual(['a', 'b']);
  });
});
