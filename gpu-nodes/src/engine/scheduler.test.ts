import { describe, expect, it } from 'vitest';
import type { SamplingParams } from '../../../shared/protocol.ts';
import { KvCacheManager } from './kv-cache-manager.ts';
import { rootHash } from './prefix-cache.ts';
import { EngineRequest } from './request.ts';
import { Scheduler, type SchedulerOutput } from './scheduler.ts';
import { buildStepBatch } from './step-batch.ts';

// These tests drive the real Scheduler and KvCacheManager step by step. Where the engine would run the
// model, they append a token derived from the position instead: the data structures under test only
// care how many tokens a request has, not which.

function sampling(maxTokens: number): SamplingParams {
  return { max_tokens: maxTokens, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] };
}

function request(id: string, prompt: number[], maxTokens: number, salt = '', tenant = ''): EngineRequest {
  return new EngineRequest(id, prompt, sampling(maxTokens), rootHash(`k2-tiny\0${salt}`), undefined, tenant);
}

function range(n: number, start = 0): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

/** One engine step without the model; finished requests are removed and returned. */
function step(s: Scheduler): { out: SchedulerOutput; finished: EngineRequest[] } {
  const out = s.schedule();
  s.updateFromOutput(out);
  const finished: EngineRequest[] = [];
  for (const { req, samples } of out.scheduled) {
    if (!samples || req.status !== 'running') continue;
    req.tokens.push(1000 + req.tokens.length);
    if (req.numOutputTokens >= req.sampling.max_tokens) {
      s.finish(req);
      finished.push(req);
    }
  }
  return { out, finished };
}

function runToCompletion(s: Scheduler, maxSteps = 1_000_000): SchedulerOutput[] {
  const outs: SchedulerOutput[] = [];
  while (s.hasWork()) {
    if (outs.length >= maxSteps) throw new Error('did not finish');
    const { out } = step(s);
    expect(out.scheduled.length).toBeGreaterThan(0);
    outs.push(out);
  }
  return outs;
}

describe('Scheduler', () => {
  it('chunks a long prefill so running decodes get a token every step', () => {
    const kv = new KvCacheManager({ numBlocks: 256, blockSize: 16 });
    const s = new Scheduler({ maxBatch: 8, maxTokensPerStep: 64 }, kv);
    const short = request('short', range(5), 50);
    s.add(short);
    step(s); // prefill of the short one
    const long = request('long', range(300, 10), 4);
    s.add(long);
    for (let i = 0; i < 5; i++) {
      const { out } = step(s);
      expect(out.numRows).toBeLessThanOrEqual(64);
      const mine = out.scheduled.find((x) => x.req === short);
      expect(mine?.numNewTokens).toBe(1); // the decode was not stalled
      const chunk = out.scheduled.find((x) => x.req === long);
      if (i < 4) expect(chunk?.numNewTokens).toBe(63);
    }
    expect(long.numComputedTokens).toBe(300); // 4 chunks of 63, then the last 48
    expect(long.numOutputTokens).toBe(1);
    runToCompletion(s);
    expect(kv.usage().free).toBe(256);
  });

  it('never runs more than maxBatch requests and admits FIFO', () => {
    const kv = new KvCacheManager({ numBlocks: 512, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 3, maxTokensPerStep: 1000, maxRunningPerTenant: 3 }, kv);
    const reqs = range(7).map((i) => request(`r${i}`, range(3, i * 10), 2));
    for (const r of reqs) s.add(r);
    const order: string[] = [];
    while (s.hasWork()) {
      const { out } = step(s);
      expect(out.scheduled.length).toBeLessThanOrEqual(3);
      for (const r of out.started) order.push(r.id);
    }
    expect(order).toEqual(reqs.map((r) => r.id));
  });

  it('serves a repeated prompt from the prefix cache, always recomputing the last token', () => {
    const kv = new KvCacheManager({ numBlocks: 64, blockSize: 16 });
    const s = new Scheduler({ maxBatch: 4, maxTokensPerStep: 512 }, kv);
    const prompt = range(64, 7); // exactly 4 full blocks
    const first = request('a', prompt, 3);
    s.add(first);
    runToCompletion(s);
    expect(first.numCachedTokens).toBe(0);

    const again = request('b', prompt, 3);
    s.add(again);
    const { out } = step(s);
    // All 4 blocks are cached, but the hit stops before the last token: 3 blocks, 48 tokens.
    expect(again.numCachedTokens).toBe(48);
    expect(out.scheduled[0].numNewTokens).toBe(16);
    runToCompletion(s);

    const longer = request('c', [...prompt, 1, 2, 3], 1);
    s.add(longer);
    step(s);
    expect(longer.numCachedTokens).toBe(64);

    const otherTenant = request('d', prompt, 1, 'org-2');
    s.add(otherTenant);
    step(s);
    expect(otherTenant.numCachedTokens).toBe(0);
    runToCompletion(s);
    expect(kv.usage().free).toBe(64);
  });

  it('preempts the newest request when blocks run out, and it still completes', () => {
    const kv = new KvCacheManager({ numBlocks: 8, blockSize: 4 }); // 32 token slots
    const s = new Scheduler({ maxBatch: 4, maxTokensPerStep: 64, maxRunningPerTenant: 4 }, kv);
    const reqs = range(3).map((i) => request(`p${i}`, range(6, 100 * i), 12)); // 18 tokens each at the end
    for (const r of reqs) s.add(r);
    const outs = runToCompletion(s);
    expect(outs.some((o) => o.preempted.length > 0)).toBe(true);
    for (const r of reqs) expect(r.numOutputTokens).toBe(12);
    expect(kv.usage().free).toBe(8);
  });

  it('returns every block after thousands of requests with shared prefixes, preemption and cancellation', () => {
    const kv = new KvCacheManager({ numBlocks: 48, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 16, maxTokensPerStep: 48 }, kv);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const systemPrompts = range(5).map((i) => range(12, i * 100));
    let submitted = 0;
    let done = 0;
    let steps = 0;
    const live: EngineRequest[] = [];
    while (done < 3000) {
      while (submitted < 3000 && s.waiting.length < 20) {
        const prompt = [...systemPrompts[rand(5)], ...range(1 + rand(10), 5000 + rand(50))];
        const tenant = `t${rand(3)}`;
        const r = request(`q${submitted++}`, prompt, 1 + rand(12), tenant, tenant);
        s.add(r);
        live.push(r);
      }
      // Cancel a few at random, the way the engine reaps them: finish() wherever they are.
      if (rand(10) === 0 && live.length > 0) {
        const victim = live[rand(live.length)];
        s.finish(victim);
        live.splice(live.indexOf(victim), 1);
        done++;
      }
      const { finished } = step(s);
      steps++;
      for (const r of finished) live.splice(live.indexOf(r), 1);
      done += finished.length;
    }
    expect(s.hasWork()).toBe(false);
    expect(s.totalPreemptions).toBeGreaterThan(0);
    const usage = kv.usage();
    expect(usage.free).toBe(48);
    expect(usage.cachedBlocks).toBeGreaterThan(0);
    expect(steps).toBeGreaterThan(1000);
  });
});

describe('Scheduler fairness between tenants', () => {
  it('admits a second tenant at the next step while one tenant has a backlog past the batch size', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 8, maxTokensPerStep: 1000 }, kv);
    expect(s.tenantCap).toBe(6); // two of eight slots stay out of one tenant's reach
    const aggressor = range(20).map((i) => request(`a${i}`, range(3, i * 10), 50, 'A', 'A'));
    for (const r of aggressor) s.add(r);
    step(s);
    expect(s.running.map((r) => r.id)).toEqual(aggressor.slice(0, 6).map((r) => r.id));
    expect(s.runningOf('A')).toBe(6);
    // A's sequences run for 50 tokens; B arrives behind 14 waiting A requests and still starts now.
    const victim = request('b0', range(3, 900), 1, 'B', 'B');
    s.add(victim);
    const { out } = step(s);
    expect(out.started.map((r) => r.id)).toEqual(['b0']);
  });

  it('gives each free slot to the tenant with the fewest running sequences, FIFO within a tenant', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 6, maxTokensPerStep: 1000, maxRunningPerTenant: 6 }, kv);
    // A floods first, then B and C arrive; in FIFO order A would take every slot.
    for (let i = 0; i < 6; i++) s.add(request(`a${i}`, range(3, i * 10), 2, 'A', 'A'));
    for (let i = 0; i < 3; i++) s.add(request(`b${i}`, range(3, 100 + i * 10), 2, 'B', 'B'));
    for (let i = 0; i < 3; i++) s.add(request(`c${i}`, range(3, 200 + i * 10), 2, 'C', 'C'));
    const { out } = step(s);
    // Round robin by running count, ties to the earliest-arrived head: a, b, c, a, b, c.
    expect(out.started.map((r) => r.id)).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1']);
    const order = [...out.started.map((r) => r.id)];
    while (s.hasWork()) order.push(...step(s).out.started.map((r) => r.id));
    expect(order.filter((id) => id.startsWith('a'))).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
    expect(kv.usage().free).toBe(1024);
  });

  it('never runs more than maxRunningPerTenant of one tenant, even with the batch otherwise empty', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 4, maxTokensPerStep: 1000, maxRunningPerTenant: 2 }, kv);
    for (let i = 0; i < 6; i++) s.add(request(`a${i}`, range(3, i * 10), 3, 'A', 'A'));
    while (s.hasWork()) {
      step(s);
      expect(s.runningOf('A')).toBeLessThanOrEqual(2);
    }
    expect(s.runningOf('A')).toBe(0);
  });

  it('keeps running counts exact through preemption and cancellation', () => {
    const kv = new KvCacheManager({ numBlocks: 10, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 6, maxTokensPerStep: 64 }, kv);
    const reqs = range(6).map((i) => request(`p${i}`, range(6, 100 * i), 10, `t${i % 2}`, `t${i % 2}`));
    for (const r of reqs) s.add(r);
    let preemptions = 0;
    for (let n = 0; s.hasWork(); n++) {
      const { out } = step(s);
      preemptions += out.preempted.length;
      if (n === 3) s.finish(s.running[0]); // a cancel, the way the engine reaps one
      for (const t of ['t0', 't1']) expect(s.runningOf(t)).toBe(s.running.filter((r) => r.tenant === t).length);
    }
    expect(preemptions).toBeGreaterThan(0);
    expect(kv.usage().free).toBe(10);
  });
});

describe('Scheduler: a newcomer tenant\'s prefill ahead of the running batch', () => {
  const ids = (out: SchedulerOutput) => out.scheduled.map((x) => x.req.id);

  /** Tenant A with `n` sequences decoding (prefilled, one token out). */
  function busy(s: Scheduler, n: number, maxTokens = 50): EngineRequest[] {
    const reqs = range(n).map((i) => request(`a${i}`, range(3, i * 10), maxTokens, 'A', 'A'));
    for (const r of reqs) s.add(r);
    step(s);
    for (const r of reqs) expect(r.numOutputTokens).toBe(1);
    return reqs;
  }

  it('runs the newcomer\'s prefill and first token in a step of its own, then the batch decodes', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 8, maxTokensPerStep: 1000 }, kv);
    const a = busy(s, 6);
    const b = request('b0', range(5, 900), 2, 'B', 'B');
    s.add(b);
    const { out } = step(s);
    expect(ids(out)).toEqual(['b0']);
    expect(out.scheduled[0]).toMatchObject({ numNewTokens: 5, samples: true });
    expect(out.started).toEqual([b]);
    expect(b.numOutputTokens).toBe(1);
    // The next step is the whole batch's decode, the newcomer's second token with it.
    const next = step(s).out;
    expect(ids(next)).toEqual([...a.map((r) => r.id), 'b0']);
    expect(next.scheduled.every((x) => x.numNewTokens === 1)).toBe(true);
  });

  it('never runs two prefill-only steps in a row, however many newcomers keep arriving', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 32, maxTokensPerStep: 1000 }, kv);
    const a = busy(s, 4, 100);
    const kinds: string[] = [];
    for (let i = 0; i < 8; i++) {
      s.add(request(`n${i}`, range(4, 500 + i * 10), 1, `N${i}`, `N${i}`)); // a new tenant before every step
      const { out } = step(s);
      const decodesA = out.scheduled.filter((x) => x.req.tenant === 'A').length;
      kinds.push(decodesA === 0 ? 'prefill' : 'decode');
      if (decodesA > 0) expect(decodesA).toBe(a.length);
    }
    // The newcomer that arrived before a decode step is admitted into it: it waits for nothing.
    expect(kinds).toEqual(['prefill', 'decode', 'prefill', 'decode', 'prefill', 'decode', 'prefill', 'decode']);
    expect(a[0].numOutputTokens).toBe(5);
    expect(s.waiting.length).toBe(0);
    expect(s.running).toEqual(a); // every newcomer got its one token and finished
  });

  it('takes every newcomer tenant together, but a tenant\'s second request waits for a mixed step', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 16, maxTokensPerStep: 1000 }, kv);
    busy(s, 4);
    s.add(request('b0', range(3, 600), 4, 'B', 'B'));
    s.add(request('b1', range(3, 610), 4, 'B', 'B'));
    s.add(request('c0', range(3, 700), 4, 'C', 'C'));
    expect(ids(step(s).out)).toEqual(['b0', 'c0']);
    const mixed = step(s).out;
    expect(ids(mixed)).toEqual(['a0', 'a1', 'a2', 'a3', 'b0', 'c0', 'b1']);
    expect(mixed.started.map((r) => r.id)).toEqual(['b1']);
  });

  it('chunks a long newcomer prompt: the first chunk alone, the rest behind the decodes', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 8, maxTokensPerStep: 64 }, kv);
    busy(s, 3);
    const b = request('b0', range(100, 900), 1, 'B', 'B');
    s.add(b);
    const first = step(s).out;
    expect(ids(first)).toEqual(['b0']);
    expect(first.scheduled[0]).toMatchObject({ numNewTokens: 64, samples: false });
    const second = step(s).out;
    expect(ids(second)).toEqual(['a0', 'a1', 'a2', 'b0']);
    expect(second.scheduled[3]).toMatchObject({ numNewTokens: 36, samples: true });
  });

  it('gives a newcomer no step of its own while memory is short (the last step preempted)', () => {
    const kv = new KvCacheManager({ numBlocks: 8, blockSize: 4 }); // 32 token slots
    const s = new Scheduler({ maxBatch: 4, maxTokensPerStep: 64, maxRunningPerTenant: 3 }, kv);
    for (let i = 0; i < 3; i++) s.add(request(`p${i}`, range(6, 100 * i), 12, 'A', 'A'));
    let out = step(s).out;
    while (out.preempted.length === 0) out = step(s).out;
    s.add(request('b0', range(2, 900), 1, 'B', 'B'));
    const next = step(s).out;
    expect(next.scheduled.some((x) => x.req.tenant === 'A')).toBe(true);
    runToCompletion(s);
    expect(kv.usage().free).toBe(8);
  });

  it('runs a plain step when nothing is running: every tenant is admitted together', () => {
    const kv = new KvCacheManager({ numBlocks: 1024, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 8, maxTokensPerStep: 1000 }, kv);
    s.add(request('a0', range(3), 2, 'A', 'A'));
    s.add(request('a1', range(3, 10), 2, 'A', 'A'));
    s.add(request('b0', range(3, 20), 2, 'B', 'B'));
    expect(ids(step(s).out)).toEqual(['a0', 'b0', 'a1']);
  });
});

describe('buildStepBatch', () => {
  it('lays out rows, positions and KV slots from the block tables', () => {
    const kv = new KvCacheManager({ numBlocks: 16, blockSize: 4 });
    const s = new Scheduler({ maxBatch: 4, maxTokensPerStep: 8 }, kv);
    const a = request('a', range(6, 10), 2);
    const b = request('b', range(5, 50), 2);
    s.add(a);
    s.add(b);
    const out = s.schedule(); // a: 6 rows (samples), b: 2-row chunk (does not sample)
    const batch = buildStepBatch(out, (id) => kv.blockTable(id), 4);
    expect(Array.from(batch.tokens)).toEqual([10, 11, 12, 13, 14, 15, 50, 51]);
    expect(Array.from(batch.positions)).toEqual([0, 1, 2, 3, 4, 5, 0, 1]);
    const ta = kv.blockTable('a');
    const tb = kv.blockTable('b');
    expect(Array.from(batch.slots)).toEqual([
      ta[0] * 4, ta[0] * 4 + 1, ta[0] * 4 + 2, ta[0] * 4 + 3, ta[1] * 4, ta[1] * 4 + 1, tb[0] * 4, tb[0] * 4 + 1,
    ]);
    expect(batch.seqs.map((q) => [q.rowStart, q.rowCount, q.contextLen])).toEqual([[0, 6, 6], [6, 2, 2]]);
    expect(Array.from(batch.logitRows)).toEqual([5]);
  });
});
