// walreceiver: a worker thread that streams WAL from the primary into the standby's pg_wal.
// Started by Standby.open (after the startup worker has found the end of valid local WAL); owns
// the replication connection and the segment file descriptors it writes. It stops when WalRcvData
// STOP is set (CopyDone, Terminate, close), or on a fatal error (system identifier or timeline
// mismatch, authentication), which it reports to the main thread.
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
// Catching up (more than CATCHUP_SEGMENTS behind the primary's walEnd), WAL is written with
// O_DIRECT (walReceiverDirectIo, src/wal/direct-io.ts): staged in page-aligned buffers and
// written in DIRECT_WRITE_BYTES chunks on the libuv threadpool, DIRECT_WRITES_IN_FLIGHT at a time,
// new segments are sparse and created without fsync (the flush that first covers WAL in a segment
// fsyncs it and the directory before publishing anything flushed), and up to MAX_UNFLUSHED_BATCHES
// are received while an fsync runs. Live streaming writes buffered, as before. Whatever the path,
// `written` is only what the kernel has taken, and `flushed` only what an fdatasync covered.
//
// Segment files: full-size and zero-filled (walInitZero, PostgreSQL's wal_init_zero; off: only
// the last byte is written, a sparse file), named as PostgreSQL names them. The next segment is
// prepared in the background (filled and fsynced under a temp name through the libuv threadpool) as soon as writing into the current one starts, so creating segments does not
// stall the receive path; it is linked into place when the stream reaches it. In 'replica' mode
// segments get their final name at once (like a standby's pg_wal); in 'wal-only' mode the segment
// being received is `<name>.partial` and is renamed when complete (like pg_receivewal), so a
// restart resumes at the newest partial.

import fs from 'node:fs';
import path from 'node:path';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { type ErrorInfo, errorInfo, Errors, WalstreamError } from '../errors.js';
import { type ControlData, DbState, writeControl } from '../storage/control.js';
import { assert } from '../util/assert.js';
import { StageTrace, type StageTraceHandle } from '../util/stage-trace.js';
import { validSegmentSize } from '../wal/consts.js';
import { DirectWriteStage, openDirect } from '../wal/direct-io.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { fsyncDir, fsyncDirAsync } from '../wal/segfile.js';
import { segmentFileName } from '../wal/segment.js';
import type { PrimaryConninfo, StandbyMode } from './options.js';
import { RingTransport, TcpTransport, type WalRcvConnection, type WalRcvTransport } from './transport.js';
import { preciseNowPgMicros, WalRcvData, type WalRcvDataHandle, WalRcvState, WR_BYTES_RECEIVED, WR_BYTES_WRITTEN_DIRECT, WR_REPLIES_SENT } from './walrcvdata.js';
import { fdatasync, fdatasyncSync } from '../util/fsync.js';

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
  | { type: 'warning'; message: string; sqlstate: string }
  | { type: 'failed'; error: ErrorInfo }
  | { type: 'stopped' };

/** How long to wait for the primary to finish the COPY after our CopyDone at shutdown. */
export const END_STREAMING_TIMEOUT_MS = 2_000;
/**
 * In-process standby: HEAD checks before the walreceiver sleeps on an empty ring (≈ a few µs; a
 * wake-up costs tens of µs, but spinning longer steals a core from the walsender on 2 cores).
 */
const RING_SPIN_ITERATIONS = 1000;
/** When a burst ended on a full socket read, wait this long for more before fsyncing anyway. */
const MORE_DATA_WAIT_MS = 1;
/**
 * A flush batch of at least this many bytes is fdatasynced in the background (libuv threadpool)
 * while receiving and writing go on (at most one in flight: double buffering). Smaller batches (a
 * live standby's commits) are fdatasynced at once on this thread: a threadpool round trip costs
 * two thread wake-ups, which a synchronous replica's commit latency would pay.
 */
const BACKGROUND_FLUSH_MIN_BYTES = 256 * 1024;
/**
 * Catch-up: while the primary's WAL end is more than this many segments ahead of what we received,
 * new segment files are created sparse instead of zero-filled (every byte of them is about to be
 * overwritten with WAL: zero-filling would double the disk writes) and none is prepared ahead.
 */
const CATCHUP_SEGMENTS = 2;
/** Unflushed WAL, in walReceiverFlushAfterBytes batches, past which receiving waits for the fsync in flight. */
const MAX_UNFLUSHED_BATCHES = 4;
/**
 * Direct I/O while catching up: WAL is staged and written in chunks of this many bytes (measured
 * here: 1 MiB chunks 0.78, 4 MiB 0.89 GB/s end to end with one write in flight).
 */
const DIRECT_WRITE_BYTES = 4 * 1024 * 1024;
/** Direct writes of full chunks in flight at once on the libuv threadpool (a device queue depth). */
const DIRECT_WRITES_IN_FLIGHT = 2;

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

/** `16MB` / `1GB` / `1024kB` (SHOW wal_segment_size) in bytes, as pg_receivewal parses it. */
export function parseSegmentSizeSetting(text: string): number {
  const m = /^(\d+)\s*(kB|MB|GB)$/.exec(text.trim());
  const unit = m ? { kB: 1024, MB: 1024 * 1024, GB: 1024 * 1024 * 1024 }[m[2] as 'kB' | 'MB' | 'GB'] : 0;
  const bytes = m ? Number(m[1]) * unit : NaN;
  if (!validSegmentSize(bytes)) {
    throw Errors.invalidParameterValue(`WAL segment size must be a power of two between 1 MB and 1 GB, but the remote server reported a value of ${text}`);
  }
  return bytes;
}

class WalReceiver {
  private readonly walrcv: WalRcvData;
  private readonly walDir: string;
  private readonly transport: WalRcvTransport;
  private sysid: string | null;
  private tli: number;
  private segSize: number;
  private startLsn: Lsn | null;
  private conn: WalRcvConnection | null = null;
  private connecting: AbortController | null = null;
  /** True while the COPY stream runs (a stop then ends it cleanly with CopyDone). */
  private inCopy = false;
  private sleepWake: (() => void) | null = null;
  private stopped = false;
  // segment files
  private curSeg = -1;
  private curFd = -1;
  private readonly dirty = new Set<number>();
  /** wal-only: segments fully written whose `.partial` must be renamed after the next fsync. */
  private readonly completed: Array<{ seg: number; fd: number }> = [];
  private readonly preparer: SegmentPreparer;
  private readonly trace: StageTrace | null;
  /** Catch-up writes with O_DIRECT (null: off, or refused by the file system). */
  private stage: DirectWriteStage | null;
  /** Per open segment fd, its O_DIRECT twin (opened when direct writing into it starts). */
  private readonly directFds = new Map<number, number>();
  /** The buffered fd of the segment being staged (the stage itself writes through its twin). */
  private stageFd = -1;
  private curFile = '';
  /**
   * A segment file was created or renamed into pg_wal without fsyncing the directory (catch-up):
   * the next flush fsyncs it before it publishes anything flushed.
   */
  private dirSyncPending = false;
  /** The first O_DIRECT fd was checked to take direct reads (alignment accepted). */
  private directProbed = false;
  // stream positions (this session)
  private written = 0;
  private flushed = 0;
  private unflushedBytes = 0;
  /** The fdatasync batch in flight in the background (at most one), and its error if it failed. */
  private flushing: Promise<void> | null = null;
  private flushError: unknown = null;
  /** fds with an fdatasync in flight: never closed under it. */
  private readonly syncing = new Set<number>();
  /** The primary's end of WAL as its latest XLogData said (walEnd): how far behind we are. */
  private senderWalEnd = 0;
  private lastSent = { write: -1, flush: -1, apply: -1, at: 0 };
  /** The startup worker set our latch since the last reply: report apply if it moved. */
  private applyWakeSeen = false;
  private lastRecvAt = 0;
  private pingSent = false;
  private replyNeeded = false;
  private reportedBytes = 0;
  /** WAL bytes that went through the direct-I/O stage, and how many of them WalRcvData counts. */
  private directBytes = 0;
  private reportedDirectBytes = 0;

  constructor(private readonly cfg: WalReceiverConfig) {
    this.walrcv = new WalRcvData(cfg.walrcv);
    this.walDir = path.join(cfg.dataDir, 'pg_wal');
    const topts = {
      connectTimeoutMs: cfg.connectTimeoutMs,
      commandTimeoutMs: cfg.timeoutMs > 0 ? cfg.timeoutMs : cfg.connectTimeoutMs,
      maxMessageBytes: cfg.maxMessageBytes,
      maxBufferedBytes: cfg.maxBufferedBytes,
    };
    this.transport = cfg.inProcess !== null
      ? new RingTransport(cfg.inProcess, cfg.conninfo, { ...topts, ringBytes: cfg.ringBytes, spinIterations: RING_SPIN_ITERATIONS })
      : new TcpTransport(cfg.conninfo, topts);
    this.preparer = new SegmentPreparer(this.walDir);
    this.stage = cfg.directIo ? new DirectWriteStage(DIRECT_WRITE_BYTES, DIRECT_WRITES_IN_FLIGHT) : null;
    this.trace = cfg.stageTrace ? new StageTrace(cfg.stageTrace) : null;
    this.sysid = cfg.sysid;
    this.tli = cfg.tli;
    this.segSize = cfg.segSize;
    this.startLsn = cfg.startLsn;
  }

  async run(): Promise<void> {
    void this.watchLatch();
    try {
      while (!this.walrcv.stopRequested) {
        this.walrcv.setState(WalRcvState.Starting);
        let conn: WalRcvConnection;
        this.connecting = new AbortController();
        try {
          conn = await this.transport.connect(this.connecting.signal);
        } catch (e) {
          if (isFatal(e)) throw new FatalError(e as WalstreamError);
          if (!this.walrcv.stopRequested) this.warn(e);
          await this.retryWait();
          continue;
        } finally {
          this.connecting = null;
        }
        this.conn = conn;
        try {
          await this.stream(conn);
        } catch (e) {
          if (e instanceof FatalError) throw e;
          if (isFatal(e)) throw new FatalError(e as WalstreamError);
          this.warn(e);
        } finally {
          this.conn = null;
          this.inCopy = false;
          conn.disconnect();
          await this.flushSettled(false);
        }
        if (this.walrcv.stopRequested) break;
        await this.retryWait();
      }
    } finally {
      this.stopped = true;
      await this.stage?.quiesce();
      this.closeFiles();
      this.walrcv.setState(WalRcvState.Stopped);
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

  private warn(e: unknown): void {
    const err = e instanceof WalstreamError ? e : Errors.internal(String((e as Error)?.message ?? e));
    post({ type: 'warning', message: err.message, sqlstate: err.sqlstate });
  }

  private async retryWait(): Promise<void> {
    if (this.walrcv.stopRequested) return;
    this.walrcv.setState(WalRcvState.Waiting);
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
      post({ type: 'identified', sysid: ident.systemId, tli: ident.timeline, segSize: this.segSize });
    } else if (ident.systemId !== this.sysid) {
      throw new FatalError(Errors.systemIdMismatch(ident.systemId, this.sysid));
    }
    if (ident.timeline < this.tli) throw new FatalError(Errors.timelineMismatch(ident.timeline, this.tli));
    const from = this.startLsn ?? ident.xlogpos;
    // PostgreSQL's walreceiver always asks for a segment start.
    const start = from - (from % this.segSize);
    await conn.startStreaming(start, this.tli, this.cfg.slotName);
    this.inCopy = true;
    this.startLsn = start;
    this.walrcv.startStreaming(start, this.tli, conn.senderHost, conn.senderPort);
    post({ type: 'streaming', start, tli: this.tli });
    this.written = Math.max(this.walrcv.written, start);
    this.flushed = Math.max(this.walrcv.flushed, start);
    this.walrcv.initPositions(this.flushed, this.walrcv.replay);
    let expected = start;
    this.lastRecvAt = performance.now();
    this.pingSent = false;
    this.lastSent = { write: -1, flush: -1, apply: -1, at: 0 };
    this.reportedBytes = 0;
    this.sendReply(conn, true, false);
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
            this.trace?.record('received', m.dataStart + m.data.length);
            if (m.dataStart !== expected) {
              throw Errors.protocolViolation(`unexpected XLogData at ${lsnToString(m.dataStart)}, expected ${lsnToString(expected)}`);
            }
            if (m.walEnd > this.senderWalEnd) this.senderWalEnd = m.walEnd;
            const lastSeg = Math.floor((m.dataStart + m.data.length - 1) / this.segSize);
            if (m.data.length > 0 && lastSeg !== this.curSeg) await this.preparer.settle(lastSeg);
            // Live WAL (no direct-I/O stage, inside the open segment): written here, without the
            // promise and turn of the general path.
            if (!this.writeWalBuffered(m.dataStart, m.data)) await this.writeWal(m.dataStart, m.data);
            expected = m.dataStart + m.data.length;
            this.startLsn = expected;
            this.walrcv.noteMessage(m.walEnd, m.sendTime, preciseNowPgMicros());
            // A full batch: fsync it in the background while the next one is received (this
            // waits only if the previous batch's fsync is still running).
            // (While the previous batch's fsync runs, up to MAX_UNFLUSHED_BATCHES batches are
            // received before waiting for it: catch-up is not paced by fsync latency.)
            const fa = this.cfg.flushAfterBytes;
            if (this.unflushedBytes >= fa && (this.flushing === null || this.unflushedBytes >= MAX_UNFLUSHED_BATCHES * fa)) {
              await this.stageSettle();
              await this.flushBackground();
            }
            break;
          }
          case 'keepalive':
            this.walrcv.noteMessage(m.walEnd, m.sendTime, preciseNowPgMicros());
            if (m.replyRequested) this.replyNeeded = true;
            break;
          case 'endOfStream':
            await this.flushSettled(true);
            this.sendReply(conn, true, false);
            await conn.endStreaming(END_STREAMING_TIMEOUT_MS);
            throw Errors.connectionFailure(`replication terminated by primary server: ${m.reason} at ${lsnToString(expected)}`);
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
        this.reportDirectBytes();
      }
      if (this.written > this.walrcv.written) this.walrcv.publishWritten(this.written);
      if (this.flushError !== null) throw new FatalError(this.fsyncFailed());
      // Batch fsyncs: not while the socket probably holds more (bounded by flushAfterBytes).
      const burstGoesOn = got && conn.moreDataLikely;
      if (this.flushing === null && this.unflushedBytes > 0 && !burstGoesOn) {
        if (this.stage?.active === true) await this.stageSettle(); // (no turn when not staging)
        if (this.unflushedBytes >= BACKGROUND_FLUSH_MIN_BYTES) {
          this.flushBackground().catch((e: unknown) => {
            this.flushError ??= e; // reported by the next turn of this loop
            this.conn?.interrupt();
          });
        }
        else this.flush(true);
      }
      if (this.walrcv.stopRequested) {
        await this.flushSettled(true);
        this.sendReply(conn, true, false);
        await conn.endStreaming(END_STREAMING_TIMEOUT_MS);
        return;
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
      if (this.unflushedBytes > 0 && this.flushing === null) waitMs = MORE_DATA_WAIT_MS;
      if (timeout > 0) waitMs = Math.min(waitMs, Math.max(1, (this.pingSent ? timeout : timeout / 2) - (now - this.lastRecvAt)));
      if (this.cfg.statusIntervalMs > 0) waitMs = Math.min(waitMs, Math.max(1, this.cfg.statusIntervalMs - (now - this.lastSent.at)));
      await conn.waitReadable(waitMs);
    }
  }

  /**
   * `r`: write, flush, apply. Skipped when write and flush did not move and the status interval has
   * not passed, unless apply moved and is to be reported now: the primary asked for prompt apply
   * reports, or the startup worker woke us for it (at most every APPLY_REPORT_MAX_DELAY_MS).
   * Otherwise a new apply position waits for the next reply (as in PostgreSQL).
   */
  private sendReply(conn: WalRcvConnection, force: boolean, requestReply: boolean): void {
    const write = this.written;
    const flush = this.flushed;
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

  private segPath(seg: number, partial: boolean): string {
    return path.join(this.walDir, segmentFileName(this.tli, seg, this.segSize) + (partial ? '.partial' : ''));
  }

  /** Far behind the primary (see CATCHUP_SEGMENTS). */
  private get catchingUp(): boolean {
    return this.senderWalEnd - this.written > CATCHUP_SEGMENTS * this.segSize;
  }

  private openSeg(seg: number): number {
    if (seg === this.curSeg) return this.curFd;
    if (this.curFd >= 0 && !this.dirty.has(this.curFd) && !this.syncing.has(this.curFd) && !this.completed.some((c) => c.fd === this.curFd)) this.closeSegFd(this.curFd);
    this.curFd = -1;
    this.curSeg = -1;
    const plain = this.segPath(seg, false);
    // wal-only: a complete segment keeps its name (a resumed stream rewrites the same bytes).
    const file = this.cfg.mode === 'replica' || fs.existsSync(plain) ? plain : this.segPath(seg, true);
    if (!isFullSize(file, this.segSize)) {
      const tmp = this.preparer.take(seg);
      if (tmp !== null) {
        // (prepared and fsynced; the directory is fsynced by the next flush, before anything in
        // this segment is reported flushed)
        fs.renameSync(tmp, file);
        this.dirSyncPending = true;
      } else if (this.catchingUp) {
        // Sparse, and no fsync here: the flush that first covers WAL in it fsyncs the file (its
        // fd) and then the directory, before anything in it is reported flushed.
        createSegmentFile(file, this.segSize, false, false);
        this.dirSyncPending = true;
      } else {
        createSegmentFile(file, this.segSize, this.cfg.walInitZero, true);
      }
    }
    this.curFd = fs.openSync(file, 'r+');
    this.curSeg = seg;
    this.curFile = file;
    // Catching up, the next segment is prepared sparse (every byte of it is about to be written).
    const catchingUp = this.catchingUp;
    this.preparer.start(seg + 1, this.segSize, this.cfg.walInitZero && !catchingUp, (n) => isFullSize(this.segPath(n, false), this.segSize));
    return this.curFd;
  }

  /**
   * Whether WAL goes through the direct-I/O stage: while one is active, or while catching up
   * (live, the startup thread re-reads the last page after each flush from the page cache, which
   * a direct write would invalidate).
   */
  private get stageWanted(): boolean {
    const st = this.stage;
    return st !== null && (st.active || this.catchingUp);
  }

  /** Buffered write of data[off, off + n) at `lsn` through `fd` (the segment holding it). */
  private writeBuffered(fd: number, data: Uint8Array, off: number, n: number, lsn: Lsn): void {
    const segOff = lsn % this.segSize;
    let w = 0;
    while (w < n) w += fs.writeSync(fd, data, off + w, n - w, segOff + w);
    if (lsn + n > this.written) this.written = lsn + n;
    this.dirty.add(fd);
  }

  /**
   * writeWal's common live case, synchronously (no promise, no turn): a buffered write into the
   * segment already open that does not complete it, with no direct-I/O stage. Returns false
   * (nothing done) otherwise.
   */
  private writeWalBuffered(start: Lsn, data: Uint8Array): boolean {
    const n = data.length;
    if (n === 0 || this.curFd < 0 || Math.floor(start / this.segSize) !== this.curSeg || (start % this.segSize) + n >= this.segSize || this.stageWanted) return false;
    this.writeBuffered(this.curFd, data, 0, n, start);
    this.unflushedBytes += n;
    return true;
  }

  private async writeWal(start: Lsn, data: Uint8Array): Promise<void> {
    const segSize = this.segSize;
    let p = start;
    let off = 0;
    while (off < data.length) {
      const seg = Math.floor(p / segSize);
      const segOff = p % segSize;
      const st = this.stage;
      if (st !== null && st.active && st.tag !== seg) await this.stageFinish();
      const fd = this.openSeg(seg);
      const n = Math.min(data.length - off, segSize - segOff);
      const direct = this.stageWanted ? await this.stageFor(fd, seg, segOff) : null;
      if (direct !== null) {
        let w = 0;
        while (w < n) {
          const k = direct.put(data, off + w, n - w);
          w += k;
          this.directBytes += k;
          if (direct.full) {
            await this.stageSubmit();
            this.reportDirectBytes(); // (during a long burst too)
          }
        }
        this.dirty.add(fd);
      } else {
        this.writeBuffered(fd, data, off, n, p);
      }
      p += n;
      off += n;
      if (segOff + n === segSize) {
        // Segment complete: the next write opens the next one; this fd is closed after its fsync.
        if (this.stage?.active) await this.stageFinish();
        this.completed.push({ seg, fd });
        this.curFd = -1;
        this.curSeg = -1;
      }
    }
    this.unflushedBytes += data.length;
  }

  /**
   * The direct-I/O stage for WAL of segment `seg` at `segOff`, or null for a buffered write.
   * Starts staging (opening the segment's O_DIRECT twin) or ends it as needed.
   */
  private async stageFor(fd: number, seg: number, segOff: number): Promise<DirectWriteStage | null> {
    const st = this.stage;
    if (st === null) return null;
    const direct = this.catchingUp;
    if (st.active && (!direct || st.tag !== seg || st.end !== segOff)) await this.stageFinish();
    if (!direct) return null;
    if (st.active) return st;
    let dfd = this.directFds.get(fd);
    if (dfd === undefined) {
      const d = openDirect(this.curFile);
      if (d !== null && !this.directProbed && !st.probe(d)) fs.closeSync(d);
      else if (d !== null) {
        this.directProbed = true;
        this.directFds.set(fd, d);
        dfd = d;
      }
      if (dfd === undefined) {
        this.stage = null;
        post({ type: 'warning', message: 'direct I/O is not supported for pg_wal here: WAL is written buffered', sqlstate: '01000' });
        return null;
      }
    }
    st.begin(dfd, segOff, seg);
    this.stageFd = fd;
    return st;
  }

  private reportDirectBytes(): void {
    if (this.directBytes > this.reportedDirectBytes) {
      this.walrcv.addCounter(WR_BYTES_WRITTEN_DIRECT, this.directBytes - this.reportedDirectBytes);
      this.reportedDirectBytes = this.directBytes;
    }
  }

  /** What the stage completed counts as written. */
  private noteStageDone(): void {
    const st = this.stage;
    if (st === null || !st.active) return;
    const end = st.tag * this.segSize + st.completedEnd;
    if (end > this.written) this.written = end;
  }

  /** A full stage buffer: its write goes to the threadpool (after the previous one completes). */
  private async stageSubmit(): Promise<void> {
    await this.stage!.submit();
    this.noteStageDone();
  }

  /** Wait for the stage's write in flight (if staging). */
  private async stageSettle(): Promise<void> {
    const st = this.stage;
    if (st === null || !st.active) return;
    await st.settle();
    this.noteStageDone();
  }

  /** Write out what is staged on this thread (nothing in flight: stageSettle() first); it counts as written. */
  private stageWriteOut(): void {
    const st = this.stage;
    if (st === null || !st.active) return;
    st.writeOut();
    this.noteStageDone();
  }

  private async stageFinish(): Promise<void> {
    await this.stageSettle();
    this.stageWriteOut();
    this.stage?.reset();
    this.stageFd = -1;
  }

  /** Close a segment fd and its O_DIRECT twin. */
  private closeSegFd(fd: number): void {
    const d = this.directFds.get(fd);
    if (d !== undefined) {
      assert(this.stageFd !== fd, 'walreceiver: segment fd closed while staged');
      this.directFds.delete(fd);
      fs.closeSync(d);
    }
    fs.closeSync(fd);
  }

  /** fdatasync everything written, on this thread (no background fsync may be in flight). */
  private flush(reply: boolean): void {
    assert(this.flushing === null, 'walreceiver: synchronous flush while a background fsync runs');
    this.stageWriteOut();
    if (this.written <= this.flushed && this.completed.length === 0) return;
    for (const fd of this.dirty) fdatasyncSync(fd);
    this.dirty.clear();
    this.unflushedBytes = 0;
    this.flushDone(this.written, this.completed.splice(0), reply);
  }

  /** Wait for a background fsync, then flush the rest synchronously. */
  private async flushSettled(reply: boolean): Promise<void> {
    if (this.flushing !== null) await this.flushing;
    if (this.flushError !== null) throw new FatalError(this.fsyncFailed());
    await this.stageSettle();
    this.flush(reply);
  }

  /**
   * Start fdatasyncing everything written so far in the background (libuv threadpool) and return;
   * if the previous batch is still syncing, wait for it first (at most one batch in flight). When
   * the batch is durable its end is published as flushed, the startup thread is woken and the
   * primary gets a reply, as after a synchronous flush. Writes continue meanwhile: into the same
   * fds (their new bytes simply go in the next batch).
   */
  private async flushBackground(): Promise<void> {
    if (this.flushing !== null) await this.flushing;
    if (this.flushError !== null) throw new FatalError(this.fsyncFailed());
    this.stageWriteOut();
    if (this.written <= this.flushed && this.completed.length === 0) return;
    const target = this.written;
    const fds = [...this.dirty];
    this.dirty.clear();
    const completed = this.completed.splice(0);
    this.unflushedBytes = 0;
    for (const fd of fds) this.syncing.add(fd);
    const dirSync = this.dirSyncPending;
    this.dirSyncPending = false;
    const synced = Promise.all(fds.map((fd) => fdatasync(fd)));
    this.flushing = synced
      .then(
        async () => {
          for (const fd of fds) this.syncing.delete(fd);
          try {
            // Renames and the directory fsync also run on the threadpool.
            const renamed = await this.finishSegments(completed);
            if (renamed || dirSync) await fsyncDirAsync(this.walDir);
            this.publishFlushed(target, true);
            // A synced fd that is no longer written (the stream moved on without completing it).
            for (const fd of fds) {
              if (fd !== this.curFd && fd !== this.stageFd && !this.dirty.has(fd) && !completed.some((c) => c.fd === fd) && !this.completed.some((c) => c.fd === fd)) this.closeSegFd(fd);
            }
          } catch (e) {
            // A rename or close after the fsync failed: the stream loop reports it (never an unhandled rejection).
            this.flushError = e;
          }
        },
        (e: unknown) => {
          // PostgreSQL PANICs on a failed fsync: the written bytes may be lost, nothing is reported flushed.
          for (const fd of fds) this.syncing.delete(fd);
          this.dirSyncPending ||= dirSync;
          this.flushError = e;
        },
      )
      .finally(() => {
        this.flushing = null;
        this.conn?.interrupt();
      });
  }

  private fsyncFailed(): WalstreamError {
    const e = this.flushError;
    return e instanceof WalstreamError ? e : Errors.internal(`could not fdatasync WAL: ${(e as Error)?.message ?? String(e)}`);
  }

  /** After an fsync covering [.., target): close and rename completed segments, fsync the directory if needed, publish, reply. */
  private flushDone(target: Lsn, completed: Array<{ seg: number; fd: number }>, reply: boolean): void {
    const dirSync = this.dirSyncPending;
    this.dirSyncPending = false;
    let renamed = false;
    for (const c of completed) {
      this.closeSegFd(c.fd);
      if (this.cfg.mode === 'wal-only' && fs.existsSync(this.segPath(c.seg, true))) {
        fs.renameSync(this.segPath(c.seg, true), this.segPath(c.seg, false));
        renamed = true;
      }
    }
    if (renamed || dirSync) fsyncDir(this.walDir);
    this.publishFlushed(target, reply);
  }

  /** Close the completed segments' fds; wal-only: rename each `.partial` to its final name (threadpool). True if any was renamed. */
  private async finishSegments(completed: Array<{ seg: number; fd: number }>): Promise<boolean> {
    let renamed = false;
    for (const c of completed) {
      this.closeSegFd(c.fd);
      if (this.cfg.mode !== 'wal-only') continue;
      try {
        await fs.promises.rename(this.segPath(c.seg, true), this.segPath(c.seg, false));
        renamed = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // (already complete under its final name)
      }
    }
    return renamed;
  }

  private publishFlushed(target: Lsn, reply: boolean): void {
    if (target > this.flushed) {
      this.flushed = target;
      if (this.flushed > this.walrcv.written) this.walrcv.publishWritten(this.flushed);
      this.trace?.record('standbyFlushed', this.flushed); // (before the startup worker can see it)
      // The same request covers prompt apply reports: set before startup can replay this WAL
      // (the ParameterStatus came before the WAL that follows it).
      const prompt = this.conn !== null && this.conn.acceptsReceivedReport;
      if (prompt !== this.walrcv.promptApplyReport) this.walrcv.promptApplyReport = prompt;
      this.walrcv.publishFlushed(this.flushed);
    }
    if (reply && this.conn !== null) this.sendReply(this.conn, false, false);
  }

  private closeFiles(): void {
    assert(this.flushing === null, 'walreceiver: files closed under a background fsync');
    this.stage?.reset();
    this.stageFd = -1;
    const fds = new Set<number>([...this.dirty, ...this.completed.map((c) => c.fd)]);
    if (this.curFd >= 0) fds.add(this.curFd);
    for (const fd of fds) {
      try {
        this.closeSegFd(fd);
      } catch {
        /* already closed */
      }
    }
    this.dirty.clear();
    this.completed.length = 0;
    this.curFd = -1;
    this.curSeg = -1;
    this.preparer.discard();
  }
}

const ZERO_CHUNK = Buffer.alloc(1024 * 1024);
/** Zero-filling a prepared segment: fdatasync after every this many bytes (a multiple of ZERO_CHUNK). */
const PREPARE_SYNC_BYTES = 2 * 1024 * 1024;
const TEMP_PREFIX = 'xlogtemp.walreceiver.';

function isFullSize(file: string, size: number): boolean {
  try {
    return fs.statSync(file).size >= size;
  } catch {
    return false;
  }
}

/**
 * A full-size segment file, created under a temp name, fsynced and renamed into place: written
 * with zeros (wal_init_zero on), or only its last byte (off: a sparse file that reads as zeros).
 * Not `durable`: neither the file nor the directory is fsynced (the caller's next flush does both).
 */
function createSegmentFile(file: string, size: number, zero: boolean, durable: boolean): void {
  // Named like the preparer's temp files, so a walreceiver killed here leaves nothing its successor keeps.
  const tmp = path.join(path.dirname(file), `${TEMP_PREFIX}${path.basename(file)}.${process.pid}`);
  const fd = fs.openSync(tmp, 'w');
  try {
    if (zero) for (let off = 0; off < size; off += ZERO_CHUNK.length) fs.writeSync(fd, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, size - off), off);
    else fs.writeSync(fd, ZERO_CHUNK, 0, 1, size - 1);
    if (durable) fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  if (durable) fsyncDir(path.dirname(file));
}

/**
 * Zero-fills the next segment in the background (fs.promises: libuv threadpool) under a temp name
 * that no reader or restart logic mistakes for WAL. One job at a time; stale temp files from an
 * earlier life are removed at construction.
 */
class SegmentPreparer {
  private job: { seg: number; tmp: string; done: Promise<boolean>; ok: boolean | null } | null = null;

  constructor(private readonly walDir: string) {
    try {
      for (const n of fs.readdirSync(walDir)) if (n.startsWith(TEMP_PREFIX)) fs.rmSync(path.join(walDir, n), { force: true });
    } catch {
      /* no pg_wal yet */
    }
  }

  /** Begin preparing `seg` unless it is being prepared or exists; a job for an older segment is dropped. */
  start(seg: number, size: number, zero: boolean, exists: (seg: number) => boolean): void {
    if (this.job !== null && this.job.seg >= seg) return;
    this.discard();
    if (exists(seg)) return;
    const tmp = path.join(this.walDir, `${TEMP_PREFIX}${seg}`);
    const job = { seg, tmp, done: Promise.resolve(false), ok: null as boolean | null };
    job.done = (async () => {
      const fh = await fs.promises.open(tmp, 'w');
      try {
        if (zero) {
          // fdatasync every PREPARE_SYNC_BYTES: one flush of a whole segment would hold up the
          // WAL fdatasyncs that run meanwhile (ext4 data=ordered writes the new blocks of every
          // file in the journal transaction first) for tens of ms; small flushes interleave.
          for (let off = 0; off < size; off += ZERO_CHUNK.length) {
            await fh.write(ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, size - off), off);
            if ((off + ZERO_CHUNK.length) % PREPARE_SYNC_BYTES === 0) await fh.datasync();
          }
        } else {
          await fh.write(ZERO_CHUNK, 0, 1, size - 1);
        }
        await fh.datasync();
      } finally {
        await fh.close();
      }
      return true;
    })().then(
      (v) => (job.ok = v),
      () => (job.ok = false),
    );
    this.job = job;
  }

  /** Wait for the job preparing `seg` (if any) to finish. */
  async settle(seg: number): Promise<void> {
    if (this.job !== null && this.job.seg === seg && this.job.ok === null) await this.job.done;
  }

  /** The prepared temp file for `seg`, handed over (null if none is ready). */
  take(seg: number): string | null {
    const j = this.job;
    if (j === null || j.seg !== seg || j.ok === null) return null;
    this.job = null;
    if (!j.ok) {
      fs.rmSync(j.tmp, { force: true });
      return null;
    }
    return j.tmp;
  }

  /** Forget a job (its file is removed once it finishes). */
  discard(): void {
    const j = this.job;
    this.job = null;
    if (j !== null) void j.done.then(() => fs.rmSync(j.tmp, { force: true }));
  }
}

if (parentPort !== null && (workerData as { walreceiver?: WalReceiverConfig } | null)?.walreceiver !== undefined) {
  const cfg = (workerData as { walreceiver: WalReceiverConfig }).walreceiver;
  assert(cfg.mode === 'replica' || cfg.mode === 'wal-only', 'walreceiver: bad mode');
  new WalReceiver(cfg)
    .run()
    .then(() => post({ type: 'stopped' }))
    .catch((e: unknown) => post({ type: 'failed', error: errorInfo(e instanceof FatalError ? e.err : e, 'walreceiver failed') }));
}
