/**
 * K2's own output text (the markers a real K2 checkpoint emits) through the formats: the same
 * parser that makes chat's tool_calls makes Anthropic's tool_use blocks and Responses' function_call
 * items, whole or streamed in arbitrary pieces.
 */
import { describe, expect, it } from 'vitest';
import { parseOutput } from '../../../shared/tokenizer/index.ts';
import { nodeEventFormatter, type NamedEvent, type RenderContext } from './api-format.ts';
import { anthropicMessages } from './anthropic-messages.ts';
import { responsesFormat } from './responses.ts';

const K2_TEXT =
  '<think>Need the weather.</think>Let me check.' +
  '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|>' +
  '<|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{"tz": "CET"}<|tool_call_end|><|tool_calls_section_end|>';

const ctx: RenderContext = { requestId: 'req_1', created: 1, model: 'k2', countTokens: (t) => t.split(' ').length };
const usage = { prompt_tokens: 50, cached_tokens: 20, completion_tokens: 30 };

/** Feeds the text in pieces of `size` characters, as node token batches arrive, splitting markers too. */
function streamed(renderer: Parameters<typeof nodeEventFormatter>[0], size: number): NamedEvent[] {
  const fmt = nodeEventFormatter(renderer);
  const events = [...fmt.start()];
  for (let i = 0; i < K2_TEXT.length; i += size) events.push(...fmt.text(K2_TEXT.slice(i, i + size)));
  events.push(...fmt.finish(['stop'], usage));
  return events as NamedEvent[];
}

describe('Anthropic Messages from K2 output', () => {
  const format = anthropicMessages({ omitThinking: false });

  it('whole: thinking, text, then one tool_use per call with K2 ids and parsed input', () => {
    const msg = format.json(ctx, { output: parseOutput(K2_TEXT), end: 'stop', usage }) as Record<string, unknown>;
    expect(msg).toMatchObject({
      id: 'msg_req_1',
      stop_reason: 'tool_use',
      content: [
        { type: 'thinking', thinking: 'Need the weather.' },
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 'functions.get_weather:0', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'functions.get_time:1', name: 'get_time', input: { tz: 'CET' } },
      ],
      usage: { input_tokens: 30, cache_read_input_tokens: 20, cache_creation_input_tokens: 0, output_tokens: 30 },
    });
  });

  it('streamed in 3-character pieces: the blocks and their deltas rebuild the same message', () => {
    const events = streamed(format.events(ctx), 3);
    expect(events[0].type).toBe('message_start');
    expect(events.slice(-2).map((e) => e.type)).toEqual(['message_delta', 'message_stop']);
    expect(events.at(-2)).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: { input_tokens: 30, cache_read_input_tokens: 20, output_tokens: 30 } });
    const blocks: Record<string, unknown>[] = [];
    for (const e of events) {
      if (e.type === 'content_block_start') blocks[e.index as number] = { ...(e.content_block as object), json: '' };
      if (e.type === 'content_block_delta') {
        const b = blocks[e.index as number];
        const d = e.delta as Record<string, string>;
        if (d.type === 'text_delta') b.text += d.text;
        if (d.type === 'thinking_delta') b.thinking += d.thinking;
        if (d.type === 'input_json_delta') b.json += d.partial_json;
      }
    }
    expect(events.filter((e) => e.type === 'content_block_stop').map((e) => e.index)).toEqual([0, 1, 2, 3]);
    expect(blocks).toMatchObject([
      { type: 'thinking', thinking: 'Need the weather.' },
      { type: 'text', text: 'Let me check.' },
      { type: 'tool_use', id: 'functions.get_weather:0', name: 'get_weather', json: '{"city": "Paris"}' },
      { type: 'tool_use', id: 'functions.get_time:1', name: 'get_time', json: '{"tz": "CET"}' },
    ]);
  });

  it('a call whose arguments are not a JSON object is returned as text, never as a tool_use with made-up input', () => {
    const bad = '<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{"a": <|tool_call_end|><|tool_calls_section_end|>';
    const msg = format.json(ctx, { output: parseOutput(bad), end: 'stop', usage }) as { content: unknown[]; stop_reason: string };
    expect(msg.content).toEqual([{ type: 'text', text: 'functions.f:0 {"a": ' }]);
    expect(msg.stop_reason).toBe('end_turn');
  });

  it('max_tokens and omitted thinking', () => {
    const msg = anthropicMessages({ omitThinking: true }).json(ctx, { output: parseOutput('<think>secret</think>Hi'), end: 'length', usage }) as { content: unknown[]; stop_reason: string };
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.content).toEqual([{ type: 'thinking', thinking: '', signature: '' }, { type: 'text', text: 'Hi' }]);
  });
});

describe('Responses from K2 output', () => {
  const format = responsesFormat({ model: 'k2', input: 'x' });

  it('whole: a reasoning item, the message, then one function_call item per call', () => {
    const res = format.json(ctx, { output: parseOutput(K2_TEXT), end: 'stop', usage }) as Record<string, unknown>;
    expect(res).toMatchObject({
      id: 'resp_req_1',
      status: 'completed',
      store: false,
      output: [
        { type: 'reasoning', content: [{ type: 'reasoning_text', text: 'Need the weather.' }] },
        { type: 'message', content: [{ type: 'output_text', text: 'Let me check.' }] },
        { type: 'function_call', call_id: 'functions.get_weather:0', name: 'get_weather', arguments: '{"city": "Paris"}' },
        { type: 'function_call', call_id: 'functions.get_time:1', name: 'get_time', arguments: '{"tz": "CET"}' },
      ],
      usage: { input_tokens: 50, input_tokens_details: { cached_tokens: 20 }, output_tokens: 30, output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 80 },
    });
  });

  it('streamed in 5-character pieces: numbered events whose final response equals the whole one', () => {
    const events = streamed(format.events(ctx), 5);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const whole = format.json(ctx, { output: parseOutput(K2_TEXT), end: 'stop', usage });
    expect(events.at(-1)).toMatchObject({ type: 'response.completed', response: whole });
    const args = events.filter((e) => e.type === 'response.function_call_arguments.delta' && e.output_index === 3).map((e) => e.delta).join('');
    expect(args).toBe('{"tz": "CET"}');
    expect(events.filter((e) => e.type === 'response.output_item.done').map((e) => e.output_index)).toEqual([0, 1, 2, 3]);
  });

  it('max_output_tokens makes the response incomplete', () => {
    const events = streamed(format.events(ctx), 7);
    expect(events.at(-1)!.type).toBe('response.completed');
    const cut = format.events(ctx);
    const last = nodeEventFormatter(cut);
    last.start();
    last.text('partial');
    expect(last.finish(['length'], usage).at(-1)).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } });
  });
});
