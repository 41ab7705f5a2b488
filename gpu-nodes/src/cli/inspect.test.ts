// `k2node inspect` as a real child process on the small model, on layouts other tools write, and on
// damaged directories; plus the architecture arithmetic checked on the published K2 config.
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../model/checkpoint.ts';
import { parseConfig } from '../model/config.ts';
import { makeModel } from '../model/make-model.ts';
import { writeVariant } from './checkpoint-variants.ts';
import type { InspectReport } from './inspect.ts';
import { memoryEstimate } from './inspect.ts';
import { runCli } from './run-cli.ts';
import { checkTensors, expectedTensors } from './tensor-check.ts';

let root: string;
let model: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'k2-inspect-'));
  model = join(root, 'k2-test');
  await makeModel(model, 'k2-test');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function inspectJson(dir: string): Promise<{ code: number | null; report: InspectReport; stderr: string }> {
  const r = await runCli(['inspect', dir, '--json']);
  return { code: r.code, report: JSON.parse(r.stdout) as InspectReport, stderr: r.stderr };
}

describe('k2node inspect', () => {
  it('summarises a good checkpoint and passes its check', async () => {
    const { code, report } = await inspectJson(model);
    expect(code).toBe(0);
    expect(report.problems).toEqual([]);
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    expect(report.architectures).toEqual(config.architectures);
    expect(report.config?.nRoutedExperts).toBe(config.n_routed_experts);
    expect(report.quantization?.ignore).toEqual(config.quantization_config.ignore);
    // Tensor counts and bytes agree with the index and the shard headers.
    const index = JSON.parse(readFileSync(join(model, 'model.safetensors.index.json'), 'utf8'));
    expect(report.tensors?.count).toBe(Object.keys(index.weight_map).length);
    const dtypeBytes = Object.values(report.tensors!.byDtype).reduce((a, d) => a + d.bytes, 0);
    expect(dtypeBytes).toBe(index.metadata.total_size);
    expect(report.tensors?.byDtype.I32.count).toBe(report.tensors?.byDtype.I64.count); // one weight_shape per packed weight
    const shardBytes = report.files.shards.reduce((a, f) => a + statSync(join(model, f)).size, 0);
    expect(report.files.bytesOnDisk).toBeGreaterThan(shardBytes);
    // (kv_lora_rank + qk_rope_head_dim) × 2 bytes × layers, as bf16.
    expect(report.memory?.kvBytesPerTokenBf16).toBe((config.kv_lora_rank + config.qk_rope_head_dim) * 2 * config.num_hidden_layers);
    expect(report.memory?.totalBytes).toBeGreaterThan(report.memory!.weightBytes + report.memory!.kvCacheBytes);
    // The reference backend holds every parameter as one f32.
    expect(report.memory?.referenceWeightBytes).toBe(4 * report.params!.total);

    const text = await runCli(['inspect', model]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('compressed-tensors pack-quantized, int4 group 32');
    expect(text.stdout).toMatch(/check\s+OK/);
  });

  it('names a missing tensor and exits non-zero', async () => {
    const missing = 'model.layers.2.mlp.experts.5.up_proj.weight_packed';
    const dir = join(root, 'missing');
    writeVariant(model, dir, { shards: 2, drop: [missing] });
    const r = await runCli(['inspect', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain(`missing tensor "${missing}" (pack-quantized Linear`);
    expect(r.stderr).toContain(`cannot be served: missing tensor "${missing}"`);
  });

  it('names a truncated shard and the tensor cut off, and exits non-zero', async () => {
    const dir = join(root, 'truncated');
    writeVariant(model, dir, { shards: 3 });
    const shard = join(dir, 'model-00002-of-00003.safetensors');
    truncateSync(shard, statSync(shard).size - 1000);
    const r = await runCli(['inspect', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/model-00002-of-00003\.safetensors: tensor "[^"]+" ends at byte \d+ but the file has \d+ bytes: the shard is truncated/);
  });

  it('reads a single model.safetensors without an index, and int32 weight_shape', async () => {
    const dir = join(root, 'single');
    writeVariant(model, dir, { shards: 0, weightShapeDtype: 'I32' });
    const { code, report } = await inspectJson(dir);
    expect(code).toBe(0);
    expect(report.files).toMatchObject({ shards: ['model.safetensors'], index: false });
    expect(report.tensors?.byDtype.I64).toBeUndefined();
    expect(report.problems).toEqual([]);
  });

  it('names tensors whose shape disagrees with config.json', async () => {
    const dir = join(root, 'bad-shape');
    writeVariant(model, dir, { shards: 1 });
    // Swap the config's expert width: every routed expert's tensors now disagree with it.
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, moe_intermediate_size: config.moe_intermediate_size * 2 }));
    const { code, report } = await inspectJson(dir);
    expect(code).not.toBe(0);
    expect(report.problems).toContain(
      `tensor "model.layers.1.mlp.experts.0.gate_proj.weight_packed" has shape [${config.moe_intermediate_size}, ${config.hidden_size / 8}], config.json implies [${2 * config.moe_intermediate_size}, ${config.hidden_size / 8}]`,
    );
  });
});

describe('architecture arithmetic on the published Kimi K2 config', () => {
  // config.json of moonshotai/Kimi-K2-Thinking (the fields the model reads).
  const k2 = parseConfig({
    vocab_size: 163840, hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048, num_hidden_layers: 61,
    num_attention_heads: 64, q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128,
    n_routed_experts: 384, num_experts_per_tok: 8, n_shared_experts: 1, first_k_dense_replace: 1, n_group: 1, topk_group: 1,
    routed_scaling_factor: 2.827, max_position_embeddings: 262144,
    quantization_config: {
      quant_method: 'compressed-tensors', format: 'pack-quantized',
      config_groups: { group_0: { weights: { num_bits: 4, type: 'int', symmetric: true, strategy: 'group', group_size: 32 } } },
      ignore: ['lm_head', 're:.*self_attn.*', 're:.*shared_experts.*', 'model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj'],
    },
  });

  it('gives 1T total / 32B active parameters and 68.6 KiB of bf16 KV per token, as Moonshot publishes', () => {
    const expected = expectedTensors(k2);
    const total = expected.reduce((a, t) => a + t.params, 0);
    const routed = expected.filter((t) => t.routed).reduce((a, t) => a + t.params, 0);
    expect(total / 1e12).toBeCloseTo(1.03, 2);
    expect((total - routed * (1 - 8 / 384)) / 1e9).toBeCloseTo(32.9, 1);
    expect(memoryEstimate(k2, { total: 0, asF32: 0, largest: { name: '', bytes: 0 } }, 1).kvBytesPerTokenBf16 / 1024).toBeCloseTo(68.6, 1);
    // Only routed experts are int4: 3 packed Linears per expert per MoE layer.
    expect(expected.filter((t) => t.name.endsWith('.weight_packed')).length).toBe(60 * 384 * 3);
  });

  it('checkTensors on the small model counts the same parameters inspect reports', async () => {
    const ck = new Checkpoint(model);
    try {
      const c = parseConfig(JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')));
      const check = checkTensors(ck, c);
      expect(check.problems).toEqual([]);
      expect(check.unused).toEqual([]);
      const { report } = await inspectJson(model);
      expect(report.params).toEqual({ total: check.totalParams, activePerToken: check.activeParams });
    } finally {
      ck.close();
    }
  });
});
