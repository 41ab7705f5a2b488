/**
 * Response-cache hits and misses as node generations, so the streaming and non-streaming paths
 * (inference/stream.ts) serve and meter them unchanged: a hit replays the stored answer as node
 * events; a miss is read through a recorder that keeps the answer once it finished cleanly.
 */
import type { NodeEvent } from '../../../shared/protocol.ts';
import type { CachedChoice, CachedResponse } from '../durable/response-cache.ts';
import type { NodeGeneration } from '../node-client.ts';

/** Marks the replayed start event, in place of a node id. */
export const REPLAY_NODE = 'response-cache';

/** The stored answer as a generation, with the billed usage of a hit (options.ts HIT_BILLING). */
export function replayGeneration(requestId: string, entry: CachedResponse): NodeGeneration {
  const usage = { prompt_tokens: entry.promptTokens, cached_tokens: entry.promptTokens, completion_tokens: 0 };
  const several = entry.choices.length > 1;
  const events: NodeEvent[] = [
    { type: 'start', request_id: requestId, prompt_tokens: entry.promptTokens, cached_tokens: entry.promptTokens, node_id: REPLAY_NODE },
    // No token ids: the meter counts ids as billable output, and a hit's output is not charged.
    ...entry.choices.map((ch, i): NodeEvent => ({
      type: 'tokens',
      token_ids: [],
      text: ch.text,
      ...(ch.logprobs ? { logprobs: ch.logprobs } : {}),
      // As the node sends them: an index only when the request asked for several choices.
      ...(several ? { index: i } : {}),
    })),
    {
      type: 'finish',
      finish_reason: entry.choices[0].finishReason,
      ...(several ? { finish_reasons: entry.choices.map((ch) => ch.finishReason) } : {}),
      usage,
    },
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

/**
 * Passes `node`'s events through and hands the whole answer (every choice, with its logprobs when the
 * node sent them) to `store` when every choice finished with stop or length.
 */
export function recordingGeneration(node: NodeGeneration, store: (entry: CachedResponse) => void): NodeGeneration {
  const choices: CachedChoice[] = [];
  const choice = (i: number) => (choices[i] ??= { text: '', tokenIds: [], finishReason: 'stop' });
  return {
    ...node,
    events: {
      async next() {
        const ev = await node.events.next();
        if (ev?.type === 'tokens') {
          const ch = choice(ev.index ?? 0);
          ch.text += ev.text;
          ch.tokenIds.push(...ev.token_ids);
          if (ev.logprobs) (ch.logprobs ??= []).push(...ev.logprobs);
        } else if (ev?.type === 'finish') {
          const reasons = ev.finish_reasons ?? [ev.finish_reason];
          const finished = reasons.filter((r): r is CachedChoice['finishReason'] => r !== 'cancelled');
          // A cancelled choice (or generation) is an incomplete answer: not stored.
          if (ev.finish_reason !== 'cancelled' && finished.length === reasons.length) {
            finished.forEach((r, i) => (choice(i).finishReason = r));
            store({ choices, promptTokens: ev.usage.prompt_tokens, storedAt: Date.now() });
          }
        }
        return ev;
      },
    },
  };
}
