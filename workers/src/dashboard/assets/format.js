// Number, money and time formatting for the dashboard. Money arrives as integer micro-dollars and is
// formatted with integer arithmetic only, so the page shows exactly what D1 holds.
export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;

export const int = (n) => Number(n).toLocaleString('en-US');
/** Integer micro-dollars as "$1,234.56" or "$0.001234": exact, at least 2 decimals, no float math. */
export function usd(micros) {
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  const dollars = Math.floor(abs / 1_000_000);
  let frac = String(abs % 1_000_000).padStart(6, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${sign}$${int(dollars)}.${frac}`;
}
export const pct = (rate) => `${(rate * 100).toFixed(1)}%`;
export const when = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
/** "12.5" / "$0.000001" → integer micro-dollars, by string arithmetic (no float); null when not a amount. */
export function parseUsd(text) {
  const m = /^\$?\s*(\d{1,12})(?:\.(\d{0,6}))?$/.exec(text.trim().replace(/,/g, ''));
  if (!m) return null;
  return Number(m[1]) * 1_000_000 + Number((m[2] ?? '').padEnd(6, '0'));
}
