/**
 * An Anthropic Messages request → the chat-completions body the rest of the edge serves (K2's chat
 * template renders it; an OpenAI-compatible upstream receives it as is).
 *
 *   system (string or text blocks)        → a system message
 *   user text blocks                       → a user message (adjacent text joined)
 *   user tool_result blocks                → tool messages (tool_call_id = tool_use_id), in their place
 *   assistant text / thinking / tool_use   → one assistant message: content, reasoning_content, tool_calls
 *   tools[].input_schema                   → tools[].function.parameters
 *   tool_choice auto / any / tool / none   → "auto" / "required" / a named function / "none"
 *   disable_parallel_tool_use: true        → parallel_tool_calls: false
 *   output_config.format / .effort         → response_format (json_schema) / reasoning_effort
 *   max_tokens, stop_sequences, temperature, top_p, top_k, stream, metadata.user_id
 *                                          → max_tokens, stop, temperature, top_p, top_k, stream, user
 *   cache_control (anywhere)               → nothing to do: our prefix cache is automatic
 *
 * The tool_use ids we hand out are K2's own call ids (`functions.NAME:IDX`), so a tool_result that
 * quotes one renders exactly as K2's template expects.
 */
import type { ChatCompletionRequest } from '../schemas/openai.ts';
import type { AnthropicMessage, CountTokensRequest, MessagesRequest } from '../schemas/anthropic.ts';

type ChatMessage = ChatCompletionRequest['messages'][number];
type TextBlock = { type: 'text'; text: string };

const joinText = (blocks: readonly TextBlock[]) => blocks.map((b) => b.text).join('');

/** Tool results have no error flag in K2's template: an error result says so in its text. */
function toolResultText(content: string | readonly TextBlock[] | undefined, isError: boolean | undefined): string {
  const text = content === undefined ? '' : typeof content === 'string' ? content : joinText(content);
  return isError ? `Error: ${text}` : text;
}

function chatMessages(system: MessagesRequest['system'], messages: readonly AnthropicMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (system !== undefined) out.push({ role: 'system', content: typeof system === 'string' ? system : joinText(system) });
  for (const m of messages) {
    if (typeof m.content === 'string') {
      out.push({ role: m.role, content: m.content });
      continue;
    }
    if (m.role === 'assistant') {
      let content = '';
      let reasoning: string | null = null;
      const toolCalls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] = [];
      for (const b of m.content) {
        if (b.type === 'text') content += b.text;
        else if (b.type === 'thinking') reasoning = (reasoning ?? '') + b.thinking;
        else if (b.type === 'tool_use') toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input) } });
        else throw new TypeError(`a ${b.type} block in an assistant message`);
      }
      out.push({
        role: 'assistant',
        content: content === '' && toolCalls.length > 0 ? null : content,
        ...(reasoning !== null ? { reasoning_content: reasoning } : {}),
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
      });
      continue;
    }
    // A user turn: its text and its tool results, in the order they came.
    let text: string | null = null;
    const flush = () => {
      if (text !== null) out.push({ role: 'user', content: text });
      text = null;
    };
    for (const b of m.content) {
      if (b.type === 'text') text = (text ?? '') + b.text;
      else if (b.type === 'tool_result') {
        flush();
        out.push({ role: 'tool', tool_call_id: b.tool_use_id, content: toolResultText(b.content, b.is_error) });
      } else throw new TypeError(`a ${b.type} block in a user message`);
    }
    flush();
  }
  return out;
}

/** The fields both messages.create and count_tokens shape the prompt with. */
function promptPart(body: CountTokensRequest): Pick<ChatCompletionRequest, 'model' | 'messages' | 'tools' | 'tool_choice' | 'parallel_tool_calls' | 'response_format' | 'reasoning_effort'> {
  const out: ReturnType<typeof promptPart> = { model: body.model, messages: chatMessages(body.system, body.messages) };
  if (body.tools !== undefined && body.tools.length > 0) {
    out.tools = body.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.input_schema } }));
  }
  const choice = body.tool_choice;
  if (choice !== undefined) {
    if (choice.type === 'auto') out.tool_choice = 'auto';
    else if (choice.type === 'none') out.tool_choice = 'none';
    else if (choice.type === 'any') out.tool_choice = 'required';
    else out.tool_choice = { type: 'function', function: { name: choice.name } };
    if (choice.type !== 'none' && choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
  }
  const format = body.output_config?.format;
  if (format != null) out.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } };
  if (body.output_config?.effort != null) out.reasoning_effort = body.output_config.effort;
  return out;
}

/**
 * The chat body for a Messages request. `thinking` has no chat field: the model reasons or not by
 * what it is (K2 Thinking does, K2 Instruct does not), and its reasoning comes back as thinking blocks.
 */
export function chatRequestFromMessages(body: MessagesRequest): ChatCompletionRequest {
  const chat: ChatCompletionRequest = { ...promptPart(body), max_tokens: body.max_tokens };
  if (body.stop_sequences !== undefined && body.stop_sequences.length > 0) chat.stop = body.stop_sequences;
  if (body.temperature !== undefined) chat.temperature = body.temperature;
  if (body.top_p !== undefined) chat.top_p = body.top_p;
  if (body.top_k !== undefined) chat.top_k = body.top_k;
  if (body.stream !== undefined) chat.stream = body.stream;
  if (body.metadata?.user_id != null) chat.user = body.metadata.user_id;
  return chat;
}

/** The chat body whose prompt count_tokens reports (no output limit: only the prompt is counted). */
export function chatRequestForCount(body: CountTokensRequest): ChatCompletionRequest {
  return promptPart(body);
}

/** A chat-path refusal's `param`, in the Messages API's own field names. */
export function messagesParam(chatParam: string): string {
  if (chatParam === 'stop') return 'stop_sequences';
  if (chatParam === 'parallel_tool_calls') return 'tool_choice.disable_parallel_tool_use';
  if (chatParam === 'user') return 'metadata.user_id';
  if (chatParam === 'response_format') return 'output_config.format';
  if (chatParam === 'reasoning_effort') return 'output_config.effort';
  const strict = /^tools\.(\d+)\.function\.(\w+)$/.exec(chatParam);
  if (strict) return `tools.${strict[1]}.${strict[2] === 'parameters' ? 'input_schema' : strict[2]}`;
  return chatParam;
}
