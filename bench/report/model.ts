// What a bench report holds, whatever it is rendered as (bench/report/text.ts: terminal tables;
// bench/report/html.ts: one self-contained HTML file with charts). Each bench turns its JSON result
// into one Report (bench/report/reports.ts). Units are fixed for every bench and stated once:
// latency in ms, throughput in MB/s (10^6 bytes/s), rates in commits/s.

export type Cell = string | number | null;

export interface Table {
  /** Heading printed above the table (stable: no measured figure in it). */
  title: string;
  columns: string[];
  rows: Cell[][];
  /** One line printed under the table. */
  note?: string;
}

export interface Point {
  x: number;
  y: number;
}

export interface ChartSeries {
  label: string;
  /** bar / stacked: one value per label (null: not measured); cdf / line: points. */
  data: Array<number | null> | Point[];
}

export interface ChartSpec {
  id: string;
  title: string;
  /** bar: grouped bars per label; stacked: stacked horizontal bars; cdf: latency (x, ms) → fraction of commits (y); line: y over time (x, s). */
  kind: 'bar' | 'stacked' | 'cdf' | 'line';
  xLabel: string;
  yLabel: string;
  /** Category labels (bar, stacked). */
  labels?: string[];
  series: ChartSeries[];
  /** Logarithmic value axis (bar: when values span orders of magnitude). */
  logY?: boolean;
  /** Bars drawn horizontally (bar: long category labels). */
  horizontal?: boolean;
}

export interface Report {
  bench: string;
  /** First line of the text report and the HTML title (default: `walstream bench <bench>`). */
  heading?: string;
  /** The units line (default: UNITS_LINE). */
  units?: string;
  title: string;
  tables: Table[];
  charts: ChartSpec[];
}

/** The one statement of units, printed in every table header block and every HTML report. */
export const UNITS_LINE = 'Units: latency in ms; throughput in MB/s (1 MB/s = 10^6 bytes/s); rates in commits/s; ratio = ours / reference';

/** Percentiles (0..100) at which latency CDFs are sampled in the JSON results. */
export const CDF_PERCENTILES = [0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 99.5, 99.9, 100] as const;

export interface CdfPoint {
  /** Percentile, 0..100. */
  p: number;
  ms: number;
}

/** Nearest-rank CDF of ascending-sorted latencies (ms) at CDF_PERCENTILES. */
export function cdfOf(sortedMs: ArrayLike<number>): CdfPoint[] {
  const n = sortedMs.length;
  if (n === 0) return [];
  return CDF_PERCENTILES.map((p) => {
    const i = p === 0 ? 0 : Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
    return { p, ms: +Number(sortedMs[i]).toFixed(3) };
  });
}

export interface TimelinePoint {
  /** Seconds since the first counted commit. */
  t: number;
  /** Commits acknowledged in the bucket. */
  commits: number;
  meanMs: number;
  maxMs: number;
}

/** Latency over time: buckets of `bucketMs` by acknowledgement time (`at`, ms, any clock). */
export function timelineOf(at: ArrayLike<number>, latMs: ArrayLike<number>, bucketMs = 250): TimelinePoint[] {
  const n = Math.min(at.length, latMs.length);
  if (n === 0) return [];
  let t0 = Infinity;
  for (let i = 0; i < n; i++) t0 = Math.min(t0, at[i]!);
  const buckets = new Map<number, { c: number; sum: number; max: number }>();
  for (let i = 0; i < n; i++) {
    const b = Math.floor((at[i]! - t0) / bucketMs);
    const x = buckets.get(b) ?? { c: 0, sum: 0, max: 0 };
    x.c++;
    x.sum += latMs[i]!;
    x.max = Math.max(x.max, latMs[i]!);
    buckets.set(b, x);
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([b, x]) => ({ t: +((b * bucketMs) / 1000).toFixed(3), commits: x.c, meanMs: +(x.sum / x.c).toFixed(3), maxMs: +x.max.toFixed(3) }));
}

/** a / b to 2 decimals, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : +(a / b).toFixed(2);
}
