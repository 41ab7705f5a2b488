/**
 * Decides, each step, how many tokens every request gets: a prefill chunk, one decode token, or none
 * (the `schedule()` of vLLM v1's scheduler). There is no prefill/decode phase split: a request simply
 * has `numUncomputedTokens`, and a step grants each running request up to that many within a shared
 * token budget. That single rule gives:
 *   - continuous batching: waiting requests join between any two steps while there is budget and room;
 *   - chunked prefill: a long prompt takes what budget is left and continues next step, so running
 *     decodes (scheduled first, one token each) never stall behind it;
 *   - fairness between tenants (the edge's opaque per-organization id, `EngineRequest.tenant`): waiting
 *     requests queue per tenant, and each free batch slot goes to the tenant with the fewest running
 *     sequences (ties: the one whose oldest waiting request arrived first), so one organization's
 *     backlog never sits in front of another's request. No tenant may hold more than
 *     `maxRunningPerTenant` sequences (below the batch size), so a newcomer always finds a slot
 *     within one step instead of waiting for someone's long generation to end. Within a tenant: FIFO;
 *   - a newcomer's prefill ahead of the running batch: when the fairest waiting request belongs to a
 *     tenant with nothing running while others decode, the step holds only such newcomers' prefills
 *     (vLLM V0's prefill-first step, narrowed to tenants not yet served). Its first token then costs
 *     a step of its own rows, not one carrying every running decode too. The running batch waits one
 *     step, never two in a row (a prefill-only step is always followed by a decode step), and not
 *     while memory is short (right after a step that had to preempt);
 *   - preemption by recompute: when KV blocks run out, the most recently admitted running request
 *     gives back all its blocks and goes back to the head of its tenant's queue (its prefix usually stays cached).
 */
import type { ComputedBlocks, KvCacheManager } from './kv-cache-manager.ts';
import type { EngineRequest } from './request.ts';

export interface SchedulerConfig {
  /** Most requests in one step. */
  maxBatch: number;
  /** Most token rows in one step (prefill chunks + decode tokens). */
  maxTokensPerStep: number;
  /** Most running sequences of one tenant; defaults to defaultTenantCap(maxBatch). */
  maxRunningPerTenant?: number;
}

/**
 * A quarter of the batch (at least one slot) is kept out of any single tenant's reach: 24 of 32. A lone
 * tenant then leaves those slots idle; that is the price of another tenant's first token never
 * waiting for a whole generation to end.
 */
export function defaultTenantCap(maxBatch: number): number {
  return maxBatch <= 1 ? 1 : maxBatch - Math.max(1, Math.floor(maxBatch / 4));
}

/**
 * Waiting requests, one FIFO per tenant. `length`, `push`, `unshift` and `remove` keep the shape of
 * the single array this replaces; `next` is where the fairness rule lives.
 */
export class TenantQueues {
  private readonly queues = new Map<string, EngineRequest[]>();
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(req: EngineRequest): void {
    this.queueOf(req.tenant).push(req);
    this.count++;
  }

  /** Back to the head of its tenant's queue (a preempted request keeps its turn). */
  unshift(req: EngineRequest): void {
    this.queueOf(req.tenant).unshift(req);
    this.count++;
  }

  remove(req: EngineRequest): boolean {
    const q = this.queues.get(req.tenant);
    const i = q ? q.indexOf(req) : -1;
    if (i < 0) return false;
    q!.splice(i, 1);
    this.count--;
    if (q!.length === 0) this.queues.delete(req.tenant);
    return true;
  }

  /**
   * The head request of the tenant that should get the next slot: fewest running first, then the
   * earliest-arrived head; tenants at `cap` are passed over. undefined when nobody may be admitted.
   */
  next(runningOf: (tenant: string) => number, cap: number): EngineRequest | undefined {
    let best: EngineRequest | undefined;
    let bestRunning = Infinity;
    for (const [tenant, q] of this.queues) {
      const running = runningOf(tenant);
      if (running >= cap) continue;
      const head = q[0];
      if (running < bestRunning || (running === bestRunning && head.arrivalSeq < best!.arrivalSeq)) {
        best = head;
        bestRunning = running;
      }
    }
    return best;
  }

  /** Every waiting request, tenant by tenant (for inspection). */
  *[Symbol.iterator](): IterableIterator<EngineRequest> {
    for (const q of this.queues.values()) yield* q;
  }

  private queueOf(tenant: string): EngineRequest[] {
    let q = this.queues.get(tenant);
    if (!q) {
      q = [];
      this.queues.set(tenant, q);
    }
    return q;
  }
}

export interface ScheduledRequest {
  readonly req: EngineRequest;
  /** Rows this request gets: positions [req.numComputedTokens, + numNewTokens). */
  readonly numNewTokens: number;
  /** True when this chunk reaches the end of the request's tokens, so its last row's logits are sampled. */
  readonly samples: boolean;
}

export interface SchedulerOutput {
  readonly scheduled: readonly ScheduledRequest[];
  readonly numRows: number;
  /** Requests admitted this step for the first time (their prefix lookup just happened). */
  readonly started: readonly EngineRequest[];
  readonly preempted: readonly EngineRequest[];
}

export class Scheduler {
  readonly config: SchedulerConfig;
  private readonly kv: KvCacheManager;
  readonly waiting = new TenantQueues();
  readonly running: EngineRequest[] = [];
  /** Running sequences per tenant (absent = 0). */
  private readonly runningByTenant = new Map<string, number>();
  /** Most running sequences of one tenant. */
  readonly tenantCap: number;
  private arrivals = 0;
  /** Whether the last step held only newcomers' prefills: the next one then decodes the running batch. */
  private lastStepPrefillOnly = false;
  /** Whether the last step had to preempt: memory is short, so no newcomer jumps ahead of the batch. */
  private lastStepPreempted = false;
  totalPreemptions = 0;

  constructor(config: SchedulerConfig, kv: KvCacheManager) {
    if (!(config.maxBatch >= 1) || !(config.maxTokensPerStep >= 1)) throw new Error(`bad scheduler config ${JSON.stringify(config)}`);
    this.tenantCap = config.maxRunningPerTenant ?? defaultTenantCap(config.maxBatch);
    if (!(this.tenantCap >= 1)) throw new Error(`bad scheduler config ${JSON.stringify(config)}`);
    this.config = config;
    this.kv = kv;
  }

  add(req: EngineRequest): void {
    req.status = 'waiting';
    req.arrivalSeq = this.arrivals++;
    this.waiting.push(req);
  }

  /** Running sequences of `tenant` now. */
  runningOf(tenant: string): number {
    return this.runningByTenant.get(tenant) ?? 0;
  }

  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  schedule(): SchedulerOutput {
    if (!this.lastStepPrefillOnly && !this.lastStepPreempted && this.running.length > 0) {
      const out = this.scheduleNewcomers();
      if (out.scheduled.length > 0) {
        this.lastStepPrefillOnly = true;
        return out;
      }
    }
    const out = this.scheduleAll();
    this.lastStepPrefillOnly = false;
    this.lastStepPreempted = out.preempted.length > 0;
    return out;
  }

  /**
   * A step of newcomers only: waiting requests of tenants with nothing running, fairest first, while
   * the running batch sits this step out. Empty when the fairest waiting request's tenant already
   * runs something (it then joins a mixed step), or when its first chunk does not fit the KV cache.
   */
  private scheduleNewcomers(): SchedulerOutput {
    let budget = this.config.maxTokensPerStep;
    const scheduled: ScheduledRequest[] = [];
    const started: EngineRequest[] = [];
    const runningOf = (tenant: string) => this.runningOf(tenant);
    while (this.running.length < this.config.maxBatch && budget > 0) {
      const req = this.waiting.next(runningOf, this.tenantCap);
      if (!req || this.runningOf(req.tenant) > 0) break;
      const numNew = this.admit(req, budget, started);
      if (numNew === 0) break;
      scheduled.push({ req, numNewTokens: numNew, samples: numNew === req.numUncomputedTokens });
      budget -= numNew;
    }
    return { scheduled, numRows: this.config.maxTokensPerStep - budget, started, preempted: [] };
  }

  /** Running requests' next tokens (decodes or prefill chunks), then waiting requests into what is left. */
  private scheduleAll(): SchedulerOutput {
    let budget = this.config.maxTokensPerStep;
    const scheduled: ScheduledRequest[] = [];
    const started: EngineRequest[] = [];
    const preempted: EngineRequest[] = [];

    // Running requests first, in admission order: their decode tokens are what users are waiting on.
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const req = this.running[i];
      const numNew = Math.min(req.numUncomputedTokens, budget);
      let ok = this.kv.allocateSlots(req, numNew);
      while (!ok) {
        // Out of blocks: recompute the newest request later rather than stall everyone (vLLM's policy).
        const victim = this.running.pop()!;
        this.preempt(victim);
        preempted.push(victim);
        if (victim === req) break;
        ok = this.kv.allocateSlots(req, numNew);
      }
      if (!ok) break;
      scheduled.push({ req, numNewTokens: numNew, samples: numNew === req.numUncomputedTokens });
      budget -= numNew;
    }

    // Then admit waiting requests, fairest tenant first; none when this step already had to preempt (memory is short).
    const runningOf = (tenant: string) => this.runningOf(tenant);
    while (preempted.length === 0 && this.running.length < this.config.maxBatch && budget > 0) {
      const req = this.waiting.next(runningOf, this.tenantCap);
      if (!req) break;
      const numNew = this.admit(req, budget, started);
      // Head-of-line blocking is deliberate: skipping a big request to admit smaller ones would starve it.
      if (numNew === 0) break;
      scheduled.push({ req, numNewTokens: numNew, samples: numNew === req.numUncomputedTokens });
      budget -= numNew;
    }

    return { scheduled, numRows: this.config.maxTokensPerStep - budget, started, preempted };
  }

  /**
   * Moves `req` from waiting to running with its first chunk (at most `budget` rows past its prefix-cache
   * hit) allocated; returns that chunk's size, or 0 when the KV cache cannot hold it (nothing changes then).
   */
  private admit(req: EngineRequest, budget: number, started: EngineRequest[]): number {
    const hit: ComputedBlocks = this.kv.getComputedBlocks(req);
    const numNew = Math.min(req.tokens.length - hit.numTokens, budget);
    if (!this.kv.allocateSlots(req, numNew, hit)) return 0;
    this.waiting.remove(req);
    this.countRunning(req.tenant, +1);
    req.numComputedTokens = hit.numTokens;
    if (req.numCachedTokens < 0) {
      req.numCachedTokens = Math.min(hit.numTokens, req.numPromptTokens);
      started.push(req);
    }
    req.status = 'running';
    this.running.push(req);
    return numNew;
  }

  /** Advances each scheduled request past the rows just computed (the KV is now written). */
  updateFromOutput(out: SchedulerOutput): void {
    for (const { req, numNewTokens } of out.scheduled) {
      if (req.status !== 'running') continue;
      req.numComputedTokens += numNewTokens;
      this.kv.cacheFullBlocks(req);
    }
  }

  /** Removes the request wherever it is and frees its blocks. */
  finish(req: EngineRequest): void {
    const r = this.running.indexOf(req);
    if (r >= 0) {
      this.running.splice(r, 1);
      this.countRunning(req.tenant, -1);
    }
    this.waiting.remove(req);
    this.kv.free(req);
    req.status = 'finished';
  }

  private countRunning(tenant: string, delta: 1 | -1): void {
    const n = this.runningOf(tenant) + delta;
    if (n < 0) throw new Error(`tenant running count below zero`);
    if (n === 0) this.runningByTenant.delete(tenant);
    else this.runningByTenant.set(tenant, n);
  }

  /** `req` was just popped from `running`. */
  private preempt(req: EngineRequest): void {
    this.countRunning(req.tenant, -1);
    this.kv.free(req);
    req.numComputedTokens = 0;
    req.status = 'preempted';
    req.numPreemptions++;
    this.totalPreemptions++;
    this.waiting.unshift(req);
  }
}
