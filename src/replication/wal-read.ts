// WalSendReader: where a walsender gets the WAL bytes it sends (PostgreSQL's WALRead, plus the
// read from wal_buffers that PostgreSQL's xlog.c does for walsenders in later releases).
// Run by one walsender worker (src/replication/walsend.ts calls read() for each XLogData); on a
// cascading standby there is no ring and every read is a segment-file read, from the file of the
// timeline each byte belongs to in the standby's history (WalSendReader.fileRun). It owns
// one open segment file (catch-up reads); it only reads the wal_buffers ring, which the inserter
// (src/wal/insert.ts) owns. Stops: close() closes the segment file (at the end of streaming and
// when the connection ends).
//
// DEV DOCS — reading the ring while the inserter recycles it (threads: this walsender reads, the
// primary's inserting thread writes; see also src/wal/xlogctl.ts):
//   * Inserter, before it reuses a ring slot for page P + ringBytes: waits until WRITTEN covers
//     page P, advances RING_VALID_FROM past P (Atomics compare-exchange), then writes the new
//     page's header (xlp_pageaddr = P + ringBytes) and, after it, the records.
//   * Reader, for [from, to) with to <= FLUSHED (Atomics.load): if RING_VALID_FROM <= from, copy
//     the bytes with plain reads, then accept the copy only if
//       (1) every page header inside the copy names its own address (xlp_pageaddr = the page's
//           LSN), and
//       (2) the ring's header of every page touched still names that address after the copy, and
//       (3) RING_VALID_FROM is still <= from (the seqlock re-check).
//     Anything else: read [from, to) from the segment files instead (the walwriter wrote every
//     page before its slot could be reused, so the file has it).
//   * Why the page addresses: the seqlock re-check alone relies on the plain reads of the copy
//     happening before the re-check's load. That holds on x86 but the JavaScript memory model
//     gives plain reads racing with writes no order (arm64 may satisfy them late), so the copy
//     could hold bytes of the next lap while the re-check still sees the old RING_VALID_FROM:
//     recycled bytes would be sent, fsynced and acknowledged as WAL. (1) and (2) check the data
//     itself: a page of another lap names another address (PostgreSQL's reader checks
//     xlp_pageaddr for the same reason, XLogReaderValidatePageHeader).
//   * The partial last page is being filled while we copy it, but only past INSERTED_UPTO, and we
//     copy only up to FLUSHED: those bytes were stored before INSERTED_UPTO was published, which
//     the walwriter read before publishing FLUSHED, which we read before copying — they are final.
//     What the inserter writes concurrently on that page lies past `to` and is never copied; the
//     page's slot cannot be recycled before the whole ring has been written after it, which (1)-(3)
//     catch.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { XLOG_BLCKSZ } from '../wal/consts.js';
import { lsnToString, readLsnLE, type Lsn } from '../wal/lsn.js';
import { segmentFileName, segNo } from '../wal/segment.js';
import { readTimeLineHistory, tliOfPointInHistory, type TimeLineHistoryEntry } from '../wal/timeline.js';
import { XC_FLUSHED, XC_RING_VALID_FROM, type XLogCtl } from '../wal/xlogctl.js';
import type { WalSource } from './wal-source.js';

/** Byte offset of xlp_pageaddr in a WAL page header (XLogPageHeaderData, src/include/access/xlog_internal.h). */
export const XLP_PAGEADDR_OFFSET = 8;
/** Bytes of xlp_pageaddr (an 8-byte LSN). */
const XLP_PAGEADDR_BYTES = 8;

/**
 * Copy WAL [from, to) out of the wal_buffers ring into buf[off…] and validate the copy (see DEV
 * DOCS). True if buf now holds exactly that WAL; false if the ring no longer (or never) held all
 * of it, and the caller must read the segment files. Never throws for a recycled ring.
 */
export function copyFromWalBuffers(ctl: XLogCtl, buf: Uint8Array, off: number, from: Lsn, to: Lsn): boolean {
  // (Messages built only on failure: this runs once per XLogData.)
  if (!(from <= to)) assert(false, `WAL read of [${lsnToString(from)}, ${lsnToString(to)}) runs backwards`);
  if (!(to <= ctl.load(XC_FLUSHED))) assert(false, `WAL read up to ${lsnToString(to)} is past FLUSHED`);
  if (ctl.load(XC_RING_VALID_FROM) > from) return false;
  const ring = ctl.ring;
  if (to - from > ring.length) return false;
  let p = from;
  let o = off;
  while (p < to) {
    const ro = ctl.ringOffset(p);
    const k = Math.min(to - p, ring.length - ro);
    buf.set(ring.subarray(ro, ro + k), o);
    p += k;
    o += k;
  }
  // (1) the page headers that were copied, (2) the ring's headers of every page touched.
  for (let page = from - (from % XLOG_BLCKSZ); page < to; page += XLOG_BLCKSZ) {
    if (page >= from && page + XLP_PAGEADDR_OFFSET + XLP_PAGEADDR_BYTES <= to) {
      if (readLsnLE(buf, off + (page - from) + XLP_PAGEADDR_OFFSET) !== page) return false;
    }
    if (readLsnLE(ring, ctl.ringOffset(page) + XLP_PAGEADDR_OFFSET) !== page) return false;
  }
  // (3) the seqlock re-check: a slot in the range recycled during the copy moved RING_VALID_FROM past `from`.
  return ctl.load(XC_RING_VALID_FROM) <= from;
}

export class WalSendReader {
  private segFd = -1;
  private segFdNo = -1;
  private segFdTli = 0;
  /** Reads served from the ring / from segment files (the ring's copy was refused or too old). */
  ringReads = 0;
  fileReads = 0;

  /**
   * The timeline whose file holds segment `seg` (WalSndSegmentOpen): null = the current one. Set
   * for a historic timeline: its segments, except the one holding the switch point, which is read
   * from the next timeline's file (the old one is `.partial`, or may be gone).
   */
  private segTli: ((seg: number) => number) | null = null;
  /** A cascading walsender's map of WAL to timelines: the history of the standby's timeline `tli`. */
  private history: { tli: number; entries: TimeLineHistoryEntry[] } | null = null;

  /** `source`: where WAL is readable (wal-source.ts: a primary's XLogCtl, or a standby's WalRcvData). */
  constructor(private readonly source: WalSource, private readonly walDir: string) {}

  /** Read the segment files of another timeline (null: the current one). */
  setTimeline(segTli: ((seg: number) => number) | null): void {
    this.close();
    this.segTli = segTli;
  }

  /**
   * Which timeline's file holds WAL at `p`, and up to where that holds (Infinity: the segment's end).
   * A primary: its own timeline (or the historic one's segTli). A cascading standby: the timeline
   * `p` belongs to in the standby's history, read from that timeline's file up to its switch point.
   * Its walreceiver rewrites a followed timeline's first segment from the segment start into the
   * new timeline's file while its flushed position stays at the old timeline's end, so the new
   * file may not hold the bytes below the switch point yet; the old timeline's file does (it is
   * kept until a restartpoint removes its segment). Without it (a standby cloned on the new
   * timeline), the new timeline's file, as WalSndSegmentOpen reads the switch segment.
   */
  private fileRun(p: Lsn): { tli: number; end: Lsn } {
    if (!this.source.cascading) return { tli: this.segTli === null ? this.source.timeline() : this.segTli(segNo(p, this.source.segSize)), end: Infinity };
    const cur = this.source.timeline();
    if (this.history === null || this.history.tli !== cur) this.history = { tli: cur, entries: readTimeLineHistory(this.walDir, cur) };
    const tli = tliOfPointInHistory(p, this.history.entries);
    const e = this.history.entries.find((h) => h.tli === tli)!;
    return { tli, end: e.end === 0 ? Infinity : e.end };
  }

  /** The segment file a read at `p` opens first (START_REPLICATION checks that it still exists). */
  segmentFileAt(p: Lsn): string {
    const seg = segNo(p, this.source.segSize);
    const run = this.fileRun(p);
    if (this.source.cascading && run.end !== Infinity && segNo(run.end, this.source.segSize) === seg && !fs.existsSync(path.join(this.walDir, segmentFileName(run.tli, seg, this.source.segSize)))) {
      return segmentFileName(this.fileRun(run.end).tli, seg, this.source.segSize);
    }
    return segmentFileName(run.tli, seg, this.source.segSize);
  }

  /** Copy WAL [from, to) into buf[off…]: from the ring if it still holds it (validated), else from the segment files. */
  read(buf: Uint8Array, off: number, from: Lsn, to: Lsn): void {
    // wal_buffers hold the current timeline only (from its start on, past every switch point).
    if (this.segTli === null && this.source.copyFromMemory(buf, off, from, to)) {
      this.ringReads++;
      return;
    }
    this.fileReads++;
    this.readSegments(buf, off, from, to);
  }

  private readSegments(buf: Uint8Array, off: number, from: Lsn, to: Lsn): void {
    const segSize = this.source.segSize;
    let p = from;
    let o = off;
    while (p < to) {
      const seg = segNo(p, segSize);
      const run = this.fileRun(p);
      assert(run.end > p, `WAL at ${lsnToString(p)} past its timeline's end`);
      const { fd, tli } = this.openSegment(seg, run);
      const k = Math.min(to, (seg + 1) * segSize, run.end) - p;
      let done = 0;
      while (done < k) {
        const r = fs.readSync(fd, buf, o + done, k - done, (p % segSize) + done);
        if (r === 0) throw Errors.walCorrupt(lsnToString(p + done), `segment file ${segmentFileName(tli, seg, segSize)} is too short`);
        done += r;
      }
      p += k;
      o += k;
    }
  }

  private openSegment(seg: number, run: { tli: number; end: Lsn }): { fd: number; tli: number } {
    if (this.segFdNo === seg && this.segFdTli === run.tli) return { fd: this.segFd, tli: run.tli };
    this.close();
    const segSize = this.source.segSize;
    let tli = run.tli;
    let name = segmentFileName(tli, seg, segSize);
    // A cascading standby's switch segment without the old timeline's file: the new one's (see fileRun).
    if (this.source.cascading && run.end !== Infinity && segNo(run.end, segSize) === seg && !fs.existsSync(path.join(this.walDir, name))) {
      tli = this.fileRun(run.end).tli;
      name = segmentFileName(tli, seg, segSize);
    }
    try {
      this.segFd = fs.openSync(path.join(this.walDir, name), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw Errors.walSegmentRemoved(name);
      throw e;
    }
    this.segFdNo = seg;
    // (Keyed by the timeline asked for, so the next read of this run finds the file open.)
    this.segFdTli = run.tli;
    return { fd: this.segFd, tli };
  }

  /** Close the open segment file, if any (idempotent). */
  close(): void {
    if (this.segFd >= 0) fs.closeSync(this.segFd);
    this.segFd = -1;
    this.segFdNo = -1;
    this.segFdTli = 0;
  }
}
