// `k2node logits` as a real child process: the .npy it writes, read back, must equal the TS reference
// forward pass run here in-process; the JSON form must carry the same float32 values; and layouts
// written by other tools (no index, re-sharded, int32 weight_shape) must give the same logits.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceKernels } from '../kernels/reference.ts';
import { Model } from '../model/forward.ts';
import { makeModel } from '../model/make-model.ts';
import { writeVariant } from './checkpoint-variants.ts';
import type { LogitsJson } from './logits.ts';
import { decodeNpy } from './npy.ts';
import type { NpyArray } from './npy.ts';
import { runCli } from './run-cli.ts';

// [BOS] "Hello, world!" <|im_end|> in k2-tiny ids: specials and ordinary tokens alike.
const TOKENS = [100256, 9906, 11, 1917, 0, 100258];

/** The Python-written variant needs python3 (standard library only); a machine without it skips that one test, CI fails it. */
function hasPython(): boolean {
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const python = hasPython();
/** CI must run the Python-writer check (./dev installs python3): there a missing python3 fails it instead of skipping it. */
const inCi = Boolean(process.env.CI) && process.env.CI !== 'false';
if (!python) console.log(`logits.test: python3 not found; ${inCi ? 'CI: the Python-writer check fails' : 'skipping the checkpoint written by the Python writer'} (./dev setup, or apt-get install -y python3)`);

let root: string;
let model: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'k2-logits-'));
  model = join(root, 'k2-test');
  await makeModel(model, 'k2-test');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function logitsNpy(dir: string, name: string): Promise<NpyArray> {
  const out = join(root, `${name}.npy`);
  const r = await runCli(['logits', dir, '--tokens', TOKENS.join(','), '--out', out, '--backend', 'reference']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toContain(`logits: [${TOKENS.length}, 100512] float32 from reference`);
  return decodeNpy(new Uint8Array(readFileSync(out)));
}

/** The reference forward pass over all positions in one step, with a scattered block table. */
async function referenceLogits(dir: string): Promise<Float32Array> {
  const m = await Model.load(dir, { kernels: new ReferenceKernels(), kvBlocks: 8, blockSize: 4, log: () => {} });
  const positions = Int32Array.from(TOKENS, (_, i) => i);
  const table = Int32Array.of(5, 2);
  return m.forward({
    tokens: Int32Array.from(TOKENS),
    positions,
    slots: positions.map((p) => table[p >> 2] * 4 + (p % 4)),
    seqs: [{ rowStart: 0, rowCount: TOKENS.length, contextLen: TOKENS.length, blockTable: table }],
    logitRows: positions,
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('k2node logits', () => {
  let npy: NpyArray;

  it('writes [T, vocab] float32 .npy equal to the in-process reference forward', async () => {
    npy = await logitsNpy(model, 'base');
    const want = await referenceLogits(model);
    expect(npy.shape).toEqual([TOKENS.length, 100512]);
    const diff = maxAbsDiff(npy.data, want);
    console.log(`logits CLI vs in-process reference: max |diff| ${diff}`);
    // Same kernels, same step shape: only the KV slots differ, which must not change a bit.
    expect(diff).toBe(0);
    // Logits that vary: a broken writer producing zeros or one repeated row would pass the diff above only if the reference did too.
    expect(new Set(npy.data.subarray(0, 1000)).size).toBeGreaterThan(900);
  });

  it('writes the same values as JSON, and JSON to stdout without --out', async () => {
    const out = join(root, 'base.json');
    const r = await runCli(['logits', model, '--tokens', TOKENS.slice(0, 2).join(','), '--out', out, '--backend', 'reference']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as LogitsJson;
    expect(json.shape).toEqual([2, 100512]);
    expect(json.tokens).toEqual(TOKENS.slice(0, 2));
    // Causal: the first two positions' logits do not depend on the tokens after them.
    expect(Float32Array.from(json.logits.flat())).toEqual(npy.data.subarray(0, 2 * 100512));

    const stdout = await runCli(['logits', model, '--tokens', String(TOKENS[0]), '--backend', 'reference']);
    expect(stdout.code, stdout.stderr).toBe(0);
    expect((JSON.parse(stdout.stdout) as LogitsJson).logits[0]).toEqual(json.logits[0]);
  });

  it('gives identical logits from a single model.safetensors (no index) with int32 weight_shape', async () => {
    const dir = join(root, 'single-i32');
    writeVariant(model, dir, { shards: 0, weightShapeDtype: 'I32' });
    expect((await logitsNpy(dir, 'single-i32')).data).toEqual(npy.data);
  });

  it('gives identical logits when re-sharded into 3 files with an index and int64 weight_shape', async () => {
    const dir = join(root, 'three-i64');
    writeVariant(model, dir, { shards: 3, weightShapeDtype: 'I64' });
    expect((await logitsNpy(dir, 'three-i64')).data).toEqual(npy.data);
  });

  it.skipIf(!python && !inCi)('gives identical logits from shards written by an independent Python writer (safetensors-library layout)', async () => {
    const dir = join(root, 'python');
    execFileSync('python3', [join(import.meta.dirname, 'testdata/hf_style_writer.py'), model, dir]);
    expect((await logitsNpy(dir, 'python')).data).toEqual(npy.data);
  });

  it('rejects an unknown output extension and out-of-vocabulary tokens before loading', async () => {
    const ext = await runCli(['logits', model, '--tokens', '1,2', '--out', join(root, 'x.csv')]);
    expect(ext.code).not.toBe(0);
    expect(ext.stderr).toContain('the extension must be .npy or .json');
    const oov = await runCli(['logits', model, '--tokens', '1,100512', '--backend', 'reference']);
    expect(oov.code).not.toBe(0);
    expect(oov.stderr).toContain('token 100512 is outside the vocabulary (vocab_size 100512)');
  });
});
