// The webgpu branch of select.ts: a hardware adapter is taken (by `webgpu` and by `auto`), a software
// adapter is refused unless forced and skipped by `auto`; the choice is logged either way.
import { describe, expect, it } from 'vitest';
import type { Kernels } from '../kernels.ts';
import { selectKernels } from '../select.ts';
import { acquireGpu, preferLavapipeIfUnset } from './device.ts';

preferLavapipeIfUnset();
const ctx = await acquireGpu();
if (!ctx) console.warn('webgpu select test skipped: Dawn found no WebGPU adapter (see webgpu.test.ts)');

const close = async (k: Kernels) => (k as unknown as { close?: () => Promise<void> }).close?.();

describe.skipIf(!ctx)('selectKernels: webgpu', () => {
  it('webgpu: takes a hardware adapter, refuses a software one unless forced, logs the adapter', async () => {
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    if (ctx!.software) {
      await expect(selectKernels({ backend: 'webgpu', allowSoftwareGpu: false, log })).rejects.toThrow(/software rasterizer/);
    } else {
      // A hardware adapter needs no forcing.
      const k = await selectKernels({ backend: 'webgpu', allowSoftwareGpu: false, log });
      expect(k.name).toMatch(/^webgpu/);
      expect(lines.at(-1)).toContain(ctx!.description);
    }
    const k = await selectKernels({ backend: 'webgpu', allowSoftwareGpu: true, log });
    expect(k.name).toMatch(/^webgpu/);
    expect(lines.at(-1)).toBe(`kernels: ${k.name}`);
    expect(lines.at(-1)).toContain(ctx!.description);
  });

  it('auto: takes a hardware adapter first, skips a software one with the reason logged', async () => {
    const lines: string[] = [];
    const k = await selectKernels({ backend: 'auto', threads: 1, log: (l) => lines.push(l) });
    if (ctx!.software) {
      expect(k.name).not.toMatch(/^webgpu/);
      expect(lines.join('\n')).toMatch(/skipped webgpu: adapter ".*" is a software rasterizer/);
    } else {
      expect(k.name).toMatch(/^webgpu/);
      expect(lines.join('\n')).not.toMatch(/skipped webgpu/);
      expect(lines.at(-1)).toContain(ctx!.description);
    }
    await close(k);
  });
});
