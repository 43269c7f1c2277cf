// walreceiver: a worker thread that streams WAL from the primary into the standby's pg_wal.
// Started by Standby.open (after the startup worker has found the end of valid local WAL); owns
// the replication connection and, through its FlushPipeline, the segment files it writes. It
// stops when WalRcvData STOP is set (CopyDone, Terminate, close), or on a fatal error (system
// identifier or timeline mismatch, authentication), which it reports to the main thread.
//
// Loop (PostgreSQL's WalReceiverMain): connect (retry every walRetrieveRetryIntervalMs while the
// primary is away) → IDENTIFY_SYSTEM (system identifier and timeline checks) → START_REPLICATION
// at the segment start of our end of flushed WAL → for each burst of received messages: write
// XLogData at its LSN (split at segment boundaries), then fdatasync once when the socket has
// nothing more buffered (or every walReceiverFlushAfterBytes), publish written/flushed in
// WalRcvData, set the startup latch, send `r` (write, flush, apply). Before writing a burst, a
// walstream primary (which agreed to it at startup) also gets `R`: the end of the WAL in hand
// (remote_receive). `r` also goes out every walReceiverStatusIntervalMs, when the primary asks
// (keepalive replyRequested), and when the startup worker reports new replay progress.
// wal_receiver_timeout: ask for a reply after half of it without traffic, give up (reconnect)
// after all of it.
//
// WAL files (src/standby/flush-pipeline.ts): received WAL is written and flushed by one
// FlushPipeline, which owns the segment files, the buffered and direct (O_DIRECT, while catching
// up) writers and the flush rule: `flushed` is published only after the fdatasync of the files
// and, when a segment file was created, installed or renamed since the last flush, the fsync of
// pg_wal. Small batches (live) are flushed on this thread; batches of BACKGROUND_FLUSH_MIN_BYTES or
// more on the libuv threadpool while receiving goes on, and up to MAX_UNFLUSHED_BATCHES are
// received while one is in flight. Segment files (created, prepared ahead, `.partial` in wal-only
// mode, like pg_receivewal) are made by src/wal/segfile.ts.
//
// Timelines (src/standby/timeline-follow.ts): at the end of a historic timeline (CopyDone and the
// next timeline's result set) it fetches the next history file, writes it durably and streams on
// on the next timeline from the switch point's segment start, in both modes; an upstream on a
// newer timeline is checked (history, fork point) before anything is streamed from it.

import fs from 'node:fs';
import path from 'node:path';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { type ErrorInfo, errorInfo, Errors, WalstreamError } from '../errors.js';
import { type ControlData, DbState, readControl, writeControl } from '../storage/control.js';
import { assert } from '../util/assert.js';
import { StageTrace, type StageTraceHandle } from '../util/stage-trace.js';
import { PG_EPOCH_OFFSET_MS } from '../wal/consts.js';
import { parseSegmentSizeSetting } from '../wal/segment.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { BACKGROUND_FLUSH_MIN_BYTES, FlushPipeline } from './flush-pipeline.js';
import type { PrimaryConninfo, StandbyMode } from './options.js';
import { adoptUpstreamHistory } from './timeline-follow.js';
import { type EndOfStreamingResult, RingTransport, TcpTransport, type WalRcvConnection, type WalRcvTransport } from './transport.js';
import { preciseNowPgMicros, WalRcvData, type WalRcvDataHandle, WalRcvState, WR_BYTES_RECEIVED, WR_BYTES_WRITTEN_DIRECT, WR_REPLIES_SENT } from './walrcvdata.js';

export interface WalReceiverConfig {
  walrcv: WalRcvDataHandle;
  conninfo: Required<PrimaryConninfo>;
  /** A primary in this process: its in-process listener port (transferred), used instead of TCP. */
  inProcess: MessagePort | null;
  /** In-process: capacity of the primary → standby ring, in bytes. */
  ringBytes: number;
  mode: StandbyMode;
  dataDir: string;
  slotName: string | null;
  /** Known identity (null in an empty wal-only directory: learnt from the primary and written to the control file). */
  sysid: string | null;
  tli: number;
  segSize: number;
  /** Streaming starts at the segment start of this LSN (null: the primary's current position). */
  startLsn: Lsn | null;
  statusIntervalMs: number;
  timeoutMs: number;
  retryIntervalMs: number;
  flushAfterBytes: number;
  /** wal_init_zero: new segments are written with zeros (else only their last byte). */
  walInitZero: boolean;
  /** While catching up, write WAL with O_DIRECT (falls back to buffered writes where refused). */
  directIo: boolean;
  /** Per-hop latency tracing: `received` per XLogData, `standbyFlushed` per flush; null: off. */
  stageTrace: StageTraceHandle | null;
  maxBufferedBytes: number;
  connectTimeoutMs: number;
  maxMessageBytes: number;
}

export type WalReceiverMessage =
  | { type: 'identified'; sysid: string; tli: number; segSize: number }
  | { type: 'streaming'; start: Lsn; tli: number }
  /** The stream of `prevTli` ended; streaming goes on on `tli`, which began at `switchpoint`. */
  | { type: 'timeline'; tli: number; prevTli: number; switchpoint: Lsn }
  | { type: 'warning'; message: string; sqlstate: string }
  | { type: 'failed'; error: ErrorInfo }
  /** WalRcvData's state changed (the main thread reads it there). */
  | { type: 'state' }
  /** A connection ended (`message`/`sqlstate`: why, null when we ended it: stop, re-point). */
  | { type: 'disconnected'; message: string | null; sqlstate: string | null }
  | { type: 'stopped' };

/** Main thread → walreceiver. */
export type WalReceiverCommand =
  | { type: 'conninfo'; conninfo: Required<PrimaryConninfo> }
  /** waitForReplay of WAL the primary may not have flushed yet: StandbyFlushRequest `F` (walstream primaries only). */
  | { type: 'flushRequest'; lsn: Lsn };

/** How long to wait for the primary to finish the COPY after our CopyDone at shutdown. */
export const END_STREAMING_TIMEOUT_MS = 2_000;
/**
 * In-process standby: HEAD checks before the walreceiver sleeps on an empty ring (≈ a few µs; a
 * wake-up costs tens of µs, but spinning longer steals a core from the walsender on 2 cores).
 */
const RING_SPIN_ITERATIONS = 1000;
/** When a burst ended on a full socket read, wait this long for more before fsyncing anyway. */
const MORE_DATA_WAIT_MS = 1;
/** Unflushed WAL, in walReceiverFlushAfterBytes batches, past which receiving waits for the fsync in flight. */
const MAX_UNFLUSHED_BATCHES = 4;

class FatalError extends Error {
  constructor(readonly err: WalstreamError) {
    super(err.message);
  }
}

/** Errors no retry can cure: authentication (SQLSTATE class 28). */
function isFatal(e: unknown): boolean {
  return e instanceof WalstreamError && e.sqlstate.startsWith('28');
}

function post(m: WalReceiverMessage): void {
  parentPort?.postMessage(m);
}

class WalReceiver {
  private readonly walrcv: WalRcvData;
  private readonly walDir: string;
  private transport: WalRcvTransport;
  private readonly transportOptions: { connectTimeoutMs: number; commandTimeoutMs: number; maxMessageBytes: number; maxBufferedBytes: number };
  /** setPrimaryConninfo: end the stream and connect to the new upstream (no retry wait). */
  private repointRequested = false;
  private sysid: string | null;
  private tli: number;
  private segSize: number;
  private startLsn: Lsn | null;
  private conn: WalRcvConnection | null = null;
  /** The highest LSN waitForReplay asked the primary to flush (requestFlush), 0: none. */
  private flushRequested: Lsn = 0;
  private connecting: AbortController | null = null;
  /** True while the COPY stream runs (a stop then ends it cleanly with CopyDone). */
  private inCopy = false;
  private sleepWake: (() => void) | null = null;
  private stopped = false;
  /** The WAL files: writers, segment files, the flush rule. */
  private readonly files: FlushPipeline;
  private readonly trace: StageTrace | null;
  /** The flush position last published in WalRcvData (this session). */
  private publishedFlush = 0;
  private lastSent = { write: -1, flush: -1, apply: -1, at: 0 };
  /** The startup worker set our latch since the last reply: report apply if it moved. */
  private applyWakeSeen = false;
  private lastRecvAt = 0;
  private pingSent = false;
  private replyNeeded = false;
  private reportedBytes = 0;

  constructor(private readonly cfg: WalReceiverConfig) {
    this.walrcv = new WalRcvData(cfg.walrcv);
    this.walDir = path.join(cfg.dataDir, 'pg_wal');
    const topts = {
      connectTimeoutMs: cfg.connectTimeoutMs,
      commandTimeoutMs: cfg.timeoutMs > 0 ? cfg.timeoutMs : cfg.connectTimeoutMs,
      maxMessageBytes: cfg.maxMessageBytes,
      maxBufferedBytes: cfg.maxBufferedBytes,
    };
    this.transportOptions = topts;
    this.transport = cfg.inProcess !== null
      ? new RingTransport(cfg.inProcess, cfg.conninfo, { ...topts, ringBytes: cfg.ringBytes, spinIterations: RING_SPIN_ITERATIONS })
      : new TcpTransport(cfg.conninfo, topts);
    this.files = new FlushPipeline(
      { walDir: this.walDir, mode: cfg.mode, walInitZero: cfg.walInitZero, directIo: cfg.directIo },
      {
        flushed: (target, reply) => this.publishFlushed(target, reply),
        backgroundSettled: () => this.conn?.interrupt(),
        directBytes: (n) => this.walrcv.addCounter(WR_BYTES_WRITTEN_DIRECT, n),
        warning: (message) => post({ type: 'warning', message, sqlstate: '01000' }),
      },
    );
    this.trace = cfg.stageTrace ? new StageTrace(cfg.stageTrace) : null;
    this.sysid = cfg.sysid;
    this.tli = cfg.tli;
    this.segSize = cfg.segSize;
    this.startLsn = cfg.startLsn;
    this.files.setIdentity(this.tli, this.segSize);
  }

  async run(): Promise<void> {
    void this.watchLatch();
    try {
      while (!this.walrcv.stopRequested) {
        this.setState(WalRcvState.Starting);
        this.repointRequested = false;
        let conn: WalRcvConnection;
        this.connecting = new AbortController();
        try {
          conn = await this.transport.connect(this.connecting.signal);
        } catch (e) {
          if (isFatal(e)) throw new FatalError(e as WalstreamError);
          if (!this.walrcv.stopRequested && !this.repointRequested) this.warn(e);
          if (!this.repointRequested) await this.retryWait();
          continue;
        } finally {
          this.connecting = null;
        }
        this.conn = conn;
        let endedBy: WalstreamError | null = null;
        try {
          await this.stream(conn);
        } catch (e) {
          endedBy = e instanceof FatalError ? e.err : e instanceof WalstreamError ? e : Errors.internal(String((e as Error)?.message ?? e));
          if (e instanceof FatalError) throw e;
          if (isFatal(e)) throw new FatalError(e as WalstreamError);
          if (!this.repointRequested) this.warn(e);
        } finally {
          this.conn = null;
          this.inCopy = false;
          conn.disconnect();
          post({ type: 'disconnected', message: endedBy?.message ?? null, sqlstate: endedBy?.sqlstate ?? null });
          await this.flushSettled(false);
        }
        if (this.walrcv.stopRequested) break;
        if (!this.repointRequested) await this.retryWait();
      }
    } finally {
      this.stopped = true;
      await this.files.close();
      this.setState(WalRcvState.Stopped);
    }
  }

  /** Wake waits when the latch is set (stop, or replay progress to report). One waitAsync at a time. */
  private async watchLatch(): Promise<void> {
    while (!this.stopped) {
      await this.walrcv.walrcvLatch.waitAsync(Infinity, { keepAlive: false });
      this.applyWakeSeen = true; // (or a stop request)
      if (this.walrcv.stopRequested) {
        // Not streaming yet: abandon the attempt or command at once (nothing to end cleanly).
        this.connecting?.abort();
        if (!this.inCopy) this.conn?.disconnect();
      }
      this.conn?.interrupt();
      this.sleepWake?.();
    }
  }

  // ---- re-pointing ----------------------------------------------------------------------------

  /**
   * setPrimaryConninfo: stream from another upstream. The current stream ends cleanly (flush,
   * CopyDone), then the next connection goes to `conninfo` at once; it is checked like any
   * (system identifier, timeline history) and streams from where our flush ended.
   */
  repoint(conninfo: Required<PrimaryConninfo>): void {
    if (this.cfg.inProcess !== null) {
      this.warn(Errors.featureNotSupported('a standby of an in-process primary cannot be re-pointed'));
      return;
    }
    this.cfg.conninfo = conninfo;
    this.transport = new TcpTransport(conninfo, this.transportOptions);
    this.repointRequested = true;
    this.connecting?.abort();
    if (!this.inCopy) this.conn?.disconnect();
    this.conn?.interrupt();
    this.sleepWake?.();
  }

  /**
   * waitForReplay of `lsn`: ask the primary to flush up to there now (`F`, to a walstream walsender),
   * not at its wal_writer_delay; asked again at the next stream's start while above our flush.
   */
  requestFlush(lsn: Lsn): void {
    if (lsn <= this.flushRequested) return;
    this.flushRequested = lsn;
    if (this.inCopy) this.conn?.sendFlushRequest(lsn);
  }

  private setState(state: WalRcvState): void {
    this.walrcv.setState(state);
    post({ type: 'state' });
  }

  private warn(e: unknown): void {
    const err = e instanceof WalstreamError ? e : Errors.internal(String((e as Error)?.message ?? e));
    post({ type: 'warning', message: err.message, sqlstate: err.sqlstate });
  }

  private async retryWait(): Promise<void> {
    if (this.walrcv.stopRequested) return;
    this.setState(WalRcvState.Waiting);
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, this.cfg.retryIntervalMs);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.sleepWake = done;
    });
    this.sleepWake = null;
  }

  // ---- one streaming session ----------------------------------------------------------------

  private async stream(conn: WalRcvConnection): Promise<void> {
    const ident = await conn.identifySystem();
    if (this.sysid === null) {
      // Empty wal-only directory: adopt the primary's identity and persist it before any WAL.
      this.segSize = parseSegmentSizeSetting(await conn.show('wal_segment_size'));
      this.sysid = ident.systemId;
      this.tli = ident.timeline;
      this.initWalOnlyControl(BigInt(ident.systemId));
      this.files.setIdentity(this.tli, this.segSize);
      post({ type: 'identified', sysid: ident.systemId, tli: ident.timeline, segSize: this.segSize });
    } else if (ident.systemId !== this.sysid) {
      throw new FatalError(Errors.systemIdMismatch(ident.systemId, this.sysid));
    }
    if (ident.timeline < this.tli) throw new FatalError(Errors.timelineMismatch(ident.timeline, this.tli));
    // An upstream on a newer timeline (re-pointed to a promoted standby): its history must contain
    // our WAL; then our timeline is streamed up to its switch point and followed from there.
    if (ident.timeline > this.tli) await adoptUpstreamHistory(conn, this.walDir, this.tli, ident.timeline, Math.max(this.files.flushed, this.walrcv.flushed));
    const from = this.startLsn ?? ident.xlogpos;
    // PostgreSQL's walreceiver always asks for a segment start.
    let start = from - (from % this.segSize);
    let newTimeline = false;
    for (;;) {
      const end = await this.streamTimeline(conn, start, newTimeline);
      if (end === null) return;
      start = await this.followTimeline(conn, end.next, end.stopPos);
      newTimeline = true;
    }
  }

  /**
   * Stream timeline `this.tli` from `start` until a stop request (null) or the end of a historic
   * timeline (the server's CopyDone and the next timeline it reported, with where this one stopped).
   * `newTimeline`: the first stream of a timeline we just followed (its first segment is written
   * from its start again, below what was flushed on the old timeline: those bytes are flushed anew,
   * and the published flush position does not move back).
   */
  private async streamTimeline(conn: WalRcvConnection, start: Lsn, newTimeline: boolean): Promise<{ next: EndOfStreamingResult; stopPos: Lsn } | null> {
    await conn.startStreaming(start, this.tli, this.cfg.slotName);
    this.inCopy = true;
    this.startLsn = start;
    // DEV DOCS (startup ↔ walreceiver): RECEIVED_TLI is stored here, before any WAL of this
    // timeline is published as flushed; the startup worker reads FLUSHED, then RECEIVED_TLI, and
    // switches to the new history once FLUSHED passes the switch point (startup.ts
    // rescanLatestTimeLine). A followed timeline's WAL below the published flush is rewritten
    // into the new timeline's file, which startup does not read until then.
    this.walrcv.startStreaming(start, this.tli, conn.senderHost, conn.senderPort);
    post({ type: 'streaming', start, tli: this.tli });
    if (newTimeline) {
      this.files.resetPositions(start, start);
      this.publishedFlush = Math.max(this.publishedFlush, start);
    } else {
      this.files.resetPositions(Math.max(this.walrcv.written, start), Math.max(this.walrcv.flushed, start));
      this.publishedFlush = this.files.flushed;
    }
    // (A followed timeline restarts below what is published, and replay may be past its start:
    // the published positions stay where they are.)
    if (!newTimeline) this.walrcv.initPositions(this.files.flushed, this.walrcv.replay);
    let expected = start;
    this.lastRecvAt = performance.now();
    this.pingSent = false;
    this.lastSent = { write: -1, flush: -1, apply: -1, at: 0 };
    this.reportedBytes = 0;
    this.sendReply(conn, true, false);
    if (this.flushRequested > this.files.flushed) conn.sendFlushRequest(this.flushRequested);
    let receivedSent = 0;
    for (;;) {
      // remote_receive: say what is in hand before writing it (`R`), while a walstream primary
      // with synchronous standbys asks for it (ParameterStatus walstream.received_report, which
      // may change while streaming).
      if (conn.acceptsReceivedReport && conn.receivedUpTo > receivedSent) {
        receivedSent = conn.receivedUpTo;
        conn.sendReceived(receivedSent, preciseNowPgMicros());
      }
      let got = false;
      for (let m = conn.receive(); m !== null; m = conn.receive()) {
        got = true;
        switch (m.kind) {
          case 'xlogData': {
            if (this.trace !== null) {
              this.trace.record('received', m.dataStart + m.data.length);
              this.trace.recordAt('sendTime', m.dataStart + m.data.length, m.sendTime / 1000 + PG_EPOCH_OFFSET_MS); // (the sender's clock)
            }
            if (m.dataStart !== expected) {
              throw Errors.protocolViolation(`unexpected XLogData at ${lsnToString(m.dataStart)}, expected ${lsnToString(expected)}`);
            }
            this.files.noteSenderWalEnd(m.walEnd);
            const lastSeg = Math.floor((m.dataStart + m.data.length - 1) / this.segSize);
            // (No promise or turn on the live path: only a message reaching another segment waits.)
            if (m.data.length > 0 && lastSeg !== this.files.currentSegment) await this.files.prepareFor(lastSeg);
            // Live WAL (no direct-I/O stage, inside the open segment): written here, without the
            // promise and turn of the general path.
            if (!this.files.writeFast(m.dataStart, m.data)) await this.files.write(m.dataStart, m.data);
            this.trace?.record('written', this.files.writtenLsn);
            expected = m.dataStart + m.data.length;
            this.startLsn = expected;
            this.walrcv.noteMessage(m.walEnd, m.sendTime, preciseNowPgMicros());
            // A full batch: fsync it in the background while the next one is received (this
            // waits only if the previous batch's fsync is still running).
            // (While the previous batch's fsync runs, up to MAX_UNFLUSHED_BATCHES batches are
            // received before waiting for it: catch-up is not paced by fsync latency.)
            const fa = this.cfg.flushAfterBytes;
            const unflushed = this.files.unflushedBytes;
            if (unflushed >= fa && (!this.files.backgroundFlushRunning || unflushed >= MAX_UNFLUSHED_BATCHES * fa)) {
              await this.files.stageSettle();
              await this.flushBackground();
            }
            break;
          }
          case 'keepalive':
            this.walrcv.noteMessage(m.walEnd, m.sendTime, preciseNowPgMicros());
            if (m.replyRequested) this.replyNeeded = true;
            break;
          case 'endOfStream': {
            await this.flushSettled(true);
            this.sendReply(conn, true, false);
            const next = await conn.endStreaming(m.endOfTimeline ? this.cfg.timeoutMs > 0 ? this.cfg.timeoutMs : this.cfg.connectTimeoutMs : END_STREAMING_TIMEOUT_MS);
            this.inCopy = false;
            if (next !== null) return { next, stopPos: expected };
            throw Errors.connectionFailure(`replication terminated by primary server: ${m.reason} at ${lsnToString(expected)}`);
          }
          case 'error':
            throw m.error;
        }
      }
      const now = performance.now();
      if (got) {
        this.lastRecvAt = now;
        this.pingSent = false;
        const b = conn.bytesReceived;
        this.walrcv.addCounter(WR_BYTES_RECEIVED, b - this.reportedBytes);
        this.reportedBytes = b;
        this.files.reportDirectBytes();
      }
      const written = this.files.writtenLsn;
      if (written > this.walrcv.written) this.walrcv.publishWritten(written);
      if (this.files.failure !== null) throw new FatalError(this.fsyncFailed(this.files.failure));
      // Batch fsyncs: not while the socket probably holds more (bounded by flushAfterBytes).
      const burstGoesOn = got && conn.moreDataLikely;
      if (!this.files.backgroundFlushRunning && this.files.unflushedBytes > 0 && !burstGoesOn) {
        if (this.files.staging) await this.files.stageSettle(); // (no turn when not staging)
        if (this.files.unflushedBytes >= BACKGROUND_FLUSH_MIN_BYTES) {
          this.files.flushBackground().catch(() => this.conn?.interrupt()); // (failure: reported by the next turn of this loop)
        } else {
          this.files.flushNow(true);
        }
      }
      if (this.walrcv.stopRequested || this.repointRequested) {
        await this.flushSettled(true);
        this.sendReply(conn, true, false);
        await conn.endStreaming(END_STREAMING_TIMEOUT_MS);
        return null;
      }
      if (this.replyNeeded) {
        this.replyNeeded = false;
        this.sendReply(conn, true, false);
      } else {
        this.sendReply(conn, false, false);
      }
      const timeout = this.cfg.timeoutMs;
      if (timeout > 0) {
        const idle = now - this.lastRecvAt;
        if (idle >= timeout) throw Errors.replicationTimeout('walreceiver');
        if (idle >= timeout / 2 && !this.pingSent) {
          this.sendReply(conn, true, true);
          this.pingSent = true;
        }
      }
      let waitMs = Infinity;
      // (A background fsync wakes us when it ends.)
      if (this.files.unflushedBytes > 0 && !this.files.backgroundFlushRunning) waitMs = MORE_DATA_WAIT_MS;
      if (timeout > 0) waitMs = Math.min(waitMs, Math.max(1, (this.pingSent ? timeout : timeout / 2) - (now - this.lastRecvAt)));
      if (this.cfg.statusIntervalMs > 0) waitMs = Math.min(waitMs, Math.max(1, this.cfg.statusIntervalMs - (now - this.lastSent.at)));
      await conn.waitReadable(waitMs);
    }
  }

  /**
   * The end of historic timeline `this.tli` (stopped at `stopPos`): check the next timeline the
   * server reported (receivelog.c's checks and texts), close the old timeline's files (its last,
   * incomplete segment stays `.partial` in wal-only mode, as pg_receivewal leaves it), fetch the
   * next timeline's history file unless we have it and write it durably into pg_wal, move the
   * control file to the new timeline, and return where streaming resumes: the segment start of
   * the next timeline's start (PostgreSQL starts a timeline's stream at a segment boundary; the
   * bytes before the switch point are the old timeline's, rewritten into the new one's file).
   */
  private async followTimeline(conn: WalRcvConnection, next: EndOfStreamingResult, stopPos: Lsn): Promise<Lsn> {
    const { nextTli, nextTliStart } = next;
    if (nextTli <= this.tli) {
      throw new FatalError(Errors.protocolViolation(`server reported unexpected next timeline ${nextTli}, following timeline ${this.tli}`));
    }
    if (nextTliStart > stopPos) {
      throw new FatalError(Errors.protocolViolation(`server stopped streaming timeline ${this.tli} at ${lsnToString(stopPos)}, but reported next timeline ${nextTli} to begin at ${lsnToString(nextTliStart)}`));
    }
    await this.files.endTimeline();
    // (Our flush is the old timeline's end: at most the switch point, checked again here.)
    await adoptUpstreamHistory(conn, this.walDir, this.tli, nextTli, Math.min(this.files.flushed, nextTliStart));
    const prevTli = this.tli;
    assert(nextTli > prevTli, 'walreceiver: timelines never decrease');
    this.tli = nextTli;
    if (this.cfg.mode === 'wal-only') {
      const c = readControl(this.cfg.dataDir);
      assert(c !== null, 'walreceiver: wal-only directory without a control file');
      writeControl(this.cfg.dataDir, { ...c, tli: nextTli, timeMs: Date.now() });
    }
    this.files.setIdentity(nextTli, this.segSize);
    const start = nextTliStart - (nextTliStart % this.segSize);
    post({ type: 'timeline', tli: nextTli, prevTli, switchpoint: nextTliStart });
    return start;
  }

  /**
   * `r`: write, flush, apply. Skipped when write and flush did not move and the status interval has
   * not passed, unless apply moved and is to be reported now: the primary asked for prompt apply
   * reports, or the startup worker woke us for it (at most every APPLY_REPORT_MAX_DELAY_MS).
   * Otherwise a new apply position waits for the next reply (as in PostgreSQL).
   */
  private sendReply(conn: WalRcvConnection, force: boolean, requestReply: boolean): void {
    const write = this.files.writtenLsn;
    const flush = this.files.flushed;
    const apply = this.cfg.mode === 'replica' ? this.walrcv.replay : 0;
    const now = performance.now();
    const intervalPassed = this.cfg.statusIntervalMs > 0 && now - this.lastSent.at >= this.cfg.statusIntervalMs;
    const applyDue = apply !== this.lastSent.apply && (this.applyWakeSeen || this.walrcv.promptApplyReport);
    if (!force && !intervalPassed && !applyDue && write === this.lastSent.write && flush === this.lastSent.flush) return;
    this.applyWakeSeen = false;
    conn.send({ write, flush, apply, clientTime: preciseNowPgMicros(), replyRequested: requestReply });
    this.lastSent = { write, flush, apply, at: now };
    this.walrcv.addCounter(WR_REPLIES_SENT, 1);
  }

  // ---- segment files ------------------------------------------------------------------------

  private initWalOnlyControl(sysid: bigint): void {
    const control: ControlData = {
      sysid, segSize: this.segSize, state: DbState.InArchiveRecovery, tli: this.tli, checkpointLsn: 0, redoLsn: 0,
      nextXid: 0, timeMs: Date.now(), snapshotName: '', minRecoveryPoint: 0,
    };
    fs.mkdirSync(this.walDir, { recursive: true });
    writeControl(this.cfg.dataDir, control);
  }

  /** Wait for a background batch, then flush the rest on this thread; a failed fsync is fatal. */
  private async flushSettled(reply: boolean): Promise<void> {
    try {
      await this.files.flushSettled(reply);
    } catch (e) {
      if (e === this.files.failure) throw new FatalError(this.fsyncFailed(e));
      throw e;
    }
  }

  /** A full catch-up batch: fdatasync it in the background (waits for the batch in flight, if any). */
  private async flushBackground(): Promise<void> {
    try {
      await this.files.flushBackground();
    } catch (e) {
      if (e === this.files.failure) throw new FatalError(this.fsyncFailed(e));
      throw e;
    }
  }

  /** PostgreSQL PANICs on a failed fsync: the written bytes may be lost, nothing is reported flushed. */
  private fsyncFailed(e: unknown): WalstreamError {
    return e instanceof WalstreamError ? e : Errors.internal(`could not fdatasync WAL: ${(e as Error)?.message ?? String(e)}`);
  }

  /** FlushPipeline's `flushed` event: WAL up to `target` is durable (the flush rule held). */
  private publishFlushed(target: Lsn, reply: boolean): void {
    if (target > this.publishedFlush) {
      this.publishedFlush = target;
      if (target > this.walrcv.written) this.walrcv.publishWritten(target);
      this.trace?.record('standbyFlushed', target); // (before the startup worker can see it)
      // The same request covers prompt apply reports: set before startup can replay this WAL
      // (the ParameterStatus came before the WAL that follows it).
      const prompt = this.conn !== null && this.conn.acceptsReceivedReport;
      if (prompt !== this.walrcv.promptApplyReport) this.walrcv.promptApplyReport = prompt;
      this.walrcv.publishFlushed(target);
    }
    if (reply && this.conn !== null) this.sendReply(this.conn, false, false);
  }

}

if (parentPort !== null && (workerData as { walreceiver?: WalReceiverConfig } | null)?.walreceiver !== undefined) {
  const cfg = (workerData as { walreceiver: WalReceiverConfig }).walreceiver;
  assert(cfg.mode === 'replica' || cfg.mode === 'wal-only', 'walreceiver: bad mode');
  const receiver = new WalReceiver(cfg);
  parentPort.on('message', (m: WalReceiverCommand) => {
    if (m.type === 'conninfo') receiver.repoint(m.conninfo);
    else receiver.requestFlush(m.lsn);
  });
  parentPort.unref(); // (the connection and the latch keep the worker alive, not this port)
  receiver
    .run()
    .then(() => post({ type: 'stopped' }))
    .catch((e: unknown) => post({ type: 'failed', error: errorInfo(e instanceof FatalError ? e.err : e, 'walreceiver failed') }));
}
