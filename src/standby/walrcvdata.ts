// WalRcvData: the standby's shared state between the walreceiver worker, the startup (replay)
// worker and the main thread, in one SharedArrayBuffer (PostgreSQL's WalRcvData plus the replay
// position of XLogRecoveryCtl). Created by Standby.open; every thread builds its own WalRcvData
// over the same `handle`. Nothing to stop: it is words in shared memory.
//
// DEV DOCS — who writes what (everyone may read):
//   walreceiver  STATE, RECEIVE_START(+TLI), RECEIVED_TLI, WRITTEN, FLUSHED, LATEST_WAL_END(+TIME),
//                LAST_SEND_TIME, LAST_RECEIPT_TIME, sender host/port, counters, TIMELINE (at each
//                startStreaming; then, if it changed, bumps FLUSH_SEQ as below: a cascading walsender reads
//                FLUSHED before TIMELINE). After a flush it bumps FLUSH_SEQ, notifies it while FLUSH_WAITERS
//                > 0 (cascading walsenders, src/replication/wal-source.ts) and sets STARTUP_LATCH.
//   startup      REPLAY, LAST_COMMIT_TIME, RECORDS_REPLAYED; bumps REPLAY_SEQ (waiters in any
//                thread use Atomics.waitAsync on it, counted in REPLAY_WAITING) and sets
//                WALRCV_LATCH when caught up (apply feedback).
//   main         STOP (then sets both latches); REPLAY_PAUSE requested / not paused (then sets
//                the startup latch). startup moves REPLAY_PAUSE requested → paused once it stopped.
// Multi-field updates (write+flush, walEnd+times, replay+commit time) happen under the MUTEX
// spinlock, and snapshot() reads under it, so a reader never sees half an update.
// Invariants, asserted on every update: REPLAY <= FLUSHED <= WRITTEN, each monotonic.

import { assert } from '../util/assert.js';
import type { Lsn } from '../wal/lsn.js';
import { Latch, SpinLock } from '../storage/latch.js';
import { PG_EPOCH_OFFSET_MS } from '../wal/consts.js';

// BigInt64 slots (index into BigInt64Array)
export const WR_RECEIVE_START = 0;
export const WR_WRITTEN = 1;
export const WR_FLUSHED = 2;
export const WR_LATEST_WAL_END = 3;
/** PostgreSQL timestamps (µs since 2000-01-01) of the primary's clock. */
export const WR_LATEST_WAL_END_TIME = 4;
export const WR_LAST_SEND_TIME = 5;
/** Our clock (PostgreSQL µs). */
export const WR_LAST_RECEIPT_TIME = 6;
export const WR_REPLAY = 7;
/** Commit timestamp (primary clock, PostgreSQL µs) of the last replayed transaction. */
export const WR_LAST_COMMIT_TIME = 8;
export const WR_BYTES_RECEIVED = 9;
export const WR_FSYNCS = 10;
export const WR_MESSAGES = 11;
export const WR_RECORDS_REPLAYED = 12;
export const WR_REPLIES_SENT = 13;
export const WR_CONNECTS = 14;
/** Our clock (PostgreSQL µs) when REPLAY was last published. */
export const WR_REPLAY_TIME = 15;
/** WAL bytes written with direct I/O (catch-up), of all bytes written. */
export const WR_BYTES_WRITTEN_DIRECT = 16;
/** Apply reports the startup worker put off (no prompt reports asked for): at most one per APPLY_REPORT_MAX_DELAY_MS. */
export const WR_APPLY_REPORTS_PUT_OFF = 17;
const N_BIG = 18;

// Int32 slots (index into Int32Array), after the BigInt64 area
const I32_BASE = N_BIG * 2;
export const WI_STATE = I32_BASE + 0;
export const WI_RECEIVE_START_TLI = I32_BASE + 1;
export const WI_RECEIVED_TLI = I32_BASE + 2;
export const WI_MUTEX = I32_BASE + 3;
export const WI_STARTUP_LATCH = I32_BASE + 4;
export const WI_WALRCV_LATCH = I32_BASE + 5;
export const WI_REPLAY_SEQ = I32_BASE + 6;
export const WI_FLUSH_SEQ = I32_BASE + 7;
export const WI_STOP = I32_BASE + 8;
export const WI_SENDER_PORT = I32_BASE + 9;
export const WI_SENDER_HOST_LEN = I32_BASE + 10;
/** 1 while the primary wants apply reported as soon as it moves (synchronous replication): the walreceiver sets it, startup reads it. */
export const WI_PROMPT_APPLY_REPORT = I32_BASE + 11;
/** Threads (ReplayWaiters objects) that have, or are about to arm, an Atomics.waitAsync on REPLAY_SEQ: publishReplay notifies only while it is non-zero. */
export const WI_REPLAY_WAITING = I32_BASE + 12;
/** pg_wal_replay_pause(): RecoveryPauseState (main requests and resumes, startup acknowledges). */
export const WI_REPLAY_PAUSE = I32_BASE + 13;
/** Cascading walsenders waiting on FLUSH_SEQ (Atomics.waitAsync armed): publishFlushed notifies only while > 0. */
export const WI_FLUSH_WAITERS = I32_BASE + 14;
/**
 * The standby's timeline: the one its flushed WAL is on (set at open from the control file, and by
 * startStreaming to the timeline being received). The one place a cascading walsender reads it
 * (IDENTIFY_SYSTEM, TIMELINE_HISTORY's current timeline, START_REPLICATION's default).
 */
export const WI_TIMELINE = I32_BASE + 15;
const N_I32 = I32_BASE + 16;
const HOST_OFF = N_I32 * 4;
/** Longest sender host name kept (PostgreSQL's NI_MAXHOST is 1025; host names here are short). */
export const SENDER_HOST_MAX_BYTES = 256;
export const WALRCVDATA_BYTES = HOST_OFF + SENDER_HOST_MAX_BYTES;

/** PostgreSQL's WalRcvState, in pg_stat_wal_receiver's spelling. */
export const enum WalRcvState {
  Stopped = 0,
  Starting = 1,
  Streaming = 2,
  Waiting = 3,
  Restarting = 4,
  Stopping = 5,
}
export const WALRCV_STATE_NAMES = ['stopped', 'starting', 'streaming', 'waiting', 'restarting', 'stopping'] as const;
export type WalRcvStateName = (typeof WALRCV_STATE_NAMES)[number];

/** PostgreSQL's RecoveryPauseState (xlogrecovery.h), in pg_get_wal_replay_pause_state()'s spelling. */
export const enum RecoveryPauseState {
  NotPaused = 0,
  PauseRequested = 1,
  Paused = 2,
}
export const REPLAY_PAUSE_STATE_NAMES = ['not paused', 'pause requested', 'paused'] as const;
export type ReplayPauseState = (typeof REPLAY_PAUSE_STATE_NAMES)[number];

export interface WalRcvDataHandle {
  buffer: SharedArrayBuffer;
}

export interface WalRcvSnapshot {
  state: WalRcvStateName;
  receiveStart: Lsn;
  receiveStartTli: number;
  receivedTli: number;
  written: Lsn;
  flushed: Lsn;
  latestWalEnd: Lsn;
  latestWalEndTime: number;
  lastSendTime: number;
  lastReceiptTime: number;
  replay: Lsn;
  lastCommitTime: number;
  replayTime: number;
  senderHost: string;
  senderPort: number;
  bytesReceived: number;
  fsyncs: number;
  messages: number;
  recordsReplayed: number;
  repliesSent: number;
  connects: number;
  bytesWrittenDirect: number;
  applyReportsPutOff: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class WalRcvData {
  readonly big: BigInt64Array;
  readonly i32: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly mutex: SpinLock;
  /** Set by the walreceiver after a flush; the startup worker waits on it. */
  readonly startupLatch: Latch;
  /** Set by main (stop) and the startup worker (replay caught up); the walreceiver waits on it. */
  readonly walrcvLatch: Latch;

  constructor(readonly handle: WalRcvDataHandle) {
    assert(handle.buffer instanceof SharedArrayBuffer && handle.buffer.byteLength >= WALRCVDATA_BYTES, 'WalRcvData: bad handle');
    this.big = new BigInt64Array(handle.buffer, 0, N_BIG);
    this.i32 = new Int32Array(handle.buffer, 0, N_I32);
    this.bytes = new Uint8Array(handle.buffer);
    this.mutex = new SpinLock(this.i32, WI_MUTEX);
    this.startupLatch = new Latch(this.i32, WI_STARTUP_LATCH);
    this.walrcvLatch = new Latch(this.i32, WI_WALRCV_LATCH);
  }

  static create(): WalRcvData {
    return new WalRcvData({ buffer: new SharedArrayBuffer(WALRCVDATA_BYTES) });
  }

  load(slot: number): number {
    return Number(Atomics.load(this.big, slot));
  }

  private put(slot: number, v: number): void {
    Atomics.store(this.big, slot, BigInt(v));
  }

  addCounter(slot: number, n: number): void {
    Atomics.add(this.big, slot, BigInt(n));
  }

  get state(): WalRcvState {
    return Atomics.load(this.i32, WI_STATE) as WalRcvState;
  }

  setState(s: WalRcvState): void {
    Atomics.store(this.i32, WI_STATE, s);
  }

  get written(): Lsn {
    return this.load(WR_WRITTEN);
  }

  get flushed(): Lsn {
    return this.load(WR_FLUSHED);
  }

  get replay(): Lsn {
    return this.load(WR_REPLAY);
  }

  /**
   * Whether startup should wake the walreceiver at each replay publish to report apply at once
   * (a walstream primary with synchronous standbys asks for it), or only every
   * APPLY_REPORT_MAX_DELAY_MS (its replies after each flush carry apply anyway).
   */
  get promptApplyReport(): boolean {
    return Atomics.load(this.i32, WI_PROMPT_APPLY_REPORT) !== 0;
  }

  set promptApplyReport(on: boolean) {
    Atomics.store(this.i32, WI_PROMPT_APPLY_REPORT, on ? 1 : 0);
  }

  /** The timeline the walreceiver streams (set before any of its WAL is published as flushed). */
  get receivedTli(): number {
    return Atomics.load(this.i32, WI_RECEIVED_TLI);
  }

  /** The standby's timeline (WI_TIMELINE; 0 before open() set it). */
  get timeline(): number {
    return Atomics.load(this.i32, WI_TIMELINE);
  }

  /** Standby.open: the control file's timeline, before any streaming. */
  setTimeline(tli: number): void {
    Atomics.store(this.i32, WI_TIMELINE, tli);
  }

  get stopRequested(): boolean {
    return Atomics.load(this.i32, WI_STOP) !== 0;
  }

  /** Main thread (pg_wal_replay_pause): ask startup to pause replay at the next record boundary. */
  requestReplayPause(): void {
    Atomics.compareExchange(this.i32, WI_REPLAY_PAUSE, RecoveryPauseState.NotPaused, RecoveryPauseState.PauseRequested);
    this.startupLatch.set();
  }

  /** Main thread (pg_wal_replay_resume). */
  resumeReplay(): void {
    Atomics.store(this.i32, WI_REPLAY_PAUSE, RecoveryPauseState.NotPaused);
    this.startupLatch.set();
  }

  /** startup: a requested pause has taken effect (false if it was resumed meanwhile). */
  acknowledgeReplayPause(): boolean {
    const was = Atomics.compareExchange(this.i32, WI_REPLAY_PAUSE, RecoveryPauseState.PauseRequested, RecoveryPauseState.Paused);
    return was !== RecoveryPauseState.NotPaused;
  }

  get replayPauseRequested(): boolean {
    return Atomics.load(this.i32, WI_REPLAY_PAUSE) !== RecoveryPauseState.NotPaused;
  }

  get replayPauseState(): ReplayPauseState {
    return REPLAY_PAUSE_STATE_NAMES[Atomics.load(this.i32, WI_REPLAY_PAUSE)] ?? 'not paused';
  }

  /** Main thread: ask both workers to stop and wake them. */
  requestStop(): void {
    Atomics.store(this.i32, WI_STOP, 1);
    this.startupLatch.set();
    this.walrcvLatch.set();
  }

  /**
   * Where valid local WAL ends at startup (found by the startup worker, or from the segment
   * files in wal-only mode): written = flushed = max(current, lsn); replay starts at `replay`.
   */
  initPositions(localEnd: Lsn, replay: Lsn): void {
    this.mutex.lock();
    try {
      assert(replay <= localEnd, `WalRcvData.initPositions: replay ${replay} > local end ${localEnd}`);
      if (localEnd > this.load(WR_WRITTEN)) this.put(WR_WRITTEN, localEnd);
      if (localEnd > this.load(WR_FLUSHED)) this.put(WR_FLUSHED, localEnd);
      if (replay > this.load(WR_REPLAY)) this.put(WR_REPLAY, replay);
    } finally {
      this.mutex.unlock();
    }
  }

  /** walreceiver: a new streaming session starts at `lsn` on `tli` from host:port. */
  startStreaming(lsn: Lsn, tli: number, host: string, port: number): void {
    const hb = enc.encode(host).subarray(0, SENDER_HOST_MAX_BYTES);
    let switched = false;
    this.mutex.lock();
    try {
      const prevTli = Atomics.load(this.i32, WI_TIMELINE);
      assert(prevTli === 0 || tli >= prevTli, `WalRcvData: timeline ${tli} after ${prevTli}`);
      switched = prevTli !== 0 && tli !== prevTli;
      this.put(WR_RECEIVE_START, lsn);
      Atomics.store(this.i32, WI_RECEIVE_START_TLI, tli);
      Atomics.store(this.i32, WI_RECEIVED_TLI, tli);
      Atomics.store(this.i32, WI_TIMELINE, tli);
      this.bytes.set(hb, HOST_OFF);
      Atomics.store(this.i32, WI_SENDER_HOST_LEN, hb.length);
      Atomics.store(this.i32, WI_SENDER_PORT, port);
      Atomics.store(this.i32, WI_STATE, WalRcvState.Streaming);
    } finally {
      this.mutex.unlock();
    }
    this.addCounter(WR_CONNECTS, 1);
    // A new timeline: cascading walsenders streaming the old one wake (it became historic; the
    // waiter's side of this handshake is in src/replication/wal-source.ts: TIMELINE, then FLUSH_SEQ).
    if (switched) this.bumpFlushSeq();
  }

  /** walreceiver: bytes up to `lsn` are written (not yet fsynced). Never goes backwards. */
  publishWritten(lsn: Lsn): void {
    this.mutex.lock();
    try {
      const w = this.load(WR_WRITTEN);
      if (lsn > w) this.put(WR_WRITTEN, lsn);
    } finally {
      this.mutex.unlock();
    }
  }

  /** walreceiver: bytes up to `lsn` are durable. Wakes the startup worker. */
  publishFlushed(lsn: Lsn): void {
    this.mutex.lock();
    try {
      const f = this.load(WR_FLUSHED);
      const w = this.load(WR_WRITTEN);
      assert(lsn <= w, `WalRcvData: flushed ${lsn} beyond written ${w}`);
      if (lsn > f) this.put(WR_FLUSHED, lsn);
    } finally {
      this.mutex.unlock();
    }
    this.addCounter(WR_FSYNCS, 1);
    // FLUSH_SEQ counts publishes. Only cascading walsenders sleep on it (startup has its latch), so
    // notify only while one may (every Atomics.notify takes a mutex that all threads of the process
    // share inside V8). Sequentially consistent with the waiter: it adds to FLUSH_WAITERS before it
    // reads FLUSH_SEQ and FLUSHED; we bump FLUSH_SEQ before we read FLUSH_WAITERS.
    this.bumpFlushSeq();
    this.startupLatch.set();
  }

  /** FLUSH_SEQ moves (a flush, or a new timeline); waiters, if any, wake. */
  private bumpFlushSeq(): void {
    Atomics.add(this.i32, WI_FLUSH_SEQ, 1);
    if (Atomics.load(this.i32, WI_FLUSH_WAITERS) !== 0) Atomics.notify(this.i32, WI_FLUSH_SEQ);
  }

  /** walreceiver: an XLogData or keepalive arrived: the primary's walEnd and clocks (PostgreSQL's ProcessWalSndrMessage). */
  noteMessage(walEnd: Lsn, sendTime: number, receiptTime: number): void {
    this.mutex.lock();
    try {
      if (this.load(WR_LATEST_WAL_END) < walEnd) this.put(WR_LATEST_WAL_END_TIME, sendTime);
      this.put(WR_LATEST_WAL_END, walEnd);
      this.put(WR_LAST_SEND_TIME, sendTime);
      this.put(WR_LAST_RECEIPT_TIME, receiptTime);
    } finally {
      this.mutex.unlock();
    }
    this.addCounter(WR_MESSAGES, 1);
  }

  /** startup: everything before `lsn` is applied; `commitTime` is the last replayed commit's (0 = none). */
  publishReplay(lsn: Lsn, commitTime: number, records: number, now: number): void {
    this.mutex.lock();
    try {
      const r = this.load(WR_REPLAY);
      const f = this.load(WR_FLUSHED);
      assert(lsn >= r, `WalRcvData: replay went backwards (${lsn} < ${r})`);
      assert(lsn <= f, `WalRcvData: replay ${lsn} beyond flushed ${f}`);
      this.put(WR_REPLAY, lsn);
      if (commitTime > 0) this.put(WR_LAST_COMMIT_TIME, commitTime);
      this.put(WR_REPLAY_TIME, now);
      if (records > 0) this.addCounter(WR_RECORDS_REPLAYED, records);
    } finally {
      this.mutex.unlock();
    }
    Atomics.add(this.i32, WI_REPLAY_SEQ, 1);
    // Only if a waiter may sleep (sequentially consistent with a waiting thread's add to
    // REPLAY_WAITING before it reads REPLAY_SEQ and arms its wait).
    if (Atomics.load(this.i32, WI_REPLAY_WAITING) !== 0) Atomics.notify(this.i32, WI_REPLAY_SEQ);
  }

  /** A consistent copy of every field (taken under the mutex). */
  snapshot(): WalRcvSnapshot {
    this.mutex.lock();
    try {
      const len = Atomics.load(this.i32, WI_SENDER_HOST_LEN);
      const s: WalRcvSnapshot = {
        state: WALRCV_STATE_NAMES[this.state] ?? 'stopped',
        receiveStart: this.load(WR_RECEIVE_START),
        receiveStartTli: Atomics.load(this.i32, WI_RECEIVE_START_TLI),
        receivedTli: Atomics.load(this.i32, WI_RECEIVED_TLI),
        written: this.load(WR_WRITTEN),
        flushed: this.load(WR_FLUSHED),
        latestWalEnd: this.load(WR_LATEST_WAL_END),
        latestWalEndTime: this.load(WR_LATEST_WAL_END_TIME),
        lastSendTime: this.load(WR_LAST_SEND_TIME),
        lastReceiptTime: this.load(WR_LAST_RECEIPT_TIME),
        replay: this.load(WR_REPLAY),
        lastCommitTime: this.load(WR_LAST_COMMIT_TIME),
        replayTime: this.load(WR_REPLAY_TIME),
        senderHost: dec.decode(this.bytes.slice(HOST_OFF, HOST_OFF + len)),
        senderPort: Atomics.load(this.i32, WI_SENDER_PORT),
        bytesReceived: this.load(WR_BYTES_RECEIVED),
        fsyncs: this.load(WR_FSYNCS),
        messages: this.load(WR_MESSAGES),
        recordsReplayed: this.load(WR_RECORDS_REPLAYED),
        repliesSent: this.load(WR_REPLIES_SENT),
        connects: this.load(WR_CONNECTS),
        bytesWrittenDirect: this.load(WR_BYTES_WRITTEN_DIRECT),
        applyReportsPutOff: this.load(WR_APPLY_REPORTS_PUT_OFF),
      };
      assert(s.replay <= s.flushed && s.flushed <= s.written, `WalRcvData invariant: replay ${s.replay} <= flushed ${s.flushed} <= written ${s.written}`);
      return s;
    } finally {
      this.mutex.unlock();
    }
  }
}

/** PostgreSQL timestamp (µs since 2000-01-01) with sub-millisecond precision, comparable across threads. */
export function preciseNowPgMicros(): number {
  return Math.round((performance.timeOrigin + performance.now() - PG_EPOCH_OFFSET_MS) * 1000);
}
