// Latency summaries of the WAL profiler: an HDR histogram (hdr-histogram-js, plain JavaScript:
// its WebAssembly build is not used) of microseconds per hop or per record, read back as
// p50/p90/p99/p99.9/max in ms with decimals and as CDF points for the report's charts. Built and
// read by the thread that profiles; no shared state.

import * as hdr from 'hdr-histogram-js';

/** Largest value a histogram tracks, µs (one hour): larger ones are clamped to it. */
const MAX_TRACKED_US = 3_600_000_000;
/** Significant decimal digits kept (relative error ≤ 0.1 %). */
const SIGNIFICANT_DIGITS = 3;
/** Percentiles (0..100) of the CDF points kept in results. */
export const PROFILE_CDF_PERCENTILES = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100] as const;

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
  /** Percentile (0..100) → ms. */
  cdf: Array<{ p: number; ms: number }>;
}

const ms3 = (us: number) => +(us / 1000).toFixed(3);

export class LatencyHistogram {
  private readonly h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_TRACKED_US, numberOfSignificantValueDigits: SIGNIFICANT_DIGITS, useWebAssembly: false });
  /** Values below 0 recorded as 0 (a hop between two clocks that disagree). */
  negatives = 0;

  recordMs(ms: number): void {
    if (ms < 0) this.negatives++;
    this.h.recordValue(Math.min(MAX_TRACKED_US, Math.max(0, Math.round(ms * 1000))));
  }

  get count(): number {
    return this.h.totalCount;
  }

  summary(): LatencySummary {
    const n = this.h.totalCount;
    if (n === 0) return { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0, cdf: [] };
    // (A percentile is its bucket's highest equivalent value, which may lie above the exact max.)
    const max = this.h.maxValue;
    const at = (p: number) => ms3(Math.min(max, this.h.getValueAtPercentile(p)));
    return {
      count: n, p50Ms: at(50), p90Ms: at(90), p99Ms: at(99), p999Ms: at(99.9), maxMs: ms3(max), meanMs: ms3(this.h.mean),
      cdf: PROFILE_CDF_PERCENTILES.map((p) => ({ p, ms: at(p === 0 ? 0.0001 : p) })),
    };
  }
}
