/**
 * Response-cache hits and misses as node generations, so the streaming and non-streaming paths
 * (inference/stream.ts) serve and meter them unchanged: a hit replays the stored answer as node
 * events; a miss is read through a recorder that keeps the answer once it finished cleanly.
 */
import type { NodeEvent } from '../../../shared/protocol.ts';
import type { CachedResponse } from '../durable/response-cache.ts';
import type { NodeGeneration } from '../node-client.ts';

/** Marks the replayed start event, in place of a node id. */
export const REPLAY_NODE = 'response-cache';

/** The stored answer as a generation, with the billed usage of a hit (options.ts HIT_BILLING). */
export function replayGeneration(requestId: string, entry: CachedResponse): NodeGeneration {
  const usage = { prompt_tokens: entry.promptTokens, cached_tokens: entry.promptTokens, completion_tokens: 0 };
  const events: NodeEvent[] = [
    { type: 'start', request_id: requestId, prompt_tokens: entry.promptTokens, cached_tokens: entry.promptTokens, node_id: REPLAY_NODE },
    // No token ids: the meter counts ids as billable output, and a hit's output is not charged.
    { type: 'tokens', token_ids: [], text: entry.text },
    { type: 'finish', finish_reason: entry.finishReason, usage },
  ];
  let closed = false;
  return {
    nodeUrl: REPLAY_NODE,
    cancelKey: undefined,
    events: { next: async () => (closed ? undefined : events.shift()) },
    close: () => {
      closed = true;
    },
  };
}

/** Passes `node`'s events through and hands the whole answer to `store` when it finished with stop or length. */
export function recordingGeneration(node: NodeGeneration, store: (entry: CachedResponse) => void): NodeGeneration {
  let text = '';
  const tokenIds: number[] = [];
  return {
    ...node,
    events: {
      async next() {
        const ev = await node.events.next();
        if (ev?.type === 'tokens') {
          text += ev.text;
          tokenIds.push(...ev.token_ids);
        } else if (ev?.type === 'finish' && ev.finish_reason !== 'cancelled') {
          store({ text, tokenIds, finishReason: ev.finish_reason, promptTokens: ev.usage.prompt_tokens, storedAt: Date.now() });
        }
        return ev;
      },
    },
  };
}
