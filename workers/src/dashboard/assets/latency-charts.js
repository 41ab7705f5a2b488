// The dashboard's latency and error-rate charts, from GET /dashboard/api/latency: time to first token
// p50 (solid) and p95 (dashed), and the share of requests that failed, one line per model · backend.
// A plain script that defines one global, LatencyCharts, which app.js calls; it owns its two charts.
'use strict';
window.LatencyCharts = (() => {
  const COLOURS = ['#1d4ed8', '#b45309', '#047857', '#7c3aed', '#be123c', '#0e7490'];
  let charts = [];

  const width = (el) => Math.max(260, el.clientWidth - 8);

  /** One x per bucket from `from` to `to` (gaps stay null, so a quiet hour is a gap, not a zero). */
  function columns(points, from, to, bucketMs) {
    const xs = [];
    for (let t = Math.floor(from / bucketMs) * bucketMs; t < to; t += bucketMs) xs.push(t);
    const index = new Map(xs.map((t, i) => [t, i]));
    const groups = new Map();
    for (const p of points) {
      const name = `${p.model} · ${p.backend}`;
      if (!groups.has(name)) groups.set(name, { p50: xs.map(() => null), p95: xs.map(() => null), errorRate: xs.map(() => null), requests: 0, errors: 0 });
      const g = groups.get(name);
      const i = index.get(p.t);
      if (i === undefined) continue;
      g.p50[i] = p.ttft_p50_ms;
      g.p95[i] = p.ttft_p95_ms;
      g.errorRate[i] = (100 * p.errors) / p.requests;
      g.requests += p.requests;
      g.errors += p.errors;
    }
    return { xs: xs.map((t) => t / 1000), groups };
  }

  function render(latency, from, to, bucketMs) {
    for (const c of charts) c.destroy();
    charts = [];
    const { xs, groups } = columns(latency.data, from, to, bucketMs);
    const axes = [{ stroke: '#3b4252', grid: { stroke: '#e5e9f0' } }, { stroke: '#3b4252', grid: { stroke: '#e5e9f0' }, size: 70 }];
    const names = [...groups.keys()];
    const ttftSeries = [{}];
    const ttftData = [xs];
    const errSeries = [{}];
    const errData = [xs];
    names.forEach((name, i) => {
      const g = groups.get(name);
      const stroke = COLOURS[i % COLOURS.length];
      ttftSeries.push({ label: `${name} p50`, stroke, width: 2, value: (u, v) => (v == null ? '–' : `${v} ms`) });
      ttftSeries.push({ label: `${name} p95`, stroke, width: 2, dash: [6, 3], value: (u, v) => (v == null ? '–' : `${v} ms`) });
      ttftData.push(g.p50, g.p95);
      errSeries.push({ label: name, stroke, width: 2, value: (u, v) => (v == null ? '–' : `${v.toFixed(1)} %`) });
      errData.push(g.errorRate);
    });
    const ttftEl = document.getElementById('ttft-chart');
    const errEl = document.getElementById('errors-chart');
    charts.push(new uPlot({ width: width(ttftEl), height: 220, axes: [axes[0], { ...axes[1], values: (u, splits) => splits.map((v) => `${v} ms`) }], series: ttftSeries }, ttftData, ttftEl));
    charts.push(new uPlot({ width: width(errEl), height: 220, axes: [axes[0], { ...axes[1], values: (u, splits) => splits.map((v) => `${v} %`) }], series: errSeries }, errData, errEl));
    const summary = names.map((n) => `${n}: ${groups.get(n).errors} of ${groups.get(n).requests} requests failed`).join('; ');
    document.getElementById('ttft-chart-desc').textContent = names.length ? `Time to first token, p50 and p95, for ${names.join(', ')}.` : 'No requests in this period.';
    document.getElementById('errors-chart-desc').textContent = names.length ? `Error rate. ${summary}.` : 'No requests in this period.';
  }

  window.addEventListener('resize', () => {
    for (const c of charts) c.setSize({ width: width(c.root.parentElement), height: 220 });
  });

  return { render };
})();
