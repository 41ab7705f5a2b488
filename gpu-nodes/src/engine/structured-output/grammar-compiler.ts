/**
 * Structured outputs (OpenAI's `response_format`) by grammar-constrained decoding, with xgrammar:
 * a request's format is compiled once into a token-level grammar (cached per schema), and each
 * request gets its own matcher, which says before every step which tokens may come next and advances
 * by the token that was sampled. The sampler masks every other token, so the output is valid JSON for
 * the schema by construction, whatever the weights (vLLM's `structured_output` manager, in small).
 *
 * Output JSON is compact (no whitespace between elements, `,` and `:` separators): a model is never
 * allowed to spend its max_tokens on indentation, and the answer is what `JSON.stringify` would print.
 */
import type { ResponseFormat, ToolCallConstraint } from '../../../../shared/protocol.ts';
import { ToolCallGrammar } from './tool-call-grammar.ts';
import type { Tokenizer } from '../../../../shared/tokenizer/bpe.ts';
import { xgrammar } from './xgrammar.ts';

import type { CompiledGrammar, GrammarCompiler as Compiler, GrammarMatcher as Matcher } from '@mlc-ai/web-xgrammar';

/** Compiled grammars kept; a new schema past this evicts the least recently used one. */
const CACHE_ENTRIES = 64;

/** The format cannot be compiled into a grammar (bad JSON schema, unsupported keyword). */
export class InvalidResponseFormat extends Error {
  override readonly name = 'InvalidResponseFormat';
}

/** One request's grammar state: the allowed-token bitmask before each step, advanced by each sampled token. */
export interface GrammarState {
  /** Bit i of word i >> 5 is set when token i may come next; length ceil(vocab / 32). */
  nextTokenBitmask(): Promise<Int32Array>;
  /** Advances by a sampled token; false when the grammar did not allow it (the mask was not applied). */
  accept(tokenId: number): boolean;
  dispose(): void;
}

export class GrammarCompiler {
  private readonly tokenizer: Tokenizer;
  private readonly vocabSize: number;
  private compiler: Promise<Compiler> | undefined;
  /** Key: the canonical format (see keyOf) → its compiled grammar; Map order is recency. */
  private readonly cache = new Map<string, Promise<CompiledGrammar>>();

  /** `vocabSize` is the model's logits width, which may exceed the tokenizer's (padding rows). */
  constructor(tokenizer: Tokenizer, vocabSize: number) {
    this.tokenizer = tokenizer;
    this.vocabSize = vocabSize;
  }

  /**
   * A fresh matcher for `format`; the grammar ends with one of `stopTokenIds` (the request's own stop
   * ids: after the JSON is complete only they are allowed, so generation finishes as "stop").
   * Throws InvalidResponseFormat when the format cannot be compiled.
   */
  async matcher(format: Exclude<ResponseFormat, { type: 'text' }>, stopTokenIds: readonly number[]): Promise<GrammarState> {
    if (stopTokenIds.length === 0) throw new InvalidResponseFormat('response_format needs at least one stop token id to end the JSON with');
    const { key, schema, strict } = keyOf(format);
    return this.matcherOf(await this.compiled(key, (c) => c.compileJSONSchema(schema, false, -1, [',', ':'], strict)), stopTokenIds);
  }

  /** The phase machine enforcing tool_choice / parallel_tool_calls on K2's tool-call markers. */
  async toolCalls(spec: ToolCallConstraint, stopTokenIds: readonly number[]): Promise<GrammarState> {
    if (stopTokenIds.length === 0) throw new InvalidResponseFormat('tool_choice needs at least one stop token id to end the tool calls with');
    if (spec.functions.length === 0) throw new InvalidResponseFormat('tool_choice needs at least one function in tools');
    return ToolCallGrammar.create(
      {
        vocabSize: this.vocabSize,
        specialId: (content) => this.tokenizer.specialId(content),
        decode: (ids) => this.tokenizer.decode(ids),
        ebnfMatcher: async (grammar, stopId) => this.matcherOf(await this.compiled(`ebnf:${grammar}`, (c) => c.compileGrammar(grammar)), [stopId]),
        jsonMatcher: async (schema, stopId) => {
          const text = schema === undefined ? '{"type":"object"}' : JSON.stringify(schema);
          return this.matcherOf(await this.compiled(`open:${text}`, (c) => c.compileJSONSchema(text, false, -1, [',', ':'], false)), [stopId]);
        },
      },
      spec,
      stopTokenIds,
    );
  }

  private async matcherOf(grammar: CompiledGrammar, stopTokenIds: readonly number[]): Promise<GrammarState> {
    const matcher: Matcher = await xgrammar().GrammarMatcher.createGrammarMatcher(grammar, [...stopTokenIds]);
    return {
      nextTokenBitmask: () => matcher.getNextTokenBitmask(),
      accept: (id) => matcher.acceptToken(id),
      dispose: () => matcher.dispose(),
    };
  }

  private compiled(key: string, compile: (c: Compiler) => Promise<CompiledGrammar>): Promise<CompiledGrammar> {
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const compiling = this.compile(compile);
    // A failed compile is not cached: the next request with the same schema gets the same error anew.
    compiling.catch(() => this.cache.delete(key));
    this.cache.set(key, compiling);
    if (this.cache.size > CACHE_ENTRIES) {
      const [oldest, evicted] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      // Matchers made from it hold their own reference to the grammar; only the cache's handle goes.
      evicted.then((g) => g.dispose(), () => {});
    }
    return compiling;
  }

  private async compile(compile: (c: Compiler) => Promise<CompiledGrammar>): Promise<CompiledGrammar> {
    const compiler = await this.compilerOnce();
    try {
      return await compile(compiler);
    } catch (err) {
      // xgrammar aborts the call on a schema it cannot convert and prints its reason ("[FATAL] ...
      // Unsupported type") to stderr from inside the WASM module; the thrown error carries only "Aborted()".
      throw new InvalidResponseFormat(
        `this JSON schema cannot be enforced (an unknown type, an unsupported keyword or a $ref that does not resolve): ${String(err)}`,
      );
    }
  }

  /** The vocabulary goes to xgrammar once per process (about 0.25 s for 100k tokens), on first use. */
  private compilerOnce(): Promise<Compiler> {
    this.compiler ??= (async () => {
      const xg = xgrammar();
      const info = await xg.TokenizerInfo.createTokenizerInfo(byteLevelVocab(this.tokenizer, this.vocabSize), 'byte_level', false, this.vocabSize);
      return xg.GrammarCompiler.createGrammarCompiler(info);
    })();
    return this.compiler;
  }
}

/**
 * The canonical form of a format, and what to compile: json_object (or a json_schema without a schema)
 * is "any JSON object"; strict: true forbids properties and items the schema does not name, as
 * OpenAI's strict mode does, otherwise JSON Schema's open default holds.
 */
function keyOf(format: Exclude<ResponseFormat, { type: 'text' }>): { key: string; schema: string; strict: boolean } {
  const schema = format.type === 'json_schema' && format.json_schema.schema !== undefined ? JSON.stringify(format.json_schema.schema) : '{"type":"object"}';
  const strict = format.type === 'json_schema' && format.json_schema.strict === true;
  return { key: `${strict ? 'strict' : 'open'}:${schema}`, schema, strict };
}

/**
 * The vocabulary as xgrammar's "byte_level" type expects it: each token's bytes spelled with GPT-2's
 * byte-to-unicode table (printable bytes stand for themselves, the rest map to U+0100 onwards), so
 * tokens that hold part of a UTF-8 character are handed over exactly. Special and unused ids are ''
 * (xgrammar treats empty tokens as special: never allowed inside the grammar; stop ids are passed apart).
 */
export function byteLevelVocab(tokenizer: Tokenizer, vocabSize: number): string[] {
  const vocab = new Array<string>(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    const bytes = tokenizer.tokenBytes(id);
    if (bytes === undefined) {
      vocab[id] = '';
      continue;
    }
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += BYTE_TO_UNICODE[bytes.charCodeAt(i)];
    vocab[id] = s;
  }
  return vocab;
}

/** GPT-2's bytes_to_unicode: bytes 33–126, 161–172 and 174–255 are themselves; the others, in order, U+0100… */
const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    table.push(String.fromCharCode(printable ? b : next++));
  }
  return table;
})();
