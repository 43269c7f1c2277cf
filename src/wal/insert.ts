// WAL insertion into wal_buffers (PostgreSQL's XLogInsertRecord + AdvanceXLInsertBuffer).
// Run by exactly one thread per primary (the thread that owns transactions). It owns the insert
// position and the previous-record link; it shares the ring and positions through XLogCtl.
// It never waits for a walsender; it waits for the walwriter only when the ring is full.

import { assert } from '../util/assert.js';
import {
  MAXALIGN, SIZE_OF_LONG_PHD, SIZE_OF_SHORT_PHD, XLOG_BLCKSZ, XLOG_PAGE_MAGIC, XLP_BKP_REMOVABLE,
  XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER,
} from './consts.js';
import { type Lsn, writeLsnLE } from './lsn.js';
import {
  XC_INSERTED_UPTO, XC_RING_VALID_FROM, XC_WRITE_REQUEST, XC_WRITE_SEQ, XC_WRITTEN,
  XC_WRITER_FAILED, type XLogCtl,
} from './xlogctl.js';
import { Errors } from '../errors.js';
import { copyToShared } from '../util/shm-copy.js';

/** Longest single wait for ring space, in ms: a guard only, the walwriter's write wakes the inserter. */
const RING_SPACE_SAFETY_WAIT_MS = 100;

/** Write a page header (short or long) at `buf[off]`. */
export function writePageHeader(buf: Uint8Array, off: number, pageLsn: Lsn, tli: number, segSize: number, sysid: bigint, contrecord: boolean, remLen: number): number {
  const long = pageLsn % segSize === 0;
  const dv = new DataView(buf.buffer, buf.byteOffset + off, long ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD);
  dv.setUint16(0, XLOG_PAGE_MAGIC, true);
  dv.setUint16(2, XLP_BKP_REMOVABLE | (long ? XLP_LONG_HEADER : 0) | (contrecord ? XLP_FIRST_IS_CONTRECORD : 0), true);
  dv.setUint32(4, tli, true);
  writeLsnLE(buf, off + 8, pageLsn);
  dv.setUint32(16, remLen, true);
  dv.setUint32(20, 0, true);
  if (!long) return SIZE_OF_SHORT_PHD;
  dv.setBigUint64(24, sysid, true);
  dv.setUint32(32, segSize, true);
  dv.setUint32(36, XLOG_BLCKSZ, true);
  return SIZE_OF_LONG_PHD;
}

export class WalInserter {
  /** Where the next record goes (aligned; may be a page start, header not yet written). */
  private pos: Lsn;
  private prev: Lsn;
  /** INSERTED_UPTO last published; the walwriter is kicked when un-written WAL passes kickBytes. */
  private kickBytes: number;
  private kickedAtWritten = -1;
  /** WRITTEN as last read (a lower bound of the current value) */
  private seenWritten = -Infinity;
  private readonly ringBytes: number;
  waitsForRingSpace = 0;
  /** Ring-space waits whose guard expired although the write was done (a lost wake-up; expected 0). */
  ringSpaceMissedWakeups = 0;

  constructor(private readonly ctl: XLogCtl, startPos: Lsn, prevRecord: Lsn, kickBytes?: number) {
    assert(startPos % MAXALIGN === 0, 'insert position must be aligned');
    this.pos = startPos;
    this.prev = prevRecord;
    this.ringBytes = ctl.ring.length;
    this.kickBytes = Math.max(XLOG_BLCKSZ, Math.min(kickBytes ?? Infinity, Math.floor(this.ringBytes / 4)));
  }

  get insertPos(): Lsn {
    return this.pos;
  }

  get prevRecord(): Lsn {
    return this.prev;
  }

  /** The LSN the next record will get (PostgreSQL's "insert LSN" skips a page header). */
  nextRecordLsn(): Lsn {
    const p = this.pos;
    if (p % XLOG_BLCKSZ === 0) return p + (p % this.ctl.segSize === 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD);
    return p;
  }

  /**
   * Insert a complete record (header with xl_prev = this.prevRecord and CRC already set; build it
   * after calling nextRecordLsn / prevRecord). Returns [start, end) where end is the aligned end.
   */
  insert(rec: Uint8Array, totLen: number): { start: Lsn; end: Lsn } {
    const ctl = this.ctl;
    const ring = ctl.ring;
    let p = this.pos;
    if (p % XLOG_BLCKSZ === 0) p += this.initPage(p, false, 0);
    const start = p;
    const room = XLOG_BLCKSZ - (p % XLOG_BLCKSZ);
    let off = ctl.ringOffset(p);
    if (totLen <= room) {
      // the common case: the record fits on this page
      copyToShared(ring, off, totLen === rec.length ? rec : rec.subarray(0, totLen));
      p += totLen;
      off += totLen;
    } else {
      let done = 0;
      while (done < totLen) {
        const pageEnd = p - (p % XLOG_BLCKSZ) + XLOG_BLCKSZ;
        const n = Math.min(pageEnd - p, totLen - done);
        copyToShared(ring, ctl.ringOffset(p), rec.subarray(done, done + n));
        done += n;
        p += n;
        if (done < totLen) p += this.initPage(p, true, totLen - done);
      }
      off = ctl.ringOffset(p);
    }
    // Alignment padding is part of the WAL stream and must be zero (ring pages are not pre-zeroed);
    // it never crosses a page (pages are MAXALIGNed).
    const pad = (MAXALIGN - (p % MAXALIGN)) % MAXALIGN;
    for (let i = 0; i < pad; i++) ring[off + i] = 0;
    const end = p + pad;
    this.pos = end;
    this.prev = start;
    ctl.store(XC_INSERTED_UPTO, end);
    // Kick the walwriter once per write it has not yet answered (not on every insert). WRITTEN only
    // grows, so it needs reading only once `end` is kickBytes past the value last seen.
    if (end - this.seenWritten >= this.kickBytes) {
      const written = ctl.load(XC_WRITTEN);
      this.seenWritten = written;
      if (end - written >= this.kickBytes && written !== this.kickedAtWritten) {
        this.kickedAtWritten = written;
        ctl.wakeWalWriter();
      }
    }
    return { start, end };
  }

  /**
   * Claim the ring slot for the page at pageLsn (waiting for the walwriter if needed) and write
   * its header. The slot is not zeroed: nothing past INSERTED_UPTO is ever read from the ring (the
   * walwriter writes a page's unused tail from a zero buffer).
   */
  private initPage(pageLsn: Lsn, contrecord: boolean, remLen: number): number {
    const ctl = this.ctl;
    const evicted = pageLsn - this.ringBytes; // LSN of the page currently in this slot
    if (evicted >= 0) {
      const needWritten = evicted + XLOG_BLCKSZ;
      if (ctl.load(XC_WRITTEN) < needWritten) this.waitForWrite(needWritten, pageLsn);
      ctl.advance(XC_RING_VALID_FROM, needWritten);
    }
    const off = ctl.ringOffset(pageLsn);
    return writePageHeader(ctl.ring, off, pageLsn, ctl.tli, ctl.segSize, ctl.sysid, contrecord, remLen);
  }

  /** Block this thread until the walwriter has written up to `lsn` (ring full). */
  private waitForWrite(lsn: Lsn, copiedUpTo: Lsn): void {
    const ctl = this.ctl;
    this.waitsForRingSpace++;
    // Everything before copiedUpTo is final in the ring (maybe mid-record): let the writer take it.
    ctl.advance(XC_INSERTED_UPTO, copiedUpTo);
    ctl.advance(XC_WRITE_REQUEST, lsn);
    for (;;) {
      if (Atomics.load(ctl.i32, XC_WRITER_FAILED) !== 0) throw Errors.internal('walwriter failed; WAL cannot be written');
      const seq = Atomics.load(ctl.i32, XC_WRITE_SEQ);
      if (ctl.load(XC_WRITTEN) >= lsn) return;
      ctl.wakeWalWriter();
      // The wait ends at the walwriter's bumpWriteSeq; the timeout is only a guard. A guard that
      // expires although the write it waited for was done is a missed wake-up (tests expect 0).
      if (ctl.waitWriteSeq(seq, RING_SPACE_SAFETY_WAIT_MS) && ctl.load(XC_WRITTEN) >= lsn) this.ringSpaceMissedWakeups++;
    }
  }
}
