/**
 * One generation request's state inside the engine (vLLM v1's `Request`). The scheduler reads and
 * advances `numComputedTokens`; the KV cache manager owns its blocks (by request id); the engine
 * appends sampled tokens and finishes it.
 */
import type { FinishReason, SamplingParams } from '../../../shared/protocol.ts';
import type { BlockHash } from './prefix-cache.ts';
import type { GrammarState } from './structured-output/grammar-compiler.ts';

export type RequestStatus = 'waiting' | 'running' | 'preempted' | 'finished';

export class EngineRequest {
  readonly id: string;
  /** Opaque organization id from the edge (shared/protocol.ts `tenant`): the unit of fair scheduling. */
  readonly tenant: string;
  readonly sampling: SamplingParams;
  /** Prefix-cache namespace root for this request's model + tenant salt. */
  readonly cacheRoot: BlockHash;
  readonly numPromptTokens: number;
  /** Prompt then output ids. The KV of tokens[0 .. numComputedTokens) is in the cache. */
  readonly tokens: number[];
  numComputedTokens = 0;
  /** Prompt tokens served from the prefix cache at first scheduling; -1 until then. */
  numCachedTokens = -1;
  /** Chained hashes of the full blocks of `tokens` computed so far (see extendBlockHashes). */
  readonly blockHashes: BlockHash[] = [];
  status: RequestStatus = 'waiting';
  /** Set by cancel(); the engine finishes the request before its next step. */
  cancelled = false;
  finishReason: Exclude<FinishReason, 'error'> | undefined;
  /** Times this request lost its KV to preemption and was recomputed. */
  numPreemptions = 0;
  readonly arrivalMs: number;
  /** The response_format grammar's state, built by the engine from `sampling.response_format`. */
  readonly grammar: GrammarState | undefined;
  /** Order in which the scheduler received it (set by Scheduler.add): the tie-break between tenants. */
  arrivalSeq = 0;

  constructor(id: string, promptTokenIds: readonly number[], sampling: SamplingParams, cacheRoot: BlockHash, grammar?: GrammarState, tenant = '') {
    if (promptTokenIds.length === 0) throw new Error('empty prompt');
    this.id = id;
    this.tenant = tenant;
    this.sampling = sampling;
    this.cacheRoot = cacheRoot;
    this.numPromptTokens = promptTokenIds.length;
    this.tokens = promptTokenIds.slice();
    this.arrivalMs = performance.now();
    this.grammar = grammar;
  }

  get numOutputTokens(): number {
    return this.tokens.length - this.numPromptTokens;
  }

  get outputTokenIds(): number[] {
    return this.tokens.slice(this.numPromptTokens);
  }

  /** Tokens whose KV must still be computed before the next token can be sampled. */
  get numUncomputedTokens(): number {
    return this.tokens.length - this.numComputedTokens;
  }
}
