// Time lag of standbys (pg_stat_replication's write_lag / flush_lag / replay_lag, walstream's
// way). LagTracker is sans I/O; WalSndLag is a small SharedArrayBuffer indexed like WalSndCtl
// slots: each walsender worker owns its entry (it records what it sent and publishes, on every
// standby reply, the time of the oldest WAL not yet confirmed at each level), the primary's thread
// reads it for replicationStatus() and metrics. Nothing to stop.
//
// DEV DOCS — time lag. PostgreSQL's write/flush/replay_lag is the time between flushing WAL
// locally and hearing that the standby wrote/flushed/replayed it, and it turns NULL when the
// primary goes idle. walstream's LagTracker keeps (LSN, time the walsender sent it — it sends as
// soon as WAL is flushed; PostgreSQL's LagTrackerWrite samples at the same point) and reports the
// age of the oldest WAL the standby has not confirmed at that level: 0 when it has everything,
// and growing while it stays behind — also when the primary is idle, which is when a stuck
// standby matters. Samples live in a bounded ring (`maxLagSamples`); when it is full the newest
// sample's LSN is moved forward instead of adding one (PostgreSQL's LagTracker does the same),
// so times are rounded towards older, never younger.

import { assert } from '../util/assert.js';
import type { Lsn } from '../wal/lsn.js';

// ---------------------------------------------------------------------------------------------
// Lag tracking (sans I/O)

export class LagTracker {
  private readonly lsns: Float64Array;
  private readonly times: Float64Array;
  private head = 0; // next write
  private count = 0;

  constructor(readonly maxLagSamples = 8192) {
    assert(Number.isInteger(maxLagSamples) && maxLagSamples >= 2, 'maxLagSamples');
    this.lsns = new Float64Array(maxLagSamples);
    this.times = new Float64Array(maxLagSamples);
  }

  /** WAL up to `lsn` was flushed locally at `timeMs`. Positions must not go backwards. */
  record(lsn: Lsn, timeMs: number): void {
    if (this.count > 0) {
      const last = (this.head - 1 + this.maxLagSamples) % this.maxLagSamples;
      const lastLsn = this.lsns[last]!;
      if (lsn <= lastLsn) return;
      if (this.count === this.maxLagSamples) {
        this.lsns[last] = lsn; // full: keep the older time, advance the newest sample
        return;
      }
    }
    this.lsns[this.head] = lsn;
    this.times[this.head] = timeMs;
    this.head = (this.head + 1) % this.maxLagSamples;
    this.count++;
  }

  /** Forget samples the slowest reader has confirmed (everything ≤ `lsn`). */
  trim(lsn: Lsn): void {
    while (this.count > 1) {
      const tail = (this.head - this.count + this.maxLagSamples) % this.maxLagSamples;
      if (this.lsns[tail]! > lsn) break;
      this.count--;
    }
  }

  /**
   * Milliseconds since the oldest WAL not yet covered by `position` was flushed; 0 when `position`
   * covers everything recorded; null when `position` is unknown (0).
   */
  lagMs(position: Lsn, nowMs: number): number | null {
    if (position === 0) return null;
    for (let k = 0; k < this.count; k++) {
      const i = (this.head - this.count + k + this.maxLagSamples) % this.maxLagSamples;
      if (this.lsns[i]! > position) return Math.max(0, nowMs - this.times[i]!);
    }
    return 0;
  }

  get samples(): number {
    return this.count;
  }

  /** Forget every sample. */
  clear(): void {
    this.count = 0;
    this.head = 0;
  }

  /** Time of the oldest sample not covered by `position`, or null when it covers them all. */
  firstUnconfirmedTime(position: Lsn): number | null {
    for (let k = 0; k < this.count; k++) {
      const i = (this.head - this.count + k + this.maxLagSamples) % this.maxLagSamples;
      if (this.lsns[i]! > position) return this.times[i]!;
    }
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Per-walsender time lag in shared memory

/** µs on a clock every thread shares (performance.timeOrigin is absolute). */
export function sharedClockUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export const WL_WRITE = 0; // BigInt64 index within a walsender's entry: write level
export const WL_FLUSH = 1;
export const WL_APPLY = 2;
export const WL_WORDS = 4; // BigInt64 words per walsender (one spare)
/** Values of a level word: 0 = caught up, -1 = unknown (no reply yet), else the µs time (sharedClockUs) of the oldest WAL sent but not confirmed at that level. */
export const WL_CAUGHT_UP = 0n;
export const WL_UNKNOWN = -1n;

export interface WalSndLagHandle {
  sab: SharedArrayBuffer;
  maxWalSenders: number;
}

/**
 * Time lag of each walsender, indexed like WalSndCtl slots. The walsender thread owns its entry
 * (a LagTracker of the WAL it sent, and three words it publishes); any thread reads the words
 * and turns them into lag against its own clock reading — so a stuck standby's lag keeps growing
 * while the primary is idle.
 */
export class WalSndLag {
  private readonly big: BigInt64Array;
  private readonly tracker: LagTracker;

  constructor(readonly handle: WalSndLagHandle, maxLagSamples = 8192) {
    assert(handle.sab.byteLength >= WalSndLag.bytesFor(handle.maxWalSenders), 'WalSndLag buffer too small');
    this.big = new BigInt64Array(handle.sab);
    this.tracker = new LagTracker(maxLagSamples);
  }

  static bytesFor(maxWalSenders: number): number {
    return Math.max(8, maxWalSenders * WL_WORDS * 8);
  }

  static create(maxWalSenders: number): WalSndLag {
    return new WalSndLag({ sab: new SharedArrayBuffer(WalSndLag.bytesFor(maxWalSenders)), maxWalSenders });
  }

  private at(slot: number, level: number): number {
    assert(Number.isInteger(slot) && slot >= 0 && slot < this.handle.maxWalSenders, 'walsender slot out of range');
    return slot * WL_WORDS + level;
  }

  /** Walsender: streaming starts (lag unknown until the standby replies). */
  begin(slot: number): void {
    this.tracker.clear();
    for (const l of [WL_WRITE, WL_FLUSH, WL_APPLY]) Atomics.store(this.big, this.at(slot, l), WL_UNKNOWN);
  }

  /** Walsender: WAL up to `end` has been sent at `nowUs`. */
  sent(slot: number, end: Lsn, nowUs = sharedClockUs()): void {
    this.tracker.record(end, nowUs);
    for (let l = WL_WRITE; l <= WL_APPLY; l++) {
      const i = this.at(slot, l);
      if (Atomics.load(this.big, i) === WL_CAUGHT_UP) Atomics.store(this.big, i, BigInt(nowUs));
    }
  }

  /** Walsender: the standby reported these positions (0 = unknown). */
  replied(slot: number, write: Lsn, flush: Lsn, apply: Lsn): void {
    // (Unrolled: one reply per flush cycle on the walsender's thread, nothing allocated but the values.)
    let low = Number.MAX_SAFE_INTEGER;
    low = this.publishLevel(slot, WL_WRITE, write, low);
    low = this.publishLevel(slot, WL_FLUSH, flush, low);
    low = this.publishLevel(slot, WL_APPLY, apply, low);
    if (low !== Number.MAX_SAFE_INTEGER) this.tracker.trim(low);
  }

  /** One level of replied(): publish its lag origin; returns the lowest confirmed position so far. */
  private publishLevel(slot: number, level: number, pos: Lsn, low: number): number {
    let v: bigint;
    if (pos === 0) v = WL_UNKNOWN;
    else {
      const t = this.tracker.firstUnconfirmedTime(pos);
      v = t === null ? WL_CAUGHT_UP : BigInt(t);
      low = Math.min(low, pos);
    }
    Atomics.store(this.big, this.at(slot, level), v);
    return low;
  }

  /** Any thread: lag in ms per level (null = unknown). */
  lagMs(slot: number, nowUs = sharedClockUs()): { write: number | null; flush: number | null; apply: number | null } {
    const one = (l: number) => {
      const v = Atomics.load(this.big, this.at(slot, l));
      if (v === WL_UNKNOWN) return null;
      if (v === WL_CAUGHT_UP) return 0;
      return Math.max(0, nowUs - Number(v)) / 1000;
    };
    return { write: one(WL_WRITE), flush: one(WL_FLUSH), apply: one(WL_APPLY) };
  }
}

