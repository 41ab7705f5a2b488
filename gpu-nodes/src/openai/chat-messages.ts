/**
 * Shape checks for the chat body's `messages` and `tools` on the node's OpenAI endpoint: what the K2
 * chat template renders, and nothing else. A message field the template would not render (or a role
 * it does not know) is refused naming its path, as the edge refuses it for the pool, instead of being
 * dropped or failing inside the template.
 */
import type { ChatMessage, ChatTool } from '../../../shared/tokenizer/index.ts';
import { BadRequest } from './request-fields.ts';

/** Keys the chat template renders, per role (`partial: false` asks for nothing and is accepted too). */
const MESSAGE_KEYS: Record<string, readonly string[]> = {
  system: ['role', 'content', 'name'],
  developer: ['role', 'content', 'name'],
  user: ['role', 'content', 'name'],
  assistant: ['role', 'content', 'name', 'reasoning_content', 'tool_calls'],
  tool: ['role', 'content', 'tool_call_id'],
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkContent(content: unknown, path: string, optional: boolean): void {
  if (content === undefined || content === null) {
    if (optional) return;
    throw new BadRequest(`${path} is required`, path);
  }
  if (typeof content === 'string') return;
  if (!Array.isArray(content) || content.length === 0) throw new BadRequest(`${path} must be a string or a non-empty array of text parts`, path);
  content.forEach((part, j) => {
    if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') throw new BadRequest(`${path}.${j} must be {type: 'text', text}`, `${path}.${j}`);
    const extra = Object.keys(part).find((k) => k !== 'type' && k !== 'text');
    if (extra) throw new BadRequest(`'${path}.${j}.${extra}' is not supported by this node; remove it`, `${path}.${j}.${extra}`, 'unsupported_parameter');
  });
}

export function chatMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new BadRequest('messages must be a non-empty array', 'messages');
  v.forEach((m, i) => {
    const path = `messages.${i}`;
    if (!isObject(m)) throw new BadRequest(`${path} must be an object`, path);
    const known = typeof m.role === 'string' ? MESSAGE_KEYS[m.role] : undefined;
    if (!known) throw new BadRequest(`${path}.role must be one of ${Object.keys(MESSAGE_KEYS).join(', ')}`, `${path}.role`);
    for (const [key, value] of Object.entries(m)) {
      if (known.includes(key) || value === undefined || value === null || (key === 'partial' && value === false)) continue;
      throw new BadRequest(`'${path}.${key}' is not a message field this node understands; remove it`, `${path}.${key}`, 'unsupported_parameter');
    }
    checkContent(m.content, `${path}.content`, m.role === 'assistant');
    if (m.name !== undefined && m.name !== null && typeof m.name !== 'string') throw new BadRequest(`${path}.name must be a string`, `${path}.name`);
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') throw new BadRequest(`${path}.tool_call_id must be a string`, `${path}.tool_call_id`);
    if (m.reasoning_content !== undefined && m.reasoning_content !== null && typeof m.reasoning_content !== 'string') throw new BadRequest(`${path}.reasoning_content must be a string`, `${path}.reasoning_content`);
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      if (!Array.isArray(m.tool_calls)) throw new BadRequest(`${path}.tool_calls must be an array`, `${path}.tool_calls`);
      m.tool_calls.forEach((call, j) => {
        const ok = isObject(call) && typeof call.id === 'string' && isObject(call.function) && typeof call.function.name === 'string' && (typeof call.function.arguments === 'string' || isObject(call.function.arguments));
        if (!ok) throw new BadRequest(`${path}.tool_calls.${j} must be {id, type: 'function', function: {name, arguments}}`, `${path}.tool_calls.${j}`);
      });
    }
  });
  return v as ChatMessage[];
}

export function chatTools(v: unknown): ChatTool[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new BadRequest('tools must be an array', 'tools');
  v.forEach((t, i) => {
    const f = isObject(t) ? t.function : undefined;
    const ok =
      isObject(t) && t.type === 'function' && isObject(f) && typeof f.name === 'string' && f.name !== '' &&
      (f.description === undefined || typeof f.description === 'string') && (f.parameters === undefined || f.parameters === null || isObject(f.parameters));
    if (!ok) throw new BadRequest(`tools.${i} must be {type: 'function', function: {name, description?, parameters?}}`, `tools.${i}`);
  });
  return v as ChatTool[];
}
