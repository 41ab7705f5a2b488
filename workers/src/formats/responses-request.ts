/**
 * An OpenAI Responses request → the chat-completions body the rest of the edge serves (K2's chat
 * template renders it; an OpenAI-compatible upstream receives it as is).
 *
 *   instructions                        → a system message first
 *   input (a string)                    → one user message
 *   message items                       → messages of their role (input_text / output_text joined)
 *   function_call items                 → tool_calls of an assistant message (consecutive calls share one)
 *   function_call_output items          → tool messages (tool_call_id = call_id)
 *   reasoning items                     → reasoning_content of the next assistant message
 *   tools (function), tool_choice, parallel_tool_calls, max_output_tokens, temperature, top_p, stream,
 *   text.format, text.verbosity, reasoning.effort, user, safety_identifier, prompt_cache_key, service_tier
 *                                       → their chat fields (max_tokens, response_format, verbosity, reasoning_effort, ...)
 *
 * Nothing is stored: `previous_response_id` is refused, `store: true` is answered with `store: false`.
 * Fields with no chat equivalent that ask for something are refused here with a 400 naming them.
 */
import { InvalidRequestError } from '../errors.ts';
import type { ChatCompletionRequest } from '../schemas/openai.ts';
import type { ResponsesRequest } from '../schemas/responses.ts';

type ChatMessage = ChatCompletionRequest['messages'][number];
type ToolCall = { id: string; type: 'function'; function: { name: string; arguments: string } };

const unsupported = (param: string, why: string) => new InvalidRequestError(`${param}: ${why}`, param, 'unsupported_parameter');

/** Fields with no chat equivalent: refused unless they ask for nothing. */
function refuseUnoffered(body: ResponsesRequest): void {
  if (body.previous_response_id != null) {
    throw unsupported('previous_response_id', 'responses are not stored here, so there is none to continue; send the whole conversation in `input`');
  }
  if (body.include != null && body.include.length > 0) throw unsupported('include', `${body.include[0]} is not offered (no encrypted reasoning, logprobs or tool outputs); leave include out`);
  const summary = body.reasoning?.summary ?? body.reasoning?.generate_summary;
  if (summary != null && summary !== 'none') throw unsupported('reasoning.summary', "reasoning is returned in full as reasoning_text, never summarised; leave summary out");
  if (body.truncation === 'auto') throw unsupported('truncation', "automatic truncation is not offered; send 'disabled' or leave it out");
  if (body.background === true) throw unsupported('background', 'background responses are not offered (they need stored responses)');
  if (body.max_tool_calls != null) throw unsupported('max_tool_calls', 'a cap on tool calls is not enforced by this model\'s serving path');
  if (body.top_logprobs != null && body.top_logprobs > 0) throw unsupported('top_logprobs', 'logprobs are not offered');
}

function text(content: string | readonly { text: string }[]): string {
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

function chatMessages(body: ResponsesRequest): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (body.instructions != null && body.instructions !== '') out.push({ role: 'system', content: body.instructions });
  if (typeof body.input === 'string') {
    out.push({ role: 'user', content: body.input });
    return out;
  }
  let reasoning: string | null = null;
  // The assistant message the current run of function_call items joins (null: start a new one).
  let calling: { role: 'assistant'; content: string | null; tool_calls: ToolCall[]; reasoning_content?: string } | null = null;
  const takeReasoning = () => {
    const r = reasoning;
    reasoning = null;
    return r === null ? {} : { reasoning_content: r };
  };
  for (const item of body.input) {
    if (item.type === 'function_call') {
      if (calling === null) {
        calling = { role: 'assistant', content: null, tool_calls: [], ...takeReasoning() };
        out.push(calling);
      }
      calling.tool_calls.push({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
      continue;
    }
    calling = null;
    if (item.type === 'reasoning') {
      const t = (item.content ?? []).map((p) => p.text).join('') || item.summary.map((p) => p.text).join('');
      reasoning = (reasoning ?? '') + t;
    } else if (item.type === 'function_call_output') {
      out.push({ role: 'tool', tool_call_id: item.call_id, content: text(item.output) });
    } else if (item.role === 'assistant') {
      // Calls right after an assistant message belong to that same turn.
      calling = { role: 'assistant', content: text(item.content), tool_calls: [], ...takeReasoning() };
      out.push(calling);
    } else {
      out.push({ role: item.role, content: text(item.content) });
    }
  }
  // Empty tool_calls arrays are left out: K2's template renders none for them anyway.
  return out.map((m) => (m.role === 'assistant' && m.tool_calls?.length === 0 ? (({ tool_calls: _none, ...rest }) => rest)(m) : m));
}

export function chatRequestFromResponses(body: ResponsesRequest): ChatCompletionRequest {
  refuseUnoffered(body);
  const chat: ChatCompletionRequest = { model: body.model, messages: chatMessages(body) };
  if (body.tools !== undefined && body.tools.length > 0) {
    chat.tools = body.tools.map((t) => ({
      type: 'function' as const,
      function: {
        name: t.name,
        ...(t.description != null ? { description: t.description } : {}),
        ...(t.parameters != null ? { parameters: t.parameters } : {}),
        ...(t.strict != null ? { strict: t.strict } : {}),
      },
    }));
  }
  if (body.tool_choice !== undefined) {
    chat.tool_choice = typeof body.tool_choice === 'string' ? body.tool_choice : { type: 'function', function: { name: body.tool_choice.name } };
  }
  if (body.parallel_tool_calls != null) chat.parallel_tool_calls = body.parallel_tool_calls;
  if (body.max_output_tokens != null) chat.max_tokens = body.max_output_tokens;
  if (body.temperature != null) chat.temperature = body.temperature;
  if (body.top_p != null) chat.top_p = body.top_p;
  if (body.stream != null) chat.stream = body.stream;
  const format = body.text?.format;
  if (format !== undefined && format.type !== 'text') {
    chat.response_format =
      format.type === 'json_object'
        ? { type: 'json_object' }
        : { type: 'json_schema', json_schema: { name: format.name, schema: format.schema, ...(format.description !== undefined ? { description: format.description } : {}), ...(format.strict != null ? { strict: format.strict } : {}) } };
  }
  if (body.text?.verbosity != null) chat.verbosity = body.text.verbosity;
  if (body.reasoning?.effort != null) chat.reasoning_effort = body.reasoning.effort;
  if (body.user != null) chat.user = body.user;
  if (body.safety_identifier != null) chat.safety_identifier = body.safety_identifier;
  if (body.prompt_cache_key != null) chat.prompt_cache_key = body.prompt_cache_key;
  if (body.service_tier != null) chat.service_tier = body.service_tier;
  return chat;
}

/** A chat-path refusal's `param`, in the Responses API's own field names. */
export function responsesParam(chatParam: string): string {
  const fields: Record<string, string> = {
    max_tokens: 'max_output_tokens',
    response_format: 'text.format',
    verbosity: 'text.verbosity',
    reasoning_effort: 'reasoning.effort',
    messages: 'input',
  };
  if (chatParam in fields) return fields[chatParam];
  const tool = /^tools\.(\d+)\.function\.(\w+)$/.exec(chatParam);
  if (tool) return `tools.${tool[1]}.${tool[2]}`;
  return chatParam;
}
