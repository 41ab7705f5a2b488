/**
 * K2's parsed output as OpenAI Responses objects: a `response` whose `output` holds a reasoning item
 * (the model's reasoning as reasoning_text), a message item (output_text) and function_call items,
 * or the Responses event stream, every event numbered by `sequence_number`:
 *
 *   response.created → response.in_progress →
 *     per item: response.output_item.added → (content_part.added → output_text.delta* / reasoning_text.delta*
 *               → output_text.done / reasoning_text.done → content_part.done | function_call_arguments.delta*
 *               → function_call_arguments.done) → response.output_item.done
 *   → response.completed (response.incomplete at max_output_tokens; response.failed on a failure)
 *
 * Usage: `input_tokens` includes `input_tokens_details.cached_tokens` (billed at the cache-hit price),
 * as OpenAI reports it; `output_tokens_details.reasoning_tokens` is the reasoning text's token count.
 * Nothing is stored, so every response says `store: false`.
 */
import type { Usage } from '../../../shared/protocol.ts';
import type { OutputDelta, ParsedOutput } from '../../../shared/tokenizer/index.ts';
import type { ResponsesRequest } from '../schemas/responses.ts';
import type { Answer, ApiFormat, EndReason, EventRenderer, NamedEvent, RenderContext } from './api-format.ts';

type Item = Record<string, unknown> & { id: string; type: 'message' | 'reasoning' | 'function_call' };
type Status = 'in_progress' | 'completed' | 'incomplete' | 'failed';

function responsesUsage(u: Usage, reasoningTokens: number) {
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: u.cached_tokens },
    output_tokens: u.completion_tokens,
    // Counted on the reasoning text; never more than what was generated.
    output_tokens_details: { reasoning_tokens: Math.min(reasoningTokens, u.completion_tokens) },
    total_tokens: u.prompt_tokens + u.completion_tokens,
  };
}

const outputText = (text: string) => ({ type: 'output_text', text, annotations: [], logprobs: [] });
const reasoningText = (text: string) => ({ type: 'reasoning_text', text });
const messageItem = (id: string, text: string, status: string): Item => ({ id, type: 'message', role: 'assistant', status, content: [outputText(text)] });
const reasoningItem = (id: string, text: string): Item => ({ id, type: 'reasoning', summary: [], content: [reasoningText(text)] });
const callItem = (id: string, callId: string, name: string, args: string, status: string): Item => ({ id, type: 'function_call', call_id: callId, name, arguments: args, status });

const ids = (requestId: string) => ({
  response: `resp_${requestId}`,
  message: `msg_${requestId}`,
  reasoning: `rs_${requestId}`,
  call: (i: number) => `fc_${requestId}_${i}`,
});

/** Items for a whole answer: reasoning, then the message (when it says something or nothing else came), then the calls. */
function outputItems(requestId: string, out: ParsedOutput): Item[] {
  const id = ids(requestId);
  const items: Item[] = [];
  if (out.reasoning_content) items.push(reasoningItem(id.reasoning, out.reasoning_content));
  if (out.content || out.tool_calls.length === 0) items.push(messageItem(id.message, out.content ?? '', 'completed'));
  out.tool_calls.forEach((call, i) => items.push(callItem(id.call(i), call.id, call.function.name, call.function.arguments, 'completed')));
  return items;
}

function finalStatus(end: EndReason): Status {
  return end === 'length' ? 'incomplete' : 'completed';
}

export function responsesFormat(body: ResponsesRequest): ApiFormat {
  /** The response object, echoing the request's settings as OpenAI does. */
  const response = (ctx: RenderContext, status: Status, output: Item[], usage: ReturnType<typeof responsesUsage> | null, error: { code: string; message: string } | null = null) => ({
    id: ids(ctx.requestId).response,
    object: 'response',
    created_at: ctx.created,
    status,
    error,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: ctx.model,
    output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: null },
    store: false,
    temperature: body.temperature ?? 1,
    text: { format: body.text?.format ?? { type: 'text' }, ...(body.text?.verbosity != null ? { verbosity: body.text.verbosity } : {}) },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  });

  return {
    endpoint: 'responses',
    json(ctx: RenderContext, answer: Answer) {
      const reasoningTokens = ctx.countTokens(answer.output.reasoning_content ?? '');
      return response(ctx, finalStatus(answer.end), outputItems(ctx.requestId, answer.output), responsesUsage(answer.usage, reasoningTokens));
    },
    events: (ctx) => new ResponseEvents(ctx, response),
  };
}

type ResponseBuilder = (ctx: RenderContext, status: Status, output: Item[], usage: ReturnType<typeof responsesUsage> | null, error?: { code: string; message: string } | null) => Record<string, unknown>;

class ResponseEvents implements EventRenderer {
  readonly #ctx: RenderContext;
  readonly #response: ResponseBuilder;
  #sequence = 0;
  /** Finished items, in output order. */
  readonly #done: Item[] = [];
  /** The item being streamed: its output index, and for a call its index in the model's output. */
  #open: { kind: 'message' | 'reasoning' | 'function_call'; outputIndex: number; item: Item; text: string; call?: number } | null = null;
  #calls = 0;
  #reasoning = '';

  constructor(ctx: RenderContext, response: ResponseBuilder) {
    this.#ctx = ctx;
    this.#response = response;
  }

  #event(type: string, fields: Record<string, unknown>): NamedEvent {
    return { type, sequence_number: this.#sequence++, ...fields };
  }

  start(): NamedEvent[] {
    const initial = this.#response(this.#ctx, 'in_progress', [], null);
    return [this.#event('response.created', { response: initial }), this.#event('response.in_progress', { response: initial })];
  }

  #close(out: NamedEvent[]): void {
    const open = this.#open;
    if (open === null) return;
    this.#open = null;
    const { outputIndex: output_index, item } = open;
    let done: Item;
    if (open.kind === 'message') {
      out.push(this.#event('response.output_text.done', { item_id: item.id, output_index, content_index: 0, text: open.text, logprobs: [] }));
      out.push(this.#event('response.content_part.done', { item_id: item.id, output_index, content_index: 0, part: outputText(open.text) }));
      done = messageItem(item.id, open.text, 'completed');
    } else if (open.kind === 'reasoning') {
      out.push(this.#event('response.reasoning_text.done', { item_id: item.id, output_index, content_index: 0, text: open.text }));
      out.push(this.#event('response.content_part.done', { item_id: item.id, output_index, content_index: 0, part: reasoningText(open.text) }));
      done = reasoningItem(item.id, open.text);
    } else {
      out.push(this.#event('response.function_call_arguments.done', { item_id: item.id, output_index, name: item.name, arguments: open.text }));
      done = callItem(item.id, String(item.call_id), String(item.name), open.text, 'completed');
    }
    out.push(this.#event('response.output_item.done', { output_index, item: done }));
    this.#done.push(done);
  }

  #begin(out: NamedEvent[], kind: 'message' | 'reasoning' | 'function_call', item: Item, call?: number): void {
    this.#close(out);
    const outputIndex = this.#done.length;
    this.#open = { kind, outputIndex, item, text: '', call };
    out.push(this.#event('response.output_item.added', { output_index: outputIndex, item }));
    if (kind === 'message') out.push(this.#event('response.content_part.added', { item_id: item.id, output_index: outputIndex, content_index: 0, part: outputText('') }));
    if (kind === 'reasoning') out.push(this.#event('response.content_part.added', { item_id: item.id, output_index: outputIndex, content_index: 0, part: reasoningText('') }));
  }

  push(deltas: readonly OutputDelta[]): NamedEvent[] {
    const out: NamedEvent[] = [];
    const id = ids(this.#ctx.requestId);
    for (const d of deltas) {
      switch (d.type) {
        case 'content':
          if (this.#open?.kind !== 'message') this.#begin(out, 'message', { id: id.message, type: 'message', role: 'assistant', status: 'in_progress', content: [] });
          this.#open!.text += d.text;
          out.push(this.#event('response.output_text.delta', { item_id: id.message, output_index: this.#open!.outputIndex, content_index: 0, delta: d.text, logprobs: [] }));
          break;
        case 'reasoning':
          if (this.#open?.kind !== 'reasoning') this.#begin(out, 'reasoning', { id: id.reasoning, type: 'reasoning', summary: [], content: [] });
          this.#open!.text += d.text;
          this.#reasoning += d.text;
          out.push(this.#event('response.reasoning_text.delta', { item_id: id.reasoning, output_index: this.#open!.outputIndex, content_index: 0, delta: d.text }));
          break;
        case 'tool_call_start':
          this.#begin(out, 'function_call', callItem(id.call(this.#calls++), d.id, d.name, '', 'in_progress'), d.index);
          break;
        case 'tool_call_arguments':
          if (this.#open?.kind !== 'function_call' || this.#open.call !== d.index) break;
          this.#open.text += d.text;
          out.push(this.#event('response.function_call_arguments.delta', { item_id: this.#open.item.id, output_index: this.#open.outputIndex, delta: d.text }));
          break;
      }
    }
    return out;
  }

  finish(end: EndReason, usage: Usage): NamedEvent[] {
    const out: NamedEvent[] = [];
    this.#close(out);
    const status = finalStatus(end);
    const final = this.#response(this.#ctx, status, this.#done, responsesUsage(usage, this.#ctx.countTokens(this.#reasoning)));
    out.push(this.#event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: final }));
    return out;
  }

  fail(message: string): NamedEvent[] {
    const failed = this.#response(this.#ctx, 'failed', this.#done, null, { code: 'server_error', message });
    return [this.#event('response.failed', { response: failed })];
  }
}
