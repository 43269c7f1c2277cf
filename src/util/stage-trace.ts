// StageTrace: when a commit's WAL passed each stage of replication, for per-hop latency figures
// (`walstream bench stream`'s live runs; the seed of `walstream profile`).
//
// Who writes it: the threads of one process that pass WAL along, each when it moves a position —
// the thread that fdatasyncs the primary's WAL (walwriter, or a committer in latency mode):
// `flushed`; a walsender: `sent` (end of an XLogData); a walreceiver: `received` (end of an
// XLogData taken), `sendTime` (the same end at the XLogData header's sendTime, the sender's clock),
// `written` (write(2) returned) and `standbyFlushed`; a startup worker: `replayed`, and the redo
// cost of each record by kind and size band (src/profile/record-kind.ts); `walstream profile`'s
// main thread: `visible` (a waitForReplay learnt the replay position). Each entry is (LSN, time in
// ms on the shared clock performance.timeOrigin + performance.now()). Who reads it: the bench
// after the run, `Standby.profile()` at the end of its window. It owns one SharedArrayBuffer;
// nothing to stop. Disabled (null) everywhere by default: the hot paths then pay one null check.
//
// DEV DOCS: an entry's slot is reserved with Atomics.add on its stage's counter (several writers per
// stage are fine: a walwriter and a committer, or several walsenders); past `capacity` entries
// further ones are dropped (counted). Entries are read once the writers are done (the bench), or
// by time window (profile: restart() sets the counters back to 0 while writers go on; a slot a
// writer reserved before the restart may be rewritten, a slot not written yet holds an older
// time: readers keep entries whose time lies in their window). The replay cost table has one
// writer, the startup worker; profile reads it twice and keeps the difference of counts and
// totals (restart() zeroes the maxima: a record redone at that moment may keep an older max).

import { Errors } from '../errors.js';
import { assert } from './assert.js';
import { quantileMs } from './quantile.js';
import { RECORD_KIND_SLOTS, SIZE_BANDS, sizeBandOf } from '../profile/record-kind.js';

const TRACE_STAGES = ['flushed', 'sent', 'received', 'standbyFlushed', 'replayed', 'sendTime', 'written', 'visible'] as const;
export type TraceStage = (typeof TRACE_STAGES)[number];
const STAGE_INDEX: Record<TraceStage, number> = { flushed: 0, sent: 1, received: 2, standbyFlushed: 3, replayed: 4, sendTime: 5, written: 6, visible: 7 };
/** Entries per stage at most (2 float64 each). */
const MAX_TRACE_ENTRIES = 1 << 22;
/** Bytes before the entries: one Int32 counter per stage (room for 10). */
const HEADER_BYTES = 40;
/** The replay cost table: per record kind slot and size band, count, total ms, max ms (float64). */
export const REPLAY_COST_FIELDS = 3;
const REPLAY_COST_BYTES = RECORD_KIND_SLOTS * SIZE_BANDS.length * REPLAY_COST_FIELDS * 8;

function traceBytes(capacity: number): number {
  return HEADER_BYTES + TRACE_STAGES.length * capacity * 16 + REPLAY_COST_BYTES;
}

export interface StageTraceHandle {
  sab: SharedArrayBuffer;
  capacity: number;
}

/** The `stageTrace` option, validated: null, or a handle from StageTrace.create(). */
export function stageTraceOption(v: unknown): StageTraceHandle | null {
  if (v === undefined || v === null) return null;
  const h = v as Partial<StageTraceHandle>;
  if (typeof v !== 'object' || !(h.sab instanceof SharedArrayBuffer) || !Number.isInteger(h.capacity) || h.capacity! < 1 || h.sab.byteLength !== traceBytes(h.capacity!)) {
    throw Errors.invalidOption('stageTrace', 'must be null or the handle of a StageTrace.create()');
  }
  return { sab: h.sab, capacity: h.capacity! };
}

export class StageTrace {
  readonly handle: StageTraceHandle;
  private readonly counts: Int32Array;
  private readonly data: Float64Array;
  private readonly costs: Float64Array;
  private readonly capacity: number;

  static create(capacity: number): StageTrace {
    assert(Number.isInteger(capacity) && capacity > 0 && capacity <= MAX_TRACE_ENTRIES, `StageTrace: capacity must be 1..${MAX_TRACE_ENTRIES} entries per stage`);
    return new StageTrace({ sab: new SharedArrayBuffer(traceBytes(capacity)), capacity });
  }

  constructor(handle: StageTraceHandle) {
    this.handle = handle;
    this.capacity = handle.capacity;
    const n = TRACE_STAGES.length;
    this.counts = new Int32Array(handle.sab, 0, n);
    this.data = new Float64Array(handle.sab, HEADER_BYTES, n * handle.capacity * 2);
    this.costs = new Float64Array(handle.sab, HEADER_BYTES + n * handle.capacity * 16, REPLAY_COST_BYTES / 8);
  }

  /** Start a new window: every stage's counter back to 0, the replay cost table's maxima too (see DEV DOCS for what writers meanwhile do). */
  restart(): void {
    for (let s = 0; s < TRACE_STAGES.length; s++) Atomics.store(this.counts, s, 0);
    for (let o = 2; o < this.costs.length; o += REPLAY_COST_FIELDS) this.costs[o] = 0;
  }

  /** One record redone by the startup worker: its kind slot (record-kind.ts), total length and redo time. */
  noteReplay(kindSlot: number, totLen: number, ms: number): void {
    const o = (kindSlot * SIZE_BANDS.length + sizeBandOf(totLen)) * REPLAY_COST_FIELDS;
    const c = this.costs;
    c[o] = c[o]! + 1;
    c[o + 1] = c[o + 1]! + ms;
    if (ms > c[o + 2]!) c[o + 2] = ms;
  }

  /** A copy of the replay cost table (count, total ms, max ms per kind slot × size band). */
  replayCosts(): Float64Array {
    return this.costs.slice();
  }

  record(stage: TraceStage, lsn: number): void {
    this.recordAt(stage, lsn, performance.timeOrigin + performance.now());
  }

  /** record() at a given time (ms, shared clock). */
  recordAt(stage: TraceStage, lsn: number, timeMs: number): void {
    const s = STAGE_INDEX[stage];
    const i = Atomics.add(this.counts, s, 1);
    if (i >= this.capacity) return;
    const o = (s * this.capacity + i) * 2;
    this.data[o] = lsn;
    this.data[o + 1] = timeMs;
  }

  /** A stage's entries as [lsn, timeMs], in LSN order (read once the writers are done). */
  entries(stage: TraceStage): Array<[number, number]> {
    const s = STAGE_INDEX[stage];
    const n = Math.min(Atomics.load(this.counts, s), this.capacity);
    const out: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) {
      const o = (s * this.capacity + i) * 2;
      out.push([this.data[o]!, this.data[o + 1]!]);
    }
    return out.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  }

  /** Entries dropped past capacity. */
  dropped(stage: TraceStage): number {
    return Math.max(0, Atomics.load(this.counts, STAGE_INDEX[stage]) - this.capacity);
  }
}

/** For each LSN: the earliest time a stage's position reached it (positions only grow, so: suffix minimum). */
export class StageTimeline {
  private readonly lsns: number[];
  private readonly firstAt: number[];

  constructor(entries: Array<[number, number]>) {
    this.lsns = entries.map((e) => e[0]);
    this.firstAt = new Array<number>(entries.length);
    let min = Infinity;
    for (let i = entries.length - 1; i >= 0; i--) {
      min = Math.min(min, entries[i]![1]);
      this.firstAt[i] = min;
    }
  }

  /** The first time the stage covered `lsn` (null if it never did). */
  reached(lsn: number): number | null {
    let lo = 0;
    let hi = this.lsns.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lsns[mid]! < lsn) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.lsns.length ? this.firstAt[lo]! : null;
  }
}

/** The stages hopBreakdown joins. */
const HOP_STAGES: readonly TraceStage[] = ['flushed', 'sent', 'received', 'standbyFlushed', 'replayed'];

/** The hops of one commit on its way to a standby's readers, between traced positions. */
const LIVE_HOPS = [
  ['flushed', 'acknowledged', 'the committer learns its flush'],
  ['flushed', 'sent', 'walsender: wake-up and XLogData'],
  ['sent', 'received', 'TCP or ring, walreceiver wake-up'],
  ['received', 'standbyFlushed', 'walreceiver: write and fdatasync'],
  ['standbyFlushed', 'replayed', 'startup: wake-up, read and redo'],
  ['replayed', 'visible', 'the waiting reader learns it'],
] as const;

export interface HopFigure {
  hop: string;
  what: string;
  p50Ms: number;
  p99Ms: number;
  /** Mean of this hop over the slowest 1 % of commits (by total latency): where the tail goes. */
  slowestPercentMeanMs: number;
}

/**
 * Per-hop latency of traced commits (one standby): `commits` are [commit end LSN, acknowledged,
 * visible on the standby] with times on the shared clock (performance.timeOrigin + now()).
 * Commits a stage never covered are left out.
 */
export function hopBreakdown(trace: StageTrace, commits: ReadonlyArray<readonly [number, number, number]>): HopFigure[] {
  const tl = new Map<string, StageTimeline>(HOP_STAGES.map((s) => [s, new StageTimeline(trace.entries(s))]));
  const rows: Array<{ total: number; t: Record<string, number> }> = [];
  for (const [lsn, acked, visible] of commits) {
    const t: Record<string, number> = { acknowledged: acked, visible };
    let ok = true;
    for (const s of HOP_STAGES) {
      const at = tl.get(s)!.reached(lsn);
      if (at === null) ok = false;
      else t[s] = at;
    }
    if (ok) rows.push({ total: visible - acked, t });
  }
  if (rows.length === 0) return [];
  rows.sort((a, b) => a.total - b.total);
  const slow = rows.slice(Math.floor(rows.length * 0.99));
  return LIVE_HOPS.map(([from, to, what]) => {
    const v = rows.map((r) => r.t[to]! - r.t[from]!).sort((a, b) => a - b);
    const s = slow.map((r) => r.t[to]! - r.t[from]!);
    return { hop: `${from} → ${to}`, what, p50Ms: quantileMs(v, 0.5), p99Ms: quantileMs(v, 0.99), slowestPercentMeanMs: +(s.reduce((a, b) => a + b, 0) / s.length).toFixed(3) };
  });
}
