// The charts view: spend and tokens per hour or day (uPlot, loaded as a classic script before this module).
import { DAY_MS, HOUR_MS, int } from './format.js';
import { $, state } from './state.js';

/** Fills missing hours/days with zeros so the x axis is even and a quiet day reads as zero. */
function series(points, from, to, bucketMs) {
  const byT = new Map(points.map((p) => [p.t, p]));
  const xs = [], spend = [], uncached = [], cached = [], output = [];
  for (let t = Math.floor(from / bucketMs) * bucketMs; t < to; t += bucketMs) {
    const p = byT.get(t);
    xs.push(t / 1000);
    spend.push(p ? p.cost_micros / 1_000_000 : 0); // plotting only; figures shown as text stay exact
    uncached.push(p ? p.uncached_prompt_tokens : 0);
    cached.push(p ? p.cached_tokens : 0);
    output.push(p ? p.completion_tokens : 0);
  }
  return { xs, spend, uncached, cached, output };
}

/** Enough decimals to tell ticks `incr` apart (tiny spends are fractions of a cent), at most 6. */
function decimalsFor(incr) {
  return Math.max(2, Math.min(6, Math.ceil(-Math.log10(incr))));
}

function chartWidth(el) {
  return Math.max(260, el.clientWidth - 8);
}

export function renderCharts(ts, from, to) {
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  const bucketMs = ts.bucket === 'hour' ? HOUR_MS : DAY_MS;
  const s = series(ts.data, from, to, bucketMs);
  const axes = [{ stroke: '#3b4252', grid: { stroke: '#e5e9f0' } }, { stroke: '#3b4252', grid: { stroke: '#e5e9f0' }, size: 70 }];
  const bars = uPlot.paths.bars({ size: [0.7, 40] });
  const spendEl = $('spend-chart');
  state.charts.push(
    new uPlot(
      {
        width: chartWidth(spendEl),
        height: 220,
        axes: [axes[0], { ...axes[1], size: 80, values: (u, splits, axis, space, incr) => splits.map((v) => `$${v.toFixed(decimalsFor(incr))}`) }],
        series: [{}, { label: 'Spend', stroke: '#1d4ed8', fill: 'rgba(29, 78, 216, 0.35)', paths: bars, value: (u, v) => (v == null ? '–' : `$${v.toFixed(6)}`) }],
      },
      [s.xs, s.spend],
      spendEl,
    ),
  );
  const tokensEl = $('tokens-chart');
  state.charts.push(
    new uPlot(
      {
        width: chartWidth(tokensEl),
        height: 220,
        axes,
        series: [
          {},
          { label: 'Input (uncached)', stroke: '#b45309', width: 2 },
          { label: 'Cached input', stroke: '#047857', width: 2, dash: [6, 3] },
          { label: 'Output', stroke: '#7c3aed', width: 2 },
        ],
      },
      [s.xs, s.uncached, s.cached, s.output],
      tokensEl,
    ),
  );
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const per = ts.bucket === 'hour' ? 'hour' : 'day';
  $('spend-chart-desc').textContent = `Spend per ${per}; ${ts.data.length} ${per}s with requests.`;
  $('tokens-chart-desc').textContent = `Tokens per ${per}: ${int(sum(s.uncached))} uncached input, ${int(sum(s.cached))} cached input, ${int(sum(s.output))} output in total.`;
}

window.addEventListener('resize', () => {
  for (const chart of state.charts) chart.setSize({ width: chartWidth(chart.root.parentElement), height: 220 });
});
