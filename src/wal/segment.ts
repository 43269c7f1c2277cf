// WAL segment file naming and LSN arithmetic (PostgreSQL's XLogFileName / XLByteToSeg).

import { Errors } from '../errors.js';
import { XLOG_BLCKSZ, SIZE_OF_LONG_PHD, SIZE_OF_SHORT_PHD, validSegmentSize } from './consts.js';
import type { Lsn } from './lsn.js';

const TWO32 = 0x1_0000_0000;

export function segNo(lsn: Lsn, segSize: number): number {
  return Math.floor(lsn / segSize);
}

export function segStart(seg: number, segSize: number): Lsn {
  return seg * segSize;
}

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** `TTTTTTTTXXXXXXXXYYYYYYYY`, upper-case, 24 hex digits. */
export function segmentFileName(tli: number, seg: number, segSize: number): string {
  const perId = TWO32 / segSize;
  return hex8(tli) + hex8(Math.floor(seg / perId)) + hex8(seg % perId);
}

const SEG_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

export function parseSegmentFileName(name: string, segSize: number): { tli: number; seg: number } | null {
  const m = SEG_RE.exec(name);
  if (!m) return null;
  const perId = TWO32 / segSize;
  const lo = parseInt(m[3]!, 16);
  if (lo >= perId) return null;
  return { tli: parseInt(m[1]!, 16), seg: parseInt(m[2]!, 16) * perId + lo };
}

export function historyFileName(tli: number): string {
  return `${hex8(tli)}.history`;
}

/** Size of the page header at `lsn`, which must be a page start. */
export function pageHeaderSize(lsn: Lsn, segSize: number): number {
  return lsn % segSize === 0 ? SIZE_OF_LONG_PHD : SIZE_OF_SHORT_PHD;
}

export function pageStart(lsn: Lsn): Lsn {
  return lsn - (lsn % XLOG_BLCKSZ);
}

/**
 * The first position a record could start at, at or after `lsn`: aligned, and past the header
 * if `lsn` is a page start.
 */
export function recordStartAt(lsn: Lsn, segSize: number): Lsn {
  let p = Math.ceil(lsn / 8) * 8;
  if (p % XLOG_BLCKSZ === 0) p += pageHeaderSize(p, segSize);
  return p;
}

export function assertSegmentSize(n: number): void {
  if (!(Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n >= 1 << 20 && n <= 1 << 30)) {
    throw Errors.invalidOption('walSegmentSize', `must be a power of two from 1 MiB to 1 GiB, got ${n}`);
  }
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
