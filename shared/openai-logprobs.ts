/**
 * OpenAI's logprobs objects from the node's per-token entries (protocol.ts `TokenLogprob`), for the
 * edge and for the node's own OpenAI endpoint alike:
 *   chat:        { content: [{ token, bytes, logprob, top_logprobs: [{ token, bytes, logprob }] }], refusal: null }
 *   completions: { tokens, token_logprobs, top_logprobs: [{ token: logprob }], text_offset }
 * `token` is the token's text (a token holding part of a UTF-8 character shows U+FFFD there); `bytes` are
 * its exact UTF-8 bytes, so a client can rebuild such characters across tokens.
 */
import type { TokenLogprob } from './protocol.ts';
import type { Tokenizer } from './tokenizer/bpe.ts';

interface TokenText {
  token: string;
  bytes: number[];
}

function tokenText(tokenizer: Tokenizer, id: number): TokenText {
  const bytes = tokenizer.decodeBytes([id]);
  return { token: new TextDecoder().decode(bytes), bytes: Array.from(bytes) };
}

export interface ChatLogprob extends TokenText {
  logprob: number;
  top_logprobs: (TokenText & { logprob: number })[];
}

export function chatLogprobContent(tokenizer: Tokenizer, entries: readonly TokenLogprob[]): ChatLogprob[] {
  return entries.map((e) => ({
    ...tokenText(tokenizer, e.id),
    logprob: e.logprob,
    top_logprobs: e.top.map((t) => ({ ...tokenText(tokenizer, t.id), logprob: t.logprob })),
  }));
}

export function chatLogprobs(tokenizer: Tokenizer, entries: readonly TokenLogprob[]) {
  return { content: chatLogprobContent(tokenizer, entries), refusal: null };
}

/** The legacy endpoint's columns; `textOffset` is where the first token's text starts in the choice's text. */
export function completionLogprobs(tokenizer: Tokenizer, entries: readonly TokenLogprob[], textOffset = 0) {
  const tokens: string[] = [];
  const offsets: number[] = [];
  let at = textOffset;
  for (const e of entries) {
    const { token } = tokenText(tokenizer, e.id);
    tokens.push(token);
    offsets.push(at);
    at += token.length;
  }
  return {
    tokens,
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [tokenText(tokenizer, t.id).token, t.logprob]))),
    text_offset: offsets,
  };
}
