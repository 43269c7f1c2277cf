// HTML rendering of a bench report: one self-contained file (no network access needed to view it)
// with the tables and the charts, drawn by Chart.js, whose UMD build is read from node_modules at
// report time and inlined in a <script>. The full JSON result is embedded too (a <details> block).
// Once every chart is drawn the page sets window.__walstreamReport = { charts, rendered, errors }
// (what the tests read in headless Chromium).

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Errors } from '../../src/errors.js';
import { UNITS_LINE, type Cell, type Report } from './model.js';

const require = createRequire(import.meta.url);

/** Chart.js's UMD build (chart.umd.min.js), as text; a one-line error when chart.js (a development dependency) is not installed. */
function chartJsSource(): string {
  let main: string;
  try {
    main = require.resolve('chart.js'); // .../chart.js/dist/chart.cjs
  } catch {
    throw Errors.featureNotSupported('the HTML report needs the package "chart.js", which is a development dependency and is not installed (npm install chart.js)');
  }
  return fs.readFileSync(path.join(path.dirname(main), 'chart.umd.min.js'), 'utf8');
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON safe inside <script>: no "</script>", no "<!--". */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

function cellHtml(c: Cell): string {
  if (c === null) return '—';
  if (typeof c === 'number') return Number.isInteger(c) ? String(c) : String(+c.toFixed(3));
  return esc(c);
}

// Runs in the page: draws every chart of `report.charts` into its <canvas>.
const PAGE_SCRIPT = `
(function () {
  var state = { charts: 0, rendered: [], errors: [] };
  window.__walstreamReport = state;
  var report = JSON.parse(document.getElementById('report-data').textContent);
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  state.charts = report.charts.length;
  report.charts.forEach(function (c) {
    try {
      var canvas = document.getElementById('chart-' + c.id);
      var datasets = c.series.map(function (s, i) {
        var color = palette[i % palette.length];
        var d = { label: s.label, data: s.data, backgroundColor: color, borderColor: color };
        if (c.kind === 'cdf' || c.kind === 'line') { d.fill = false; d.pointRadius = c.kind === 'cdf' ? 2 : 0; d.borderWidth = 2; d.showLine = true; }
        if (c.kind === 'cdf') d.data = s.data.filter(function (p) { return p.x > 0; });
        return d;
      });
      var cfg;
      if (c.kind === 'bar' || c.kind === 'stacked') {
        var stacked = c.kind === 'stacked';
        var across = stacked || c.horizontal;
        var value = c.logY ? { type: 'logarithmic', title: { display: true, text: c.yLabel + ' (log scale)' } } : { beginAtZero: true, title: { display: true, text: c.yLabel } };
        var category = { title: { display: true, text: c.xLabel } };
        if (stacked) { value.stacked = true; category.stacked = true; }
        cfg = { type: 'bar', data: { labels: c.labels, datasets: datasets }, options: {
          indexAxis: across ? 'y' : 'x',
          scales: across ? { x: value, y: category } : { x: category, y: value } } };
      } else {
        cfg = { type: 'scatter', data: { datasets: datasets }, options: { scales: {
          x: { type: c.kind === 'cdf' ? 'logarithmic' : 'linear', title: { display: true, text: c.xLabel } },
          y: { min: c.kind === 'cdf' ? 0 : undefined, max: c.kind === 'cdf' ? 100 : undefined, beginAtZero: true, title: { display: true, text: c.yLabel } } } } };
      }
      cfg.options.animation = false;
      cfg.options.responsive = true;
      cfg.options.maintainAspectRatio = false;
      cfg.options.plugins = { title: { display: false }, legend: { position: 'bottom' } };
      new Chart(canvas, cfg);
      state.rendered.push(c.id);
    } catch (e) {
      state.errors.push(c.id + ': ' + (e && e.message ? e.message : String(e)));
      console.error('chart ' + c.id + ' failed: ' + (e && e.message ? e.message : e));
    }
  });
  document.body.setAttribute('data-charts-rendered', String(state.rendered.length));
})();
`;

/** The report as one self-contained HTML document. */
export function renderHtml(r: Report, result: unknown): string {
  const tables = r.tables.map((t) => `
<section class="table">
  <h2>${esc(t.title)}</h2>
  <table>
    <thead><tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead>
    <tbody>${t.rows.map((row) => `<tr>${row.map((c, i) => (i === 0 ? `<th scope="row">${cellHtml(c)}</th>` : `<td${typeof c === 'string' ? ' class="text"' : ''}>${cellHtml(c)}</td>`)).join('')}</tr>`).join('\n')}</tbody>
  </table>${t.note ? `\n  <p class="note">${esc(t.note)}</p>` : ''}
</section>`).join('\n');
  const charts = r.charts.map((c) => `
<figure class="chart${c.horizontal ? ' wide' : ''}" data-chart-id="${esc(c.id)}">
  <figcaption>${esc(c.title)}</figcaption>
  <div class="canvas-box"><canvas id="chart-${esc(c.id)}" role="img" aria-label="${esc(c.title)}"></canvas></div>
</figure>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.heading ?? `walstream bench ${r.bench}`)}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
  h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
  .units { color: #555; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; } td { text-align: right; } td.text { text-align: left; }
  thead th { background: #f0f3f7; } tbody th { text-align: left; font-weight: normal; }
  .note { color: #555; font-size: 0.9em; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(500px, 1fr)); gap: 1.5em; }
  figure.chart { margin: 0; } figcaption { font-weight: 600; margin-bottom: 0.4em; }
  .canvas-box { position: relative; height: 340px; }
  figure.wide { grid-column: 1 / -1; } figure.wide .canvas-box { height: 420px; }
  pre { background: #f6f6f6; padding: 1em; overflow: auto; max-height: 30em; }
</style>
</head>
<body>
<h1>${esc(r.heading ?? `walstream bench ${r.bench}`)}</h1>
<p>${esc(r.title)}</p>
<p class="units">${esc(r.units ?? UNITS_LINE)}</p>
<section class="charts">
${charts}
</section>
${tables}
<details><summary>JSON result</summary><pre>${esc(JSON.stringify(result, null, 2))}</pre></details>
<script id="report-data" type="application/json">${scriptJson({ bench: r.bench, charts: r.charts })}</script>
<script>${chartJsSource().replace(/<\/script/gi, '<\\/script')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
