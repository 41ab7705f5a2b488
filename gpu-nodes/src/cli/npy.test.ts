import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy } from './npy.ts';

const dir = mkdtempSync(join(tmpdir(), 'npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** numpy itself, when this machine has it: the strongest check that the format is right. */
function hasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const numpy = hasNumpy();
/** CI must run the cross-check (./dev installs python3-numpy): there a missing numpy fails it instead of skipping it. */
const inCi = Boolean(process.env.CI) && process.env.CI !== 'false';
if (!numpy) console.log(`npy.test: python3 with numpy not found; ${inCi ? 'CI: the numpy cross-check fails' : 'skipping the cross-checks against numpy'} (./dev setup, or apt-get install -y python3-numpy)`);

function sample(n: number): Float32Array {
  // Values that exercise sign, tiny and huge magnitudes, and non-finite floats.
  const specials = [0, -0, 1.5, -2.25, 3.4e38, -1.2e-38, Infinity, -Infinity];
  return Float32Array.from({ length: n }, (_, i) => (i < specials.length ? specials[i] : Math.fround(Math.sin(i) * 1000)));
}

describe('npy', () => {
  it('writes a numpy 1.0 header padded to 64 bytes and round-trips values exactly', () => {
    const data = sample(3 * 7);
    const bytes = encodeNpy(data, [3, 7]);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const headerLen = bytes[8] | (bytes[9] << 8);
    expect((10 + headerLen) % 64).toBe(0);
    expect(bytes[10 + headerLen - 1]).toBe(0x0a);
    expect(bytes.length).toBe(10 + headerLen + data.byteLength);
    const back = decodeNpy(bytes);
    expect(back.shape).toEqual([3, 7]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
    expect(Object.is(back.data[1], -0)).toBe(true);
  });

  it('writes one-dimensional shapes with the trailing comma Python needs', () => {
    const back = decodeNpy(encodeNpy(Float32Array.of(1, 2, 3), [3]));
    expect(back.shape).toEqual([3]);
    expect(new TextDecoder().decode(encodeNpy(Float32Array.of(1, 2, 3), [3]).subarray(10, 70))).toContain("'shape': (3,)");
  });

  it('rejects what it cannot represent or read', () => {
    expect(() => encodeNpy(new Float32Array(5), [2, 3])).toThrow('holds 6 values, data has 5');
    expect(() => decodeNpy(new Uint8Array(20))).toThrow('bad magic');
    const good = encodeNpy(new Float32Array(4), [4]);
    expect(() => decodeNpy(good.subarray(0, good.length - 2))).toThrow('needs 16 data bytes, file has 14');
    const f64 = Uint8Array.from(good);
    f64.set(new TextEncoder().encode("'<f8'"), new TextDecoder().decode(good).indexOf("'<f4'"));
    expect(() => decodeNpy(f64)).toThrow("dtype <f8 unsupported");
  });

  it.skipIf(!numpy && !inCi)('is read by numpy.load and reads what numpy.save writes', () => {
    const data = sample(4 * 5);
    const ours = join(dir, 'ours.npy');
    writeFileSync(ours, encodeNpy(data, [4, 5]));
    const theirs = join(dir, 'theirs.npy');
    // numpy loads ours, checks dtype and shape, and saves it back under its own writer.
    const script = `import numpy as np, sys
a = np.load(sys.argv[1])
assert a.dtype == np.float32 and a.shape == (4, 5), (a.dtype, a.shape)
np.save(sys.argv[2], a)
print(repr(float(a[0, 2])), repr(float(a[3, 4])))`;
    const printed = execFileSync('python3', ['-c', script, ours, theirs], { encoding: 'utf8' }).trim().split(' ').map(Number);
    expect(printed).toEqual([data[2], data[19]]);
    const back = decodeNpy(new Uint8Array(readFileSync(theirs)));
    expect(back.shape).toEqual([4, 5]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });
});
