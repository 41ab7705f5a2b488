/**
 * The step batches the decode benchmarks feed `Model.forward`: `batch` sequences side by side, each
 * `rows` rows from position `from`, sequence s owning KV blocks s·blocksPerSeq … (s+1)·blocksPerSeq − 1,
 * and the last row of each sequence producing logits.
 */
import type { AttnSeq } from '../src/kernels/kernels.ts';
import type { StepBatch } from '../src/model/forward.ts';

export interface UniformBatchShape {
  batch: number;
  blockSize: number;
  blocksPerSeq: number;
}

export function uniformStepBatch(
  { batch, blockSize, blocksPerSeq }: UniformBatchShape,
  from: number,
  rows: number,
  tokenOf: (seq: number, row: number) => number,
): StepBatch {
  const n = batch * rows;
  const seqs: AttnSeq[] = Array.from({ length: batch }, (_, s) => ({
    rowStart: s * rows,
    rowCount: rows,
    contextLen: from + rows,
    blockTable: Int32Array.from({ length: blocksPerSeq }, (_, i) => s * blocksPerSeq + i),
  }));
  const b: StepBatch = { tokens: new Int32Array(n), positions: new Int32Array(n), slots: new Int32Array(n), seqs, logitRows: new Int32Array(batch) };
  for (let s = 0; s < batch; s++) {
    for (let i = 0; i < rows; i++) {
      const p = from + i;
      b.tokens[s * rows + i] = tokenOf(s, i);
      b.positions[s * rows + i] = p;
      b.slots[s * rows + i] = seqs[s].blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize);
    }
    b.logitRows[s] = s * rows + rows - 1;
  }
  return b;
}
