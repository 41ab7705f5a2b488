/**
 * Peak DRAM bandwidth of known GPUs in GB/s, from vendor data sheets. WebGPU does not expose memory
 * bandwidth, so the benchmarks match the adapter description against this table (first match wins).
 */
const KNOWN_PEAKS: Array<[RegExp, number]> = [
  [/h200/i, 4800],
  [/h100.*pcie/i, 2000],
  [/h100/i, 3350],
  [/a100.*80/i, 2039],
  [/a100/i, 1555],
  [/l40s/i, 864],
  [/rtx 4090/i, 1008],
  [/rtx 3090/i, 936],
  [/a10\b/i, 600],
  [/mi300x/i, 5300],
];

export function peakBandwidthGBs(adapterDescription: string): number | undefined {
  return KNOWN_PEAKS.find(([re]) => re.test(adapterDescription))?.[1];
}
