import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest, NodeEvent, SamplingParams } from '../../../shared/protocol.ts';
import { ReferenceKernels } from '../kernels/reference.ts';
import { ensureModel } from '../model/make-model.ts';
import type { Engine } from './engine.ts';
import { loadEngine, type LoadEngineOptions } from './load-engine.ts';

// The real k2-tiny model (generated once into models/k2-tiny, reused when its config hash matches) on
// the reference kernels. Prompts and max_tokens are short because reference decode steps cost ~0.1 s.
const MODEL_DIR = fileURLToPath(new URL('../../../models/k2-tiny', import.meta.url));

function load(opts: Partial<LoadEngineOptions> = {}): Promise<Engine> {
  return loadEngine(MODEL_DIR, { kernels: new ReferenceKernels(), modelId: 'k2-tiny', log: () => {}, ...opts });
}

let nextId = 0;
function body(prompt: number[], sampling: Partial<SamplingParams> = {}, salt?: string): GenerateRequest {
  return {
    version: 1,
    request_id: `t${nextId++}`,
    model: 'k2-tiny',
    prompt_token_ids: prompt,
    sampling: { max_tokens: 4, temperature: 0, top_p: 1, stop_token_ids: [], stop: [], ...sampling },
    cache_salt: salt,
  };
}

interface Result {
  events: NodeEvent[];
  ids: number[];
  text: string;
  start: Extract<NodeEvent, { type: 'start' }>;
  end: Extract<NodeEvent, { type: 'finish' | 'error' }>;
}

/** Submits and resolves with every event once the terminal one arrives; onEvent may act mid-stream. */
function generate(engine: Engine, b: GenerateRequest, onEvent: (e: NodeEvent) => void = () => {}): Promise<Result> {
  return new Promise((resolve) => {
    const events: NodeEvent[] = [];
    engine.submit(b, (e) => {
      events.push(e);
      onEvent(e);
      if (e.type !== 'finish' && e.type !== 'error') return;
      const tokens = events.filter((x) => x.type === 'tokens');
      resolve({
        events,
        ids: tokens.flatMap((x) => x.token_ids),
        text: tokens.map((x) => x.text).join(''),
        start: events[0] as Result['start'],
        end: e,
      });
    });
  });
}

/** Protocol order: one start, tokens, exactly one terminal event last. */
function expectWellFormed(r: Result): void {
  expect(r.events[0].type).toBe('start');
  expect(r.events.slice(1, -1).every((e) => e.type === 'tokens')).toBe(true);
  expect(r.end.usage.completion_tokens).toBe(r.ids.length);
  expect(r.end.usage.prompt_tokens).toBe(r.start.prompt_tokens);
}

function expectAllBlocksBack(engine: Engine): void {
  const load = engine.load();
  expect(load.running).toBe(0);
  expect(load.queue_depth).toBe(0);
  expect(load.kv_blocks_free).toBe(load.kv_blocks_total);
}

const prompts = [
  [9906, 11, 1917, 0, 358],
  Array.from({ length: 23 }, (_, i) => 200 + 37 * i),
  Array.from({ length: 41 }, (_, i) => 5000 + 11 * i),
  [100256, 100266, 9125, 100273, 7, 8, 9, 100258, 100259],
];

describe('Engine on k2-tiny', () => {
  let alone: Result[];

  beforeAll(async () => {
    ensureModel(MODEL_DIR, 'k2-tiny');
    // Each prompt alone, one after another, on its own engine: the reference outputs.
    const engine = await load({ enablePrefixCaching: false });
    alone = [];
    for (const p of prompts) alone.push(await generate(engine, body(p, { max_tokens: 5 })));
  });

  it('concurrent streams with chunked prefill give the same greedy tokens as each alone', async () => {
    for (const r of alone) {
      expectWellFormed(r);
      expect(r.end).toMatchObject({ type: 'finish', finish_reason: 'length' });
      expect(r.ids).toHaveLength(5);
    }
    // 16 tokens per step: the 41-token prompt prefills over three steps while the others decode.
    const engine = await load({ maxTokensPerStep: 16, maxBatch: 8 });
    const together = await Promise.all(prompts.map((p) => generate(engine, body(p, { max_tokens: 5 }))));
    expect(together.map((r) => r.ids)).toEqual(alone.map((r) => r.ids));
    expect(together.map((r) => r.text)).toEqual(alone.map((r) => r.text));
    expect(engine.stats.steps).toBeGreaterThan(5);
    expectAllBlocksBack(engine);
  });

  it("streams a newcomer tenant's first token before the running batch's next one, with the tokens each gets alone", async () => {
    const engine = await load({ maxBatch: 8 });
    const order: string[] = [];
    const log = (name: string) => (e: NodeEvent) => {
      if (e.type === 'tokens') order.push(name);
    };
    let newcomer: Promise<Result> | undefined;
    // B arrives while A's two sequences decode: submitted from A's first token, so it waits for the next step.
    const a1 = generate(engine, { ...body(prompts[1], { max_tokens: 5 }), tenant: 'A' }, log('a1'));
    const a0 = generate(engine, { ...body(prompts[0], { max_tokens: 5 }), tenant: 'A' }, (e) => {
      log('a0')(e);
      if (e.type === 'tokens' && !newcomer) newcomer = generate(engine, { ...body(prompts[2], { max_tokens: 5 }), tenant: 'B' }, log('b'));
    });
    const [r1, r0] = await Promise.all([a1, a0]);
    const rb = await newcomer!;
    // Step 1: A's prefills; step 2: B's prefill alone; step 3: everyone's decode.
    expect(order.slice(0, 6)).toEqual(['a1', 'a0', 'b', 'a1', 'a0', 'b']);
    expect([r1.ids, r0.ids, rb.ids]).toEqual([alone[1].ids, alone[0].ids, alone[2].ids]);
    expectAllBlocksBack(engine);
  });

  it('preempts under KV pressure and recomputes to the same tokens', async () => {
    // 12 blocks of 4 tokens: enough for the longest request alone (46 tokens), not for all at once.
    // Admitted in this order, prompts 1, 0 and 3 take 11 blocks; their decodes then need 14.
    const engine = await load({ kvBlocks: 12, blockSize: 4, maxTokensPerStep: 64 });
    const order = [1, 0, 3, 2];
    const together = await Promise.all(order.map((i) => generate(engine, body(prompts[i], { max_tokens: 5 }))));
    expect(engine.stats.preemptions).toBeGreaterThan(0);
    expect(together.map((r) => r.ids)).toEqual(order.map((i) => alone[i].ids));
    for (const r of together) expectWellFormed(r);
    expectAllBlocksBack(engine);
  });

  it('a sequence whose logits go bad fails alone; its batch-mates finish with the tokens they get alone', async () => {
    // Fault injection on the real engine: from its third token on, one request's logits row gets a NaN,
    // another's a +Infinity, a third's every logit is -Infinity (nothing can be sampled).
    const poison = new Map<string, (row: Float32Array) => void>();
    const seen = new Map<string, number>();
    const engine = await load({
      maxBatch: 8,
      logitsHook: (id, row) => {
        const n = (seen.get(id) ?? 0) + 1;
        seen.set(id, n);
        if (n >= 3) poison.get(id)?.(row);
      },
    });
    const bad = [body(prompts[0], { max_tokens: 5 }), body(prompts[1], { max_tokens: 5, temperature: 0.7, seed: 1 }), body(prompts[3], { max_tokens: 5 })];
    poison.set(bad[0].request_id, (row) => void (row[17] = NaN));
    poison.set(bad[1].request_id, (row) => void (row[3] = Infinity));
    poison.set(bad[2].request_id, (row) => row.fill(-Infinity));
    const good = [body(prompts[2], { max_tokens: 5 }), body(prompts[1], { max_tokens: 5 })];
    const [b0, b1, b2, g2, g1] = await Promise.all([...bad, ...good].map((b) => generate(engine, b)));
    for (const r of [b0, b1, b2]) {
      expectWellFormed(r);
      expect(r.end).toMatchObject({ type: 'error', code: 'internal_error' });
      // Two tokens were streamed before the fault: usage bills those and nothing more.
      expect(r.end.usage.completion_tokens).toBe(2);
    }
    expect((b0.end as { message: string }).message).toMatch(/NaN/);
    expect((b2.end as { message: string }).message).toMatch(/every logit is -Infinity/);
    expect(b0.ids).toEqual(alone[0].ids.slice(0, 2));
    expect(g2.ids).toEqual(alone[2].ids);
    expect(g1.ids).toEqual(alone[1].ids);
    for (const r of [g1, g2]) expect(r.end).toMatchObject({ type: 'finish', finish_reason: 'length' });
    expectAllBlocksBack(engine);
  });

  describe('on one engine', () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await load({ maxBatch: 16, maxTokensPerStep: 128 });
    });

    it('serves a repeated long prompt from the prefix cache and skips that prefill', async () => {
      const prompt = Array.from({ length: 100 }, (_, i) => 3000 + ((i * 7919) % 5000));
      const rowsBefore = engine.stats.promptRowsComputed;
      const first = await generate(engine, body(prompt, { max_tokens: 3 }, 'org-a'));
      expect(first.start.cached_tokens).toBe(0);
      expect(engine.stats.promptRowsComputed - rowsBefore).toBe(100);

      const rowsMid = engine.stats.promptRowsComputed;
      const again = await generate(engine, body(prompt, { max_tokens: 3 }, 'org-a'));
      // 6 full blocks of 16 hit; the last token is always recomputed, so 100 → 96 cached, 4 computed.
      expect(again.start.cached_tokens).toBe(96);
      expect(again.end.usage).toEqual({ prompt_tokens: 100, cached_tokens: 96, completion_tokens: 3 });
      expect(engine.stats.promptRowsComputed - rowsMid).toBe(4);
      expect(again.ids).toEqual(first.ids);

      const otherTenant = await generate(engine, body(prompt, { max_tokens: 1 }, 'org-b'));
      expect(otherTenant.start.cached_tokens).toBe(0);
      expect(engine.load().cached_blocks).toBeGreaterThanOrEqual(12);
      expectAllBlocksBack(engine);
    });

    it('cancellation frees the sequence at the next step and bills exactly what was streamed', async () => {
      const b = body(prompts[1], { max_tokens: 500 });
      let seen = 0;
      const r = await generate(engine, b, (e) => {
        if (e.type === 'tokens' && ++seen === 3) expect(engine.cancel(b.request_id)).toBe(true);
      });
      expect(r.end).toMatchObject({ type: 'finish', finish_reason: 'cancelled' });
      expect(r.ids).toHaveLength(3);
      expect(r.ids).toEqual(alone[1].ids.slice(0, 3));
      expectWellFormed(r);
      expect(engine.cancel(b.request_id)).toBe(false);
      expectAllBlocksBack(engine);
    });

    it('samples reproducibly per seed, alone or batched with others', async () => {
      const seeded = (seed: number) => body(prompts[0], { max_tokens: 4, temperature: 0.9, top_p: 0.95, seed });
      const first = await generate(engine, seeded(7));
      const [again, other] = await Promise.all([generate(engine, seeded(7)), generate(engine, seeded(8)), generate(engine, body(prompts[3]))]);
      expect(again.ids).toEqual(first.ids);
      expect(other.ids).toHaveLength(4);
    });

    it('stops on stop ids and stop strings', async () => {
      const ref = alone[2];
      const byId = await generate(engine, body(prompts[2], { max_tokens: 5, stop_token_ids: [ref.ids[2]] }));
      expect(byId.end).toMatchObject({ finish_reason: 'stop' });
      expect(byId.ids).toEqual(ref.ids.slice(0, 3)); // the stop id is streamed (and billed), its text is not
      const stopText = ref.text.slice(ref.text.length - 3);
      const byText = await generate(engine, body(prompts[2], { max_tokens: 5, stop: [stopText] }));
      expect(byText.end).toMatchObject({ finish_reason: 'stop' });
      expect(byText.text).toBe(ref.text.slice(0, ref.text.indexOf(stopText)));
    });

    it('min_tokens holds off a stop id; logit_bias forces a token; an id outside the vocabulary is refused', async () => {
      const ref = alone[2];
      const stopAtFirst = await generate(engine, body(prompts[2], { max_tokens: 3, stop_token_ids: [ref.ids[0]] }));
      expect(stopAtFirst.ids).toEqual([ref.ids[0]]);
      const held = await generate(engine, body(prompts[2], { max_tokens: 3, stop_token_ids: [ref.ids[0]], min_tokens: 2 }));
      expect(held.ids.slice(0, 2)).not.toContain(ref.ids[0]);
      expect(held.ids.length).toBeGreaterThanOrEqual(2);
      const forced = await generate(engine, body(prompts[2], { max_tokens: 3, logit_bias: { '42': 100 } }));
      expect(forced.ids).toEqual([42, 42, 42]);
      await expect(engine.submit(body(prompts[2], { logit_bias: { '999999999': 1 } }), () => {})).rejects.toThrow(/logit_bias/);
    });

    it('n choices: the prompt is prefilled once and shared, each choice samples as its own seeded sequence, usage counts the prompt once', async () => {
      const prompt = prompts[2]; // 41 tokens: two full blocks of 16 are shared, the 9-token tail is recomputed per choice
      const rowsBefore = engine.stats.promptRowsComputed;
      const r = await generate(engine, body(prompt, { max_tokens: 4, temperature: 1, seed: 5, n: 3 }, 'org-n'));
      expect(engine.stats.promptRowsComputed - rowsBefore).toBe(41 + 2 * 9);
      expect(r.events.filter((e) => e.type === 'start')).toHaveLength(1);
      const byChoice = [0, 1, 2].map((i) => r.events.flatMap((e) => (e.type === 'tokens' && (e.index ?? 0) === i ? e.token_ids : [])));
      for (const ids of byChoice) expect(ids).toHaveLength(4);
      expect(r.end).toMatchObject({ type: 'finish', finish_reason: 'length', finish_reasons: ['length', 'length', 'length'] });
      expect(r.end.usage).toEqual({ prompt_tokens: 41, cached_tokens: 0, completion_tokens: 12 });
      // Choice i is the sequence a single request with seed 5 + i gets.
      for (const i of [0, 1, 2]) expect((await generate(engine, body(prompt, { max_tokens: 4, temperature: 1, seed: 5 + i }, 'org-n'))).ids).toEqual(byChoice[i]);
      expectAllBlocksBack(engine);
    });

    it('n choices: cancelling the request ends every choice once, billing what each streamed', async () => {
      const b = body(prompts[1], { max_tokens: 200, n: 2 });
      let seen = 0;
      const r = await generate(engine, b, (e) => {
        if (e.type === 'tokens' && ++seen === 5) expect(engine.cancel(b.request_id)).toBe(true);
      });
      expect(r.end).toMatchObject({ type: 'finish', finish_reason: 'cancelled' });
      expect(r.end.usage.completion_tokens).toBe(r.ids.length);
      expect(r.events.filter((e) => e.type === 'finish' || e.type === 'error')).toHaveLength(1);
      expect(engine.cancel(b.request_id)).toBe(false);
      expectAllBlocksBack(engine);
    });

    it('returns every block after many short requests, some cancelled while queued or running', async () => {
      const shared = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56]];
      const runs: Promise<Result>[] = [];
      for (let i = 0; i < 32; i++) {
        const b = body([...shared[i % 2], 100 + i], { max_tokens: 1 + (i % 2) });
        runs.push(generate(engine, b));
        if (i % 7 === 3) engine.cancel(b.request_id);
      }
      const results = await Promise.all(runs);
      for (const r of results) expectWellFormed(r);
      expect(results.filter((r) => r.end.type === 'finish' && r.end.finish_reason === 'cancelled').length).toBe(5);
      // Requests admitted in a later step than the first of their prefix reuse its first block (those
      // prefilled in the same step cannot: the block is cached once computed).
      expect(results.filter((r) => r.start.cached_tokens === 16).length).toBeGreaterThan(10);
      expectAllBlocksBack(engine);
    });
  });
});
