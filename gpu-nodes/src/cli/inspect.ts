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
import type { ModelConfig } from '../model/config.ts';
import { intOption, modelDir } from './args.ts';
import { checkTensors } from './tensor-check.ts';

export const usage = 'inspect DIR [--json] [--kv-tokens N]';

export interface MemoryEstimate {
  /** Tensor bytes as stored: the wasm and webgpu backends keep int4 packed and bf16 as bf16. */
  weightBytes: number;
  /** MLA caches (kv_lora_rank + qk_rope_head_dim) per token per layer; at bf16, as vLLM/SGLang store it. */
  kvBytesPerTokenBf16: number;
  /** The same in f32, as our kernels' paged cache stores it. */
  kvBytesPerToken: number;
  kvTokens: number;
  kvCacheBytes: number;
  /** Run-state buffers for a full step plus the rope tables (model/forward.ts RunState). */
  activationBytes: number;
  totalBytes: number;
}

export interface InspectReport {
  dir: string;
  architectures: string[];
  config: ModelConfig | null;
  quantization: { method: string; format: string; bits: number; groupSize: number; symmetric: boolean; ignore: string[] } | null;
  files: { shards: string[]; index: boolean; bytesOnDisk: number };
  tensors: { count: number; byDtype: Record<string, { count: number; bytes: number }> } | null;
  params: { total: number; activePerToken: number } | null;
  memory: MemoryEstimate | null;
  unusedTensors: string[];
  /** Everything that stops this directory from serving; empty when it can. */
  problems: string[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Per-step activation floats of forward.ts's RunState at `rows` rows and `logitRows` logit rows, plus rope tables. */
function activationBytes(c: ModelConfig, rows: number, logitRows: number): number {
  const ffn = Math.max(c.intermediateSize, c.moeIntermediateSize * Math.max(1, c.nSharedExperts));
  const perRow =
    5 * c.hiddenSize + // x, xn, attnOut, ffnOut, moeOut
    Math.max(1, c.qLoraRank) +
    c.numHeads * (c.qkNopeHeadDim + c.qkRopeHeadDim + 2 * c.kvLoraRank + c.vHeadDim) + // q parts, qLatent, attnLatent, attnV
    c.kvLoraRank + c.qkRopeHeadDim + // latent, kRope
    2 * ffn + // gate, up
    Math.max(1, c.nRoutedExperts); // router logits
  const rope = 2 * c.maxPositionEmbeddings * (c.qkRopeHeadDim / 2); // cos and sin tables
  return 4 * (rows * perRow + logitRows * (c.hiddenSize + c.vocabSize) + rope);
}

export function memoryEstimate(c: ModelConfig, weightBytes: number, kvTokens: number): MemoryEstimate {
  const perTokenValues = (c.kvLoraRank + c.qkRopeHeadDim) * c.numLayers;
  const kvBytesPerToken = 4 * perTokenValues;
  const activations = activationBytes(c, ENGINE_DEFAULTS.maxTokensPerStep, ENGINE_DEFAULTS.maxBatch);
  const kvCacheBytes = kvBytesPerToken * kvTokens;
  return {
    weightBytes,
    kvBytesPerTokenBf16: 2 * perTokenValues,
    kvBytesPerToken,
    kvTokens,
    kvCacheBytes,
    activationBytes: activations,
    totalBytes: weightBytes + kvCacheBytes + activations,
  };
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
    let weightBytes = 0;
    for (const name of ck.names()) {
      const info = ck.info(name);
      const slot = (byDtype[info.dtype] ??= { count: 0, bytes: 0 });
      slot.count++;
      slot.bytes += info.end - info.begin;
      weightBytes += info.end - info.begin;
      count++;
    }
    report.tensors = { count, byDtype };
    const check = checkTensors(ck, c);
    report.problems.push(...check.problems);
    report.unusedTensors = check.unused;
    report.params = { total: check.totalParams, activePerToken: check.activeParams };
    report.memory = memoryEstimate(c, weightBytes, opts.kvTokens ?? ENGINE_DEFAULTS.kvBlocks * ENGINE_DEFAULTS.blockSize);
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
