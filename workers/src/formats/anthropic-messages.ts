/**
 * K2's parsed output as Anthropic Messages objects: a `message` with content blocks (thinking,
 * text, tool_use), or Anthropic's stream of events:
 *
 *   message_start → (content_block_start → content_block_delta* → content_block_stop)* → message_delta → message_stop
 *
 * with text_delta, thinking_delta and input_json_delta. A block is closed when output of another
 * kind (or another tool call) begins.
 *
 * Usage in Anthropic's convention: `input_tokens` are the prompt tokens NOT read from the cache,
 * `cache_read_input_tokens` those that were (billed at the cache-hit price), so the whole prompt is
 * their sum; we never charge for writing the cache, so `cache_creation_input_tokens` is 0.
 */
import type { Usage } from '../../../shared/protocol.ts';
import type { OutputDelta, ParsedToolCall } from '../../../shared/tokenizer/index.ts';
import type { Answer, ApiFormat, EndReason, EventRenderer, NamedEvent, RenderContext } from './api-format.ts';

type StopReason = 'end_turn' | 'max_tokens' | 'tool_use';

export function anthropicUsage(u: Usage) {
  return { input_tokens: u.prompt_tokens - u.cached_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: u.cached_tokens, output_tokens: u.completion_tokens };
}

function stopReason(end: EndReason, usedTools: boolean): StopReason {
  if (end === 'length') return 'max_tokens';
  return usedTools ? 'tool_use' : 'end_turn';
}

const messageId = (requestId: string) => `msg_${requestId}`;

/** A call's arguments as the tool_use `input` object; null when they are not a JSON object. */
function toolInput(args: string): Record<string, unknown> | null {
  if (args.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(args);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

type Block = { type: 'thinking'; thinking: string; signature: string } | { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

function toolBlocks(calls: readonly ParsedToolCall[]): { blocks: Block[]; text: string } {
  const blocks: Block[] = [];
  let text = '';
  for (const call of calls) {
    const input = toolInput(call.function.arguments);
    // A call whose arguments are not a JSON object cannot be a tool_use (its input must be one);
    // it is returned as text rather than dropped or run with arguments the model did not give.
    if (input === null) text += `${call.id} ${call.function.arguments}`;
    else blocks.push({ type: 'tool_use', id: call.id, name: call.function.name, input });
  }
  return { blocks, text };
}

function message(ctx: RenderContext, answer: Answer, omitThinking: boolean) {
  const { output, end, usage } = answer;
  const content: Block[] = [];
  // Anthropic's clients expect reasoning first; it has no signature to verify (we issue none).
  if (output.reasoning_content) content.push({ type: 'thinking', thinking: omitThinking ? '' : output.reasoning_content, signature: '' });
  const tools = toolBlocks(output.tool_calls);
  const text = (output.content ?? '') + tools.text;
  if (text !== '') content.push({ type: 'text', text });
  content.push(...tools.blocks);
  return {
    id: messageId(ctx.requestId),
    type: 'message' as const,
    role: 'assistant' as const,
    model: ctx.model,
    content,
    stop_reason: stopReason(end, tools.blocks.length > 0),
    stop_sequence: null,
    usage: anthropicUsage(usage),
  };
}

type BlockKind = 'content' | 'reasoning' | 'tool';

class MessageEvents implements EventRenderer {
  readonly #ctx: RenderContext;
  readonly #omitThinking: boolean;
  /** The open block: its index, its kind, and for a tool call the call's index in the output. */
  #open: { index: number; kind: BlockKind; call?: number } | null = null;
  #blocks = 0;
  #usedTools = false;

  constructor(ctx: RenderContext, omitThinking: boolean) {
    this.#ctx = ctx;
    this.#omitThinking = omitThinking;
  }

  start(): NamedEvent[] {
    const ctx = this.#ctx;
    return [
      {
        type: 'message_start',
        message: { id: messageId(ctx.requestId), type: 'message', role: 'assistant', model: ctx.model, content: [], stop_reason: null, stop_sequence: null, usage: anthropicUsage({ prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0 }) },
      },
    ];
  }

  #close(out: NamedEvent[]): void {
    if (this.#open === null) return;
    out.push({ type: 'content_block_stop', index: this.#open.index });
    this.#open = null;
  }

  #begin(out: NamedEvent[], kind: BlockKind, block: Record<string, unknown>, call?: number): number {
    this.#close(out);
    const index = this.#blocks++;
    this.#open = { index, kind, call };
    out.push({ type: 'content_block_start', index, content_block: block });
    return index;
  }

  push(deltas: readonly OutputDelta[]): NamedEvent[] {
    const out: NamedEvent[] = [];
    for (const d of deltas) {
      switch (d.type) {
        case 'content': {
          const index = this.#open?.kind === 'content' ? this.#open.index : this.#begin(out, 'content', { type: 'text', text: '' });
          out.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: d.text } });
          break;
        }
        case 'reasoning': {
          const index = this.#open?.kind === 'reasoning' ? this.#open.index : this.#begin(out, 'reasoning', { type: 'thinking', thinking: '', signature: '' });
          if (this.#omitThinking) break;
          out.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: d.text } });
          break;
        }
        case 'tool_call_start':
          this.#usedTools = true;
          this.#begin(out, 'tool', { type: 'tool_use', id: d.id, name: d.name, input: {} }, d.index);
          break;
        case 'tool_call_arguments': {
          // Arguments belong to the open call; fragments of another call (never interleaved by K2) reopen nothing.
          if (this.#open?.kind !== 'tool' || this.#open.call !== d.index) break;
          out.push({ type: 'content_block_delta', index: this.#open.index, delta: { type: 'input_json_delta', partial_json: d.text } });
          break;
        }
      }
    }
    return out;
  }

  finish(end: EndReason, usage: Usage): NamedEvent[] {
    const out: NamedEvent[] = [];
    this.#close(out);
    out.push({ type: 'message_delta', delta: { stop_reason: stopReason(end, this.#usedTools), stop_sequence: null }, usage: anthropicUsage(usage) });
    out.push({ type: 'message_stop' });
    return out;
  }

  fail(message: string): NamedEvent[] {
    return [{ type: 'error', error: { type: 'api_error', message } }];
  }
}

/** `omitThinking`: the request's `thinking.display` was "omitted": thinking blocks are sent without their text. */
export function anthropicMessages({ omitThinking }: { omitThinking: boolean }): ApiFormat {
  return {
    endpoint: 'messages',
    json: (ctx, answer) => message(ctx, answer, omitThinking),
    events: (ctx) => new MessageEvents(ctx, omitThinking),
  };
}
