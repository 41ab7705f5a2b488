/**
 * One-shot check of a GPU machine, written before we had one: everything the WebGPU backend needs to
 * know about real hardware, measured by one command, ending in one markdown file.
 *
 *   npm run device-check -- [--small] [--scale N] [--model DIR] [--out FILE] [--peak-gbs N] [--steps N]
 *
 * 1. Environment: Vulkan loader and ICDs, nvidia-smi; if Dawn finds no adapter it says which part is missing.
 * 2. The adapter: vendor, architecture, limits, subgroups, shader-f16.
 * 3. WebGPU kernel conformance (webgpu.test.ts, expert-slabs.test.ts: every kernel against reference.ts)
 *    on this adapter.
 * 4. `bench:webgpu`: GEMV GB/s against the card's peak bandwidth.
 * 5. End-to-end decode of a Moonlight-16B-A3B-shaped model (make-model `moonlight-16b`, widths divided
 *    by --scale) at batch 1, 8 and 32: tokens/s next to the bound batch × peak GB/s / weight bytes per step.
 *
 * On a software adapter it refuses unless --small, which checks the script itself (lavapipe, narrow
 * model, few steps). Without --model the model is generated under the OS temp dir and deleted after;
 * generating the full size (--scale 1, ~10 GB) is slow in JS, so pass --model with one made beforehand
 * (`npm run make-model -- --shape moonlight-16b --out DIR`) to measure it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebGpuKernels } from '../src/kernels/webgpu/backend.ts';
import { acquireGpu, LAVAPIPE_ICD } from '../src/kernels/webgpu/device.ts';
import { Model } from '../src/model/forward.ts';
import type { StepBatch } from '../src/model/forward.ts';
import { ensureModel, PRESETS, scaleShape } from '../src/model/make-model.ts';
import { stepWeightBytes } from './decode.ts';
import { peakBandwidthGBs } from './gpu-peaks.ts';
import { uniformStepBatch } from './uniform-batch.ts';

const { values } = parseArgs({
  options: {
    small: { type: 'boolean', default: false },
    scale: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string', default: 'device-check.md' },
    'peak-gbs': { type: 'string' },
    steps: { type: 'string' },
  },
});
const small = values.small!;
const scale = Number(values.scale ?? (small ? 32 : 4));
const steps = Number(values.steps ?? (small ? 3 : 32));
const BATCHES = [1, 8, 32];
const started = Date.now();
const md: string[] = [`# Device check, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, ''];
const say = (...lines: string[]) => {
  for (const line of lines) {
    console.log(line);
    md.push(line);
  }
};
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

function sh(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: process.env, maxBuffer: 64 * 2 ** 20 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function finish(code: number): never {
  say('', `Total ${elapsed()}.`);
  writeFileSync(values.out!, md.join('\n') + '\n');
  console.log(`\ndevice-check: wrote ${values.out}`);
  process.exit(code);
}

// ── 1. environment ──────────────────────────────────────────────────────────
const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
const icds = icdDirs.flatMap((d) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => join(d, f)) : []));
const hardwareIcds = icds.filter((f) => !/lvp|lavapipe|swiftshader/i.test(f));
const loader = sh('sh', ['-c', 'ldconfig -p | grep -m1 libvulkan.so.1']);
const smi = sh('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader']);
// The tests point Vulkan at lavapipe when VK_ICD_FILENAMES is unset; here the hardware ICDs win unless --small.
if (!process.env.VK_ICD_FILENAMES) {
  if (hardwareIcds.length > 0 && !small) process.env.VK_ICD_FILENAMES = hardwareIcds.join(':');
  else if (existsSync(LAVAPIPE_ICD)) process.env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
}
say('## Environment', '');
say(`- Vulkan loader: ${loader.ok ? loader.out.split('=>').pop()!.trim() : 'MISSING (libvulkan.so.1 not in ldconfig; install libvulkan1)'}`);
say(`- Vulkan ICDs: ${icds.length ? icds.join(', ') : `NONE in ${icdDirs.join(' or ')} (install the GPU vendor's Vulkan driver, e.g. NVIDIA's libnvidia-gl / nvidia-vulkan-icd)`}`);
say(`- VK_ICD_FILENAMES used: ${process.env.VK_ICD_FILENAMES ?? '(unset: the loader searches)'}`);
say(`- nvidia-smi: ${smi.ok ? smi.out : 'not available'}`);

// ── 2. adapter ──────────────────────────────────────────────────────────────
const ctx = await acquireGpu();
say('', '## Adapter', '');
if (!ctx) {
  const absent = (process.env.VK_ICD_FILENAMES ?? '').split(':').filter((f) => f && !existsSync(f));
  const missing = !loader.ok ? 'the Vulkan loader (libvulkan.so.1)' : absent.length > 0 ? `the ICD file(s) VK_ICD_FILENAMES names: ${absent.join(', ')}` : icds.length === 0 ? 'a Vulkan driver (no ICD json)' : `an adapter from the ICDs listed (${process.env.VK_ICD_FILENAMES}): the driver loaded no device; check nvidia-smi and that the driver's Vulkan part matches the kernel module`;
  say(`No WebGPU adapter: Dawn found none. Missing: ${missing}.`);
  finish(1);
}
const info = ctx.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
const lim = ctx.device.limits;
const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
say('| field | value |', '|---|---|');
for (const [k, v] of [
  ['vendor', info.vendor],
  ['architecture', info.architecture],
  ['device', info.device],
  ['description', info.description],
  ['software adapter', String(ctx.software)],
  ['subgroups', `${ctx.subgroups}${info.subgroupMinSize ? ` (size ${info.subgroupMinSize}–${info.subgroupMaxSize})` : ''}`],
  ['shader-f16', String(ctx.shaderF16)],
  ['maxStorageBufferBindingSize', mib(lim.maxStorageBufferBindingSize)],
  ['maxBufferSize', mib(lim.maxBufferSize)],
  ['maxComputeWorkgroupStorageSize', `${lim.maxComputeWorkgroupStorageSize} B`],
  ['maxComputeInvocationsPerWorkgroup', String(lim.maxComputeInvocationsPerWorkgroup)],
  ['maxComputeWorkgroupsPerDimension', String(lim.maxComputeWorkgroupsPerDimension)],
  ['maxStorageBuffersPerShaderStage', String(lim.maxStorageBuffersPerShaderStage)],
] as const) say(`| ${k} | ${v || '(empty)'} |`);
if (ctx.software && !small) {
  say('', 'The adapter is a software rasterizer: its numbers say nothing about a GPU. Run on a GPU machine, or pass --small to check this script.');
  finish(1);
}
const peak = values['peak-gbs'] ? Number(values['peak-gbs']) : peakBandwidthGBs(`${ctx.description} ${smi.out}`);
say('', `Peak memory bandwidth used for bounds: ${peak ? `${peak} GB/s` : 'unknown (pass --peak-gbs N); bounds left out'}.`);

// ── 3. conformance ──────────────────────────────────────────────────────────
say('', '## Kernel conformance against reference.ts', '');
const testEnv = { ...process.env, ...(ctx.software ? { K2_WEBGPU_ALLOW_SOFTWARE: '1' } : {}) };
const conformance = spawnSync(
  join('node_modules', '.bin', 'vitest'),
  ['run', '--project', 'node', 'gpu-nodes/src/kernels/webgpu/webgpu.test.ts', 'gpu-nodes/src/kernels/webgpu/expert-slabs.test.ts'],
  { encoding: 'utf8', env: testEnv, maxBuffer: 64 * 2 ** 20 },
);
// vitest may colour its output; strip ANSI codes before reading the summary
const plain = `${conformance.stdout}${conformance.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
const summary = plain.split('\n').filter((l) => /^\s*(Test Files|Tests)\s/.test(l)).map((l) => l.trim());
say(`${conformance.status === 0 ? 'PASSED' : 'FAILED'} (${elapsed()}): ${summary.join('; ') || 'no summary (see stdout)'}`);
if (conformance.status !== 0) for (const l of plain.split('\n').filter((l) => /FAIL|AssertionError|Error:/.test(l)).slice(0, 20)) say(`    ${l.trim()}`);

// ── 4. bench:webgpu ─────────────────────────────────────────────────────────
say('', '## bench:webgpu (GEMV bandwidth)', '', '```');
const bench = sh(join('node_modules', '.bin', 'node'), ['gpu-nodes/bench/webgpu.ts', '--tokens', String(steps), ...(ctx.software ? ['--allow-software'] : []), ...(peak ? ['--peak-gbs', String(peak)] : [])]);
for (const l of bench.out.split('\n').filter((l) => !/^Warning: max/.test(l))) say(l);
say('```', `(${bench.ok ? 'ok' : 'FAILED'}, ${elapsed()})`);

// ── 5. end-to-end decode, Moonlight shape ───────────────────────────────────
say('', '## End-to-end decode, Moonlight-16B-A3B shape', '');
let modelDir = values.model;
let generated: string | null = null;
if (!modelDir) {
  generated = mkdtempSync(join(tmpdir(), `moonlight-${scale}-`));
  modelDir = ensureModel(generated, scaleShape(PRESETS['moonlight-16b'], scale));
  say(`Model: make-model moonlight-16b / ${scale} (generated in ${elapsed()})`);
} else say(`Model: ${modelDir}`);
try {
  await decode(modelDir);
} catch (e) {
  say(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (generated) rmSync(generated, { recursive: true, force: true });
}
finish(conformance.status === 0 && bench.ok ? 0 : 1);

/** Greedy decode at each batch: an 8-token prefill per sequence, then `steps` timed one-token steps. */
async function decode(dir: string): Promise<void> {
  const BLOCK = 16;
  const PROMPT = 8;
  const maxBatch = Math.max(...BATCHES);
  const perSeq = Math.ceil((PROMPT + steps + 1) / BLOCK);
  const kernels = new WebGpuKernels(ctx!);
  const t0 = Date.now();
  const model = await Model.load(dir, { kernels, kvBlocks: maxBatch * perSeq, blockSize: BLOCK, maxPositions: PROMPT + steps + 1, log: () => {} });
  const c = model.config;
  say(`${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.nRoutedExperts} experts (${c.numExpertsPerTok} per token, ${c.nSharedExperts} shared), q_lora ${c.qLoraRank || 'none (q_proj)'}, vocab ${c.vocabSize}; ` +
    `${(kernels.weightBytes / 2 ** 30).toFixed(2)} GiB of weights on the device, loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s.`, '');
  say('| batch | tokens/s | median ms/step | weight MB read/step | bound tokens/s | % of bound |', '|---|---|---|---|---|---|');
  for (const batch of BATCHES) {
    const step = (from: number, rows: number, tokenOf: (s: number, i: number) => number): StepBatch =>
      uniformStepBatch({ batch, blockSize: BLOCK, blocksPerSeq: perSeq }, from, rows, tokenOf);
    const argmax = (logits: Float32Array, s: number) => {
      let best = 0;
      for (let v = 1; v < c.vocabSize; v++) if (logits[s * c.vocabSize + v] > logits[s * c.vocabSize + best]) best = v;
      return best;
    };
    let logits = await model.forward(step(0, PROMPT, (s, i) => 1000 + 17 * s + i));
    let next = Array.from({ length: batch }, (_, s) => argmax(logits, s));
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      logits = await model.forward(step(PROMPT + i, 1, (s) => next[s]));
      times.push(performance.now() - t);
      next = next.map((_, s) => argmax(logits, s)); // greedy: the experts are the model's own picks
    }
    const sec = times.sort((a, b) => a - b)[Math.floor(times.length / 2)] / 1000;
    const bytes = stepWeightBytes(c, batch);
    const bound = peak ? (batch * peak * 1e9) / bytes : null;
    say(`| ${batch} | ${(batch / sec).toFixed(1)} | ${(sec * 1e3).toFixed(2)} | ${(bytes / 1e6).toFixed(1)} | ${bound ? bound.toFixed(0) : '-'} | ${bound ? `${((100 * batch) / sec / bound).toFixed(1)}%` : '-'} |`);
  }
  say('', 'Bound = batch × peak GB/s / weight bytes one step reads (bench/decode.ts `stepWeightBytes`: every bf16 weight once, ' +
    'min(batch × k, experts) routed experts per MoE layer); KV-cache reads are left out at these lengths.');
}
