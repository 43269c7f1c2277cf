// Helpers for the bench report tests (test/bench-report-*.test.ts): run the walstream command,
// validate a --json result against bench/schemas/bench.schema.json (ajv), keep the heading lines of
// a text report, and open an --html report in headless Chromium (playwright-core driving the
// system's /usr/bin/chromium, installed by scripts/setup.sh) to check that every chart was drawn.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { chromium } from 'playwright-core';
import { headingLines as headingLinesOf } from '../../bench/report/text.js';

export { headingLinesOf as headingLines };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHROMIUM = process.env.WALSTREAM_CHROMIUM ?? '/usr/bin/chromium';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `walstream <args>` from this checkout; stdout/stderr are pipes (not a TTY). */
export function walstream(args: string[], timeoutMs = 600_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'walstream.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let ajv: Ajv | null = null;

/** Schema errors of `result` against the bench's definition (#/$defs/<bench>) and the whole schema; [] when valid. */
export function schemaErrors(bench: string, result: unknown): string[] {
  if (ajv === null) {
    ajv = new Ajv({ allErrors: true, strict: true });
    ajv.addSchema(JSON.parse(fs.readFileSync(path.join(ROOT, 'bench', 'schemas', 'bench.schema.json'), 'utf8')), 'bench');
  }
  const out: string[] = [];
  for (const ref of [`bench#/$defs/${bench}`, 'bench']) {
    const v = ajv.getSchema(ref);
    if (!v) return [`no schema ${ref}`];
    if (!v(result)) out.push(...(v.errors ?? []).map((e) => `${ref}: ${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`));
  }
  return out;
}


export interface ChartCheck {
  id: string;
  /** Chart.js has a chart on the canvas. */
  chart: boolean;
  /** Data points over all its datasets. */
  points: number;
  /** Pixels drawn (alpha > 0) on the canvas. */
  paintedPixels: number;
}

export interface HtmlCheck {
  /** Charts the report declares (its embedded data). */
  declared: number;
  /** <canvas> elements in the page. */
  canvases: number;
  charts: ChartCheck[];
  /** Errors from the page's own bookkeeping, console.error messages and uncaught exceptions. */
  errors: string[];
  /** Requests to anything but file: and data: URLs (the report must work offline). */
  externalRequests: string[];
  screenshot: string;
}

/** Open `htmlFile` in headless Chromium, check each chart, save a full-page screenshot into `shotDir`. */
export async function checkHtmlInChromium(htmlFile: string, shotDir: string): Promise<HtmlCheck> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const externalRequests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
    page.on('request', (r) => {
      if (!/^(file|data):/.test(r.url())) externalRequests.push(r.url());
    });
    await page.goto(`file://${htmlFile}`, { waitUntil: 'load' });
    // In the page (strings: this project compiles without the DOM library).
    await page.waitForFunction('(() => { const s = window.__walstreamReport; return s !== undefined && s.rendered.length + s.errors.length === s.charts; })()', undefined, { timeout: 30_000 });
    const res = (await page.evaluate(`(() => {
      const canvases = [...document.querySelectorAll('canvas')];
      const charts = canvases.map((c) => {
        const chart = Chart.getChart(c);
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
        const points = chart ? chart.data.datasets.reduce((a, d) => a + d.data.filter((v) => v !== null).length, 0) : 0;
        return { id: c.id.replace(/^chart-/, ''), chart: chart !== undefined, points, paintedPixels: painted };
      });
      return { declared: window.__walstreamReport.charts, canvases: canvases.length, charts, pageErrors: window.__walstreamReport.errors };
    })()`)) as { declared: number; canvases: number; charts: ChartCheck[]; pageErrors: string[] };
    const screenshot = path.join(shotDir, `${path.basename(htmlFile, '.html')}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    return { declared: res.declared, canvases: res.canvases, charts: res.charts, errors: [...res.pageErrors, ...errors], externalRequests, screenshot };
  } finally {
    await browser.close();
  }
}

/** Chart ids declared in a report file (its embedded data), in order. */
export function declaredChartIds(htmlFile: string): string[] {
  const m = /<script id="report-data" type="application\/json">(.*?)<\/script>/s.exec(fs.readFileSync(htmlFile, 'utf8'));
  if (!m) return [];
  return (JSON.parse(m[1]!) as { charts: Array<{ id: string }> }).charts.map((c) => c.id);
}

/** No stack frames in command output. */
export const STACK_FRAME = /^\s+at .+\(?.*:\d+:\d+\)?$/m;

// ---------------------------------------------------------------------------------------------

/** Heading snapshot of a bench's text report: test/snapshots/bench-<name>.headings.txt (UPDATE_SNAPSHOTS=1 rewrites it). */
export function headingSnapshot(name: string, lines: string[]): { expected: string[]; actual: string[] } {
  const file = path.join(ROOT, 'test', 'snapshots', `bench-${name}.headings.txt`);
  if (process.env.UPDATE_SNAPSHOTS === '1' || !fs.existsSync(file)) {
    if (process.env.UPDATE_SNAPSHOTS !== '1') throw new Error(`no snapshot ${file}: run with UPDATE_SNAPSHOTS=1 to write it`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
  }
  return { expected: fs.readFileSync(file, 'utf8').replace(/\n$/, '').split('\n'), actual: lines };
}

export interface SmokeResult {
  /** The parsed --json result. */
  result: Record<string, unknown>;
  /** The text report of the saved result (`walstream bench report FILE`). */
  text: string;
  html: HtmlCheck;
  /** Chart ids the report declares. */
  chartIds: string[];
}

/**
 * One short run of `walstream bench <name> <args> --json --html FILE --dir DIR`, then
 * `walstream bench report` of its saved JSON (the text report) and its HTML in Chromium. Checks what
 * every bench must hold: exit 0, nothing on stderr with --json, JSON valid against the schema, DIR
 * left empty, the text headings as in the snapshot, every declared chart drawn with data, no page
 * error, no request leaving the file, a screenshot. Returns what the bench's own test checks further.
 */
export async function benchReportSmoke(
  assert: typeof import('node:assert/strict'), tmp: string, name: string, args: string[],
): Promise<SmokeResult> {
  const work = path.join(tmp, 'work');
  fs.mkdirSync(work);
  const html = path.join(tmp, `bench-${name}.html`);
  const run = await walstream(['bench', name, ...args, '--json', '--html', html, '--dir', work]);
  assert.equal(run.code, 0, `exit code 0: ${run.stderr}`);
  assert.equal(run.stderr, '', 'quiet with --json');
  const result = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.equal(result.bench, name);
  assert.deepEqual(schemaErrors(name, result), [], 'valid against bench/schemas/bench.schema.json');
  assert.deepEqual(fs.readdirSync(work), [], 'what the run created inside --dir is removed');

  const saved = path.join(tmp, `bench-${name}.json`);
  fs.writeFileSync(saved, run.stdout);
  const rep = await walstream(['bench', 'report', saved]);
  assert.equal(rep.code, 0, rep.stderr);
  const snap = headingSnapshot(name, headingLinesOf(rep.stdout));
  assert.deepEqual(snap.actual, snap.expected, 'text report headings as in the snapshot');

  const chartIds = declaredChartIds(html);
  const check = await checkHtmlInChromium(html, tmp);
  assert.deepEqual(check.errors, [], 'no console errors, no page errors');
  assert.deepEqual(check.externalRequests, [], 'the report works offline (Chart.js inlined)');
  assert.equal(check.declared, chartIds.length);
  assert.equal(check.canvases, chartIds.length, 'one canvas per chart');
  assert.deepEqual(check.charts.map((c) => c.id), chartIds);
  for (const c of check.charts) {
    assert.ok(c.chart && c.points > 0 && c.paintedPixels > 0, `chart ${c.id} drawn with data: ${JSON.stringify(c)}`);
  }
  assert.ok(fs.statSync(check.screenshot).size > 0, 'screenshot saved');
  return { result, text: rep.stdout, html: check, chartIds };
}
