// LSN: a byte position in the infinite WAL stream. Held as a JS number (exact up to 2^53 bytes =
// 8 PiB of WAL); on the wire and in WAL files it is a uint64. Text form is PostgreSQL's `%X/%X`.

import { Errors } from '../errors.js';
import { u32le } from '../util/bytes.js';

export type Lsn = number;

/** PostgreSQL's InvalidXLogRecPtr: no position (a timeline history's open end, an unset LSN). */
export const InvalidLsn: Lsn = 0;

const TWO32 = 0x1_0000_0000;

export function lsnToString(lsn: Lsn): string {
  const hi = Math.floor(lsn / TWO32);
  const lo = lsn - hi * TWO32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** pg_waldump's form: low part zero-padded to 8 digits. */
export function lsnToPaddedString(lsn: Lsn): string {
  const hi = Math.floor(lsn / TWO32);
  const lo = lsn - hi * TWO32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase().padStart(8, '0')}`;
}

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const m = LSN_RE.exec(text.trim());
  if (!m) throw Errors.syntaxError(`invalid LSN "${text}"`);
  return parseInt(m[1]!, 16) * TWO32 + parseInt(m[2]!, 16);
}

export function readLsnLE(buf: Uint8Array, off: number): Lsn {
  return u32le(buf, off + 4) * TWO32 + u32le(buf, off);
}

export function writeLsnLE(buf: Uint8Array, off: number, lsn: Lsn): void {
  const hi = Math.floor(lsn / TWO32);
  const lo = lsn - hi * TWO32;
  buf[off] = lo & 0xff;
  buf[off + 1] = (lo >>> 8) & 0xff;
  buf[off + 2] = (lo >>> 16) & 0xff;
  buf[off + 3] = (lo >>> 24) & 0xff;
  buf[off + 4] = hi & 0xff;
  buf[off + 5] = (hi >>> 8) & 0xff;
  buf[off + 6] = (hi >>> 16) & 0xff;
  buf[off + 7] = (hi >>> 24) & 0xff;
}

export function readLsnBE(dv: DataView, off: number): Lsn {
  return dv.getUint32(off, false) * TWO32 + dv.getUint32(off + 4, false);
}

export function writeLsnBE(dv: DataView, off: number, lsn: Lsn): void {
  const hi = Math.floor(lsn / TWO32);
  dv.setUint32(off, hi, false);
  dv.setUint32(off + 4, lsn - hi * TWO32, false);
}
