/**
 * OpenAI chat messages → K2 prompt token ids, following Kimi K2's published chat_template.jinja:
 *
 *   [<|im_system|>tool_declare<|im_middle|>{tools as compact JSON}<|im_end|>]      when tools are given
 *   [<|im_system|>system<|im_middle|>{K2's default system prompt}<|im_end|>]       when messages[0] is not system
 *   <|im_system|>system<|im_middle|>{content}<|im_end|>
 *   <|im_user|>{name|user}<|im_middle|>{content}<|im_end|>
 *   <|im_assistant|>{name|assistant}<|im_middle|>{content}
 *       [<|tool_calls_section_begin|>(<|tool_call_begin|>{id}<|tool_call_argument_begin|>{args}<|tool_call_end|>)*<|tool_calls_section_end|>]<|im_end|>
 *   <|im_system|>{name|tool}<|im_middle|>## Return of {tool_call_id}\n{content}<|im_end|>
 *   <|im_assistant|>assistant<|im_middle|>                                             generation prompt
 *
 * With `thinking` (K2 Thinking), assistant turns carry `<think>{reasoning_content}</think>` when
 * they come after the last user message (the tool loop in progress) and `<think></think>` before
 * it, so old reasoning does not eat the context.
 *
 * Role markers are special ids; everything a caller supplies (content, names, ids, arguments) is
 * encoded as plain text, so a marker typed into a message stays text and cannot open a new turn.
 * Adjacent text is encoded as one string, which is how HF's tokenizer sees the rendered template.
 */
import type { Tokenizer } from './bpe.ts';
import {
  IM_ASSISTANT,
  IM_END,
  IM_MIDDLE,
  IM_SYSTEM,
  IM_USER,
  THINK_BEGIN,
  THINK_END,
  TOOL_CALL_ARGUMENT_BEGIN,
  TOOL_CALL_BEGIN,
  TOOL_CALL_END,
  TOOL_CALLS_SECTION_BEGIN,
  TOOL_CALLS_SECTION_END,
} from './k2-specials.ts';

export const K2_DEFAULT_SYSTEM_PROMPT = 'You are Kimi, an AI assistant created by Moonshot AI.';

/** Text parts are concatenated; other part types (images) are not supported by the model and are skipped. */
export type ChatContent = string | null | undefined | ReadonlyArray<{ type: string; text?: string }>;

export interface ChatToolCall {
  /** K2 expects `functions.NAME:IDX` (what it generated); other ids are rendered as given. */
  id: string;
  type?: 'function';
  function: { name: string; arguments: string | Record<string, unknown> };
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: ChatContent;
  name?: string;
  tool_calls?: readonly ChatToolCall[];
  tool_call_id?: string;
  reasoning_content?: string | null;
}

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown; strict?: boolean };
}

export interface RenderOptions {
  tools?: readonly ChatTool[];
  /** Append the assistant header the model continues from (default true). */
  addGenerationPrompt?: boolean;
  /** K2 Thinking's `<think>` handling of assistant turns (default false: K2 Instruct). */
  thinking?: boolean;
  /** Inserted when messages[0] is not a system message; null inserts nothing. */
  defaultSystemPrompt?: string | null;
  /**
   * The last message is an assistant turn the model goes on writing (Moonshot's partial mode, vLLM's
   * continue_final_message): its end marker and the generation prompt are left out.
   */
  continueFinalMessage?: boolean;
}

/**
 * Whether a chat request asks the model to continue its last message: that message is the
 * assistant's and is marked `partial: true`, or the request says `continue_final_message: true`.
 */
export function continuesFinalMessage(messages: readonly ChatMessage[], continueFinalMessage?: boolean | null): boolean {
  const last = messages.at(-1) as (ChatMessage & { partial?: unknown }) | undefined;
  return last?.role === 'assistant' && (last.partial === true || continueFinalMessage === true);
}

/** A rendered prompt as pieces: special markers (by content) and plain text. */
export type PromptSegment = { special: string } | { text: string };

export function contentText(content: ChatContent): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  let out = '';
  for (const part of content) if (part.type === 'text' && part.text !== undefined) out += part.text;
  return out;
}

export function renderChatSegments(messages: readonly ChatMessage[], options: RenderOptions = {}): PromptSegment[] {
  const { tools, addGenerationPrompt = true, thinking = false, defaultSystemPrompt = K2_DEFAULT_SYSTEM_PROMPT, continueFinalMessage = false } = options;
  if (continueFinalMessage && messages.at(-1)?.role !== 'assistant') throw new Error('continueFinalMessage needs an assistant message last');
  const out: PromptSegment[] = [];
  const special = (content: string) => out.push({ special: content });
  const text = (value: string) => {
    if (value.length > 0) out.push({ text: value });
  };
  const turn = (marker: string, roleName: string) => {
    special(marker);
    text(roleName);
    special(IM_MIDDLE);
  };

  if (tools !== undefined && tools.length > 0) {
    turn(IM_SYSTEM, 'tool_declare');
    text(JSON.stringify(tools));
    special(IM_END);
  }
  const firstRole = messages[0]?.role;
  if (defaultSystemPrompt !== null && firstRole !== 'system' && firstRole !== 'developer') {
    turn(IM_SYSTEM, 'system');
    text(defaultSystemPrompt);
    special(IM_END);
  }

  let lastUser = -1;
  messages.forEach((m, i) => {
    if (m.role === 'user') lastUser = i;
  });

  messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
      case 'developer':
        // K2 has no developer role; OpenAI's newer name for system instructions maps onto it.
        turn(IM_SYSTEM, m.name ?? 'system');
        text(contentText(m.content));
        break;
      case 'user':
        turn(IM_USER, m.name ?? 'user');
        text(contentText(m.content));
        break;
      case 'tool':
        turn(IM_SYSTEM, m.name ?? 'tool');
        text(`## Return of ${m.tool_call_id ?? ''}\n${contentText(m.content)}`);
        break;
      case 'assistant':
        turn(IM_ASSISTANT, m.name ?? 'assistant');
        if (thinking) {
          special(THINK_BEGIN);
          if (i > lastUser) text(m.reasoning_content ?? '');
          special(THINK_END);
        }
        text(contentText(m.content));
        if (m.tool_calls !== undefined && m.tool_calls.length > 0) {
          special(TOOL_CALLS_SECTION_BEGIN);
          for (const call of m.tool_calls) {
            special(TOOL_CALL_BEGIN);
            text(call.id);
            special(TOOL_CALL_ARGUMENT_BEGIN);
            const args = call.function.arguments;
            text(typeof args === 'string' ? args : JSON.stringify(args));
            special(TOOL_CALL_END);
          }
          special(TOOL_CALLS_SECTION_END);
        }
        break;
    }
    if (!(continueFinalMessage && i === messages.length - 1)) special(IM_END);
  });

  if (addGenerationPrompt && !continueFinalMessage) turn(IM_ASSISTANT, 'assistant');
  return out;
}

/** Prompt token ids for the model. */
export function renderChat(tokenizer: Tokenizer, messages: readonly ChatMessage[], options: RenderOptions = {}): number[] {
  const ids: number[] = [];
  let pending = '';
  const flush = () => {
    // A loop, not push(...): a long prompt would overflow the argument limit of a spread.
    for (const id of tokenizer.encode(pending)) ids.push(id);
    pending = '';
  };
  for (const seg of renderChatSegments(messages, options)) {
    if ('text' in seg) {
      pending += seg.text;
    } else {
      flush();
      ids.push(tokenizer.specialId(seg.special));
    }
  }
  flush();
  return ids;
}

/** The prompt as one string with markers inline: for logs and tests, never for tokenizing. */
export function renderChatText(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  return renderChatSegments(messages, options)
    .map((seg) => ('text' in seg ? seg.text : seg.special))
    .join('');
}

/** Ids that end an assistant turn: generation stops there (they are not part of the output). */
export function chatStopTokenIds(tokenizer: Tokenizer): number[] {
  return [tokenizer.specialId(IM_END), tokenizer.specialId('[EOS]')];
}
