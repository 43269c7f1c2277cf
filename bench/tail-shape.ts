// How the slowest 1 % of a live run is spread in time, for `bench stream` (ours and the chain
// floor alike): the slow commits are grouped by when they were acknowledged, in windows of
// TAIL_WINDOW_MS. A few windows holding them all means a few stalls that held whole batches (a
// thread that got no CPU for milliseconds); as many windows as slow commits means slow hand-offs
// spread over the run. Pure function of the samples; no I/O.

import { quantile } from '../src/util/quantile.js';

/** Width of the windows that group slow commits, ms. */
const TAIL_WINDOW_MS = 5;

export interface TailShape {
  windowMs: number;
  /** Commits at or above p99. */
  slowCommits: number;
  /** Distinct windows (by acknowledgement time) that hold them. */
  windows: number;
  /** The most slow commits in one window. */
  mostInOneWindow: number;
}

/** `at[i]`: when commit i was acknowledged (ms, any clock); `lat[i]`: its latency (ms). */
export function tailShape(at: ArrayLike<number>, lat: ArrayLike<number>): TailShape {
  if (at.length !== lat.length) throw new RangeError(`tailShape: ${at.length} times for ${lat.length} latencies`);
  const n = lat.length;
  if (n === 0) return { windowMs: TAIL_WINDOW_MS, slowCommits: 0, windows: 0, mostInOneWindow: 0 };
  const sorted = Float64Array.from(lat).sort();
  const p99 = quantile(sorted, 0.99);
  const perWindow = new Map<number, number>();
  let slow = 0;
  for (let i = 0; i < n; i++) {
    if (lat[i]! < p99) continue;
    slow++;
    const w = Math.floor(at[i]! / TAIL_WINDOW_MS);
    perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
  }
  let most = 0;
  for (const c of perWindow.values()) most = Math.max(most, c);
  return { windowMs: TAIL_WINDOW_MS, slowCommits: slow, windows: perWindow.size, mostInOneWindow: most };
}
