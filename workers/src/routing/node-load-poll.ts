/**
 * Health and load of the GPU nodes, from each node's `GET /v1/load` (shared/protocol.ts NodeLoad).
 * Polled on demand and shared per isolate: one poll per node at a time, whatever the number of
 * requests routing at that moment. A request finds either a result younger than LOAD_TTL_MS (used as
 * is) or a poll in flight (it waits for that one), and only otherwise starts a poll. A node that does
 * not answer in time is unhealthy until the next poll.
 */
import type { NodeLoad } from '../../../shared/protocol.ts';
import { fetchNodeLoad } from '../node-client.ts';

/** How long a poll result is reused. Short, so a dead node stops being chosen within a second. */
export const LOAD_TTL_MS = 1000;
/** A node slower than this to report its load is treated as down for this request. */
export const LOAD_TIMEOUT_MS = 500;
/**
 * A request waiting for another request's poll stops waiting after this: the poll belongs to the
 * request that started it, and if that one is cancelled its fetch may never settle here.
 */
const SHARED_WAIT_MS = LOAD_TIMEOUT_MS + 100;

export interface NodeState {
  url: string;
  /** undefined: the node did not answer (down, not ready, or too slow). */
  load: NodeLoad | undefined;
}

/** One entry per node: the poll in flight (`at` undefined) or its result, polled at `at`. */
const polls = new Map<string, { state: Promise<NodeState>; at: number | undefined }>();

/** The current state of each node of `pool`, in the order given; polls only the ones whose entry expired. */
export async function nodeStates(urls: readonly string[], pool: string, now = Date.now()): Promise<NodeState[]> {
  return Promise.all(urls.map((url) => nodeState(url, pool, now)));
}

function nodeState(url: string, pool: string, now: number): Promise<NodeState> {
  const entry = polls.get(url);
  if (entry && entry.at === undefined) return withinSharedWait(url, entry.state);
  if (entry && entry.at !== undefined && now - entry.at < LOAD_TTL_MS) return entry.state;
  const poll = { state: pollLoad(url, pool).then((load) => ({ url, load })), at: undefined as number | undefined };
  polls.set(url, poll);
  void poll.state.then(() => {
    // Only if it is still the current entry: forgetNodeState may have dropped it meanwhile.
    if (polls.get(url) === poll) poll.at = Date.now();
  });
  return poll.state;
}

/** Another request's poll, or `down` for this request if it has not answered in SHARED_WAIT_MS. */
async function withinSharedWait(url: string, state: Promise<NodeState>): Promise<NodeState> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<NodeState>((resolve) => (timer = setTimeout(() => resolve({ url, load: undefined }), SHARED_WAIT_MS)));
  try {
    return await Promise.race([state, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The node failed a request: forget its cached state so the next request polls it again. */
export function forgetNodeState(url: string): void {
  polls.delete(url);
}

async function pollLoad(url: string, pool: string): Promise<NodeLoad | undefined> {
  try {
    return await fetchNodeLoad(url, pool, AbortSignal.timeout(LOAD_TIMEOUT_MS));
  } catch (err) {
    console.warn(`load poll of ${url} failed: ${String(err)}`);
    return undefined;
  }
}
