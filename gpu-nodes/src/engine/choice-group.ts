/**
 * `n` > 1: one request, n choices decoded as separate sequences (vLLM's parallel sampling). The engine
 * runs choice 0 first; once it has sampled its first token its prompt is prefilled and its full blocks
 * are in the prefix cache, and only then are choices 1..n-1 queued, so they find the prompt there
 * instead of prefilling it again. This group fans their events into the request's one event stream:
 * one `start` (choice 0's prompt and cache hits), `tokens` events tagged with their choice `index`, and
 * one terminal event when every choice has ended, whose usage counts the prompt once and every
 * choice's output tokens. If one choice fails, the others are cancelled and the terminal event is that
 * error (usage still counting everything streamed).
 */
import type { FinishReason, NodeEvent } from '../../../shared/protocol.ts';
import type { EventSink } from './engine.ts';

type Ended = Exclude<FinishReason, 'error'>;

export interface ChoiceGroupHooks {
  /** Queue choices 1..n-1 (choice 0's prompt is now in the prefix cache). */
  submitRest(): void;
  /** Cancel these choices (already submitted ones). */
  cancel(indexes: number[]): void;
}

export class ChoiceGroup {
  readonly requestId: string;
  readonly n: number;
  private readonly sink: EventSink;
  private readonly hooks: ChoiceGroupHooks;
  private readonly submitted: boolean[];
  private readonly ended: (Ended | undefined)[];
  private readonly completion: number[];
  private prompt = { prompt_tokens: 0, cached_tokens: 0 };
  private restQueued = false;
  private failure: { code: Extract<NodeEvent, { type: 'error' }>['code']; message: string } | undefined;
  private cancelled = false;
  private done = false;
  private whenDone: (() => void) | undefined;

  constructor(requestId: string, n: number, sink: EventSink, hooks: ChoiceGroupHooks) {
    this.requestId = requestId;
    this.n = n;
    this.sink = sink;
    this.hooks = hooks;
    this.submitted = new Array<boolean>(n).fill(false);
    this.ended = new Array<Ended | undefined>(n).fill(undefined);
    this.completion = new Array<number>(n).fill(0);
  }

  static choiceId(requestId: string, index: number): string {
    return `${requestId}#${index}`;
  }

  onDone(fn: () => void): void {
    if (this.done) fn();
    else this.whenDone = fn;
  }

  /** Choice `index` is now queued in the engine. */
  markSubmitted(index: number): void {
    this.submitted[index] = true;
  }

  /** The sink the engine gives choice `index`. */
  sinkFor(index: number): EventSink {
    return (ev) => this.onEvent(index, ev);
  }

  /** Cancels every choice; choices not queued yet never will be. */
  cancel(): boolean {
    if (this.done || this.cancelled) return false;
    this.cancelled = true;
    this.stopOthers(-1);
    return true;
  }

  /** A choice could not be queued (queue full, bad params): the request fails. */
  failToSubmit(index: number, message: string): void {
    this.failure ??= { code: 'internal_error', message: `choice ${index} could not be queued: ${message}` };
    this.ended[index] = 'cancelled';
    this.stopOthers(index);
    this.maybeEnd();
  }

  private onEvent(index: number, ev: NodeEvent): void {
    if (ev.type === 'start') {
      if (index !== 0) return;
      this.prompt = { prompt_tokens: ev.prompt_tokens, cached_tokens: ev.cached_tokens };
      this.sink({ ...ev, request_id: this.requestId });
      return;
    }
    if (ev.type === 'tokens') {
      this.completion[index] += ev.token_ids.length;
      this.sink({ ...ev, index });
      if (index === 0 && !this.restQueued && !this.cancelled && this.failure === undefined) {
        this.restQueued = true;
        this.hooks.submitRest();
      }
      return;
    }
    this.completion[index] = ev.usage.completion_tokens;
    if (ev.type === 'error') {
      this.failure ??= { code: ev.code, message: `choice ${index}: ${ev.message}` };
      this.ended[index] = 'cancelled';
      this.stopOthers(index);
    } else {
      this.ended[index] = ev.finish_reason;
      // Choice 0 ended before its first token (cancelled while queued): the rest never start.
      if (index === 0 && !this.restQueued) this.stopOthers(0);
    }
    this.maybeEnd();
  }

  /** Cancels the running choices other than `except`; unqueued ones end now with no tokens. */
  private stopOthers(except: number): void {
    this.restQueued = true;
    const running: number[] = [];
    for (let i = 0; i < this.n; i++) {
      if (i === except || this.ended[i] !== undefined) continue;
      if (this.submitted[i]) running.push(i);
      else this.ended[i] = 'cancelled';
    }
    if (running.length > 0) this.hooks.cancel(running);
  }

  private maybeEnd(): void {
    if (this.done || this.ended.some((e) => e === undefined)) return;
    this.done = true;
    this.whenDone?.();
    const usage = { ...this.prompt, completion_tokens: this.completion.reduce((a, b) => a + b, 0) };
    if (this.failure) {
      this.sink({ type: 'error', code: this.failure.code, message: this.failure.message, usage });
      return;
    }
    const reasons = this.ended as Ended[];
    this.sink({ type: 'finish', finish_reason: this.cancelled ? 'cancelled' : reasons[0], finish_reasons: reasons, usage });
  }
}
