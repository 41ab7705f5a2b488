/**
 * Per-request usage meter: counts what was actually sent to the client and writes the request's
 * usage_event + ledger debit exactly once, whichever way the request ends (finished, cancelled by
 * the client, failed). Cost uses the price row fixed at the request's start (shared/pricing.ts).
 */
import { costMicros, type TokenCounts } from '../../../shared/pricing.ts';
import type { FinishReason, Usage } from '../../../shared/protocol.ts';
import { recordUsage, type Db, type PriceRow } from '../db/queries.ts';
import { requestContext, type RequestContext } from '../observability/request-context.ts';
import { logRequest } from '../observability/request-log.ts';

export type UsageStatus = 'completed' | 'cancelled' | 'failed';

export interface MeterInfo {
  requestId: string;
  orgId: string;
  keyId: string;
  modelId: string;
  endpoint: 'chat.completions' | 'completions';
  /** The price in force when the request started; a later price change does not touch it. */
  price: PriceRow;
  startedAt: number;
  /**
   * Called once, after this meter wrote the row (not when a replay found it written): the credit
   * middleware settles its reservation here with the final cost.
   */
  onRecorded?: (costMicros: number, tokens: TokenCounts) => Promise<unknown>;
}

/** Settles the request's credit reservation at its real cost (`RequestBilling.settle`). */
export type Settle = (costMicros: number, tokens: number) => Promise<unknown>;

export class UsageMeter {
  readonly info: MeterInfo;
  private readonly db: Db;
  private readonly settle: Settle | undefined;
  private promptTokens: number;
  private cachedTokens = 0;
  private completionTokens = 0;
  /** Upstream engines (workers/src/upstreams/): which backend served, and whether counts are our estimate. */
  private backend: string | null = null;
  private estimated = false;
  /** Date.now() when the first output token was handed to the client (time to first token). */
  private firstSentAt: number | undefined;
  /** Taken while the handler runs: a stream's last write may happen outside the request's async context. */
  private readonly context: RequestContext | undefined = requestContext.getStore();
  private written: Promise<boolean> | undefined;

  /** `promptTokens` is the edge's own count, used until the node reports its start event. */
  constructor(db: Db, info: MeterInfo, promptTokens: number, settle?: Settle) {
    this.db = db;
    this.settle = settle;
    this.info = info;
    this.promptTokens = promptTokens;
  }

  /** The node has consulted its prefix cache: now we know how many prompt tokens were hits. */
  started(promptTokens: number, cachedTokens: number): void {
    this.promptTokens = promptTokens;
    this.cachedTokens = cachedTokens;
  }

  /** The named backend (model_backends.name) serves this request; recorded on the usage row. */
  servedBy(backend: string): void {
    this.backend = backend;
  }

  /** The upstream reported no usage: the counts are the edge's own tokenizer estimate. */
  markEstimated(): void {
    this.estimated = true;
  }

  /** `count` completion tokens were handed to the client. */
  sent(count: number): void {
    if (count > 0) this.firstSentAt ??= Date.now();
    this.completionTokens += count;
  }

  usage(): Usage {
    return { prompt_tokens: this.promptTokens, cached_tokens: this.cachedTokens, completion_tokens: this.completionTokens };
  }

  /**
   * Records the request once; later calls return the first call's promise. For a finished request
   * the node's final usage is authoritative; for a cancelled one, only the tokens the client was
   * sent count (the node may have generated a few more that never left the worker).
   */
  finish(status: UsageStatus, finishReason: FinishReason | null, nodeUsage?: Usage): Promise<boolean> {
    if (this.written) return this.written;
    if (nodeUsage && status !== 'cancelled') {
      this.promptTokens = nodeUsage.prompt_tokens;
      this.cachedTokens = nodeUsage.cached_tokens;
      this.completionTokens = nodeUsage.completion_tokens;
    }
    const tokens = { promptTokens: this.promptTokens, cachedTokens: this.cachedTokens, completionTokens: this.completionTokens };
    this.written = this.write(status, finishReason, tokens);
    return this.written;
  }

  private async write(status: UsageStatus, finishReason: FinishReason | null, tokens: TokenCounts): Promise<boolean> {
    const { requestId, orgId, keyId, modelId, endpoint, price, startedAt } = this.info;
    const cost = costMicros(price, tokens);
    // The org's object charges the same cost the ledger row records, and releases the rest of the hold.
    const settled = this.settle?.(cost, tokens.promptTokens + tokens.completionTokens);
    const event = {
      requestId,
      orgId,
      keyId,
      modelId,
      endpoint,
      ...tokens,
      priceId: price.id,
      costMicros: cost,
      status,
      finishReason,
      startedAt,
      finishedAt: Date.now(),
      estimated: this.estimated ? 1 : 0,
      backend: this.backend,
      ttftMs: this.firstSentAt === undefined ? null : this.firstSentAt - startedAt,
    };
    logRequest(event, this.context);
    const written = retryWrite(`usage ${requestId}`, () => recordUsage(this.db, event));
    const [wrote] = await Promise.all([written, settled]);
    return wrote;
  }
}

/**
 * Backoff between attempts at the usage write. A D1 write can fail transiently (an overloaded or
 * restarting database); losing it would leave tokens unbilled while the org's object has already
 * charged them. recordUsage is idempotent on request_id, so retrying a write that did land (its
 * answer lost) changes nothing. About 4 s in all, well inside waitUntil's 30 s after the response.
 */
const RETRY_DELAYS_MS = [100, 250, 500, 1000, 2000];

async function retryWrite<T>(what: string, write: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt >= RETRY_DELAYS_MS.length) throw err;
      console.warn(`${what}: D1 write failed (attempt ${attempt + 1}), retrying: ${String(err)}`);
      await new Promise((r) => setTimeout(r, RETRY_DELAYS_MS[attempt]));
    }
  }
}
