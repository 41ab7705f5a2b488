// Greedy sampling where the logits are (ModelRunner → Model.argmaxLogits → Kernels.argmaxRows) on the
// serving backend, wasm-simd: the same tokens as the host path (the JS sampler over the copied row),
// which a request takes when it asks for logprobs; and a row the device cannot sample from (a NaN
// logit) fails its request with the host sampler's reason, as it did before the device path.
import { closeSync, copyFileSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest, NodeEvent, SamplingParams } from '../../../shared/protocol.ts';
import { buildWasm } from '../kernels/wasm-simd/build.ts';
import { WasmKernels } from '../kernels/wasm-simd/wasm-kernels.ts';
import { SafetensorsFile } from '../model/safetensors.ts';
import { ensureModel } from '../model/make-model.ts';
import type { Engine } from './engine.ts';
import { loadEngine } from './load-engine.ts';

const MODEL_DIR = fileURLToPath(new URL('../../../models/k2-tiny', import.meta.url));

let kernels: WasmKernels;
let nanDir: string;
beforeAll(async () => {
  buildWasm();
  ensureModel(MODEL_DIR, 'k2-tiny');
  kernels = await WasmKernels.create({ threads: 2 });
  // k2-tiny with lm_head row 17 all NaN (bf16 0x7fc0): logit 17 is NaN at every position.
  nanDir = mkdtempSync(join(tmpdir(), 'k2-nan-head-'));
  for (const f of readdirSync(MODEL_DIR)) copyFileSync(join(MODEL_DIR, f), join(nanDir, f));
  const file = (JSON.parse(readFileSync(join(nanDir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> }).weight_map['lm_head.weight'];
  const shard = SafetensorsFile.open(join(nanDir, file));
  const info = shard.info('lm_head.weight');
  shard.close();
  const hidden = 256;
  const fd = openSync(join(nanDir, file), 'r+');
  writeSync(fd, new Uint8Array(new Uint16Array(hidden).fill(0x7fc0).buffer), 0, hidden * 2, info.begin + 17 * hidden * 2);
  closeSync(fd);
});
afterAll(async () => {
  await kernels?.close();
  if (nanDir) rmSync(nanDir, { recursive: true, force: true });
});

let nextId = 0;
function body(prompt: number[], sampling: Partial<SamplingParams> = {}): GenerateRequest {
  return {
    version: 1,
    request_id: `g${nextId++}`,
    model: 'k2-tiny',
    prompt_token_ids: prompt,
    sampling: { max_tokens: 6, temperature: 0, top_p: 1, stop_token_ids: [], stop: [], ...sampling },
  };
}

function generate(engine: Engine, b: GenerateRequest): Promise<{ ids: number[]; end: NodeEvent }> {
  return new Promise((resolve) => {
    const ids: number[] = [];
    engine.submit(b, (e) => {
      if (e.type === 'tokens') ids.push(...e.token_ids);
      if (e.type === 'finish' || e.type === 'error') resolve({ ids, end: e });
    });
  });
}

const prompts = [
  [9906, 11, 1917, 0, 358],
  Array.from({ length: 23 }, (_, i) => 200 + 37 * i),
  Array.from({ length: 41 }, (_, i) => 5000 + 11 * i),
  [100256, 100266, 9125, 100273, 7, 8, 9, 100258, 100259],
];

describe('greedy argmax on the device', () => {
  it('gives the tokens the host sampler gives, for a batch mixing both paths', async () => {
    const engine = await loadEngine(MODEL_DIR, { kernels, modelId: 'k2-tiny', log: () => {}, maxBatch: 8, enablePrefixCaching: false, kvBlocks: 64 });
    // Each prompt twice in one batch: plain greedy (device argmax) and with logprobs (host copy + JS sampler).
    const runs = await Promise.all(prompts.flatMap((p) => [generate(engine, body(p)), generate(engine, body(p, { logprobs: 0 }))]));
    for (let i = 0; i < prompts.length; i++) {
      const [device, host] = [runs[2 * i], runs[2 * i + 1]];
      expect(device.end).toMatchObject({ type: 'finish', finish_reason: 'length' });
      expect(host.end).toMatchObject({ type: 'finish', finish_reason: 'length' });
      expect(device.ids).toHaveLength(6);
      expect(device.ids).toEqual(host.ids);
    }
  });

  it('a prompt prefilled in chunks, whose first steps sample nothing, gives the tokens of a one-step prefill', async () => {
    // A fresh engine's first steps are chunks of the prompt with no logits rows: nothing to read or argmax.
    const chunked = await loadEngine(MODEL_DIR, { kernels, modelId: 'k2-tiny', log: () => {}, maxTokensPerStep: 16, enablePrefixCaching: false, kvBlocks: 64 });
    const whole = await loadEngine(MODEL_DIR, { kernels, modelId: 'k2-tiny', log: () => {}, enablePrefixCaching: false, kvBlocks: 64 });
    for (const logprobs of [undefined, 0]) {
      const [a, b] = [await generate(chunked, body(prompts[2], { logprobs })), await generate(whole, body(prompts[2], { logprobs }))];
      expect(a.end).toMatchObject({ type: 'finish', finish_reason: 'length' });
      expect(a.ids).toEqual(b.ids);
    }
  });

  it('a NaN logit fails the greedy request with the sampler’s reason on both paths', async () => {
    const engine = await loadEngine(nanDir, { kernels, modelId: 'k2-tiny', log: () => {}, lmHead: 'bf16', kvBlocks: 64 });
    const [device, host] = await Promise.all([generate(engine, body(prompts[0])), generate(engine, body(prompts[0], { logprobs: 0 }))]);
    for (const r of [device, host]) {
      expect(r.end).toMatchObject({ type: 'error', code: 'internal_error' });
      expect(r.ids).toEqual([]);
    }
    expect(JSON.stringify(device.end)).toContain('logit of token 17 is NaN');
    expect(JSON.stringify(host.end)).toContain('logit of token 17 is NaN');
  });
});
