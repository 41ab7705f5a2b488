/**
 * `k2node inspect DIR`: what an operator wants to know before serving a checkpoint. Config summary,
 * quantization scheme, tensors by dtype, bytes on disk, the memory serving will take, KV bytes per
 * token, and a header-only check that every tensor the architecture needs is there in the right form.
 * Reads headers only (plus the tiny weight_shape values), so it takes seconds even on K2's 594 GB.
 * Exits non-zero, after printing the report, when the checkpoint cannot be served.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINE_DEFAULTS } from '../engine/load-engine.ts';
import { Checkpoint } from '../model/checkpoint.ts';
import { parseConfig } from '../model/config.ts';
import { type CheckpointBytes, checkpointBytes, memoryEstimate as estimate, type MemoryEstimate } from '../model/memory-estimate.ts';
import type { ModelConfig } from '../model/config.ts';
import { WASM32_MEMORY_BYTES } from '../kernels/kernels.ts';
import { intOption, modelDir } from './args.ts';
import { checkTensors } from './tensor-check.ts';

export const usage = 'inspect DIR [--json] [--kv-tokens N]';

export interface InspectReport {
  dir: string;
  architectures: string[];
  config: ModelConfig | null;
  quantization: { method: string; format: string; bits: number; groupSize: number; symmetric: boolean; ignore: string[] } | null;
  files: { shards: string[]; index: boolean; bytesOnDisk: number };
  tensors: { count: number; byDtype: Record<string, { count: number; bytes: number }> } | null;
  params: { total: number; activePerToken: number } | null;
  memory: MemoryEstimate | null;
  /** What each kernel backend would hold to serve it, and whether a hard limit stops it. */
  backends: BackendNeed[];
  unusedTensors: string[];
  /** Everything that stops this directory from serving; empty when it can. */
  problems: string[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The estimate at the engine's default step size (a full prefill step, every batch row sampling). */
export function memoryEstimate(c: ModelConfig, weights: CheckpointBytes, kvTokens: number): MemoryEstimate {
  return estimate(c, weights, kvTokens, { rows: ENGINE_DEFAULTS.maxTokensPerStep, logitRows: ENGINE_DEFAULTS.maxBatch });
}

export interface BackendNeed {
  backend: 'reference' | 'wasm-simd' | 'webgpu';
  where: string;
  bytes: number;
  /** false: the backend refuses this model (a hard limit); null: no fixed limit to check here. */
  fits: boolean | null;
  note: string;
}

/** The wasm and webgpu backends hold the weights as stored, the reference backend as f32; all add KV and activations. */
export function backendNeeds(m: MemoryEstimate): BackendNeed[] {
  const wasmFits = m.totalBytes <= WASM32_MEMORY_BYTES;
  return [
    { backend: 'reference', where: 'host memory', bytes: m.referenceTotalBytes, fits: null, note: 'every weight dequantized to f32 in JS typed arrays, no fixed limit (tests only: slow)' },
    {
      backend: 'wasm-simd',
      where: 'one wasm32 memory',
      bytes: m.totalBytes,
      fits: wasmFits,
      note: wasmFits
        ? `within the ${formatBytes(WASM32_MEMORY_BYTES)} wasm32 limit`
        : `over the ${formatBytes(WASM32_MEMORY_BYTES)} wasm32 limit: wasm-simd refuses this model; serve it with --backend webgpu`,
    },
    {
      backend: 'webgpu',
      where: 'GPU memory',
      bytes: m.totalBytes,
      fits: null,
      note: `experts held once (slabs); largest tensor ${m.largestTensor.name} ${formatBytes(m.largestTensor.bytes)}, uploaded in row parts where it passes the adapter's maxStorageBufferBindingSize (lavapipe: 128 MiB; npm run device-check prints the adapter's)`,
    },
  ];
}

/** Shard files as the directory names them: the index's weight_map, or the single model.safetensors. */
function shardFiles(dir: string): { shards: string[]; index: boolean } {
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (existsSync(indexPath)) {
    try {
      const map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      return { shards: [...new Set(Object.values(map))].sort(), index: true };
    } catch {
      return { shards: [], index: true }; // Checkpoint reports the unreadable index with its reason
    }
  }
  return { shards: existsSync(join(dir, 'model.safetensors')) ? ['model.safetensors'] : [], index: false };
}

function bytesOnDisk(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isFile()) total += statSync(join(dir, entry.name)).size;
  return total;
}

/** Builds the report; problems with the checkpoint are collected, not thrown. */
export function inspectModel(dir: string, opts: { kvTokens?: number } = {}): InspectReport {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir}: not a directory`);
  const report: InspectReport = {
    dir,
    architectures: [],
    config: null,
    quantization: null,
    files: { ...shardFiles(dir), bytesOnDisk: bytesOnDisk(dir) },
    tensors: null,
    params: null,
    memory: null,
    backends: [],
    unusedTensors: [],
    problems: [],
  };
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    report.architectures = Array.isArray(raw.architectures) ? raw.architectures.map(String) : [];
    report.config = parseConfig(raw);
  } catch (err) {
    report.problems.push(`config.json: ${message(err)}`);
    return report;
  }
  const c = report.config;
  if (c.quant) {
    const q = raw.quantization_config as { quant_method: string; format: string };
    report.quantization = { method: q.quant_method, format: q.format, bits: c.quant.bits, groupSize: c.quant.groupSize, symmetric: true, ignore: c.quant.ignore };
  }

  let ck: Checkpoint;
  try {
    ck = new Checkpoint(dir);
  } catch (err) {
    report.problems.push(message(err));
    return report;
  }
  try {
    const byDtype: Record<string, { count: number; bytes: number }> = {};
    let count = 0;
    for (const name of ck.names()) {
      const info = ck.info(name);
      const slot = (byDtype[info.dtype] ??= { count: 0, bytes: 0 });
      slot.count++;
      slot.bytes += info.end - info.begin;
      count++;
    }
    report.tensors = { count, byDtype };
    const check = checkTensors(ck, c);
    report.problems.push(...check.problems);
    report.unusedTensors = check.unused;
    report.params = { total: check.totalParams, activePerToken: check.activeParams };
    report.memory = memoryEstimate(c, checkpointBytes(ck), opts.kvTokens ?? ENGINE_DEFAULTS.kvBlocks * ENGINE_DEFAULTS.blockSize);
    report.backends = backendNeeds(report.memory);
  } finally {
    ck.close();
  }
  return report;
}

// ----------------------------------------------------------------------------
// Text rendering

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function formatCount(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(2)}T`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  return String(n);
}

/** Problems past this many are summarised: a wrong config can make every one of 70k tensors "missing". */
const MAX_PROBLEMS_SHOWN = 20;

export function formatReport(r: InspectReport): string {
  const lines = [r.dir];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(14)} ${value}`);
  const c = r.config;
  if (c) {
    row('architecture', `${r.architectures.join(', ') || '(none listed)'} (model_type ${c.modelType})`);
    const yarn = c.ropeScaling ? ` (yarn ×${c.ropeScaling.factor} from ${c.ropeScaling.originalMaxPositionEmbeddings})` : '';
    row('model', `${c.numLayers} layers (first ${c.firstKDenseReplace} dense), hidden ${c.hiddenSize}, dense intermediate ${c.intermediateSize}, vocab ${c.vocabSize}, context ${c.maxPositionEmbeddings}${yarn}`);
    row('attention', `MLA, ${c.numHeads} heads, q_lora ${c.qLoraRank}, kv_lora ${c.kvLoraRank}, qk nope/rope ${c.qkNopeHeadDim}/${c.qkRopeHeadDim}, v ${c.vHeadDim}`);
    row('experts', `${c.nRoutedExperts} routed (${c.numExpertsPerTok} per token, groups ${c.topkGroup} of ${c.nGroup}), ${c.nSharedExperts} shared, moe_intermediate ${c.moeIntermediateSize}, ${c.scoringFunc} ${c.topkMethod}, scaling ${c.routedScalingFactor}`);
  }
  const q = r.quantization;
  if (q) row('quantization', `${q.method} ${q.format}, int${q.bits} group ${q.groupSize} symmetric; ignore: ${q.ignore.join(', ') || '(nothing)'}`);
  else if (c) row('quantization', 'none (every Linear bf16)');
  if (r.params) row('parameters', `${formatCount(r.params.total)} total, ${formatCount(r.params.activePerToken)} active per token`);
  row('files', `${r.files.shards.length} shard${r.files.shards.length === 1 ? '' : 's'} (${r.files.index ? 'model.safetensors.index.json' : 'no index'}), ${formatBytes(r.files.bytesOnDisk)} on disk`);
  if (r.tensors) {
    const parts = Object.entries(r.tensors.byDtype).sort(([a], [b]) => a.localeCompare(b)).map(([d, s]) => `${d} ${s.count} (${formatBytes(s.bytes)})`);
    row('tensors', `${r.tensors.count}: ${parts.join(', ')}`);
  }
  const m = r.memory;
  if (m) {
    row('KV per token', `${formatBytes(m.kvBytesPerTokenBf16)} at bf16 ((kv_lora + rope) × 2 B × layers); ${formatBytes(m.kvBytesPerToken)} as this node stores it (f32)`);
    row('serve memory', `≈ ${formatBytes(m.totalBytes)}: weights ${formatBytes(m.weightBytes)} + KV cache ${formatBytes(m.kvCacheBytes)} (${m.kvTokens} tokens) + activations and rope tables ${formatBytes(m.activationBytes)}`);
  }
  for (const b of r.backends) row(`  ${b.backend}`, `${formatBytes(b.bytes)} in ${b.where}${b.fits === false ? ' — REFUSED' : ''}: ${b.note}`);
  if (r.problems.length === 0) {
    const unused = r.unusedTensors.length ? ` (${r.unusedTensors.length} tensors unused by the forward pass, e.g. "${r.unusedTensors[0]}")` : '';
    row('check', `OK: every tensor the architecture needs is present and well-formed${unused}`);
  } else {
    row('check', `FAILED: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
    for (const p of r.problems.slice(0, MAX_PROBLEMS_SHOWN)) lines.push(`    ${p}`);
    if (r.problems.length > MAX_PROBLEMS_SHOWN) lines.push(`    … and ${r.problems.length - MAX_PROBLEMS_SHOWN} more`);
  }
  return lines.join('\n');
}

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, 'kv-tokens': { type: 'string' } },
  });
  const dir = modelDir(positionals, usage);
  const report = inspectModel(dir, { kvTokens: intOption(values['kv-tokens'], 'kv-tokens', 0) });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
  if (report.problems.length > 0) throw new Error(`inspect: ${dir} cannot be served: ${report.problems[0]}`);
}
