// A checkpoint past the wasm32 memory: the wasm-simd backend refuses it before reading a weight, with a
// message naming the limit and the way out, and `k2node inspect` reports it per backend. The 4 GiB of
// extra weights are one tensor in a sparse shard (the header says 4 GiB + 8 bytes; the file is truncated
// up to that size, so it takes no disk space and is never read).
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectModel } from '../cli/inspect.ts';
import { WASM32_MEMORY_BYTES } from '../kernels/kernels.ts';
import { wasmSupport } from '../kernels/select.ts';
import { Model } from './forward.ts';
import { makeModel } from './make-model.ts';

const missing = await wasmSupport();
if (missing) console.warn(`memory-limit wasm case skipped: ${missing}`);

let dir: string;
const EXTRA = 'model.extra_padding';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'k2-over-4gib-'));
  makeModel(dir, 'k2-test');
  // one U8 tensor of 4 GiB + 8 bytes in its own shard, added to the index
  const bytes = WASM32_MEMORY_BYTES + 8;
  const header = new TextEncoder().encode(JSON.stringify({ [EXTRA]: { dtype: 'U8', shape: [bytes], data_offsets: [0, bytes] } }).padEnd(64, ' '));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
  const fd = openSync(join(dir, 'padding.safetensors'), 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, header);
    ftruncateSync(fd, 8 + header.length + bytes);
  } finally {
    closeSync(fd);
  }
  const indexPath = join(dir, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8'));
  index.weight_map[EXTRA] = 'padding.safetensors';
  writeFileSync(indexPath, JSON.stringify(index));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a model past the 4 GiB wasm32 memory', () => {
  it.skipIf(missing !== null)('wasm-simd refuses it up front, naming the limit and the webgpu backend', async () => {
    const { WasmKernels } = await import('../kernels/wasm-simd/wasm-kernels.ts');
    const wasm = await WasmKernels.create({ threads: 1 });
    try {
      const logs: string[] = [];
      await expect(Model.load(dir, { kernels: wasm, kvBlocks: 4, blockSize: 4, log: (l) => logs.push(l) })).rejects.toThrow(
        /needs at least 4\.\d+ GiB .* more than the wasm-simd backend's limit of 4\.00 GiB .*--backend webgpu/,
      );
      expect(logs.some((l) => /%/.test(l))).toBe(false); // refused before loading began
    } finally {
      await wasm.close();
    }
  });

  it('inspect reports what each backend needs and that wasm-simd refuses it', () => {
    const report = inspectModel(dir);
    const wasm = report.backends.find((b) => b.backend === 'wasm-simd')!;
    expect(wasm.fits).toBe(false);
    expect(wasm.bytes).toBeGreaterThan(WASM32_MEMORY_BYTES);
    expect(report.memory!.largestTensor).toEqual({ name: EXTRA, bytes: WASM32_MEMORY_BYTES + 8 });
    expect(report.backends.map((b) => b.backend)).toEqual(['reference', 'wasm-simd', 'webgpu']);
  });
});
