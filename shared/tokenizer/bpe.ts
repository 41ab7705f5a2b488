/**
 * tiktoken-style byte-level BPE: pre-tokenize with a regex, then merge each chunk's bytes by rank.
 *
 * Pure TS (no fs, no Buffer): the edge worker (workerd) and the GPU node (Node) run this same file,
 * so the prompt tokens the edge bills are exactly the tokens the node runs.
 *
 * Byte strings are held as "latin1 strings" (one char per byte, code 0..255): `atob` produces them
 * directly from the base64 in `tiktoken.model`, V8 slices and hashes them cheaply, and a Map keyed
 * by them is far faster than tiktoken-js's `bytes.join(',')` keys.
 */
import { bytePairEncode } from './merge.ts';

/** One special token: a whole-id marker such as `<|im_end|>` that plain text can never produce. */
export interface SpecialToken {
  id: number;
  content: string;
}

/** A pre-tokenizer regex (JS syntax). K2 needs the `v` flag (set subtraction), cl100k needs `u`. */
export interface SplitPattern {
  source: string;
  flags: string;
}

export interface TokenizerSpec {
  /** latin1 byte string → rank (= token id). */
  ranks: Map<string, number>;
  specials: SpecialToken[];
  pattern: SplitPattern;
}

export interface EncodeOptions {
  /**
   * true: the literal text of a special token (e.g. "<|im_end|>") becomes its id. Only for trusted
   * template text; user content must always go through the default (false), so a user typing a
   * marker gets ordinary tokens and cannot forge a turn boundary.
   */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop special ids instead of rendering their content. */
  skipSpecial?: boolean;
  /** With skipSpecial: these special tokens (by content) are still rendered, e.g. the output markers. */
  keepSpecial?: ReadonlySet<string>;
}

/** Per-chunk cache bound: the same words recur constantly in chat prompts; past this we start over. */
const CHUNK_CACHE_LIMIT = 50_000;
/** Long chunks (a pasted blob) rarely recur; caching them would only pin memory. */
const CACHED_CHUNK_MAX_CHARS = 64;

/** Parse `tiktoken.model`: lines `base64(token bytes) rank`. */
export function parseTiktokenModel(text: string): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const space = line.indexOf(' ');
    if (space < 0) throw new Error(`tiktoken.model: malformed line "${line.slice(0, 40)}"`);
    ranks.set(atob(line.slice(0, space)), Number.parseInt(line.slice(space + 1), 10));
  }
  return ranks;
}

/** The inverse of `parseTiktokenModel`, ordered by rank. */
export function formatTiktokenModel(ranks: Map<string, number>): string {
  const entries = [...ranks].sort((a, b) => a[1] - b[1]);
  let out = '';
  for (const [bytes, rank] of entries) out += `${btoa(bytes)} ${rank}\n`;
  return out;
}

const utf8 = new TextEncoder();

/** UTF-8 bytes of `text` as a latin1 string. */
export function utf8Latin1(text: string): string {
  // Fast path: pure ASCII is already its own byte string (the common case for English and code).
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return text;
  const bytes = utf8.encode(text);
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');
}

export class Tokenizer {
  /** One past the largest id (ranks and specials together): the model's vocab_size. */
  readonly vocabSize: number;
  readonly specials: readonly SpecialToken[];
  readonly pattern: SplitPattern;

  #ranks: Map<string, number>;
  #idBytes: (string | undefined)[] = [];
  #specialById = new Map<number, string>();
  #specialByContent = new Map<string, number>();
  #specialRegex: RegExp | null;
  #splitRegex: RegExp;
  #chunkCache = new Map<string, readonly number[]>();

  constructor(spec: TokenizerSpec) {
    this.#ranks = spec.ranks;
    this.specials = spec.specials;
    this.pattern = spec.pattern;
    const flags = spec.pattern.flags.includes('g') ? spec.pattern.flags : spec.pattern.flags + 'g';
    this.#splitRegex = new RegExp(spec.pattern.source, flags);
    let maxId = -1;
    for (const [bytes, rank] of spec.ranks) {
      this.#idBytes[rank] = bytes;
      if (rank > maxId) maxId = rank;
    }
    for (const s of spec.specials) {
      if (this.#idBytes[s.id] !== undefined) throw new Error(`special token ${s.content} reuses rank ${s.id}`);
      this.#specialById.set(s.id, s.content);
      this.#specialByContent.set(s.content, s.id);
      if (s.id > maxId) maxId = s.id;
    }
    this.vocabSize = maxId + 1;
    // Longest first, so a special that is a prefix of another never wins the alternation.
    const contents = spec.specials.map((s) => s.content).sort((a, b) => b.length - a.length);
    this.#specialRegex = contents.length ? new RegExp(contents.map(escapeRegex).join('|'), 'g') : null;
  }

  /** Id of a special token by its content; throws if this vocabulary lacks it. */
  specialId(content: string): number {
    const id = this.#specialByContent.get(content);
    if (id === undefined) throw new Error(`tokenizer has no special token ${content}`);
    return id;
  }

  /** An ordinary token's bytes, one char per byte (latin1); undefined for special and unused ids. */
  tokenBytes(id: number): string | undefined {
    return this.#idBytes[id];
  }

  isSpecial(id: number): boolean {
    return this.#specialById.has(id);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (!options.allowSpecial || this.#specialRegex === null) {
      this.#encodeOrdinary(text, out);
      return out;
    }
    const re = this.#specialRegex;
    re.lastIndex = 0;
    let start = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      this.#encodeOrdinary(text.slice(start, m.index), out);
      out.push(this.#specialByContent.get(m[0])!);
      start = m.index + m[0].length;
    }
    this.#encodeOrdinary(text.slice(start), out);
    return out;
  }

  /** The chunks the pre-tokenizer regex cuts `text` into (BPE never merges across them). */
  preTokenize(text: string): string[] {
    const chunks: string[] = [];
    const re = this.#splitRegex;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) re.lastIndex++; // a pattern that can match empty must still advance
      else chunks.push(m[0]);
    }
    return chunks;
  }

  /** Raw bytes of the ids; special ids become their content's UTF-8 unless skipped. */
  decodeBytes(ids: ArrayLike<number>, options: DecodeOptions = {}): Uint8Array {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += this.#bytesOf(ids[i], options);
    return latin1Bytes(s);
  }

  /** Whole-sequence decode; invalid UTF-8 (a sequence cut mid-character) becomes U+FFFD. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    return new TextDecoder().decode(this.decodeBytes(ids, options));
  }

  /**
   * Streaming decode for token-by-token output: a multi-byte character split across tokens is held
   * back until its last byte arrives, so no delta ever contains half a character or a stray U+FFFD.
   */
  createDecoder(options: DecodeOptions = {}): IncrementalDecoder {
    return new IncrementalDecoder((id) => this.#bytesOf(id, options));
  }

  #bytesOf(id: number, options: DecodeOptions): string {
    const bytes = this.#idBytes[id];
    if (bytes !== undefined) return bytes;
    const special = this.#specialById.get(id);
    if (special === undefined) throw new RangeError(`token id ${id} is not in the vocabulary`);
    return options.skipSpecial && !options.keepSpecial?.has(special) ? '' : utf8Latin1(special);
  }

  #encodeOrdinary(text: string, out: number[]): void {
    if (text.length === 0) return;
    for (const chunk of this.preTokenize(text)) {
      const cached = this.#chunkCache.get(chunk);
      if (cached !== undefined) {
        for (const id of cached) out.push(id);
        continue;
      }
      const bytes = utf8Latin1(chunk);
      const whole = this.#ranks.get(bytes);
      const ids = whole !== undefined ? [whole] : bytePairEncode(bytes, this.#ranks);
      if (chunk.length <= CACHED_CHUNK_MAX_CHARS) {
        if (this.#chunkCache.size >= CHUNK_CACHE_LIMIT) this.#chunkCache.clear();
        this.#chunkCache.set(chunk, ids);
      }
      for (const id of ids) out.push(id);
    }
  }
}

/** Holds back an incomplete UTF-8 tail between pushes (TextDecoder's `stream` mode does the bookkeeping). */
export class IncrementalDecoder {
  #bytesOf: (id: number) => string;
  #decoder = new TextDecoder('utf-8');

  constructor(bytesOf: (id: number) => string) {
    this.#bytesOf = bytesOf;
  }

  /** Text completed by these ids ('' while a character is still incomplete). */
  push(...ids: number[]): string {
    let s = '';
    for (const id of ids) s += this.#bytesOf(id);
    return this.#decoder.decode(latin1Bytes(s), { stream: true });
  }

  /** End of stream: whatever is still held back (an unfinished character becomes U+FFFD). */
  flush(): string {
    return this.#decoder.decode();
  }
}
