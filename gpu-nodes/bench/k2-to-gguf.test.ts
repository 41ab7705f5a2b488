// The GGUF converter is checked the only way that proves it: llama.cpp (node-llama-cpp, prebuilt CPU
// libraries) loads the converted k2-tiny and its logits match our reference kernels'. Tolerances are
// serve.ts's, for the reasons written there (llama.cpp rounds activations to bf16 / q8_0).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureModel } from '../src/model/make-model.ts';
import { f32ToBf16 } from '../src/model/quant.ts';
import { bf16ToF16Exact, convertToGguf } from './k2-to-gguf.ts';
import { LlamaCppModel, logitsCheck } from './llama-cpp-model.ts';

const MODEL_DIR = fileURLToPath(new URL('../../models/k2-tiny', import.meta.url));

describe('bf16 → f16 for Q4_0 scales', () => {
  it('is exact for normal and subnormal f16 values and refuses what f16 cannot hold', () => {
    expect(bf16ToF16Exact(f32ToBf16(1))).toBe(0x3c00);
    expect(bf16ToF16Exact(f32ToBf16(-0.0078125))).toBe(0xa000); // -2^-7
    expect(bf16ToF16Exact(f32ToBf16(2 ** -24))).toBe(0x0001); // smallest f16 subnormal
    expect(bf16ToF16Exact(f32ToBf16(3 * 2 ** -20))).toBe(0x0030);
    expect(() => bf16ToF16Exact(f32ToBf16(2 ** 16))).toThrow(/outside f16's range/);
    expect(() => bf16ToF16Exact(f32ToBf16(2 ** -30))).toThrow(/not exact in f16/);
  });
});

describe('k2-to-gguf', () => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-gguf-'));
  let peer: LlamaCppModel | null = null;
  afterAll(async () => {
    await peer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a deepseek2 GGUF whose logits in llama.cpp match our reference at every position', async () => {
    ensureModel(MODEL_DIR, 'k2-tiny');
    const gguf = join(dir, 'k2-tiny.gguf');
    expect(convertToGguf(MODEL_DIR, gguf)).toBe(70);
    peer = await LlamaCppModel.load(gguf);
    const tokens = Array.from({ length: 24 }, (_, i) => 1000 + ((7 * 7919 + i * 104729) % 90000));
    const check = await logitsCheck(peer, MODEL_DIR, tokens);
    expect(check.top1Agree).toBeGreaterThanOrEqual(0.9 * tokens.length);
    expect(check.medianRelDiff).toBeLessThanOrEqual(0.03);
  });
});
