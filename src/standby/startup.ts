// startup: the standby's replay worker (PostgreSQL's startup process in standby mode). Started by
// Standby.open after the checkpoint snapshot is loaded into the shared store; it is the store's
// only writer from then on. It owns the XLogReader and its page cache. It stops when WalRcvData
// STOP is set (checked between records and whenever it wakes), or on invalid WAL (reported).
//
// Phase 1 replays the WAL already in pg_wal from the checkpoint's redo point to the end of valid
// WAL (as crash recovery does), and reports that end: the walreceiver is started at its segment
// start. Phase 2 replays what the walreceiver flushes: the reader's `limit` is WalRcvData's
// flushed position (a record that goes past it yields `wait`), the page cache re-reads only
// bytes that were beyond the flushed position when they were cached, and when caught up the
// thread sleeps on its latch (Atomics.wait; the walreceiver sets it after each fsync), never on a
// timer except to hand a put-off apply report to the walreceiver (APPLY_REPORT_MAX_DELAY_MS). It
// publishes the replay position (end of the last applied record) and the last commit's timestamp
// after every batch, bumping REPLAY_SEQ so main-thread waiters wake; it wakes the walreceiver to
// report apply at once while the primary asks for prompt reports (synchronous standbys), else at
// most every APPLY_REPORT_MAX_DELAY_MS; and it tells the main thread about every checkpoint record
// it replays (restartpoint candidates). When it stops it reports where (next record, last record,
// last xid): a promotion replays the rest of pg_wal from there. pg_wal_replay_pause (WalRcvData
// REPLAY_PAUSE) stops it between records while it follows the stream, until resumed or stopped.
//
// Redo is redoRecord (src/wal/replay.ts), the same function as the primary's crash recovery;
// each transaction is applied whole under the store's write latch, so hot-standby readers never
// see half of one.

import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { type ErrorInfo, errorInfo, Errors } from '../errors.js';
import { SharedStore, type StoreHandle } from '../storage/store.js';
import { StageTrace, type StageTraceHandle } from '../util/stage-trace.js';
import { recordKindSlot } from '../profile/record-kind.js';
import { XLOG_BLCKSZ } from '../wal/consts.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { ChunkPages, type EndOfWalReason, type PageSource, type ReadResult, type SegmentTimelines, tliOfSegment, XLogReader } from '../wal/reader.js';
import { readTimeLineHistory, tliInHistory, tliSwitchPoint } from '../wal/timeline.js';
import { redoRecord } from '../wal/replay.js';
import { segmentFileName } from '../wal/segment.js';
import { preciseNowPgMicros, WR_APPLY_REPORTS_PUT_OFF, WalRcvData, type WalRcvDataHandle } from './walrcvdata.js';

export interface StartupConfig {
  store: StoreHandle;
  walrcv: WalRcvDataHandle;
  walDir: string;
  segSize: number;
  sysid: bigint;
  tli: number;
  redoLsn: Lsn;
  stageTrace: StageTraceHandle | null;
}

export type StartupMessage =
  | { type: 'localEnd'; lsn: Lsn; records: number; reason: string; reasonCode: EndOfWalReason | null }
  | { type: 'checkpoint'; lsn: Lsn; end: Lsn; redo: Lsn; nextXid: number; shutdown: boolean }
  /**
   * Replay follows timeline `tli` (its history file is in pg_wal, and WAL past `switchpoint`, where
   * `prevTli` ended, is flushed up to `flushed` in its files): rescanLatestTimeLine's switch.
   */
  | { type: 'timeline'; tli: number; prevTli: number; switchpoint: Lsn; flushed: Lsn }
  | { type: 'failed'; error: ErrorInfo }
  /** replay: the next record's start; prev: the last replayed record's start; lastXid: -1 if none (promotion resumes from here). */
  | { type: 'stopped'; replay: Lsn; prev: Lsn; lastXid: number };

/** Publish the replay position at least every this many records during catch-up. */
export const REPLAY_PUBLISH_EVERY_RECORDS = 1024;
/**
 * Unless the primary asked for prompt apply reports (synchronous standbys: WalRcvData
 * promptApplyReport), wake the walreceiver to report a new replay position at most this often; its
 * reply after each flush carries the apply position too (as PostgreSQL's walreceiver, which is
 * only forced to reply for commits that wait for remote_apply).
 */
export const APPLY_REPORT_MAX_DELAY_MS = 20;

/**
 * Pages of received WAL, read from the segment files in 1 MiB chunks. `limit` is the end of
 * final bytes (WalRcvData flushed; Infinity while replaying local WAL): cached bytes at or past
 * the limit they were read under are re-read, from their page on, when the reader needs them.
 */
export class ReceivedWalSource implements PageSource {
  static readonly CHUNK_BYTES = 1024 * 1024;
  limit = Infinity;
  private readonly chunkBytes: number;
  private readonly chunk: Buffer;
  private readonly pages: ChunkPages;
  private chunkLsn = -1;
  private chunkValid = 0;
  /** Bytes of the chunk below this LSN are final. */
  private fresh = 0;
  private fd = -1;
  private fdSeg = -1;
  /** Bytes read from files (for tests and stats). */
  bytesRead = 0;

  /** `timelines`: each segment is read from the timeline of the history that covers it (tliOfSegment). */
  constructor(private readonly walDir: string, private timelines: SegmentTimelines, private readonly segSize: number) {
    this.chunkBytes = Math.min(ReceivedWalSource.CHUNK_BYTES, segSize);
    this.chunk = Buffer.alloc(this.chunkBytes);
    this.pages = new ChunkPages(this.chunk);
  }

  readPage(pageLsn: Lsn, needBytes: number): Uint8Array | null {
    const C = this.chunkBytes;
    const chunkLsn = pageLsn - (pageLsn % C);
    const needEnd = pageLsn + needBytes;
    if (chunkLsn !== this.chunkLsn) {
      if (!this.load(chunkLsn, 0, needEnd)) return null;
    } else {
      const validEnd = this.chunkLsn + this.chunkValid;
      // Only bytes below the current limit matter; those cached beyond the limit of their read may be stale.
      if (needEnd > validEnd || Math.min(needEnd, this.limit) > this.fresh) {
        const from = Math.min(this.fresh, validEnd, pageLsn);
        if (!this.load(chunkLsn, from - (from % XLOG_BLCKSZ) - chunkLsn, needEnd)) return null;
      }
    }
    if (needEnd > this.chunkLsn + this.chunkValid) return null;
    return this.pages.page(pageLsn - chunkLsn);
  }

  /**
   * Follow a newer timeline history (rescanLatestTimeLine): segments from now on come from the
   * timelines it names, and cached bytes from `switchpoint`'s page on are read again (the switch
   * segment's file changes to the new timeline's, whose bytes after the switch point differ).
   */
  setTimelines(timelines: SegmentTimelines, switchpoint: Lsn): void {
    this.timelines = timelines;
    this.closeFd();
    // (Simplest: the whole chunk is read again, from the new timeline's file where it covers it.)
    if (this.chunkLsn >= 0 && this.chunkLsn + this.chunkValid > switchpoint) this.chunkLsn = -1;
  }

  /** Forget cached bytes at or after `lsn` (they may change: not yet final). */
  forgetFrom(lsn: Lsn): void {
    if (this.fresh > lsn) this.fresh = lsn;
  }

  /**
   * Read chunk bytes [fromOff, end) where end covers `needEnd` and everything up to the limit
   * (page-rounded, within the chunk): sequential catch-up reads whole chunks, live replay only
   * the pages flushed since the last read.
   */
  private load(chunkLsn: Lsn, fromOff: number, needEnd: Lsn): boolean {
    const seg = Math.floor(chunkLsn / this.segSize);
    if (seg !== this.fdSeg) {
      this.closeFd();
      this.fd = this.openSegment(seg);
      if (this.fd < 0) {
        this.chunkLsn = -1;
        return false;
      }
      this.fdSeg = seg;
    }
    const limitAtLoad = this.limit;
    const C = this.chunkBytes;
    const want = Math.max(needEnd, Math.min(limitAtLoad, chunkLsn + C)) - chunkLsn;
    const toOff = Math.min(C, Math.ceil(want / XLOG_BLCKSZ) * XLOG_BLCKSZ);
    let n = fromOff;
    const segOff = chunkLsn % this.segSize;
    while (n < toOff) {
      const r = fs.readSync(this.fd, this.chunk, n, toOff - n, segOff + n);
      if (r <= 0) break;
      n += r;
      this.bytesRead += r;
    }
    this.chunkLsn = chunkLsn;
    this.chunkValid = n;
    this.fresh = limitAtLoad;
    return true;
  }

  /**
   * The file of segment `seg`: the timeline that covers it in the history, else (missing) the
   * older timelines of the history that began at or before it, newest first (PostgreSQL's
   * XLogFileReadAnyTLI order). -1 if none exists.
   */
  private openSegment(seg: number): number {
    const t = this.timelines;
    const tlis = typeof t === 'number' ? [t] : t.filter((e) => e.begin === 0 || Math.floor(e.begin / this.segSize) <= seg).map((e) => e.tli);
    if (typeof t !== 'number' && tlis.length === 0) tlis.push(tliOfSegment(seg, this.segSize, t));
    for (const tli of tlis) {
      try {
        return fs.openSync(path.join(this.walDir, segmentFileName(tli, seg, this.segSize)), 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return -1;
      }
    }
    return -1;
  }

  private closeFd(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.fdSeg = -1;
  }

  close(): void {
    this.closeFd();
    this.chunkLsn = -1;
  }
}

function post(m: StartupMessage): void {
  parentPort?.postMessage(m);
}

class Startup {
  private readonly walrcv: WalRcvData;
  private readonly store: SharedStore;
  private readonly src: ReceivedWalSource;
  private readonly reader: XLogReader;
  private replayed = 0;
  private unpublished = 0;
  private lastCommitTime = 0;
  /** xid of the last replayed transaction (-1: none): a promotion's next xid follows it. */
  lastXid = -1;
  private readonly trace: StageTrace | null;
  /** A replay position published and not yet reported by a walreceiver wake; when the last wake was. */
  private applyReportDue = false;
  private applyWokenAt = -Infinity;
  /** The timeline replay follows (its history is the reader's). */
  private tli: number;
  /** A newer timeline received whose switch point `flushed` has not passed yet. */
  private pendingTli = 0;
  private pendingSwitch: Lsn | null = null;
  /** The flushed position the timeline check last ran for. */
  private checkedFlush = -1;

  constructor(private readonly cfg: StartupConfig) {
    this.trace = cfg.stageTrace ? new StageTrace(cfg.stageTrace) : null;
    this.walrcv = new WalRcvData(cfg.walrcv);
    this.store = SharedStore.attach(cfg.store);
    // The history of the recovery timeline: older segments from the timelines that cover them, and
    // page TLIs checked against it.
    const history = readTimeLineHistory(cfg.walDir, cfg.tli);
    this.tli = cfg.tli;
    this.src = new ReceivedWalSource(cfg.walDir, history, cfg.segSize);
    this.reader = new XLogReader(this.src, { segSize: cfg.segSize, sysid: cfg.sysid }, cfg.redoLsn, null);
    this.reader.setHistory(history);
  }

  /**
   * rescanLatestTimeLine, while streaming: the walreceiver receives timeline `received` (WalRcvData
   * RECEIVED_TLI), newer than the one replay follows. Its history file is durable in pg_wal before
   * the walreceiver starts that timeline's stream, and WAL past the switch point is published as
   * flushed only after the new timeline's file holds it from its segment start: so the switch is
   * made as soon as `flushed` passes the switch point, before any byte past it is read (until
   * then the old timeline's files hold every byte up to `flushed`). The new history must contain
   * our timeline and leave it at or after our replay position ("forked off ... before current
   * recovery point", checked by the walreceiver before it writes the history file).
   */
  private rescanLatestTimeLine(received: number, flushed: Lsn): void {
    if (received === this.pendingTli && this.pendingSwitch !== null && flushed <= this.pendingSwitch) return;
    const history = readTimeLineHistory(this.cfg.walDir, received);
    if (!tliInHistory(this.tli, history)) throw Errors.timelineNotAChild(received, this.tli);
    const { switchpoint } = tliSwitchPoint(this.tli, history);
    this.pendingTli = received;
    this.pendingSwitch = switchpoint;
    if (flushed <= switchpoint) return; // (the old timeline's files still hold everything up to flushed)
    // (A record replayed on the old timeline that starts at or past the switch point: diverged.)
    if (this.reader.prevLsn >= switchpoint) throw Errors.timelineForkedOff(received, this.tli, this.reader.nextLsn, switchpoint);
    const prevTli = this.tli;
    this.src.setTimelines(history, switchpoint);
    this.reader.setHistory(history);
    this.tli = received;
    this.pendingTli = 0;
    this.pendingSwitch = null;
    post({ type: 'timeline', tli: received, prevTli, switchpoint, flushed });
  }

  run(): void {
    try {
      this.replayLocal();
      this.replayStreamed();
    } finally {
      this.src.close();
    }
  }

  private apply(r: ReadResult & { kind: 'record' }): void {
    const rec = r.record;
    const t0 = this.trace === null ? 0 : performance.now();
    const out = redoRecord(this.store, rec);
    if (this.trace !== null) this.trace.noteReplay(recordKindSlot(rec.header.rmid, rec.header.info), rec.header.totLen, performance.now() - t0);
    if (out.kind === 'txn') {
      this.lastCommitTime = out.commitTimeUs;
      this.lastXid = out.xid;
    }
    else if (out.kind === 'switch') this.reader.skipToNextSegment();
    else if (out.kind === 'checkpoint') {
      post({ type: 'checkpoint', lsn: rec.start, end: rec.end, redo: out.data.redo, nextXid: out.data.nextXid, shutdown: out.shutdown });
    }
    this.replayed++;
    this.unpublished++;
  }

  private publish(): void {
    // The aligned end of the last record; never past what is flushed (alignment padding).
    const lsn = Math.min(this.reader.nextLsn, this.walrcv.flushed);
    this.trace?.record('replayed', lsn); // (before a reader can see it)
    this.walrcv.publishReplay(lsn, this.lastCommitTime, this.unpublished, preciseNowPgMicros());
    this.unpublished = 0;
  }

  /** Phase 1: local WAL from the redo point to the end of valid WAL. */
  private replayLocal(): void {
    this.src.limit = Infinity;
    let reason = '';
    let reasonCode: EndOfWalReason | null = null;
    for (;;) {
      if (this.walrcv.stopRequested) return;
      const r = this.reader.readRecord();
      if (r.kind === 'record') {
        this.apply(r);
        continue;
      }
      if (r.kind === 'end') {
        if (r.reason === 'sysid-mismatch') throw Errors.walSystemIdMismatch(this.cfg.walDir, r.walSysid!, this.cfg.sysid);
        reason = r.message;
        reasonCode = r.reason;
      }
      break;
    }
    const end = this.reader.nextLsn;
    // Bytes from the end on may be a torn tail or preallocated zeros: the stream will rewrite them.
    this.src.forgetFrom(end - (end % XLOG_BLCKSZ));
    this.walrcv.initPositions(end, end);
    this.publish();
    post({ type: 'localEnd', lsn: end, records: this.replayed, reason, reasonCode });
  }

  /** Phase 2: follow WalRcvData's flushed position; sleep on the latch when caught up. */
  private replayStreamed(): void {
    const latch = this.walrcv.startupLatch;
    for (;;) {
      if (this.walrcv.stopRequested) break;
      if (this.walrcv.replayPauseRequested) {
        this.pauseReplay();
        continue;
      }
      const flushed = this.walrcv.flushed;
      if (flushed !== this.checkedFlush) {
        // (RECEIVED_TLI is read after FLUSHED: it was stored before any flush past the switch point.)
        this.checkedFlush = flushed;
        const received = this.walrcv.receivedTli;
        if (received > this.tli) this.rescanLatestTimeLine(received, flushed);
      }
      this.src.limit = flushed;
      this.reader.limit = flushed;
      const r = this.reader.readRecord();
      if (r.kind === 'record') {
        this.apply(r);
        if (this.unpublished >= REPLAY_PUBLISH_EVERY_RECORDS) this.publish();
        continue;
      }
      if (r.kind === 'end') {
        throw Errors.walCorrupt(lsnToString(r.lsn), `${r.message} (received WAL up to ${lsnToString(flushed)})`);
      }
      // Caught up with what is flushed.
      if (this.unpublished > 0) {
        this.publish();
        this.applyReportDue = true;
      }
      const reportInMs = this.applyReportDue ? this.wakeWalrcvForApply() : Infinity;
      if (this.walrcv.flushed !== flushed) continue;
      latch.wait(reportInMs);
    }
    if (this.unpublished > 0) this.publish();
  }

  /**
   * pg_wal_replay_pause(): publish what was applied, mark the pause as in effect, and sleep on the
   * latch (the walreceiver sets it after each flush: streaming goes on) until resumed or stopped.
   */
  private pauseReplay(): void {
    if (this.unpublished > 0) this.publish();
    if (!this.walrcv.acknowledgeReplayPause()) return;
    while (this.walrcv.replayPauseRequested && !this.walrcv.stopRequested) this.walrcv.startupLatch.wait(Infinity);
  }

  /**
   * The walreceiver reports the new apply position (its latch): at once when the primary asked for
   * prompt reports, else at most every APPLY_REPORT_MAX_DELAY_MS. Returns how long until a report
   * put off is due (Infinity: none is).
   */
  private wakeWalrcvForApply(): number {
    const now = performance.now();
    const left = this.walrcv.promptApplyReport ? 0 : this.applyWokenAt + APPLY_REPORT_MAX_DELAY_MS - now;
    if (left > 0) {
      this.walrcv.addCounter(WR_APPLY_REPORTS_PUT_OFF, 1);
      return left;
    }
    this.walrcv.walrcvLatch.set();
    this.applyWokenAt = now;
    this.applyReportDue = false;
    return Infinity;
  }

  get replayLsn(): Lsn {
    return this.reader.nextLsn;
  }

  get prevLsn(): Lsn {
    return this.reader.prevLsn;
  }
}

if (parentPort !== null && (workerData as { startup?: StartupConfig } | null)?.startup !== undefined) {
  const cfg = (workerData as { startup: StartupConfig }).startup;
  try {
    const s = new Startup(cfg);
    s.run();
    post({ type: 'stopped', replay: s.replayLsn, prev: s.prevLsn, lastXid: s.lastXid });
  } catch (e) {
    post({ type: 'failed', error: errorInfo(e, 'startup failed') });
  }
}
