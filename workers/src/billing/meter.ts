/**
 * Per-request usage meter: counts what was actually sent to the client and records the request
 * exactly once, whichever way it ends (finished, cancelled by the client, failed). Cost uses the
 * price row fixed at the request's start (shared/pricing.ts).
 *
 * Recording = settle with the org's object (which decides the charge: at most the reservation),
 * then hand the usage row to the usage queue (usage-queue.ts), which writes it and its ledger debit
 * to D1 in batches, off the request path. A settle the object did not answer is left to the queue.
 */
import { costMicros, type TokenCounts } from '../../../shared/pricing.ts';
import type { FinishReason, Usage } from '../../../shared/protocol.ts';
import type { PriceRow } from '../db/queries.ts';
import { requestContext, type RequestContext } from '../observability/request-context.ts';
import { logRequest } from '../observability/request-log.ts';
import type { RequestBilling } from './request-billing.ts';
import { enqueueUsage, type UsageMessage } from './usage-queue.ts';

export type UsageStatus = 'completed' | 'cancelled' | 'failed';

/**
 * What a finished request is charged for. `counted`: its tokens (the node's final usage when it
 * completed, else what the meter counted). `nothing`: the client received an error instead of an
 * answer, so the charge is 0; the row still records the tokens, for observability.
 */
export type Charge = 'counted' | 'nothing';

export interface MeterInfo {
  requestId: string;
  orgId: string;
  keyId: string;
  modelId: string;
  endpoint: 'chat.completions' | 'completions' | 'messages' | 'responses';
  /** The price in force when the request started; a later price change does not touch it. */
  price: PriceRow;
  startedAt: number;
}

export class UsageMeter {
  readonly info: MeterInfo;
  private readonly env: Env;
  private readonly billing: Pick<RequestBilling, 'settle' | 'reservation' | 'progress'>;
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
  private recorded: Promise<UsageMessage> | undefined;

  /** `promptTokens` is the edge's own count, used until the node reports its start event. */
  constructor(env: Env, info: MeterInfo, promptTokens: number, billing: Pick<RequestBilling, 'settle' | 'reservation' | 'progress'>) {
    this.env = env;
    this.billing = billing;
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

  /**
   * `count` completion tokens were handed to the client. Now and then (request-billing.ts throttles)
   * their cost so far goes to the org's object, which charges it if the request is never settled.
   */
  sent(count: number): void {
    if (count > 0) this.firstSentAt ??= Date.now();
    this.completionTokens += count;
    if (this.recorded) return;
    this.billing.progress(() =>
      costMicros(this.info.price, { promptTokens: this.promptTokens, cachedTokens: this.cachedTokens, completionTokens: this.completionTokens }),
    );
  }

  usage(): Usage {
    return { prompt_tokens: this.promptTokens, cached_tokens: this.cachedTokens, completion_tokens: this.completionTokens };
  }

  /**
   * Records the request once; later calls return the first call's promise. For a finished request
   * the node's final usage is authoritative; for a cancelled one, only the tokens the client was
   * sent count (the node may have generated a few more that never left the worker).
   * `charge: 'nothing'` settles at 0 µ$ (the reservation released whole) whatever the tokens were.
   * Resolves to what was handed to the usage queue.
   */
  finish(status: UsageStatus, finishReason: FinishReason | null, nodeUsage?: Usage, charge: Charge = 'counted'): Promise<UsageMessage> {
    if (this.recorded) return this.recorded;
    if (nodeUsage && status !== 'cancelled') {
      this.promptTokens = nodeUsage.prompt_tokens;
      this.cachedTokens = nodeUsage.cached_tokens;
      this.completionTokens = nodeUsage.completion_tokens;
    }
    const tokens = { promptTokens: this.promptTokens, cachedTokens: this.cachedTokens, completionTokens: this.completionTokens };
    this.recorded = this.record(status, finishReason, tokens, charge);
    return this.recorded;
  }

  private async record(status: UsageStatus, finishReason: FinishReason | null, tokens: TokenCounts, charge: Charge): Promise<UsageMessage> {
    const { requestId, orgId, keyId, modelId, endpoint, price, startedAt } = this.info;
    const cost = charge === 'nothing' ? 0 : costMicros(price, tokens);
    const message: UsageMessage = {
      event: {
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
      },
      tokens: tokens.promptTokens + tokens.completionTokens,
      charge: null,
      reservation: this.billing.reservation,
    };
    // The object decides the charge (at most what was reserved) and releases the hold at once, so
    // the org's credit and limits are free again before the row is even written.
    try {
      const settlement = await this.billing.settle(cost, message.tokens);
      // Never admitted: nothing was reserved, so nothing can be charged.
      message.charge = settlement
        ? { chargedMicros: settlement.chargedMicros, overrunMicros: settlement.overrunMicros }
        : { chargedMicros: 0, overrunMicros: cost };
    } catch (err) {
      console.warn(`settle ${requestId}: left to the usage queue: ${String(err)}`);
    }
    const { event } = message;
    // The cost logged is what was billed (the charge), or the metered cost while the queue settles it.
    logRequest({ ...event, backend: this.backend, finishReason, costMicros: message.charge?.chargedMicros ?? cost, ttftMs: event.ttftMs ?? null }, this.context);
    await enqueueUsage(this.env, message);
    return message;
  }
}
