// FlushPipeline: the walreceiver's WAL files. Runs on the walreceiver worker's thread (one per
// walreceiver, created at its start); owns the segment file descriptors it writes (buffered fds
// and their O_DIRECT twins), the direct-I/O stage, the background segment prefill, and the
// positions `written` and `flushed` of the stream. It stops with close() (the walreceiver's exit),
// after the caller has settled any background flush.
//
// Writers: WAL received from the primary goes in at its LSN, split at segment boundaries, through
// one of two writers: buffered (write(2) into the page cache: live streaming, where the startup
// worker re-reads the last page of each flush from the page cache) or direct (O_DIRECT through
// DirectWriteStage, src/wal/direct-io.ts: catching up, more than CATCHUP_SEGMENTS behind the
// primary's walEnd). `written` is only what the kernel has taken.
//
// The flush rule (PostgreSQL's XLogWalRcvFlush, src/backend/replication/walreceiver.c, and
// durable_rename in src/backend/storage/file/fd.c): `flushed` means every byte up to it was covered
// by an fdatasync of its file, and every segment file holding any of it that was created, installed
// or renamed since the last flush has had pg_wal fsynced after that. One batch does, in order:
// fdatasync each dirty fd → close completed segments (wal-only: rename `.partial` to its final
// name) → fsync pg_wal if any segment was created, installed or renamed since the last directory
// fsync → publish `flushed`. A batch runs on this thread (flushNow: a live synchronous commit pays
// no thread hop) or on the libuv threadpool (flushBackground: batches of BACKGROUND_FLUSH_MIN_BYTES
// or more, while receiving goes on; at most one in flight). Both go through batchDurable(), so the
// order above is written once. `dirPendingFrom` (the start of the oldest segment whose directory
// entry is not yet durable) is asserted above every published position.
//
// DEV DOCS (threads): everything here runs on the walreceiver's thread; the libuv threadpool only
// runs fdatasync/fsync/prefill writes and direct writes whose buffers or fds this class keeps
// alive until they settle (`syncing`: fds never closed under an fdatasync). Publishing to other
// threads (WalRcvData WRITTEN/FLUSHED, the startup latch) is the caller's, in `events.flushed`.

import fs from 'node:fs';
import { assert } from '../util/assert.js';
import { fdatasync, fdatasyncSync, fsyncDir, fsyncDirAsync } from '../util/fsync.js';
import { DirectWriteStage, openDirect } from '../wal/direct-io.js';
import type { Lsn } from '../wal/lsn.js';
import {
  createSegmentFile, installSegment, isFullSize, removeTempSegments, renamePartialSegment, SegmentPrefill, segmentPath,
} from '../wal/segfile.js';
import type { StandbyMode } from './options.js';

/**
 * A flush batch of at least this many bytes is fdatasynced in the background (libuv threadpool)
 * while receiving and writing go on (at most one in flight: double buffering). Smaller batches (a
 * live standby's commits) are fdatasynced at once on this thread: a threadpool round trip costs
 * two thread wake-ups, which a synchronous replica's commit latency would pay.
 */
export const BACKGROUND_FLUSH_MIN_BYTES = 256 * 1024;
/**
 * Catch-up: while the primary's WAL end is more than this many segments ahead of what we received,
 * new segment files are created sparse instead of zero-filled (every byte of them is about to be
 * overwritten with WAL: zero-filling would double the disk writes), none is prepared zero-filled
 * ahead, and WAL goes through the direct writer.
 */
export const CATCHUP_SEGMENTS = 2;
/**
 * Direct I/O while catching up: WAL is staged and written in chunks of this many bytes (measured
 * here: 1 MiB chunks 0.78, 4 MiB 0.89 GB/s end to end with one write in flight).
 */
const DIRECT_WRITE_BYTES = 4 * 1024 * 1024;
/** Direct writes of full chunks in flight at once on the libuv threadpool (a device queue depth). */
const DIRECT_WRITES_IN_FLIGHT = 2;

/** The durability calls a batch makes (src/util/fsync.ts; a test counts and orders them). */
export interface FlushIo {
  fdatasyncSync(fd: number): void;
  fdatasync(fd: number): Promise<void>;
  fsyncDir(dir: string): void;
  fsyncDirAsync(dir: string): Promise<void>;
}

export const DEFAULT_FLUSH_IO: FlushIo = { fdatasyncSync, fdatasync, fsyncDir, fsyncDirAsync };

export interface FlushPipelineEvents {
  /** A batch is durable up to `target` (≥ the previous one); `reply`: the caller should reply now. */
  flushed(target: Lsn, reply: boolean): void;
  /** A background batch settled (durable or failed): wake the receive loop. */
  backgroundSettled(): void;
  /** More WAL went through the direct writer (bytes since the last call). */
  directBytes(n: number): void;
  /** Direct I/O refused by the file system: WAL is written buffered from now on. */
  warning(message: string): void;
}

export interface FlushPipelineConfig {
  walDir: string;
  mode: StandbyMode;
  /** wal_init_zero: new segments are written with zeros (else only their last byte, sparse). */
  walInitZero: boolean;
  /** While catching up, write WAL with O_DIRECT (falls back to buffered writes where refused). */
  directIo: boolean;
  io?: FlushIo;
}

interface Completed {
  seg: number;
  fd: number;
}

/** One flush batch: what an fdatasync of `fds` makes durable. */
interface Batch {
  target: Lsn;
  fds: number[];
  completed: Completed[];
  /** Start of the oldest segment created/installed since the last directory fsync (Infinity: none). */
  dirPendingFrom: Lsn;
}

export class FlushPipeline {
  private readonly io: FlushIo;
  private tli = 1;
  private segSize = 16 * 1024 * 1024;
  private curSeg = -1;
  private curFd = -1;
  private curFile = '';
  /** fds written since their last fdatasync. */
  private readonly dirty = new Set<number>();
  /** Segments fully written, closed (and wal-only: renamed) by the next batch. */
  private readonly completed: Completed[] = [];
  /** fds with an fdatasync in flight: never closed under it. */
  private readonly syncing = new Set<number>();
  private readonly prefill: SegmentPrefill;
  /** Catch-up writes with O_DIRECT (null: off, or refused by the file system). */
  private stage: DirectWriteStage | null;
  /** Per open segment fd, its O_DIRECT twin (opened when direct writing into it starts). */
  private readonly directFds = new Map<number, number>();
  /** The buffered fd of the segment being staged (the stage itself writes through its twin). */
  private stageFd = -1;
  /** The first O_DIRECT fd was checked to take direct writes (alignment accepted). */
  private directProbed = false;
  /**
   * Start of the oldest segment created, installed or renamed into pg_wal since the last directory
   * fsync (Infinity: none). Nothing at or past it may be published as flushed.
   */
  private dirPendingFrom = Infinity;
  private written = 0;
  private flushedLsn = 0;
  private unflushed = 0;
  /** The primary's end of WAL as its latest XLogData said (walEnd): how far behind we are. */
  private senderWalEnd = 0;
  private flushing: Promise<void> | null = null;
  private error: unknown = null;
  private directBytes = 0;
  private reportedDirectBytes = 0;

  constructor(private readonly cfg: FlushPipelineConfig, private readonly events: FlushPipelineEvents) {
    this.io = cfg.io ?? DEFAULT_FLUSH_IO;
    // Temp files of an earlier walreceiver (this pg_wal has no other writer).
    removeTempSegments(cfg.walDir);
    this.prefill = new SegmentPrefill(cfg.walDir);
    this.stage = cfg.directIo ? new DirectWriteStage(DIRECT_WRITE_BYTES, DIRECT_WRITES_IN_FLIGHT) : null;
  }

  /** The stream's timeline and segment size (known once the primary identified itself). */
  setIdentity(tli: number, segSize: number): void {
    assert(this.curFd < 0 && this.dirty.size === 0 && this.completed.length === 0, 'flush pipeline: identity changed with files open');
    this.tli = tli;
    this.segSize = segSize;
  }

  /**
   * The stream of this timeline ended (the end of a historic timeline): everything written is
   * flushed first (flushSettled). Closes the open segment; in wal-only mode an incomplete last
   * segment keeps its `.partial` name, as pg_receivewal's close_walfile leaves it ("not renaming
   * ..., segment is not complete"). setIdentity(next timeline) and resetPositions follow.
   */
  async endTimeline(): Promise<void> {
    assert(this.flushing === null && this.unflushed === 0 && this.completed.length === 0, 'flush pipeline: timeline ended with unflushed WAL');
    // (A direct-I/O stage still holds the flushed tail block: written out again, then let go.)
    await this.stageFinish();
    // (Rewritten bytes below `flushed` that no batch took: identical WAL, made durable here too.)
    const open = new Set<number>(this.dirty);
    for (const fd of this.dirty) this.io.fdatasyncSync(fd);
    this.dirty.clear();
    if (this.curFd >= 0) open.add(this.curFd);
    for (const fd of open) this.closeSegFd(fd);
    this.curFd = -1;
    this.curSeg = -1;
    this.curFile = '';
  }

  /** A new streaming session starts: positions as WalRcvData had them, at least `start`. */
  resetPositions(written: Lsn, flushed: Lsn): void {
    assert(flushed <= written, 'flush pipeline: flushed past written');
    assert(this.flushing === null && this.unflushed === 0, 'flush pipeline: reset with unflushed WAL');
    this.written = written;
    this.flushedLsn = flushed;
  }

  get writtenLsn(): Lsn {
    return this.written;
  }

  get flushed(): Lsn {
    return this.flushedLsn;
  }

  /** Bytes written since the last batch was taken. */
  get unflushedBytes(): number {
    return this.unflushed;
  }

  get backgroundFlushRunning(): boolean {
    return this.flushing !== null;
  }

  /** The error of a failed background batch (fdatasync, rename, directory fsync), or null. */
  get failure(): unknown {
    return this.error;
  }

  noteSenderWalEnd(walEnd: Lsn): void {
    if (walEnd > this.senderWalEnd) this.senderWalEnd = walEnd;
  }

  /** Far behind the primary (see CATCHUP_SEGMENTS). */
  private get catchingUp(): boolean {
    return this.senderWalEnd - this.written > CATCHUP_SEGMENTS * this.segSize;
  }

  /** The segment open for writing (-1: none). */
  get currentSegment(): number {
    return this.curSeg;
  }

  /** Segment `seg` (not the open one) is about to be written: wait for its prefill, if one runs. */
  async prepareFor(seg: number): Promise<void> {
    await this.prefill.settle(seg);
  }

  // ---- writers ------------------------------------------------------------------------------

  /**
   * The common live case, synchronously (no promise, no turn): a buffered write into the segment
   * already open that does not complete it, with no direct-I/O stage. Returns false (nothing done)
   * otherwise: then write().
   */
  writeFast(start: Lsn, data: Uint8Array): boolean {
    const n = data.length;
    if (n === 0 || this.curFd < 0 || Math.floor(start / this.segSize) !== this.curSeg || (start % this.segSize) + n >= this.segSize || this.stageWanted) return false;
    this.writeBuffered(this.curFd, data, 0, n, start);
    this.unflushed += n;
    return true;
  }

  /** Write `data` at `start` (contiguous with what was written), through whichever writer fits. */
  async write(start: Lsn, data: Uint8Array): Promise<void> {
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
        // Segment complete: the next write opens the next one; this fd is closed by the next batch.
        if (this.stage?.active) await this.stageFinish();
        this.completed.push({ seg, fd });
        this.curFd = -1;
        this.curSeg = -1;
      }
    }
    this.unflushed += data.length;
  }

  reportDirectBytes(): void {
    if (this.directBytes > this.reportedDirectBytes) {
      this.events.directBytes(this.directBytes - this.reportedDirectBytes);
      this.reportedDirectBytes = this.directBytes;
    }
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
   * Whether WAL goes through the direct writer: while one is active, or while catching up (live,
   * the startup thread re-reads the last page after each flush from the page cache, which a
   * direct write would invalidate).
   */
  private get stageWanted(): boolean {
    const st = this.stage;
    return st !== null && (st.active || this.catchingUp);
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
        this.events.warning('direct I/O is not supported for pg_wal here: WAL is written buffered');
        return null;
      }
    }
    st.begin(dfd, segOff, seg);
    this.stageFd = fd;
    return st;
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

  /** Wait for the direct write in flight (if staging); what it wrote counts as written. */
  async stageSettle(): Promise<void> {
    const st = this.stage;
    if (st === null || !st.active) return;
    await st.settle();
    this.noteStageDone();
  }

  get staging(): boolean {
    return this.stage?.active === true;
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

  // ---- segment files ------------------------------------------------------------------------

  private segPath(seg: number, partial: boolean): string {
    return segmentPath(this.cfg.walDir, this.tli, seg, this.segSize, partial);
  }

  /** A segment file entered pg_wal without a directory fsync: the next batch owes one. */
  private noteDirEntry(seg: number): void {
    this.dirPendingFrom = Math.min(this.dirPendingFrom, seg * this.segSize);
  }

  private openSeg(seg: number): number {
    if (seg === this.curSeg) return this.curFd;
    if (this.curFd >= 0 && !this.dirty.has(this.curFd) && !this.syncing.has(this.curFd) && !this.completed.some((c) => c.fd === this.curFd)) this.closeSegFd(this.curFd);
    this.curFd = -1;
    this.curSeg = -1;
    const plain = this.segPath(seg, false);
    // wal-only: a complete segment keeps its name (a resumed stream rewrites the same bytes).
    const file = this.cfg.mode === 'replica' || fs.existsSync(plain) ? plain : this.segPath(seg, true);
    const catchingUp = this.catchingUp;
    if (!isFullSize(file, this.segSize)) {
      const tmp = this.prefill.take(seg);
      if (tmp !== null) {
        // Filled and fdatasynced by the prefill; the directory entry is the next batch's.
        installSegment(tmp, file, this.segSize, this.cfg.walInitZero ? 'zero' : 'sparse', false);
        this.noteDirEntry(seg);
      } else if (catchingUp) {
        // Sparse, and no fsync here: the batch that first covers WAL in it fdatasyncs the file
        // (its fd) and then the directory, before anything in it is published as flushed.
        createSegmentFile(this.cfg.walDir, file, seg, this.segSize, 'sparse', false);
        this.noteDirEntry(seg);
      } else {
        createSegmentFile(this.cfg.walDir, file, seg, this.segSize, this.cfg.walInitZero ? 'zero' : 'sparse', true);
      }
    }
    this.curFd = fs.openSync(file, 'r+');
    this.curSeg = seg;
    this.curFile = file;
    // Catching up, the next segment is prepared sparse (every byte of it is about to be written).
    this.prefill.start(seg + 1, this.segSize, this.cfg.walInitZero && !catchingUp ? 'zero' : 'sparse', (n) => isFullSize(this.segPath(n, false), this.segSize));
    return this.curFd;
  }

  /** Close a segment fd and its O_DIRECT twin. */
  private closeSegFd(fd: number): void {
    const d = this.directFds.get(fd);
    if (d !== undefined) {
      assert(this.stageFd !== fd, 'flush pipeline: segment fd closed while staged');
      this.directFds.delete(fd);
      fs.closeSync(d);
    }
    fs.closeSync(fd);
  }

  // ---- the flush rule -----------------------------------------------------------------------

  /** Take everything written so far as one batch (null: nothing to make durable). */
  private takeBatch(): Batch | null {
    this.stageWriteOut();
    if (this.written <= this.flushedLsn && this.completed.length === 0) {
      // Only bytes below `flushed` were rewritten (a resumed stream restarts at a segment start):
      // they are already durable, identical WAL.
      this.unflushed = 0;
      return null;
    }
    const b: Batch = { target: this.written, fds: [...this.dirty], completed: this.completed.splice(0), dirPendingFrom: this.dirPendingFrom };
    this.dirty.clear();
    this.unflushed = 0;
    this.dirPendingFrom = Infinity;
    return b;
  }

  /**
   * After the batch's fdatasyncs: close its completed segments (wal-only: rename `.partial` to the
   * final name, a new directory entry). True if pg_wal must be fsynced before publishing.
   */
  private closeCompleted(b: Batch): boolean {
    let renamed = false;
    for (const c of b.completed) {
      this.closeSegFd(c.fd);
      if (this.cfg.mode === 'wal-only' && renamePartialSegment(this.cfg.walDir, this.tli, c.seg, this.segSize)) renamed = true;
    }
    return renamed || b.dirPendingFrom !== Infinity;
  }

  /** The batch is durable (file data and directory entries): publish it. */
  private batchDurable(b: Batch, reply: boolean): void {
    assert(b.target <= this.dirPendingFrom, 'flush pipeline: WAL in a segment whose directory entry is not durable published as flushed');
    assert(b.target <= this.written, 'flush pipeline: flushed past written');
    assert(b.target >= this.flushedLsn, 'flush pipeline: flushed moved backwards (batches complete in order)');
    this.flushedLsn = b.target;
    this.events.flushed(this.flushedLsn, reply);
  }

  /** fdatasync everything written, on this thread (no background batch may be in flight). */
  flushNow(reply: boolean): void {
    assert(this.flushing === null, 'flush pipeline: synchronous flush while a background batch runs');
    const b = this.takeBatch();
    if (b === null) return;
    for (const fd of b.fds) this.io.fdatasyncSync(fd);
    if (this.closeCompleted(b)) this.io.fsyncDir(this.cfg.walDir);
    this.batchDurable(b, reply);
  }

  /** Wait for a background batch, then flush the rest on this thread. Throws a failed batch's error. */
  async flushSettled(reply: boolean): Promise<void> {
    if (this.flushing !== null) await this.flushing;
    if (this.error !== null) throw this.error;
    await this.stageSettle();
    this.flushNow(reply);
  }

  /**
   * Start a batch of everything written so far in the background (libuv threadpool) and return;
   * if the previous batch is still in flight, wait for it first (at most one in flight). Writes
   * continue meanwhile, into the same fds (their new bytes go in the next batch). A failure is
   * kept in `failure` (PostgreSQL PANICs on a failed fsync: nothing of the batch is published).
   */
  async flushBackground(): Promise<void> {
    if (this.flushing !== null) await this.flushing;
    if (this.error !== null) throw this.error;
    const b = this.takeBatch();
    if (b === null) return;
    for (const fd of b.fds) this.syncing.add(fd);
    this.flushing = Promise.all(b.fds.map((fd) => this.io.fdatasync(fd)))
      .then(
        async () => {
          for (const fd of b.fds) this.syncing.delete(fd);
          try {
            if (this.closeCompleted(b)) await this.io.fsyncDirAsync(this.cfg.walDir);
            this.batchDurable(b, true);
            // A synced fd that is no longer written (the stream moved on without completing it).
            for (const fd of b.fds) {
              if (fd !== this.curFd && fd !== this.stageFd && !this.dirty.has(fd) && !b.completed.some((c) => c.fd === fd) && !this.completed.some((c) => c.fd === fd)) this.closeSegFd(fd);
            }
          } catch (e) {
            this.error = e;
          }
        },
        (e: unknown) => {
          for (const fd of b.fds) this.syncing.delete(fd);
          this.dirPendingFrom = Math.min(this.dirPendingFrom, b.dirPendingFrom);
          this.error = e;
        },
      )
      .finally(() => {
        this.flushing = null;
        this.events.backgroundSettled();
      });
  }

  /** Close every file (the walreceiver's exit; no background batch may be in flight). */
  async close(): Promise<void> {
    assert(this.flushing === null, 'flush pipeline: files closed under a background fsync');
    await this.stage?.quiesce();
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
    this.prefill.discard();
  }
}
