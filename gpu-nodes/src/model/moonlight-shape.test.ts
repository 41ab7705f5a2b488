// The Moonlight-16B-A3B shape (make-model `moonlight-16b`, a direct q_proj since q_lora_rank is null)
// scaled down 32× in width, every count kept (27 layers, 16 heads, 64 experts, 6 per token, 2 shared):
// its config parses as published, and greedy decoding with the reference kernels, and with WebGPU where
// an adapter exists (lavapipe here), picks the same tokens as the naive f64 oracle at every position.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kernels } from '../kernels/kernels.ts';
import { ReferenceKernels } from '../kernels/reference.ts';
import { WebGpuKernels } from '../kernels/webgpu/backend.ts';
import { acquireGpu, preferLavapipeIfUnset } from '../kernels/webgpu/device.ts';
import { Checkpoint } from './checkpoint.ts';
import { parseConfig } from './config.ts';
import { Model } from './forward.ts';
import { makeModel, PRESETS, scaleShape } from './make-model.ts';
import { NaiveK2 } from './naive-forward.ts';
import { argmax } from './sampler.ts';

preferLavapipeIfUnset();
const ctx = await acquireGpu();
if (!ctx) console.warn('moonlight-shape webgpu case skipped: Dawn found no WebGPU adapter (see kernels/webgpu/README.md)');

const BLOCK = 4;
const TABLE = Int32Array.of(3, 0, 2, 1);
const PROMPT = [100256, 9906, 11, 1917, 0, 358];
const NEW_TOKENS = 4;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moonlight-32-'));
  makeModel(dir, scaleShape(PRESETS['moonlight-16b'], 32));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Greedy decode: the prompt in one step, then one token per step; returns the new tokens. */
async function greedy(kernels: Kernels): Promise<number[]> {
  const model = await Model.load(dir, { kernels, kvBlocks: TABLE.length, blockSize: BLOCK, log: () => {} });
  const out: number[] = [];
  let step = PROMPT;
  let pos = 0;
  for (let i = 0; i < NEW_TOKENS; i++) {
    const positions = Int32Array.from(step, (_, r) => pos + r);
    const logits = await model.forward({
      tokens: Int32Array.from(step),
      positions,
      slots: positions.map((p) => TABLE[Math.floor(p / BLOCK)] * BLOCK + (p % BLOCK)),
      seqs: [{ rowStart: 0, rowCount: step.length, contextLen: pos + step.length, blockTable: TABLE }],
      logitRows: Int32Array.of(step.length - 1),
    });
    out.push(argmax(logits));
    pos += step.length;
    step = [out[out.length - 1]];
  }
  return out;
}

/** The oracle's greedy choice after each position of prompt + generated. */
function oracleChoices(generated: number[]): number[] {
  const naive = new NaiveK2(dir);
  try {
    const { logits } = naive.run([...PROMPT, ...generated.slice(0, -1)]);
    return logits.slice(PROMPT.length - 1).map((l) => argmax(Float32Array.from(l)));
  } finally {
    naive.close();
  }
}

describe('Moonlight-16B-A3B shape, scaled 32× narrower', () => {
  it('writes the published counts and a direct q_proj (q_lora_rank null)', () => {
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(json).toMatchObject({
      q_lora_rank: null, rope_scaling: null, num_hidden_layers: 27, first_k_dense_replace: 1, num_attention_heads: 16,
      n_routed_experts: 64, num_experts_per_tok: 6, n_shared_experts: 2, routed_scaling_factor: 2.446, rms_norm_eps: 1e-5,
    });
    const cfg = parseConfig(json);
    expect(cfg.qLoraRank).toBe(0);
    expect(cfg.ropeScaling).toBeNull();
    const ck = new Checkpoint(dir);
    try {
      expect(ck.info('model.layers.0.self_attn.q_proj.weight').shape).toEqual([16 * (cfg.qkNopeHeadDim + cfg.qkRopeHeadDim), cfg.hiddenSize]);
      expect(ck.has('model.layers.0.self_attn.q_a_proj.weight')).toBe(false);
      expect(ck.has('model.layers.26.mlp.experts.63.down_proj.weight_packed')).toBe(true);
    } finally {
      ck.close();
    }
  });

  let reference: number[] = [];

  it('reference kernels decode the oracle\'s greedy tokens', async () => {
    reference = await greedy(new ReferenceKernels());
    expect(new Set(reference).size).toBeGreaterThan(1);
    expect(reference).toEqual(oracleChoices(reference));
  });

  it.skipIf(!ctx)('webgpu decodes the same tokens as the reference kernels', async () => {
    expect(reference).toHaveLength(NEW_TOKENS);
    expect(await greedy(new WebGpuKernels(ctx!))).toEqual(reference);
  });
});
