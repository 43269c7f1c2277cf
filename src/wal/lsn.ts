// LSN: a byte position in the infinite WAL stream. Held as a JS number (exact up to 2^53 bytes =
// 8 PiB of WAL); on the wire and in WAL files it is a uint64. Text form is PostgreSQL's `%X/%X`.
// The library API carries LSNs as numbers only (`Lsn`); the text form exists where text is the
// interface (CLI output, the replication protocol, log and error messages), formatted there with
// lsnToString, and user text becomes a number with parseLsn. An LSN that enters the API from
// outside is checked with checkLsn (a non-negative integer below 2^53).

import { Errors } from '../errors.js';
import { u32le } from '../util/bytes.js';

export type Lsn = number;

/** PostgreSQL's InvalidXLogRecPtr: no position (a timeline history's open end, an unset LSN). */
export const InvalidLsn: Lsn = 0;

const TWO32 = 0x1_0000_0000;

/** First high 32-bit word whose LSNs are past 2^53 (no longer exact as a JS number): 2^21. */
export const LSN_HI_LIMIT = 0x20_0000;

/** True for a value an `Lsn` can hold exactly: an integer in [0, 2^53). */
export function isLsn(v: unknown): v is Lsn {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Check an LSN a caller passed to the API (option or argument `name`): a number, an integer,
 * non-negative and below 2^53. Text is refused with a pointer to parseLsn.
 */
export function checkLsn(name: string, v: unknown): Lsn {
  if (isLsn(v)) return v;
  if (typeof v === 'string') throw Errors.invalidOption(name, `must be an LSN number (parseLsn("${v}") converts PostgreSQL's X/X text), got a string`);
  throw Errors.invalidOption(name, `must be an LSN: an integer byte position in [0, 2^53), got ${String(v)}`);
}

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

/** PostgreSQL's `X/X` text (pg_lsn input) to a number; past 2^53 is refused, not rounded. */
export function parseLsn(text: string): Lsn {
  const m = LSN_RE.exec(text.trim());
  if (!m) throw Errors.syntaxError(`invalid LSN "${text}"`);
  const hi = parseInt(m[1]!, 16);
  if (hi >= LSN_HI_LIMIT) throw Errors.syntaxError(`LSN "${text}" is beyond 2^53 and not supported`);
  return hi * TWO32 + parseInt(m[2]!, 16);
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
