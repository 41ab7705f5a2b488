/**
 * The opt-in exact-match response cache, as a client sees it:
 *   request  `x-response-cache: use`            opt in (anything else, or no header: bypass)
 *            `x-response-cache-ttl: SECONDS`    how long a stored answer lives (default 300, at most 86400)
 *   response `x-response-cache-status: hit | miss | bypass`
 * Only deterministic requests are cached (temperature 0, or a seed): for any other request a stored
 * answer would not be "the" answer. The key is org + model + pool + client API + the whole request the
 * node would be sent (rendered prompt token ids and every sampling parameter, less only the per-request
 * fields key.ts lists with their reasons), so two requests share an entry only if the node would have
 * been asked the same thing. A hit replays every choice with its logprobs (replay.ts).
 *
 * Billing of a hit (HIT_BILLING): every prompt token at the model's cache-hit price, no output charge;
 * the usage reported with the hit is that billed usage (completion_tokens 0).
 */
import type { SamplingParams } from '../../../shared/protocol.ts';

export const OPT_IN_HEADER = 'x-response-cache';
export const TTL_HEADER = 'x-response-cache-ttl';
export const STATUS_HEADER = 'x-response-cache-status';

export const DEFAULT_TTL_S = 300;
export const MAX_TTL_S = 86_400;

export type CacheStatus = 'hit' | 'miss' | 'bypass';

/** How a hit is billed: which token classes are charged, each at the price named. */
export const HIT_BILLING = { promptAs: 'cache-hit', output: 'free' } as const;

export interface ResponseCacheRequest {
  /** The client opted in. */
  optIn: boolean;
  ttlMs: number;
}

export function parseOptions(optInHeader: string | undefined, ttlHeader: string | undefined): ResponseCacheRequest {
  const optIn = optInHeader?.trim().toLowerCase() === 'use';
  const ttl = Number(ttlHeader);
  const seconds = ttlHeader !== undefined && Number.isInteger(ttl) && ttl > 0 ? Math.min(ttl, MAX_TTL_S) : DEFAULT_TTL_S;
  return { optIn, ttlMs: seconds * 1000 };
}

/** Greedy decoding or a fixed seed: the same request gives the same answer, so it may be cached. */
export function isDeterministic(sampling: Pick<SamplingParams, 'temperature' | 'seed'>): boolean {
  return sampling.temperature === 0 || sampling.seed !== undefined;
}
