// XLogReader: reads and validates records from a page source (segment files, or wal_buffers),
// the way PostgreSQL's xlogreader does: page magic/info/pageaddr/timeline, long-header fields,
// continuation flags and lengths, record length, rmgr id, prev-link, CRC-32C and body fragments.
// Anything that fails is "end of valid WAL": the reader reports where and why (a typed
// EndOfWalReason, and PostgreSQL's message for display), and never returns a record it could not
// fully verify. Pure logic over an abstract PageSource: no I/O here.

import fs from 'node:fs';
import path from 'node:path';
import {
  MAXALIGN, SIZE_OF_LONG_PHD, SIZE_OF_SHORT_PHD, SIZE_OF_XLOG_RECORD, XLOG_BLCKSZ, XLOG_PAGE_MAGIC,
  XLP_ALL_FLAGS, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER,
} from './consts.js';
import { type Lsn, lsnToString, readLsnLE } from './lsn.js';
import { decodeBody, readRecordHeader, recordCrc, validRmid, type DecodedBody, type RecordHeader } from './record.js';
import { segmentFileName } from './segment.js';
import { type TimeLineHistoryEntry, tliInHistory } from './timeline.js';
import { assert } from '../util/assert.js';
import { u16le, u32le } from '../util/bytes.js';

/** Record pieces up to this many bytes are copied byte by byte (no subarray view to allocate). */
const SMALL_COPY_BYTES = 256;

export interface PageSource {
  /**
   * Return the 8 KiB page starting at pageLsn, or null if it is not available (missing or short
   * file, not yet received). Only the first `needBytes` bytes must be valid. The returned view may
   * be reused by the next call.
   */
  readPage(pageLsn: Lsn, needBytes: number): Uint8Array | null;
}

export interface WalRecord {
  start: Lsn;
  /** Aligned end: where the next record may begin (before any page header). */
  end: Lsn;
  header: RecordHeader;
  /** The whole record, contiguous. Valid until the next readRecord call. */
  bytes: Uint8Array;
  body: DecodedBody;
}

/**
 * Why valid WAL ends (the checks of PostgreSQL's XLogReaderValidatePageHeader, ValidXLogRecordHeader,
 * ValidXLogRecord and DecodeXLogRecord in src/backend/access/transam/xlogreader.c). Callers switch
 * on it; `message` is PostgreSQL's wording, for people only.
 */
export type EndOfWalReason =
  /** The page is not there (segment missing or short) and no limit says it is yet to come. */
  | 'missing'
  /** A page header of zeros: preallocated or recycled-and-zeroed space past the end of WAL. */
  | 'zero-page'
  | 'bad-magic'
  | 'bad-info-bits'
  /** xlp_pageaddr names another address: a recycled segment's old page, or a torn write. */
  | 'pageaddr-mismatch'
  /** A page's timeline ID is below the previous page's (out-of-sequence timeline ID). */
  | 'timeline-regression'
  /** A page's timeline ID is not in the timeline history being followed (setHistory). */
  | 'unexpected-timeline'
  | 'missing-long-header'
  /** The long header's system identifier is another database system's (see `walSysid`). */
  | 'sysid-mismatch'
  | 'segsize-mismatch'
  | 'blcksz-mismatch'
  /** A record start on a page that says it begins with a continuation. */
  | 'unexpected-contrecord'
  | 'missing-contrecord'
  | 'contrecord-length'
  /** xl_tot_len is 0: the normal end of WAL in zeroed space. */
  | 'zero-length'
  /** xl_tot_len is less than a record header (and not 0). */
  | 'short-record'
  | 'record-too-long'
  | 'bad-rmid'
  | 'prev-link'
  /** CRC-32C mismatch: a torn or damaged record. */
  | 'crc'
  /** The fragment headers of the body do not decode. */
  | 'bad-body';

/** Reasons that mean "zeros where the next WAL would be": a clean end, not a torn tail. */
export function isZeroedEnd(reason: EndOfWalReason): boolean {
  return reason === 'zero-page' || reason === 'zero-length';
}

export interface EndOfWal {
  kind: 'end';
  lsn: Lsn;
  reason: EndOfWalReason;
  /** PostgreSQL's message for it (display only: never matched on). */
  message: string;
  /** 'sysid-mismatch': the system identifier the WAL file carries. */
  walSysid?: bigint;
}

export type ReadResult =
  | { kind: 'record'; record: WalRecord }
  | EndOfWal
  | { kind: 'wait'; lsn: Lsn };

/** A failed page-header check. */
interface PageFault {
  reason: EndOfWalReason;
  message: string;
  walSysid?: bigint;
}

export interface ReaderOptions {
  segSize: number;
  /** Expected system identifier on long headers (null: don't check, like pg_waldump). */
  sysid: bigint | null;
  /** Upper bound on a record's total length we are willing to assemble. */
  maxRecordBytes?: number;
}

/**
 * Sequential reader. `limit` (default Infinity) is the end of trustworthy WAL: a record that goes
 * past it yields `wait` (a standby reading what is flushed so far), not an error.
 */
export class XLogReader {
  private next: Lsn;
  private prev: Lsn;
  /** The newest page validated (PostgreSQL's latestPagePtr) and its timeline (latestPageTLI). */
  private latestPagePtr = -1;
  private lastTli = 0;
  /** The history of the timeline being followed: page TLIs must be in it (null: not checked). */
  private history: readonly TimeLineHistoryEntry[] | null = null;
  private recBuf: Uint8Array = new Uint8Array(64 * 1024);
  /** decodeBody's reason for a malformed body (reused). */
  private readonly bodyError = { why: '' };
  limit = Infinity;
  readonly maxRecordBytes: number;

  constructor(private readonly src: PageSource, private readonly opts: ReaderOptions, start: Lsn, prev: Lsn | null) {
    this.next = start;
    this.prev = prev ?? -1;
    this.maxRecordBytes = opts.maxRecordBytes ?? 1024 * 1024 * 1024;
  }

  /**
   * Follow `history` (newest first, readTimeLineHistory's order): from now on every page's
   * timeline ID must be one of its timelines ("unexpected timeline ID"). A new history must
   * contain the previous one's timelines (timelines are only ever followed upwards).
   */
  setHistory(history: readonly TimeLineHistoryEntry[]): void {
    assert(history.length > 0, 'XLogReader: empty timeline history');
    const prev = this.history;
    assert(prev === null || prev.every((e) => history.some((h) => h.tli === e.tli)), 'XLogReader: a new timeline history must extend the one followed');
    assert(prev === null || history[0]!.tli >= prev[0]!.tli, 'XLogReader: the followed timeline never decreases');
    this.history = history;
  }

  get nextLsn(): Lsn {
    return this.next;
  }

  get prevLsn(): Lsn {
    return this.prev;
  }

  /** Where a page is, for messages (built only on failure). */
  private where(page: Uint8Array, pageLsn: Lsn): string {
    const segSize = this.opts.segSize;
    return `in log segment ${segmentFileName(u32le(page, 4) || 1, Math.floor(pageLsn / segSize), segSize)}, offset ${pageLsn % segSize}`;
  }

  /**
   * Validate a page header; returns its size or what is wrong with it. A valid page becomes the
   * latest page (its timeline the one later pages may not go below).
   */
  private checkPage(page: Uint8Array, pageLsn: Lsn): number | PageFault {
    const r = this.checkPageHeader(page, pageLsn);
    if (typeof r === 'number' && pageLsn >= this.latestPagePtr) {
      this.latestPagePtr = pageLsn;
      this.lastTli = u32le(page, 4);
    }
    return r;
  }

  private checkPageHeader(page: Uint8Array, pageLsn: Lsn): number | PageFault {
    assert(page.length >= SIZE_OF_SHORT_PHD, 'checkPage: short page');
    const magic = u16le(page, 0);
    const segSize = this.opts.segSize;
    if (magic !== XLOG_PAGE_MAGIC) {
      return { reason: isZeroPage(page) ? 'zero-page' : 'bad-magic', message: `invalid magic number ${magic.toString(16).toUpperCase().padStart(4, '0')} ${this.where(page, pageLsn)}` };
    }
    const info = u16le(page, 2);
    if ((info & ~XLP_ALL_FLAGS) !== 0) return { reason: 'bad-info-bits', message: `invalid info bits ${info.toString(16).padStart(4, '0')} ${this.where(page, pageLsn)}` };
    const pageaddr = readLsnLE(page, 8);
    if (pageaddr !== pageLsn) return { reason: 'pageaddr-mismatch', message: `unexpected pageaddr ${lsnToString(pageaddr)} ${this.where(page, pageLsn)}` };
    const tli = u32le(page, 4);
    // (A page at or before the latest one may be re-read: only later pages are checked, as PostgreSQL does.)
    if (pageLsn > this.latestPagePtr && tli < this.lastTli) return { reason: 'timeline-regression', message: `out-of-sequence timeline ID ${tli} (after ${this.lastTli}) ${this.where(page, pageLsn)}` };
    if (this.history !== null && !tliInHistory(tli, this.history)) return { reason: 'unexpected-timeline', message: `unexpected timeline ID ${tli} ${this.where(page, pageLsn)}` };
    const long = pageLsn % segSize === 0;
    if (long) {
      if ((info & XLP_LONG_HEADER) === 0) return { reason: 'missing-long-header', message: `missing long page header ${this.where(page, pageLsn)}` };
      assert(page.length >= SIZE_OF_LONG_PHD, 'checkPage: short first page of a segment');
      if (this.opts.sysid !== null) {
        const sysid = new DataView(page.buffer, page.byteOffset, SIZE_OF_LONG_PHD).getBigUint64(24, true);
        if (sysid !== this.opts.sysid) {
          return {
            reason: 'sysid-mismatch',
            walSysid: sysid,
            message: `WAL file is from different database system: WAL file database system identifier is ${sysid}, pg_control database system identifier is ${this.opts.sysid}`,
          };
        }
      }
      if (u32le(page, 32) !== segSize) return { reason: 'segsize-mismatch', message: 'WAL file is from different database system: incorrect segment size in page header' };
      if (u32le(page, 36) !== XLOG_BLCKSZ) return { reason: 'blcksz-mismatch', message: 'WAL file is from different database system: incorrect XLOG_BLCKSZ in page header' };
      return SIZE_OF_LONG_PHD;
    }
    return SIZE_OF_SHORT_PHD;
  }

  private ensureRecBuf(n: number): void {
    if (this.recBuf.length >= n) return;
    let sz = this.recBuf.length;
    while (sz < n) sz *= 2;
    const nb = new Uint8Array(sz);
    nb.set(this.recBuf);
    this.recBuf = nb;
  }

  private static end(lsn: Lsn, reason: EndOfWalReason, message: string): EndOfWal {
    return { kind: 'end', lsn, reason, message };
  }

  private static pageEnd(lsn: Lsn, f: PageFault): EndOfWal {
    return f.walSysid === undefined ? { kind: 'end', lsn, reason: f.reason, message: f.message } : { kind: 'end', lsn, reason: f.reason, message: f.message, walSysid: f.walSysid };
  }

  readRecord(): ReadResult {
    const end = XLogReader.end;
    const segSize = this.opts.segSize;
    let p = this.next;

    // Position at a record start: skip the page header if at a page boundary.
    let pageLsn = p - (p % XLOG_BLCKSZ);
    const atPageStart = p % XLOG_BLCKSZ === 0;
    const hdrNeed = atPageStart ? (p % segSize === 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD) : 0;
    if (this.limit < p + hdrNeed + 8) return { kind: 'wait', lsn: p };
    let page = this.src.readPage(pageLsn, Math.min(XLOG_BLCKSZ, Math.max(hdrNeed, (p % XLOG_BLCKSZ) + 8)));
    if (page === null) return this.limit !== Infinity ? { kind: 'wait', lsn: p } : end(p, 'missing', `could not read WAL at ${lsnToString(p)}: segment missing or short`);
    const ph = this.checkPage(page, pageLsn);
    if (typeof ph !== 'number') return XLogReader.pageEnd(p, ph);
    if (atPageStart) {
      const info = u16le(page, 2);
      if ((info & XLP_FIRST_IS_CONTRECORD) !== 0) return end(p, 'unexpected-contrecord', `contrecord is requested by ${lsnToString(p)}`);
      p += ph;
    }
    const start = p;
    // Gather the 24-byte header (it may be split across two pages).
    let got = 0;
    let cur = p;
    let totLen = -1;
    let header: RecordHeader | null = null;
    // Copy record bytes page by page.
    for (;;) {
      if (got > 0 && cur % XLOG_BLCKSZ === 0) {
        // Need the next page: it must be a continuation page with the right remaining length.
        pageLsn = cur;
        // The continuation page's own header (short unless it starts a segment) must be final.
        if (cur + (cur % segSize === 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD) > this.limit) return { kind: 'wait', lsn: this.next };
        // Ask only for the bytes this record needs: a short (torn) file still yields its records.
        const stillNeeded = (totLen < 0 ? SIZE_OF_XLOG_RECORD : totLen) - got;
        page = this.src.readPage(pageLsn, Math.min(XLOG_BLCKSZ, SIZE_OF_LONG_PHD + stillNeeded));
        if (page === null) return this.limit !== Infinity ? { kind: 'wait', lsn: this.next } : end(start, 'missing', `could not read WAL page ${lsnToString(pageLsn)} continuing record at ${lsnToString(start)}`);
        const cph = this.checkPage(page, pageLsn);
        if (typeof cph !== 'number') return XLogReader.pageEnd(start, cph);
        if ((u16le(page, 2) & XLP_FIRST_IS_CONTRECORD) === 0) return end(start, 'missing-contrecord', `there is no contrecord flag at ${lsnToString(pageLsn)}`);
        const remaining = (totLen < 0 ? SIZE_OF_XLOG_RECORD : totLen) - got;
        const remLen = u32le(page, 16);
        if (totLen >= 0 ? remLen !== remaining : remLen < remaining) {
          return end(start, 'contrecord-length', `invalid contrecord length ${remLen} (expected ${remaining}) at ${lsnToString(pageLsn)}`);
        }
        cur += cph;
        if (totLen >= 0) this.ensureRecBuf(Math.min(totLen, got + XLOG_BLCKSZ));
      }
      const offInPage = cur % XLOG_BLCKSZ;
      const avail = XLOG_BLCKSZ - offInPage;
      const want = totLen < 0 ? SIZE_OF_XLOG_RECORD - got : totLen - got;
      const n = Math.min(avail, want);
      if (cur + n > this.limit) return { kind: 'wait', lsn: this.next };
      if (got === 0) {
        // First bytes: check xl_tot_len early (zero means the normal end of WAL).
        const tl = u32le(page, offInPage);
        if (tl < SIZE_OF_XLOG_RECORD) return end(start, tl === 0 ? 'zero-length' : 'short-record', `invalid record length at ${lsnToString(start)}: wanted 24, got ${tl}`);
      }
      if (n <= SMALL_COPY_BYTES) {
        const rb = this.recBuf;
        for (let i = 0; i < n; i++) rb[got + i] = page[offInPage + i]!;
      } else {
        this.recBuf.set(page.subarray(offInPage, offInPage + n), got);
      }
      got += n;
      cur += n;
      if (totLen < 0 && got >= SIZE_OF_XLOG_RECORD) {
        header = readRecordHeader(this.recBuf, 0);
        totLen = header.totLen;
        if (totLen < SIZE_OF_XLOG_RECORD) return end(start, 'short-record', `invalid record length at ${lsnToString(start)}: wanted 24, got ${totLen}`);
        if (totLen > this.maxRecordBytes) return end(start, 'record-too-long', `record length ${totLen} at ${lsnToString(start)} too long`);
        if (!validRmid(header.rmid)) return end(start, 'bad-rmid', `invalid resource manager ID ${header.rmid} at ${lsnToString(start)}`);
        if (this.prev >= 0 ? header.prev !== this.prev : header.prev >= start) {
          return end(start, 'prev-link', `record with incorrect prev-link ${lsnToString(header.prev)} at ${lsnToString(start)}`);
        }
        // Grow the buffer only as far as validated pages carry the record (bounded allocation).
        this.ensureRecBuf(Math.min(totLen, got + XLOG_BLCKSZ));
      }
      if (totLen >= 0 && got >= totLen) break;
    }
    const bytes = this.recBuf.subarray(0, totLen);
    const crc = recordCrc(bytes, totLen);
    if (crc !== header!.crc) return end(start, 'crc', `incorrect resource manager data checksum in record at ${lsnToString(start)}`);
    const body = decodeBody(bytes, totLen, this.bodyError);
    if (body === null) return end(start, 'bad-body', `${this.bodyError.why} at ${lsnToString(start)}`);
    const recEnd = Math.ceil(cur / MAXALIGN) * MAXALIGN;
    this.prev = start;
    this.next = recEnd;
    return { kind: 'record', record: { start, end: recEnd, header: header!, bytes, body } };
  }

  /** Jump to the start of the next segment (after XLOG_SWITCH). */
  skipToNextSegment(): void {
    const segSize = this.opts.segSize;
    this.next = (Math.floor((this.next - 1) / segSize) + 1) * segSize;
  }
}

/** A page whose header (first 16 bytes) is all zeros. */
function isZeroPage(page: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (page[i] !== 0) return false;
  return true;
}

/**
 * Views of a chunk buffer's 8 KiB pages, each made once: a page source returns one page per
 * record read, and the chunk is reloaded in place, so a view stays valid for the chunk's life.
 */
export class ChunkPages {
  private readonly views: Array<Uint8Array | undefined> = [];

  constructor(private readonly chunk: Uint8Array) {}

  /** The page at byte `offset` of the chunk (a multiple of XLOG_BLCKSZ). */
  page(offset: number): Uint8Array {
    return (this.views[offset / XLOG_BLCKSZ] ??= this.chunk.subarray(offset, offset + XLOG_BLCKSZ));
  }
}

/**
 * The timeline whose file holds segment `seg` (PostgreSQL's XLogFileReadAnyTLI order): the newest
 * timeline of `history` that began in or before that segment. The segment holding a switch point
 * is read from the new timeline's file (which starts with a copy of the old timeline's bytes).
 */
export function tliOfSegment(seg: number, segSize: number, history: readonly TimeLineHistoryEntry[]): number {
  for (const e of history) {
    if (e.begin === 0 || Math.floor(e.begin / segSize) <= seg) return e.tli;
  }
  return history[history.length - 1]!.tli;
}

/** A page source's timelines: one timeline, or a history (each segment from the timeline that covers it). */
export type SegmentTimelines = number | readonly TimeLineHistoryEntry[];

function segmentTli(seg: number, segSize: number, t: SegmentTimelines): number {
  return typeof t === 'number' ? t : tliOfSegment(seg, segSize, t);
}

/** Reads pages from segment files of one timeline (or of a timeline history), caching 1 MiB chunks. */
export class FileSegmentSource implements PageSource {
  private static readonly CHUNK = 1024 * 1024;
  private readonly chunk = Buffer.alloc(FileSegmentSource.CHUNK);
  private readonly pages = new ChunkPages(this.chunk);
  private chunkLsn = -1;
  private chunkValid = 0;
  private fd = -1;
  private fdSeg = -1;

  constructor(private readonly walDir: string, private tli: SegmentTimelines, private readonly segSize: number) {}

  /** Read segments per `history` from now on (a timeline was followed). */
  setHistory(history: readonly TimeLineHistoryEntry[]): void {
    this.tli = history;
    this.close();
  }

  readPage(pageLsn: Lsn, needBytes: number): Uint8Array | null {
    const C = Math.min(FileSegmentSource.CHUNK, this.segSize);
    const chunkLsn = pageLsn - (pageLsn % C);
    const need = pageLsn - chunkLsn + needBytes;
    if (chunkLsn !== this.chunkLsn || this.chunkValid < need) {
      if (!this.load(chunkLsn, C)) return null;
      if (this.chunkValid < need) return null;
    }
    return this.pages.page(pageLsn - chunkLsn);
  }

  private load(chunkLsn: Lsn, C: number): boolean {
    const seg = Math.floor(chunkLsn / this.segSize);
    if (seg !== this.fdSeg) {
      this.close();
      const base = path.join(this.walDir, segmentFileName(segmentTli(seg, this.segSize, this.tli), seg, this.segSize));
      try {
        this.fd = fs.openSync(base, 'r');
      } catch {
        try {
          this.fd = fs.openSync(base + '.partial', 'r');
        } catch {
          return false;
        }
      }
      this.fdSeg = seg;
    }
    let n = 0;
    for (;;) {
      const r = fs.readSync(this.fd, this.chunk, n, C - n, (chunkLsn % this.segSize) + n);
      if (r <= 0) break;
      n += r;
      if (n >= C) break;
    }
    this.chunkLsn = chunkLsn;
    this.chunkValid = n;
    if (n < C) this.chunk.fill(0, n, C);
    return true;
  }

  /** Forget cached bytes (a writer appended to the files). */
  invalidate(): void {
    this.chunkLsn = -1;
    this.chunkValid = 0;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.fdSeg = -1;
    this.invalidate();
  }
}

/** Find the first valid record at or after `lsn` (pg_waldump's search from a segment start). */
export function findFirstRecord(src: PageSource, opts: ReaderOptions, lsn: Lsn): Lsn | null {
  const pageLsn = lsn - (lsn % XLOG_BLCKSZ);
  const page = src.readPage(pageLsn, SIZE_OF_LONG_PHD);
  if (page === null) return null;
  const dv = new DataView(page.buffer, page.byteOffset, SIZE_OF_SHORT_PHD);
  if (dv.getUint16(0, true) !== XLOG_PAGE_MAGIC) return null;
  const info = dv.getUint16(2, true);
  const hdr = (info & XLP_LONG_HEADER) !== 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
  let p = pageLsn + hdr;
  if ((info & XLP_FIRST_IS_CONTRECORD) !== 0) {
    // Skip the continuation: it may span several pages.
    let rem = dv.getUint32(16, true);
    let q = p;
    for (;;) {
      const room = XLOG_BLCKSZ - (q % XLOG_BLCKSZ);
      if (rem <= room) {
        q += rem;
        break;
      }
      rem -= room;
      q += room;
      const np = src.readPage(q, SIZE_OF_LONG_PHD);
      if (np === null) return null;
      q += q % opts.segSize === 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
    }
    p = Math.ceil(q / MAXALIGN) * MAXALIGN;
    if (p % XLOG_BLCKSZ === 0) p += p % opts.segSize === 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
  }
  return p;
}
