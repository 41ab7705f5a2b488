// CLI for the model generator:
//   npm run make-model -- [--out models/k2-tiny] [--shape k2-tiny | k2-test | moonlight-16b] [--scale N] [--force]
// `--preset` is the older name of `--shape`. `--scale N` keeps every count of the shape and divides its
// widths by N (make-model.ts `scaleShape`). Without --force an existing directory with the same config
// hash is kept as is. Large shapes stream to disk shard by shard; the full moonlight-16b is ~11 GB.
import { parseArgs } from 'node:util';
import { ensureModel, makeModel, PRESETS, scaleShape } from '../src/model/make-model.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'models/k2-tiny' },
    shape: { type: 'string' },
    preset: { type: 'string' },
    scale: { type: 'string', default: '1' },
    force: { type: 'boolean', default: false },
  },
});
const name = values.shape ?? values.preset ?? 'k2-tiny';
if (!PRESETS[name]) {
  console.error(`unknown shape "${name}"; have: ${Object.keys(PRESETS).join(', ')}`);
  process.exit(2);
}
const scale = Number(values.scale);
if (!Number.isInteger(scale) || scale < 1) {
  console.error(`--scale must be a whole number ≥ 1, got "${values.scale}"`);
  process.exit(2);
}
const shape = scaleShape(PRESETS[name], scale);
const started = Date.now();
if (values.force) makeModel(values.out!, shape, console.log);
else ensureModel(values.out!, shape, console.log);
console.log(`make-model: ${values.out} ready (${name}${scale > 1 ? ` / ${scale}` : ''}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
