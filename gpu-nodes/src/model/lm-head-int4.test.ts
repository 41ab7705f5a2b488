// The int4 lm_head (LoadOptions.lmHead = 'int4'): its logits must be exactly the final hidden state
// times the lm_head as quantizeInt4 codes it and dequantInt4 defines it, recomputed here in f64 from
// the checkpoint and the last layer's output; and they must differ from the bf16 head's (the option
// took effect). Tolerance as forward.test.ts: 1e-4 of max |logit| (f32 activations vs f64 here).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceKernels } from '../kernels/reference.ts';
import { Checkpoint } from './checkpoint.ts';
import { Model } from './forward.ts';
import { makeModel } from './make-model.ts';
import { bf16ArrayToF32, dequantInt4, quantizeInt4 } from './quant.ts';

let dir: string;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'k2-lmhead-'));
  makeModel(dir, 'k2-test');
});

const PROMPT = [100256, 9906, 11, 1917, 0, 358];

async function lastLogits(lmHead: 'bf16' | 'int4'): Promise<{ logits: Float32Array; hidden: Float32Array; model: Model }> {
  const model = await Model.load(dir, { kernels: new ReferenceKernels(), kvBlocks: 4, blockSize: 16, log: () => {}, lmHead });
  const rows = PROMPT.length;
  const positions = Int32Array.from(PROMPT.map((_, i) => i));
  let hidden = new Float32Array(0);
  const logits = await model.forward(
    { tokens: Int32Array.from(PROMPT), positions, slots: positions, seqs: [{ rowStart: 0, rowCount: rows, contextLen: rows, blockTable: Int32Array.of(0) }], logitRows: Int32Array.of(rows - 1) },
    (layer, h) => {
      if (layer === model.config.numLayers - 1) hidden = h.slice((rows - 1) * model.config.hiddenSize);
    },
  );
  return { logits, hidden, model };
}

function bf16Tensor(ck: Checkpoint, name: string): Float32Array {
  const b = ck.read(name, ['BF16']);
  return bf16ArrayToF32(new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
}

describe('int4 lm_head', () => {
  it('gives the final hidden state times the dequantized int4 head, and differs from the bf16 head', async () => {
    const int4 = await lastLogits('int4');
    const bf16 = await lastLogits('bf16');
    const c = int4.model.config;

    // final rmsnorm, then the quantized head, in f64
    const ck = new Checkpoint(dir);
    const norm = bf16Tensor(ck, 'model.norm.weight');
    const head = bf16Tensor(ck, 'lm_head.weight');
    ck.close();
    const H = c.hiddenSize;
    let ss = 0;
    for (let k = 0; k < H; k++) ss += int4.hidden[k] * int4.hidden[k];
    const inv = 1 / Math.sqrt(ss / H + c.rmsNormEps);
    const x = Array.from({ length: H }, (_, k) => int4.hidden[k] * inv * norm[k]);
    const q = quantizeInt4(head, c.vocabSize, H);
    const deq = dequantInt4(q.packed, q.scales, c.vocabSize, H);
    let maxAbs = 0;
    let maxDiff = 0;
    let maxVsBf16 = 0;
    for (let v = 0; v < c.vocabSize; v++) {
      let want = 0;
      for (let k = 0; k < H; k++) want += deq[v * H + k] * x[k];
      maxAbs = Math.max(maxAbs, Math.abs(want));
      maxDiff = Math.max(maxDiff, Math.abs(int4.logits[v] - want));
      maxVsBf16 = Math.max(maxVsBf16, Math.abs(int4.logits[v] - bf16.logits[v]));
    }
    expect(maxDiff / maxAbs).toBeLessThanOrEqual(1e-4);
    expect(maxVsBf16 / maxAbs).toBeGreaterThan(1e-3);
  });
});
