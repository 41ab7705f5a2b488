// config.json parsing with K2's published values, and the ignore-list matching rule.
import { describe, expect, it } from 'vitest';
import { isIgnored, isMoeLayer, parseConfig } from './config.ts';
import { configJson, PRESETS } from './make-model.ts';
import { ropeInvFreq, softmaxScale } from './rope.ts';

/** Kimi K2's config.json values (the fields the forward pass reads). */
const K2 = {
  model_type: 'kimi_k2', vocab_size: 163840, hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048,
  num_hidden_layers: 61, num_attention_heads: 64, q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128,
  qk_rope_head_dim: 64, v_head_dim: 128, n_routed_experts: 384, num_experts_per_tok: 8, n_shared_experts: 1,
  first_k_dense_replace: 1, moe_layer_freq: 1, n_group: 1, topk_group: 1, norm_topk_prob: true, routed_scaling_factor: 2.827,
  scoring_func: 'sigmoid', topk_method: 'noaux_tc', rms_norm_eps: 1e-6, rope_theta: 50000, max_position_embeddings: 262144,
  rope_scaling: { type: 'yarn', factor: 64, original_max_position_embeddings: 4096, beta_fast: 1, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
  quantization_config: {
    quant_method: 'compressed-tensors', format: 'pack-quantized',
    config_groups: { group_0: { targets: ['Linear'], weights: { num_bits: 4, type: 'int', symmetric: true, strategy: 'group', group_size: 32 } } },
    ignore: ['lm_head', 're:.*self_attn', 're:.*shared_experts', 're:model\\.layers\\.0\\.mlp'],
  },
};

describe('config', () => {
  it('reads K2 values', () => {
    const c = parseConfig(K2);
    expect(c).toMatchObject({ hiddenSize: 7168, numLayers: 61, nRoutedExperts: 384, numExpertsPerTok: 8, kvLoraRank: 512, routedScalingFactor: 2.827 });
    expect(c.ropeScaling).toEqual({ factor: 64, originalMaxPositionEmbeddings: 4096, betaFast: 1, betaSlow: 1, mscale: 1, mscaleAllDim: 1 });
    expect(isMoeLayer(c, 0)).toBe(false);
    expect(isMoeLayer(c, 1)).toBe(true);
    // YaRN softmax scale: (0.1·ln 64 + 1)² / sqrt(192)
    expect(softmaxScale(c)).toBeCloseTo((0.1 * Math.log(64) + 1) ** 2 / Math.sqrt(192), 12);
    const inv = ropeInvFreq(c);
    expect(inv.length).toBe(32);
    expect(inv[0]).toBe(1); // fastest pair keeps its frequency
    expect(inv[31]).toBeCloseTo(1 / 50000 ** (62 / 64) / 64, 15); // slowest pair fully interpolated
  });

  it('matches ignore entries as compressed-tensors does (exact names, re: anchored at the start)', () => {
    const q = parseConfig(K2).quant!;
    expect(isIgnored(q, 'lm_head')).toBe(true);
    expect(isIgnored(q, 'model.layers.5.self_attn.kv_b_proj')).toBe(true);
    expect(isIgnored(q, 'model.layers.5.mlp.shared_experts.down_proj')).toBe(true);
    expect(isIgnored(q, 'model.layers.0.mlp.up_proj')).toBe(true);
    expect(isIgnored(q, 'model.layers.5.mlp.experts.17.up_proj')).toBe(false);
    expect(isIgnored(q, 'model.layers.10.mlp.experts.0.up_proj')).toBe(false); // "layers\.0\." must not match layer 10
  });

  it('names missing or unsupported fields', () => {
    const { hidden_size: _, ...noHidden } = K2;
    expect(() => parseConfig(noHidden)).toThrow(/missing number field "hidden_size"/);
    expect(() => parseConfig({ ...K2, scoring_func: 'softmax' })).toThrow(/scoring_func "softmax" unsupported/);
    expect(() => parseConfig({ ...K2, quantization_config: { ...K2.quantization_config, format: 'marlin' } })).toThrow(/pack-quantized/);
    expect(() => parseConfig({ ...K2, n_group: 5 })).toThrow(/not divisible by n_group/);
  });

  it('accepts the generated presets', () => {
    for (const p of Object.values(PRESETS)) expect(parseConfig(configJson(p)).vocabSize).toBe(p.vocab_size ?? 100512);
    expect(parseConfig(configJson(PRESETS['moonlight-16b']))).toMatchObject({ vocabSize: 163840, qLoraRank: 0, ropeScaling: null, rmsNormEps: 1e-5 });
  });
});
