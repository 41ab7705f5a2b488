/**
 * `tool_choice: "required"` / a named function and `parallel_tool_calls: false`, enforced on K2's
 * tool-call format (shared/K2-FACTS.md):
 *   <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}<|tool_call_end|>…<|tool_calls_section_end|>
 *
 * The markers are special tokens, which xgrammar never emits (they decode to nothing), so this is a
 * small phase machine around xgrammar: marker positions allow exactly the marker token; the function
 * name is an xgrammar grammar over the allowed names ending at <|tool_call_argument_begin|>; the
 * arguments are that function's JSON schema ending at <|tool_call_end|>; after the section ends only the
 * request's stop ids are allowed. With `required` false (tool_choice auto, parallel_tool_calls false)
 * the model writes freely until its first <|tool_call_end|>, after which the section must close.
 */
import type { ToolCallConstraint } from '../../../../shared/protocol.ts';
import type { GrammarState } from './grammar-compiler.ts';

/** What the phase machine needs from the grammar compiler. */
export interface ToolCallGrammarParts {
  vocabSize: number;
  /** Special token id by content. */
  specialId(content: string): number;
  /** A token's text (for reading the function name back). */
  decode(ids: number[]): string;
  /** A matcher for text matching the EBNF `grammar`, ended by `stopId`. */
  ebnfMatcher(grammar: string, stopId: number): Promise<GrammarState>;
  /** A matcher for JSON valid against `schema` (any object when absent), ended by `stopId`. */
  jsonMatcher(schema: Record<string, unknown> | undefined, stopId: number): Promise<GrammarState>;
}

type Phase =
  | { kind: 'free' }
  | { kind: 'forced'; ids: number[]; after: () => Promise<Phase> | Phase }
  | { kind: 'name'; matcher: GrammarState; ids: number[] }
  | { kind: 'args'; matcher: GrammarState }
  | { kind: 'choose'; ids: number[] }
  | { kind: 'end' };

export class ToolCallGrammar implements GrammarState {
  private readonly parts: ToolCallGrammarParts;
  private readonly spec: ToolCallConstraint;
  private readonly stopIds: readonly number[];
  private readonly m: { sectionBegin: number; sectionEnd: number; callBegin: number; argBegin: number; callEnd: number };
  private phase: Phase;
  /** Set by accept() when the next phase needs an xgrammar matcher built first (async). */
  private pending: Promise<Phase> | undefined;
  /** Tool calls started so far; the next one's index. */
  private calls = 0;

  private constructor(parts: ToolCallGrammarParts, spec: ToolCallConstraint, stopIds: readonly number[]) {
    this.parts = parts;
    this.spec = spec;
    this.stopIds = stopIds;
    this.m = {
      sectionBegin: parts.specialId('<|tool_calls_section_begin|>'),
      sectionEnd: parts.specialId('<|tool_calls_section_end|>'),
      callBegin: parts.specialId('<|tool_call_begin|>'),
      argBegin: parts.specialId('<|tool_call_argument_begin|>'),
      callEnd: parts.specialId('<|tool_call_end|>'),
    };
    this.phase = spec.required ? { kind: 'forced', ids: [this.m.sectionBegin, this.m.callBegin], after: () => this.namePhase() } : { kind: 'free' };
  }

  static async create(parts: ToolCallGrammarParts, spec: ToolCallConstraint, stopIds: readonly number[]): Promise<ToolCallGrammar> {
    const g = new ToolCallGrammar(parts, spec, stopIds);
    // Compile the grammars now (cached afterwards), so a bad schema is refused before the request is queued.
    if (spec.required) {
      (await g.nameGrammar()).dispose();
      for (const f of spec.functions) (await parts.jsonMatcher(f.parameters, g.m.callEnd)).dispose();
    }
    return g;
  }

  async nextTokenBitmask(): Promise<Int32Array> {
    if (this.pending) {
      this.phase = await this.pending;
      this.pending = undefined;
    }
    const p = this.phase;
    switch (p.kind) {
      case 'free':
        return this.only(null);
      case 'forced':
        return this.only([p.ids[0]]);
      case 'name':
      case 'args':
        return p.matcher.nextTokenBitmask();
      case 'choose':
        return this.only(p.ids);
      case 'end':
        return this.only(this.stopIds);
    }
  }

  accept(id: number): boolean {
    const p = this.phase;
    switch (p.kind) {
      case 'free':
        if (id === this.m.callEnd && !this.spec.parallel) this.phase = { kind: 'forced', ids: [this.m.sectionEnd], after: () => ({ kind: 'end' }) };
        return true;
      case 'forced': {
        if (id !== p.ids[0]) return false;
        const rest = p.ids.slice(1);
        if (rest.length > 0) this.phase = { ...p, ids: rest };
        else this.advance(p.after());
        return true;
      }
      case 'name':
        if (!p.matcher.accept(id)) return false;
        if (id !== this.m.argBegin) {
          p.ids.push(id);
          return true;
        }
        p.matcher.dispose();
        this.advance(this.argsPhase(this.parts.decode(p.ids)));
        return true;
      case 'args':
        if (!p.matcher.accept(id)) return false;
        if (id === this.m.callEnd) {
          p.matcher.dispose();
          this.phase = this.spec.parallel ? { kind: 'choose', ids: [this.m.callBegin, this.m.sectionEnd] } : { kind: 'forced', ids: [this.m.sectionEnd], after: () => ({ kind: 'end' }) };
        }
        return true;
      case 'choose':
        if (id === this.m.callBegin) this.advance(this.namePhase());
        else if (id === this.m.sectionEnd) this.phase = { kind: 'end' };
        else return false;
        return true;
      case 'end':
        return this.stopIds.includes(id);
    }
  }

  dispose(): void {
    if (this.phase.kind === 'name' || this.phase.kind === 'args') this.phase.matcher.dispose();
    this.pending?.then((p) => (p.kind === 'name' || p.kind === 'args') && p.matcher.dispose(), () => {});
  }

  private advance(next: Promise<Phase> | Phase): void {
    if (next instanceof Promise) this.pending = next;
    else this.phase = next;
  }

  /** `functions.NAME:IDX` with NAME one of the allowed functions and IDX this call's index (0, 1, ...). */
  private nameGrammar(index = 0): Promise<GrammarState> {
    const names = this.spec.functions.map((f) => JSON.stringify(f.name)).join(' | ');
    return this.parts.ebnfMatcher(`root ::= "functions." (${names}) ":${index}"`, this.m.argBegin);
  }

  private async namePhase(): Promise<Phase> {
    return { kind: 'name', matcher: await this.nameGrammar(this.calls++), ids: [] };
  }

  private async argsPhase(callText: string): Promise<Phase> {
    const name = /^functions\.(.*):\d+$/.exec(callText)?.[1];
    const fn = this.spec.functions.find((f) => f.name === name);
    if (!fn) throw new Error(`tool call named '${callText}' is not one of the allowed functions`);
    return { kind: 'args', matcher: await this.parts.jsonMatcher(fn.parameters, this.m.callEnd) };
  }

  /** A bitmask allowing exactly `ids` (all tokens when null). */
  private only(ids: readonly number[] | null): Int32Array {
    const words = Math.ceil(this.parts.vocabSize / 32);
    const mask = new Int32Array(words);
    if (ids === null) mask.fill(-1);
    else for (const id of ids) mask[id >> 5] |= 1 << (id & 31);
    return mask;
  }
}
