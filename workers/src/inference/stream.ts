/**
 * Turns a node generation into SSE or into one collected result, metering either way.
 * Endpoint-specific JSON comes from a small formatter; the framing is OpenAI's (`data: {...}\n\n`
 * … `data: [DONE]\n\n`) or, for a `named` formatter, Anthropic's and the Responses API's
 * (`event: <type>\ndata: {...}\n\n`, no [DONE]).
 */
import type { Context } from 'hono';
import type { FinishReason, TokenLogprob, Usage } from '../../../shared/protocol.ts';
import type { AppEnv } from '../env.ts';
import { UpstreamError } from '../errors.ts';
import type { Generation } from './generation.ts';

export interface ChunkFormatter {
  /** Chunks sent before any text (chat sends the assistant role here). */
  start(): unknown[];
  /** Chunks for newly generated text of choice `index` (may be none while text is held back), with its tokens' logprobs when asked for. */
  text(text: string, logprobs?: TokenLogprob[], index?: number): unknown[];
  /** The last chunks: each choice's finish_reason (by index), then usage when the client asked for it. */
  finish(reasons: FinishReason[], usage: Usage): unknown[];
  /** Chunks are objects with a `type`, each sent as `event: <type>`; the stream ends without [DONE]. */
  named?: boolean;
  /** The events that report a failure after the headers went out (default: OpenAI's error body). */
  error?(message: string): unknown[];
}

/** Why a generation that ended with finish_reason "cancelled" on the node is reported as an error. */
const CANCELLED_ON_NODE = 'the generation was cancelled on the GPU node before it finished; the output is incomplete';

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
/** A named event: its `type` is the SSE event name, as Anthropic and the Responses API send them. */
export const namedSse = (event: { type: string }) => encoder.encode(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);

/**
 * A pull-driven stream (highWaterMark 0): the node is read only when the client reads, so the
 * tokens counted as sent are the ones the client asked for. When the client disconnects
 * (request.signal aborts, or the stream is cancelled) we cancel on the node and record the tokens
 * sent so far, in waitUntil so the write outlives the connection.
 */
export function sseResponse(c: Context<AppEnv>, gen: Generation, fmt: ChunkFormatter): Response {
  const { meter, node } = gen;
  const record = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const frame = (chunk: unknown) => (fmt.named ? namedSse(chunk as { type: string }) : sse(chunk));
  let opened = false;
  let ended = false;
  let gone = false;
  // The client hung up: stop the node and bill what was sent so far (waitUntil outlives the connection).
  function disconnected() {
    if (ended || gone) return;
    gone = true;
    record(gen.cancel());
    record(meter.finish('cancelled', 'cancelled'));
  }

  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!opened) {
          opened = true;
          for (const chunk of fmt.start()) controller.enqueue(frame(chunk));
          return;
        }
        try {
          // Read until something is enqueued, so every pull makes progress for the reader.
          for (;;) {
            const ev = await node.events.next();
            if (!ev) throw new Error('node stream ended without a finish event');
            if (ev.type === 'start') {
              meter.started(ev.prompt_tokens, ev.cached_tokens);
            } else if (ev.type === 'tokens') {
              meter.sent(ev.token_ids.length);
              const chunks = fmt.text(ev.text, ev.logprobs, ev.index);
              for (const chunk of chunks) controller.enqueue(frame(chunk));
              if (chunks.length > 0) return;
            } else if (ev.type === 'finish' && ev.finish_reason === 'cancelled') {
              // Stopped on the node before it finished: the answer is incomplete, so the client gets an
              // error event, never a finish_reason. Billed like a disconnect: the tokens it was sent.
              failStream(controller, fmt, CANCELLED_ON_NODE);
              ended = true;
              record(meter.finish('cancelled', 'cancelled'));
              return;
            } else if (ev.type === 'finish') {
              for (const chunk of fmt.finish(ev.finish_reasons ?? [ev.finish_reason], ev.usage)) controller.enqueue(frame(chunk));
              if (!fmt.named) controller.enqueue(sse('[DONE]'));
              controller.close();
              ended = true;
              record(meter.finish('completed', ev.finish_reason, ev.usage));
              return;
            } else {
              failStream(controller, fmt, ev.message);
              ended = true;
              record(meter.finish('failed', 'error', ev.usage));
              return;
            }
          }
        } catch (err) {
          // Our own abort after a disconnect: the stream is already gone and the usage recorded.
          if (gone) return;
          ended = true;
          // After the headers went out the only way to report is one error event, then close.
          console.error(`stream ${gen.requestId}: ${String(err)}`);
          failStream(controller, fmt, 'the GPU node connection failed');
          record(meter.finish('failed', 'error'));
        }
      },
      cancel: disconnected,
    },
    { highWaterMark: 0 },
  );

  // Either signal may come first (request.signal needs the enable_request_signal flag; a stream
  // cancel alone is not delivered through every path, e.g. a service binding). Both end up here.
  c.req.raw.signal.addEventListener('abort', disconnected);
  return new Response(body, {
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': gen.requestId,
    },
  });
}

function failStream(controller: ReadableStreamDefaultController<Uint8Array>, fmt: ChunkFormatter, message: string): void {
  const err = new UpstreamError(message);
  if (fmt.error) for (const event of fmt.error(err.message)) controller.enqueue(fmt.named ? namedSse(event as { type: string }) : sse(event));
  else controller.enqueue(sse(err.body()));
  controller.close();
}

/** One choice of a collected generation. */
export interface CollectedChoice {
  text: string;
  /** Every output token's logprob entry, when the request asked for logprobs. */
  logprobs: TokenLogprob[] | undefined;
  finishReason: FinishReason;
}

export interface Collected {
  /** By index; one unless the request asked for n > 1. */
  choices: CollectedChoice[];
  /** The prompt once and every choice's output. */
  usage: Usage;
}

/** Why a non-streamed request whose client hung up before the answer was ready ends unanswered. */
const CLIENT_GONE = 'the client closed the connection before the answer was complete';

/**
 * Reads the whole generation (non-streaming requests), recording usage when it ends. The client
 * receives the whole answer or an error: an answer is billed at the node's final usage; an error
 * (the node failed, or the generation was cancelled on the node) costs nothing, its row keeping the
 * tokens for observability. A client that hangs up (request.signal aborts) stops the generation on
 * the node and is billed what was generated up to the cancel, as a stream is billed what it was sent.
 */
export async function collect(c: Context<AppEnv>, gen: Generation): Promise<Collected> {
  const { meter, node } = gen;
  const record = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const signal = c.req.raw.signal;
  let gone = false;
  const hungUp = () => {
    if (gone) return;
    gone = true;
    record(gen.cancel());
  };
  signal.addEventListener('abort', hungUp);
  if (signal.aborted) hungUp();
  // Records the request as unanswered and returns the error to throw.
  const unanswered = (status: 'failed' | 'cancelled', message: string, nodeUsage?: Usage): UpstreamError => {
    if (gone) record(meter.finish('cancelled', 'cancelled'));
    else record(meter.finish(status, status === 'failed' ? 'error' : 'cancelled', nodeUsage, 'nothing'));
    return new UpstreamError(gone ? CLIENT_GONE : message);
  };
  const choices: CollectedChoice[] = [];
  const choice = (i: number) => (choices[i] ??= { text: '', logprobs: undefined, finishReason: 'stop' });
  try {
    for (let ev = await node.events.next(); ev; ev = await node.events.next()) {
      if (ev.type === 'start') meter.started(ev.prompt_tokens, ev.cached_tokens);
      else if (ev.type === 'tokens') {
        meter.sent(ev.token_ids.length);
        const ch = choice(ev.index ?? 0);
        ch.text += ev.text;
        if (ev.logprobs) (ch.logprobs ??= []).push(...ev.logprobs);
      } else if (ev.type === 'finish' && ev.finish_reason === 'cancelled') {
        throw unanswered('cancelled', CANCELLED_ON_NODE);
      } else if (ev.type === 'finish') {
        record(meter.finish('completed', ev.finish_reason, ev.usage));
        const reasons = ev.finish_reasons ?? [ev.finish_reason];
        // A choice that ended before any token (cancelled while queued) still has its place.
        reasons.forEach((reason, i) => (choice(i).finishReason = reason));
        return { choices, usage: ev.usage };
      } else {
        throw unanswered('failed', ev.message, ev.usage);
      }
    }
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    throw unanswered('failed', `node stream broke: ${String(err)}`);
  } finally {
    signal.removeEventListener('abort', hungUp);
  }
  throw unanswered('failed', 'node stream ended without a finish event');
}
