/**
 * An accepted OpenAI-compatible upstream → our client: the upstream's choices pass through as they
 * are (content, reasoning_content, tool_calls in OpenAI shape), while id, model and created become
 * ours and usage becomes what we bill. Streams are pull-driven like inference/stream.ts: the
 * upstream is read only as fast as the client reads, and a client that leaves stops the reading.
 *
 * Billing: the upstream's usage when it sent one (mapped by usage.ts), otherwise our estimate from
 * the text that went out, with the row marked estimated. Exactly one usage row either way: the meter
 * writes once, whatever ends the request.
 */
import type { Context } from 'hono';
import type { FinishReason, Usage } from '../../../shared/protocol.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import type { AppEnv } from '../env.ts';
import { UpstreamError } from '../errors.ts';
import { ChatDeltaReader, endReason, type EventRenderer } from '../formats/api-format.ts';
import { openAIUsage } from '../inference/openai-usage.ts';
import { namedSse } from '../inference/stream.ts';
import type { UsageMeter } from '../billing/meter.ts';
import type { UpstreamStream } from './openai-client.ts';
import { cacheHitsReported, clientUsage, estimateUsage, generatedText, mapUpstreamUsage } from './upstream-usage.ts';

export interface RelayContext {
  /** "chatcmpl-<request id>" or "cmpl-<request id>". */
  id: string;
  /** The `object` of a stream chunk: "chat.completion.chunk" or "text_completion". */
  chunkObject: string;
  created: number;
  /** The public model id the client asked for. */
  model: string;
  meter: UsageMeter;
  /** Our prompt count, for the estimate. */
  promptTokens: number;
  tokenizer: Tokenizer;
}

type Chunk = Record<string, unknown> & { choices?: unknown[] };

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);

/** The meter's finish reason: OpenAI's "tool_calls" and "content_filter" are ordinary stops to us. */
function meterReason(reason: unknown): FinishReason {
  return reason === 'length' ? 'length' : 'stop';
}

/** Bills the upstream's usage, or our estimate (marking the row) when it sent none or left cache hits unknown. */
function billed(rc: RelayContext, upstream: Usage | null, text: string, raw: unknown): Usage {
  if (upstream) {
    if (!cacheHitsReported(raw)) rc.meter.markEstimated();
    return upstream;
  }
  rc.meter.markEstimated();
  return estimateUsage(rc.tokenizer, rc.promptTokens, text);
}

/** Non-streaming: the upstream's chat.completion / text_completion with our id, model and usage. */
export function relayJson(c: Context<AppEnv>, rc: RelayContext, body: Record<string, unknown>): Record<string, unknown> {
  const choices = Array.isArray(body.choices) ? (body.choices as Record<string, unknown>[]) : [];
  const usage = billed(rc, mapUpstreamUsage(body.usage), choices.map(generatedText).join(''), body.usage);
  c.executionCtx.waitUntil(rc.meter.finish('completed', meterReason(choices[0]?.finish_reason), usage));
  return { ...body, id: rc.id, created: rc.created, model: rc.model, usage: clientUsage(openAIUsage(usage, { price: rc.meter.info.price }), body.usage) };
}

/**
 * Streaming: the accepted upstream stream as our SSE. With include_usage the client gets one usage
 * chunk before [DONE] (the upstream's, or our estimate); without it, upstream usage chunks are dropped.
 * With a `renderer` (a translated API: Anthropic Messages, Responses) the chunks' deltas are read into
 * K2's output deltas and the renderer's named events go out instead, ending with the billed usage.
 */
export function relayStream(c: Context<AppEnv>, rc: RelayContext, up: UpstreamStream, includeUsage: boolean, renderer?: EventRenderer): Response {
  const { meter } = rc;
  const record = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  let sentText = '';
  let upstreamUsage: Usage | null = null;
  let upstreamRawUsage: unknown = null;
  let finishReason: unknown = null;
  let pending: string | undefined = up.first;
  let ended = false;
  const deltas = new ChatDeltaReader();
  let rendererStarted = false;
  const emit = (controller: ReadableStreamDefaultController<Uint8Array>, events: readonly { type: string }[]) => {
    for (const event of events) controller.enqueue(namedSse(event));
  };

  function disconnected() {
    if (ended) return;
    ended = true;
    up.events.close();
    // Only what reached the client counts; the upstream's usage never arrives for a cut stream.
    meter.markEstimated();
    const u = estimateUsage(rc.tokenizer, rc.promptTokens, sentText);
    meter.started(u.prompt_tokens, 0);
    meter.sent(u.completion_tokens);
    record(meter.finish('cancelled', 'cancelled'));
  }

  /** Our version of one upstream chunk (or a translated API's events for it); null when it carries nothing for this client. */
  function rewrite(chunk: Chunk): Chunk | { type: string }[] | null {
    const usage = mapUpstreamUsage(chunk.usage);
    if (usage) {
      upstreamUsage = usage;
      upstreamRawUsage = chunk.usage;
    }
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    for (const choice of choices) {
      sentText += generatedText(choice);
      const reason = (choice as { finish_reason?: unknown }).finish_reason;
      if (reason != null) finishReason = reason;
    }
    if (renderer) {
      const events = choices.flatMap((choice) => renderer.push(deltas.read((choice as { delta?: unknown }).delta)));
      return events.length > 0 ? events : null;
    }
    // The usage chunk is sent by us at the end (the upstream's or our estimate), never passed through.
    if (choices.length === 0) return null;
    const out: Chunk = { ...chunk, id: rc.id, created: rc.created, model: rc.model };
    if (includeUsage) out.usage = null;
    else delete out.usage;
    return out;
  }

  function end(controller: ReadableStreamDefaultController<Uint8Array>) {
    ended = true;
    const usage = billed(rc, upstreamUsage, sentText, upstreamRawUsage);
    if (renderer) {
      emit(controller, renderer.finish(endReason(finishReason), usage));
      controller.close();
      record(meter.finish('completed', meterReason(finishReason), usage));
      return;
    }
    if (includeUsage) controller.enqueue(sse({ id: rc.id, object: rc.chunkObject, created: rc.created, model: rc.model, choices: [], usage: clientUsage(openAIUsage(usage, { price: rc.meter.info.price }), upstreamRawUsage) }));
    controller.enqueue(sse('[DONE]'));
    controller.close();
    record(meter.finish('completed', meterReason(finishReason), usage));
  }

  function fail(controller: ReadableStreamDefaultController<Uint8Array>, message: string) {
    ended = true;
    // Stop reading; the connection is already broken or finished (see openStream on why no abort).
    up.events.close();
    // After the headers went out: one error event, then close. Bill the upstream's usage if it got
    // that far, else what was sent, as an estimate.
    const err = new UpstreamError(message);
    if (renderer) emit(controller, renderer.fail(err.message));
    else controller.enqueue(sse(err.body()));
    controller.close();
    const usage = billed(rc, upstreamUsage, sentText, upstreamRawUsage);
    record(meter.finish('failed', 'error', usage));
  }

  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (renderer && !rendererStarted) {
          rendererStarted = true;
          emit(controller, renderer.start());
          return;
        }
        try {
          for (;;) {
            const data = pending ?? (await up.events.next());
            pending = undefined;
            if (ended) return;
            if (data === undefined) {
              // Some engines close without [DONE]; a stream that reached a finish_reason is complete.
              if (finishReason !== null) return end(controller);
              return fail(controller, 'the upstream stream ended early');
            }
            if (data === '[DONE]') return end(controller);
            const chunk = JSON.parse(data) as Chunk;
            if (chunk.error !== undefined) return fail(controller, `the upstream reported: ${JSON.stringify(chunk.error)}`);
            const out = rewrite(chunk);
            if (Array.isArray(out)) {
              emit(controller, out);
              return;
            }
            if (out) {
              controller.enqueue(sse(out));
              return;
            }
          }
        } catch (err) {
          if (ended) return;
          console.error(`upstream stream ${rc.id}: ${String(err)}`);
          fail(controller, 'the upstream connection failed');
        }
      },
      cancel: disconnected,
    },
    { highWaterMark: 0 },
  );
  c.req.raw.signal.addEventListener('abort', disconnected);
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } });
}
