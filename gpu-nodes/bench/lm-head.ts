/**
 * `npm run bench:lm-head`: what the lm_head format and the sampling path cost per k2-tiny decode step,
 * in-process on wasm-simd, at batch 1, 8 and 32. The three formats (bf16, int8, int4) are loaded side by
 * side on one backend and their steps interleaved round-robin, so a busy shared machine slows all three
 * alike and the ratios stay comparable. Per step, after the forward pass, the greedy token of every row
 * is taken two ways, also interleaved: the host path (copy the logits out, JS argmax: what a request
 * with logprobs still does) and Kernels.argmaxRows (what a plain greedy request does now).
 *
 * Writes bench-output/lm-head.md. Options: --threads N (default 2), --steps N (per format and batch,
 * default 40).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildWasm } from '../src/kernels/wasm-simd/build.ts';
import { WasmKernels } from '../src/kernels/wasm-simd/wasm-kernels.ts';
import { Model, type StepBatch } from '../src/model/forward.ts';
import { ensureModel } from '../src/model/make-model.ts';
import { argmax } from '../src/model/sampler.ts';
import type { LmHeadFormat } from '../src/model/weights.ts';
import { uniformStepBatch } from './uniform-batch.ts';

const { values: opts } = parseArgs({ options: { threads: { type: 'string', default: '2' }, steps: { type: 'string', default: '40' } } });
const THREADS = Number(opts.threads);
const STEPS = Number(opts.steps);
const FORMATS: LmHeadFormat[] = ['bf16', 'int8', 'int4'];
const BATCHES = [1, 8, 32];
const BLOCK = 16;
const PROMPT = 8;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

buildWasm();
const dir = ensureModel(join(ROOT, 'models', 'k2-tiny'));
const kernels = await WasmKernels.create({ threads: THREADS });
const maxBatch = Math.max(...BATCHES);
const perSeq = Math.ceil((PROMPT + STEPS + 8) / BLOCK);
const models = new Map<LmHeadFormat, Model>();
for (const f of FORMATS) {
  models.set(f, await Model.load(dir, { kernels, kvBlocks: maxBatch * perSeq, blockSize: BLOCK, maxPositions: PROMPT + STEPS + 8, log: () => {}, lmHead: f }));
}
const V = models.get('bf16')!.config.vocabSize;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load0 = loadavg();

function stepBatch(batch: number, from: number, rows: number, tokenOf: (s: number, i: number) => number): StepBatch {
  return uniformStepBatch({ batch, blockSize: BLOCK, blocksPerSeq: perSeq }, from, rows, tokenOf);
}

const rows: string[] = [];
for (const batch of BATCHES) {
  const stepMs = new Map<LmHeadFormat, number[]>(FORMATS.map((f) => [f, []]));
  const hostMs: number[] = [];
  const deviceMs: number[] = [];
  const next = new Map<LmHeadFormat, number[]>();
  for (const f of FORMATS) {
    await models.get(f)!.forward(stepBatch(batch, 0, PROMPT, (s, i) => 1000 + 17 * s + i));
    next.set(f, Array.from({ length: batch }, (_, s) => 500 + s));
  }
  const host = new Float32Array(batch * V);
  const all = Int32Array.from({ length: batch }, (_, i) => i);
  for (let i = 0; i < STEPS; i++) {
    for (const f of FORMATS) {
      const model = models.get(f)!;
      const toks = next.get(f)!;
      const t0 = performance.now();
      await model.step(stepBatch(batch, PROMPT + i, 1, (s) => toks[s]));
      stepMs.get(f)!.push(performance.now() - t0);
      // Both sampling paths on the same logits, in alternating order; they must agree.
      const t1 = performance.now();
      const onDevice = await model.argmaxLogits(all);
      const t2 = performance.now();
      const logits = await model.readLogits(0, batch, host);
      const onHost = Array.from({ length: batch }, (_, s) => argmax(logits, s * V, V));
      const t3 = performance.now();
      deviceMs.push(t2 - t1);
      hostMs.push(t3 - t2);
      if (onHost.some((id, s) => id !== onDevice[s])) throw new Error(`argmaxRows disagrees with the host argmax at batch ${batch}, step ${i}, ${f}`);
      next.set(f, onHost);
    }
  }
  const m = (f: LmHeadFormat) => median(stepMs.get(f)!);
  rows.push(
    `| ${batch} | ${m('bf16').toFixed(2)} | ${m('int8').toFixed(2)} (${(m('bf16') / m('int8')).toFixed(2)}×) | ${m('int4').toFixed(2)} (${(m('bf16') / m('int4')).toFixed(2)}×) | ${median(hostMs).toFixed(3)} | ${median(deviceMs).toFixed(3)} |`,
  );
  console.log(rows[rows.length - 1]);
}
await kernels.close();

const table = [
  '# bench:lm-head — k2-tiny decode step by lm_head format, and greedy sampling paths',
  '',
  `${new Date().toISOString()} · wasm-simd (${kernels.variant}) · ${THREADS} threads · ${STEPS} steps per format and batch, interleaved · load average ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  '',
  '| batch | bf16 head ms/step | int8 head ms/step (speed-up) | int4 head ms/step (speed-up) | greedy on host: copy + JS argmax, ms | greedy argmaxRows, ms |',
  '|---:|---:|---:|---:|---:|---:|',
  ...rows,
  '',
  'Medians. A step is the forward pass up to the logits on the backend (Model.step); the sampling columns are per step for all rows.',
];
mkdirSync(join(ROOT, 'bench-output'), { recursive: true });
writeFileSync(join(ROOT, 'bench-output', 'lm-head.md'), table.join('\n') + '\n');
console.log(table.join('\n'));
