// The engine on its own thread. First the boundary itself (EngineThread in this process), then a real
// `k2node serve` process: while one deliberately long engine step runs (a 128-token prefill on the
// reference kernels, several seconds on this model, done in one step since the step budget is 256
// tokens and max_tokens is 1), the HTTP thread answers /health, /v1/load and /metrics. With the
// engine on the HTTP thread those answers could only come after the step, so after the request's
// terminal event; the assertion is that order, not a duration.
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyModel, startLocalNode, type LocalNode } from '../../../scripts/local-node.ts';
import { signNodeRequest } from '../../../shared/node-auth.ts';
import type { GenerateRequest, NodeEvent, NodeLoad } from '../../../shared/protocol.ts';
import { EngineThread } from './engine-client.ts';

const MODEL_DIR = fileURLToPath(new URL('../../../models/k2-tiny', import.meta.url));

function request(id: string, prompt: number[], maxTokens: number): GenerateRequest {
  return {
    version: 1,
    request_id: id,
    model: 'k2-tiny',
    prompt_token_ids: prompt,
    sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
  };
}

describe('EngineThread', () => {
  let engine: EngineThread;
  beforeAll(async () => {
    await ensureTinyModel(MODEL_DIR);
    engine = await EngineThread.start({ modelDir: MODEL_DIR, backend: 'reference', engine: { kvBlocks: 64 }, quiet: true });
  });
  afterAll(() => engine?.close());

  it('runs the engine on another thread and carries requests and events across whole', async () => {
    expect(engine.threadId).not.toBe(threadId);
    expect(engine.options).toMatchObject({ modelId: 'k2-tiny', maxBatch: 32 });
    const events: NodeEvent[] = [];
    const ended = new Promise<void>((resolve) =>
      void engine.submit(request('thread-1', [9906, 11, 1917, 0], 3), (e) => {
        events.push(e);
        if (e.type === 'finish' || e.type === 'error') resolve();
      }),
    );
    await ended;
    expect(events[0]).toMatchObject({ type: 'start', request_id: 'thread-1', prompt_tokens: 4 });
    expect(events.slice(1, -1).every((e) => e.type === 'tokens')).toBe(true);
    expect(events.at(-1)).toEqual({ type: 'finish', finish_reason: 'length', usage: { prompt_tokens: 4, cached_tokens: 0, completion_tokens: 3 } });
    await engine.idle();
    // The snapshot that came with the last events already shows the sequence retired.
    expect(engine.load()).toMatchObject({ running: 0, queue_depth: 0, kv_blocks_free: engine.load().kv_blocks_total });
    expect(engine.stats.steps).toBeGreaterThanOrEqual(3);
  });

  it('rebuilds the engine refusal on this side of the boundary', async () => {
    await expect(engine.submit(request('thread-2', [1, 100512], 1), () => {})).rejects.toMatchObject({ name: 'EngineError', status: 400, code: 'invalid_request' });
    await expect(engine.submit({ ...request('thread-3', [1], 1), model: 'other' }, () => {})).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    expect(await engine.cancel('no-such-request')).toBe(false);
  });
});

describe('k2node serve during a long engine step', () => {
  let node: LocalNode;
  beforeAll(async () => {
    await ensureTinyModel();
    node = await startLocalNode({ extraArgs: ['--backend', 'reference', '--kv-blocks', '64'] });
  });
  afterAll(() => node?.stop());

  it('answers /health, /v1/load and /metrics before the step ends', async () => {
    const order: string[] = [];
    const body = JSON.stringify(request('long-step', Array.from({ length: 128 }, (_, i) => 1000 + i), 1));
    const res = await fetch(`${node.url}/v1/generate`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...(await signNodeRequest({ method: 'POST', path: '/v1/generate', body, secret: node.secret })) },
    });
    expect(res.status).toBe(200); // accepted: the engine now has it and starts the step
    const generation = res.text().then((text) => {
      order.push('finish');
      return text.trim().split('\n').map((l) => JSON.parse(l) as NodeEvent);
    });
    const [health, load, metrics] = await Promise.all([
      fetch(`${node.url}/health`).then((r) => r.json()),
      node.load(),
      fetch(`${node.url}/metrics`).then((r) => r.text()),
    ].map((probe, i) => probe.then((answer) => {
      order.push(['health', 'load', 'metrics'][i]);
      return answer;
    })));
    const events = await generation;
    expect(order.at(-1)).toBe('finish'); // all three probes answered while the step was running
    expect(health).toMatchObject({ ok: true, ready: true });
    expect((load as NodeLoad).running + (load as NodeLoad).queue_depth).toBe(1);
    expect(metrics).toContain('vllm:num_requests_running');
    expect(events.at(-1)).toMatchObject({ type: 'finish', finish_reason: 'length', usage: { prompt_tokens: 128, completion_tokens: 1 } });
  });
});
