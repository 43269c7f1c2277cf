// Order statistics: nearest-rank quantiles (index floor(q·n), clamped to the last sample), as the
// stage trace's hop breakdown and every benchmark report them. Pure functions.

/** The q-quantile (0 ≤ q ≤ 1) of samples sorted ascending; NaN when there are none. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
}

/** quantile() of a latency in ms, rounded to the µs (3 decimals) for JSON. */
export function quantileMs(sorted: ArrayLike<number>, q: number): number {
  return +quantile(sorted, q).toFixed(3);
}

/** The lower median of unsorted values (the middle one of an odd count); NaN when there are none. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
}
