/**
 * A client API other than chat completions (Anthropic Messages, OpenAI Responses) served over the
 * one chat path: the route translates its request into a chat-completions body (so K2's chat
 * template stays the single source of the prompt, and admission, metering and upstreams are the
 * chat path's), and an ApiFormat renders what came back in the client's own shape.
 *
 * Whatever served the request, the format sees the same thing: K2's output already split into
 * content, reasoning and tool calls (shared/tokenizer/output-parser.ts), as deltas while streaming
 * or as one ParsedOutput. Our node's text goes through the output parser; an OpenAI-compatible
 * upstream's chat deltas are read into the same deltas here.
 */
import type { FinishReason, Usage } from '../../../shared/protocol.ts';
import { OutputParser, type OutputDelta, type ParsedOutput, type ParsedToolCall } from '../../../shared/tokenizer/index.ts';
import { ApiError } from '../errors.ts';
import type { ChunkFormatter } from '../inference/stream.ts';

export interface RenderContext {
  requestId: string;
  /** Unix seconds. */
  created: number;
  /** The public model id the client asked for. */
  model: string;
  /** Tokens of a text in the model's vocabulary (reasoning-token counts; never billed from). */
  countTokens(text: string): number;
}

/** How the generation ended, as every format needs it: a stop, or the max-tokens limit. */
export type EndReason = Extract<FinishReason, 'stop' | 'length'>;

export interface Answer {
  output: ParsedOutput;
  end: EndReason;
  /** What was billed. */
  usage: Usage;
}

/** One server-sent event: `event: <type>` then its JSON as data. Both APIs name each event by its `type`. */
export type NamedEvent = { type: string } & Record<string, unknown>;

export interface EventRenderer {
  /** Events before any output (the message / response header). */
  start(): NamedEvent[];
  /** Events for parsed output deltas (may be none). */
  push(deltas: readonly OutputDelta[]): NamedEvent[];
  /** The closing events, with the billed usage. */
  finish(end: EndReason, usage: Usage): NamedEvent[];
  /** The one event that reports a failure after the headers went out. */
  fail(message: string): NamedEvent[];
}

export interface ApiFormat {
  /** The usage row's `endpoint`. */
  endpoint: 'messages' | 'responses';
  json(ctx: RenderContext, answer: Answer): unknown;
  events(ctx: RenderContext): EventRenderer;
}

/** The end reason the formats need from any finish reason (cancelled and failed never reach a renderer). */
export const endReason = (reason: unknown): EndReason => (reason === 'length' ? 'length' : 'stop');

/** Our node's text stream → the format's events, through K2's output parser. */
export function nodeEventFormatter(renderer: EventRenderer): ChunkFormatter {
  const parser = new OutputParser();
  return {
    named: true,
    start: () => renderer.start(),
    text: (text) => renderer.push(parser.push(text)),
    // These APIs have one choice (n is not among their fields): its reason is the first.
    finish: (reasons, usage) => [...renderer.push(parser.finish()), ...renderer.finish(endReason(reasons[0]), usage)],
    error: (message) => renderer.fail(message),
  };
}

/**
 * An OpenAI chat-completion stream's deltas (an upstream's) → the parser's deltas. Tool calls keep
 * the upstream's index; their id and name come with the first fragment, as OpenAI streams them.
 */
export class ChatDeltaReader {
  #started = new Set<number>();

  read(delta: unknown): OutputDelta[] {
    if (typeof delta !== 'object' || delta === null) return [];
    const d = delta as Record<string, unknown>;
    const out: OutputDelta[] = [];
    // vLLM and SGLang name the reasoning field `reasoning_content`; some newer engines `reasoning`.
    for (const field of ['reasoning_content', 'reasoning']) {
      if (typeof d[field] === 'string' && d[field] !== '') out.push({ type: 'reasoning', text: d[field] });
    }
    if (typeof d.content === 'string' && d.content !== '') out.push({ type: 'content', text: d.content });
    if (Array.isArray(d.tool_calls)) {
      for (const raw of d.tool_calls as Record<string, unknown>[]) {
        const index = typeof raw.index === 'number' ? raw.index : this.#started.size;
        const fn = (raw.function ?? {}) as { name?: unknown; arguments?: unknown };
        if (!this.#started.has(index)) {
          this.#started.add(index);
          const name = typeof fn.name === 'string' ? fn.name : '';
          out.push({ type: 'tool_call_start', index, id: typeof raw.id === 'string' ? raw.id : `call_${index}`, name });
        }
        if (typeof fn.arguments === 'string' && fn.arguments !== '') out.push({ type: 'tool_call_arguments', index, text: fn.arguments });
      }
    }
    return out;
  }
}

/** An upstream's chat.completion message → the parsed output the formats render. */
export function parsedFromChatMessage(message: unknown): ParsedOutput {
  const m = (typeof message === 'object' && message !== null ? message : {}) as Record<string, unknown>;
  const reasoning = typeof m.reasoning_content === 'string' ? m.reasoning_content : typeof m.reasoning === 'string' ? m.reasoning : null;
  const calls: ParsedToolCall[] = [];
  if (Array.isArray(m.tool_calls)) {
    (m.tool_calls as Record<string, unknown>[]).forEach((raw, i) => {
      const fn = (raw.function ?? {}) as { name?: unknown; arguments?: unknown };
      const args = typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {});
      calls.push({ id: typeof raw.id === 'string' ? raw.id : `call_${i}`, type: 'function', function: { name: typeof fn.name === 'string' ? fn.name : '', arguments: args } });
    });
  }
  return { content: typeof m.content === 'string' ? m.content : null, reasoning_content: reasoning, tool_calls: calls };
}

/**
 * A refusal the chat path raised (schemas/request-surface.ts, a context-length error), restated in
 * the client API's own field names, so `param` names what the client actually sent.
 */
export function inClientTerms(err: unknown, rename: (chatParam: string) => string): unknown {
  if (!(err instanceof ApiError) || err.param === null) return err;
  const from = err.param;
  const param = rename(from);
  if (param === from) return err;
  // Only where the message names the field (`param: why`, or 'param' quoted), never inside other words.
  let message = err.message.split(`'${from}'`).join(`'${param}'`);
  if (message.startsWith(`${from}:`)) message = param + message.slice(from.length);
  return new ApiError(err.status, message, { type: err.type, code: err.code, param, headers: err.headers });
}
