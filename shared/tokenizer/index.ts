/** The tokenizer and K2 chat format, shared by the edge (workerd) and the GPU node (Node). */
export { Tokenizer, IncrementalDecoder, parseTiktokenModel, formatTiktokenModel } from './bpe.ts';
export type { SpecialToken, SplitPattern, TokenizerSpec, EncodeOptions, DecodeOptions } from './bpe.ts';
export * from './k2-specials.ts';
export { k2TinyTokenizer, k2TinyTokenizerSpec, k2TinyTokenizerFiles, k2TinySpecialTokens, tokenizerConfigFor, CL100K_PATTERN, K2_TINY_FIRST_SPECIAL_ID, K2_TINY_VOCAB_SIZE } from './k2-tiny.ts';
export type { TokenizerFiles, TokenizerConfigJson, AddedToken } from './k2-tiny.ts';
export { renderChat, renderChatSegments, renderChatText, chatStopTokenIds, contentText, K2_DEFAULT_SYSTEM_PROMPT, continuesFinalMessage } from './chat-template.ts';
export type { ChatMessage, ChatTool, ChatToolCall, ChatContent, RenderOptions, PromptSegment } from './chat-template.ts';
export { OutputParser, OutputAccumulator, OUTPUT_MARKERS, parseOutput, toolNameFromId, openAIChunkDelta } from './output-parser.ts';
export type { OutputDelta, ParsedOutput, ParsedToolCall, ParserOptions, OpenAIChunkDelta } from './output-parser.ts';
export { countChatPromptTokens, countTextTokens } from './count.ts';
