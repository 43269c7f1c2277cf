// Live WAL apply-latency profile of a standby (`standby.profile({ seconds })`, `walstream profile
// live`): for the real traffic of a time window, each hop from the primary's commit flush to
// visible on the standby as HDR histograms, the redo cost per record kind and size band, and the
// write/flush/replay lag over time. Runs on the standby's main thread (the caller's); it reads the
// stage trace the standby's threads fill (src/util/stage-trace.ts) and WalRcvData; it owns a
// replay watcher (one waitForReplay at a time) for the window and the drain after it, and stops
// when the window is over.
//
// The unit is one XLogData message: its end LSN L. A stage reached L at the first time its traced
// position covered L (StageTimeline). Hops, between stages:
//   send      flushed (primary's walwriter or committer) → sent (walsender)
//   network   sent → received (walreceiver took the message)
//   write     received → written (write(2) returned)
//   fdatasync written → standbyFlushed (published as flushed)
//   replay    standbyFlushed → replayed (startup published the replay position)
//   visible   replayed → visible (a waitForReplay on the main thread learnt it)
// What can be measured depends on where the primary runs. The primary's flush time is known only
// to the primary's process: the send hop is measured only when the primary is in this process and
// was opened with the same stage trace (its walwriter and walsenders then write `flushed`/`sent`).
// Otherwise the network hop starts at the XLogData header's sendTime, stamped by the sender's
// clock ("derived": exact on one host, on two hosts it includes their clock offset), and the
// send hop is not visible. A wal-only standby (a PostgreSQL primary's WAL) does not replay: no
// replay and visible hops.
//
// A unit counts for a stage only if the window saw that stage's position both below L and at or
// past it, so a crossing before the window's start is never mistaken for a later one.

import { Errors } from '../errors.js';
import type { Standby } from '../standby/standby.js';
import { StageTimeline, StageTrace, type TraceStage } from '../util/stage-trace.js';
import type { Lsn } from '../wal/lsn.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { costRows, type KindCost } from './record-kind.js';

/** Default and largest window, s. */
export const DEFAULT_PROFILE_SECONDS = 10;
export const MAX_PROFILE_SECONDS = 3600;
/** After the window: wait at most this long for the units received in it to be flushed, replayed and seen, ms. */
const DRAIN_MAX_MS = 5_000;
/** Each replay wait of the visible watcher ends after this long without replay, ms (then it waits again while the window lasts). */
const VISIBLE_WAIT_MS = 250;
/** How often the drain checks its positions, ms. */
const DRAIN_POLL_MS = 10;
/** Lag buckets, ms. */
const LAG_BUCKET_MS = 250;
/** Progress callbacks at most this often, ms. */
const PROGRESS_EVERY_MS = 250;

export type HopName = 'send' | 'network' | 'write' | 'fdatasync' | 'replay' | 'visible';
export type HopSource = 'measured' | 'derived' | 'not visible';

export interface HopResult extends LatencySummary {
  hop: HopName;
  from: string;
  to: string;
  what: string;
  source: HopSource;
  /** Why a hop is derived or not visible (null when measured). */
  why: string | null;
  /** Values below 0 (derived hops across two clocks), counted as 0. */
  negatives: number;
  /** Units of the window this hop has no time for (a stage crossed outside the window, or the hop is not visible): count + unitsMissing = window.units. */
  unitsMissing: number;
}

export interface LagPoint {
  /** Seconds since the window's start (bucket start). */
  t: number;
  units: number;
  writeLagMs: number;
  flushLagMs: number;
  replayLagMs: number | null;
}

export interface LiveProfileResult {
  profile: 'live';
  mode: 'replica' | 'wal-only';
  seconds: number;
  /** What the lag and hop times start from: the primary's flush, or the send time. */
  lagFrom: 'primary flush' | 'send time';
  /** The window's first and last traced WAL position (`Lsn` numbers; 0 when it saw none). */
  window: { startLsn: Lsn; endLsn: Lsn; units: number; bytes: number; unitsIncomplete: number };
  hops: HopResult[];
  replay: {
    /** Records replayed in the window (WalRcvData), and the sum of the per-kind rows. */
    recordsReplayed: number;
    recordsByKind: number;
    byKind: KindCost[];
  };
  lag: LagPoint[];
  /** Trace entries dropped past the trace's capacity (raise profileTrace()'s entriesPerStage). */
  droppedEntries: number;
}

export interface LiveProfileOptions {
  /** Window length, s (default 10). */
  seconds?: number;
  /** Called when the window starts (elapsedMs 0), then about every 250 ms while it runs. */
  onProgress?: (p: { elapsedMs: number; totalMs: number }) => void;
  /** Ends the window early when aborted (the result covers the window up to then). */
  signal?: AbortSignal;
}

const sharedNow = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const running = new WeakSet<SharedArrayBuffer>();

interface HopDef {
  hop: HopName;
  from: TraceStage;
  to: TraceStage;
  what: string;
}

/** Profile `standby` for `seconds` of its real traffic. The standby must have been opened with a stage trace (profileTrace()). */
export async function profileStandby(standby: Standby, opts: LiveProfileOptions = {}): Promise<LiveProfileResult> {
  const seconds = opts.seconds ?? DEFAULT_PROFILE_SECONDS;
  if (typeof seconds !== 'number' || !(seconds > 0) || seconds > MAX_PROFILE_SECONDS) {
    throw Errors.invalidOption('seconds', `must be a number > 0 and <= ${MAX_PROFILE_SECONDS}, got ${String(seconds)}`);
  }
  const handle = standby.options.stageTrace;
  if (handle === null) {
    throw Errors.featureNotSupported('profile needs a standby opened with a stage trace: Standby.open({ ..., stageTrace: profileTrace() }) (and the same handle to an in-process Primary.open to see its flushes)');
  }
  if (running.has(handle.sab)) throw Errors.objectInUse('a profile of this standby is already running');
  if (standby.failed !== null) throw standby.failed;
  running.add(handle.sab);
  try {
    return await runWindow(standby, new StageTrace(handle), seconds, opts.onProgress, opts.signal);
  } finally {
    running.delete(handle.sab);
  }
}

async function runWindow(standby: Standby, trace: StageTrace, seconds: number, onProgress: LiveProfileOptions['onProgress'], signal: AbortSignal | undefined): Promise<LiveProfileResult> {
  const replica = standby.mode === 'replica';
  trace.restart();
  const costs0 = trace.replayCosts();
  const replayed0 = standby.walrcv.snapshot().recordsReplayed;
  const t0 = sharedNow();
  const totalMs = seconds * 1000;
  let t1 = t0 + totalMs;
  // An abort ends the window where it is (a sleep in progress ends with it).
  let wake: (() => void) | null = null;
  const onAbort = () => {
    t1 = Math.min(t1, sharedNow());
    wake?.();
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  // The visible stage: what a reader waiting on this thread learns, each time replay moves.
  let watching = replica;
  let lastVisible = 0;
  const watcher = replica ? (async () => {
    while (watching) {
      try {
        const lsn = await standby.waitForReplay(standby.replayLsn + 1, VISIBLE_WAIT_MS);
        trace.record('visible', lsn);
        lastVisible = lsn;
      } catch (e) {
        // Timeouts only bound the wait left pending once the window is over; anything else (the
        // standby failed or closed) means nothing more becomes visible.
        if ((e as { code?: unknown }).code !== 'WS_WAIT_TIMEOUT') return;
      }
    }
  })() : Promise.resolve();
  try {
    onProgress?.({ elapsedMs: 0, totalMs });
    for (let now = sharedNow(); now < t1; now = sharedNow()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(PROGRESS_EVERY_MS, t1 - now));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
      if (standby.failed !== null) throw standby.failed;
      onProgress?.({ elapsedMs: Math.min(sharedNow(), t1) - t0, totalMs });
    }
    // Drain: what was received in the window gets flushed, replayed and seen.
    const received = trace.entries('received').filter((e) => e[1] >= t0 && e[1] <= t1);
    const lastUnit = received.length > 0 ? received[received.length - 1]![0] : 0;
    const drainEnd = sharedNow() + DRAIN_MAX_MS;
    const done = () => (replica ? lastVisible >= lastUnit : standby.flushLsn >= lastUnit);
    while (!done() && sharedNow() < drainEnd) await sleep(DRAIN_POLL_MS);
  } finally {
    watching = false;
    signal?.removeEventListener('abort', onAbort);
  }
  const costs1 = trace.replayCosts();
  const replayed1 = standby.walrcv.snapshot().recordsReplayed;
  // The watcher ends at its next wake-up (replay moving, or within VISIBLE_WAIT_MS).
  await watcher;
  return analyse(trace, { t0, t1, seconds: +((t1 - t0) / 1000).toFixed(3), replica, inProcess: standby.options.inProcess !== null, costs0, costs1, recordsReplayed: replayed1 - replayed0 });
}

export interface WindowFacts {
  t0: number;
  t1: number;
  seconds: number;
  replica: boolean;
  inProcess: boolean;
  costs0: Float64Array;
  costs1: Float64Array;
  recordsReplayed: number;
}

/** A stage's entries since the window's start, as a timeline, and its lowest LSN seen in the window. */
function windowTimeline(trace: StageTrace, stage: TraceStage, t0: number): { tl: StageTimeline; min: number; n: number } {
  const e = trace.entries(stage).filter((x) => x[1] >= t0);
  return { tl: new StageTimeline(e), min: e.length > 0 ? e[0]![0] : Infinity, n: e.length };
}

/** The result of a window from the trace (exported for the test of the analysis on a synthetic trace). */
export function analyse(trace: StageTrace, f: WindowFacts): LiveProfileResult {
  // sendTime entries carry the sender's clock: filtered by it, which is our clock on one host.
  const stages = new Map<TraceStage, ReturnType<typeof windowTimeline>>();
  for (const s of ['flushed', 'sent', 'sendTime', 'received', 'written', 'standbyFlushed', 'replayed', 'visible'] as const) stages.set(s, windowTimeline(trace, s, f.t0));
  const haveFlush = stages.get('flushed')!.n > 0;
  const haveSent = stages.get('sent')!.n > 0;
  const sendStage: TraceStage = haveSent ? 'sent' : 'sendTime';
  const defs: HopDef[] = [
    { hop: 'send', from: 'flushed', to: sendStage, what: "primary: commit flush → walsender sends the XLogData" },
    { hop: 'network', from: sendStage, to: 'received', what: 'network or ring, walreceiver wake-up' },
    { hop: 'write', from: 'received', to: 'written', what: 'walreceiver: write(2) into the segment file' },
    { hop: 'fdatasync', from: 'written', to: 'standbyFlushed', what: 'walreceiver: fdatasync, flushed published' },
    { hop: 'replay', from: 'standbyFlushed', to: 'replayed', what: 'startup: wake-up, read, check and redo' },
    { hop: 'visible', from: 'replayed', to: 'visible', what: 'a reader waiting for replay learns it' },
  ];
  const notVisible = new Map<HopName, string>();
  if (!haveFlush) {
    notVisible.set('send', f.inProcess
      ? 'the in-process primary was not opened with this stage trace (pass the same handle to Primary.open to see its flushes)'
      : "the primary's commit flush time is known only to the primary's process; the XLogData header carries its send time, not its flush time");
  }
  if (!f.replica) {
    notVisible.set('replay', 'a wal-only standby keeps WAL without replaying it');
    notVisible.set('visible', 'a wal-only standby keeps WAL without replaying it');
  }
  const derivedWhy = "from the XLogData header's sendTime (the sender's clock) to our receipt: exact on one host, on two hosts it includes their clock offset";

  // Units: XLogData ends received in the window.
  const units = trace.entries('received').filter((e) => e[1] >= f.t0 && e[1] <= f.t1).map((e) => e[0]);
  const hist = new Map<HopName, LatencyHistogram>(defs.map((d) => [d.hop, new LatencyHistogram()]));
  const at = (s: TraceStage, lsn: number): number | null => {
    const x = stages.get(s)!;
    return x.min < lsn ? x.tl.reached(lsn) : null; // the window saw it below lsn: the crossing is in the window
  };
  const lagFromFlush = haveFlush;
  const buckets = new Map<number, { n: number; w: number; fl: number; r: number; rn: number }>();
  let incomplete = 0;
  for (const lsn of units) {
    let complete = true;
    for (const d of defs) {
      if (notVisible.has(d.hop)) continue;
      const a = at(d.from, lsn);
      const b = at(d.to, lsn);
      if (a === null || b === null) {
        complete = false;
        continue;
      }
      hist.get(d.hop)!.recordMs(b - a);
    }
    if (!complete) incomplete++;
    const ref = lagFromFlush ? at('flushed', lsn) : at(sendStage, lsn);
    const w = at('written', lsn);
    const fl = at('standbyFlushed', lsn);
    const r = f.replica ? at('replayed', lsn) : null;
    if (ref === null || w === null || fl === null) continue;
    const k = Math.floor(Math.max(0, ref - f.t0) / LAG_BUCKET_MS);
    const x = buckets.get(k) ?? { n: 0, w: 0, fl: 0, r: 0, rn: 0 };
    x.n++;
    x.w += w - ref;
    x.fl += fl - ref;
    if (r !== null) {
      x.r += r - ref;
      x.rn++;
    }
    buckets.set(k, x);
  }
  const hops: HopResult[] = defs.map((d) => {
    const h = hist.get(d.hop)!;
    const nv = notVisible.get(d.hop);
    const derived = d.hop === 'network' && !haveSent;
    return {
      hop: d.hop, from: d.from, to: d.to, what: d.what,
      source: nv !== undefined ? 'not visible' : derived ? 'derived' : 'measured',
      why: nv ?? (derived ? derivedWhy : null),
      negatives: h.negatives,
      unitsMissing: units.length - h.count,
      ...h.summary(),
    };
  });
  const byKind = costRows(f.costs1, f.costs0);
  const r3 = (v: number) => +v.toFixed(3);
  const lag: LagPoint[] = [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([k, x]) => ({
    t: r3((k * LAG_BUCKET_MS) / 1000), units: x.n, writeLagMs: r3(x.w / x.n), flushLagMs: r3(x.fl / x.n), replayLagMs: f.replica && x.rn > 0 ? r3(x.r / x.rn) : null,
  }));
  const stagesUsed: TraceStage[] = ['flushed', 'sent', 'sendTime', 'received', 'written', 'standbyFlushed', 'replayed', 'visible'];
  return {
    profile: 'live',
    mode: f.replica ? 'replica' : 'wal-only',
    seconds: f.seconds,
    lagFrom: lagFromFlush ? 'primary flush' : 'send time',
    window: {
      startLsn: units.length > 0 ? units[0]! : 0,
      endLsn: units.length > 0 ? units[units.length - 1]! : 0,
      units: units.length,
      bytes: units.length > 1 ? units[units.length - 1]! - units[0]! : 0,
      unitsIncomplete: incomplete,
    },
    hops,
    replay: { recordsReplayed: f.recordsReplayed, recordsByKind: byKind.reduce((a, k) => a + k.records, 0), byKind },
    lag,
    droppedEntries: stagesUsed.reduce((a, s) => a + trace.dropped(s), 0),
  };
}
