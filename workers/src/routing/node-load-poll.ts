/**
 * Health and load of the GPU nodes, from each node's `GET /v1/load` (shared/protocol.ts NodeLoad).
 * Polled on demand and kept for a short while per isolate: routing needs a fresh-enough view, not
 * one fetch per node per request. A node that does not answer in time is unhealthy until the next poll.
 */
import type { NodeLoad } from '../../../shared/protocol.ts';
import { fetchNodeLoad } from '../node-client.ts';

/** How long a poll result is reused. Short, so a dead node stops being chosen within a second. */
export const LOAD_TTL_MS = 1000;
/** A node slower than this to report its load is treated as down for this request. */
export const LOAD_TIMEOUT_MS = 500;

export interface NodeState {
  url: string;
  /** undefined: the node did not answer (down, not ready, or too slow). */
  load: NodeLoad | undefined;
}

const polled = new Map<string, { state: NodeState; at: number }>();

/** The current state of each node of `pool`, in the order given; polls only the ones whose entry expired. */
export async function nodeStates(urls: readonly string[], pool: string, now = Date.now()): Promise<NodeState[]> {
  return Promise.all(
    urls.map(async (url) => {
      const hit = polled.get(url);
      if (hit && now - hit.at < LOAD_TTL_MS) return hit.state;
      const state: NodeState = { url, load: await pollLoad(url, pool) };
      polled.set(url, { state, at: Date.now() });
      return state;
    }),
  );
}

/** The node failed a request: forget its cached state so the next request polls it again. */
export function forgetNodeState(url: string): void {
  polled.delete(url);
}

async function pollLoad(url: string, pool: string): Promise<NodeLoad | undefined> {
  try {
    return await fetchNodeLoad(url, pool, AbortSignal.timeout(LOAD_TIMEOUT_MS));
  } catch (err) {
    console.warn(`load poll of ${url} failed: ${String(err)}`);
    return undefined;
  }
}
