// Message framing primitives of the PostgreSQL v3 protocol: MessageWriter (type byte, length
// word, fields) and MessageReader (fields of a body, with pqformat.c's errors: "insufficient data
// left in message", 08P01), big-endian Int64 fields, and PostgreSQL timestamps (TimestampTz).
// Pure functions over bytes, no state, no I/O; the message encoders and decoders in messages.ts
// and copy-messages.ts are built on them.

import { Errors } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { readLsnBE, writeLsnBE, type Lsn } from '../../wal/lsn.js';

const TWO32 = 0x1_0000_0000;
export const utf8 = new TextDecoder('utf-8');
export const enc = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Building messages

/** Appends fields to one message; `finish()` patches the length word. */
export class MessageWriter {
  private buf: Buffer;
  private len = 0;
  private readonly typed: boolean;

  /** `type` is the message type character, or null for an untyped (startup-phase) packet. */
  constructor(type: string | null, initialBytes = 64) {
    this.typed = type !== null;
    this.buf = Buffer.allocUnsafe(Math.max(initialBytes, 16));
    if (type !== null) {
      assert(type.length === 1, 'message type is one character');
      this.buf[0] = type.charCodeAt(0);
      this.len = 1;
    }
    this.len += 4; // length word, patched in finish()
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  byte(v: number): this {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  int16(v: number): this {
    this.room(2);
    this.buf.writeInt16BE(v, this.len);
    this.len += 2;
    return this;
  }
  int32(v: number): this {
    this.room(4);
    this.buf.writeInt32BE(v | 0, this.len);
    this.len += 4;
    return this;
  }
  uint32(v: number): this {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }
  int64(v: number): this {
    this.room(8);
    writeInt64BE(this.buf, this.len, v);
    this.len += 8;
    return this;
  }
  lsn(v: Lsn): this {
    this.room(8);
    writeLsnBE(new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength), this.len, v);
    this.len += 8;
    return this;
  }
  /** String followed by NUL. The text must not contain NUL itself. */
  cstring(s: string): this {
    const b = enc.encode(s);
    assert(!b.includes(0), 'protocol strings cannot contain NUL');
    this.bytes(b);
    return this.byte(0);
  }
  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  finish(): Buffer {
    const at = this.typed ? 1 : 0;
    this.buf.writeInt32BE(this.len - at, at);
    return this.buf.subarray(0, this.len);
  }
}

export function writeInt64BE(buf: Uint8Array, off: number, v: number): void {
  assert(Number.isSafeInteger(v), 'int64 field out of the safe integer range');
  assert(off >= 0 && off + 8 <= buf.length, 'int64 field outside the buffer');
  // Big-endian, two's complement: byte writes (no DataView per field on the send paths).
  const hi = Math.floor(v / TWO32);
  const lo = v - hi * TWO32;
  buf[off] = hi >>> 24;
  buf[off + 1] = hi >>> 16;
  buf[off + 2] = hi >>> 8;
  buf[off + 3] = hi;
  buf[off + 4] = lo >>> 24;
  buf[off + 5] = lo >>> 16;
  buf[off + 6] = lo >>> 8;
  buf[off + 7] = lo;
}

export function readInt64BE(dv: DataView, off: number): number {
  const hi = dv.getInt32(off);
  const lo = dv.getUint32(off + 4);
  const v = hi * TWO32 + lo;
  if (!Number.isSafeInteger(v)) throw Errors.protocolViolation(`int64 value beyond 2^53 in message`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Reading messages

/** Sequential reader over one message body, with PostgreSQL's pqformat.c error messages. */
export class MessageReader {
  readonly body: Uint8Array;
  readonly dv: DataView;
  pos = 0;

  constructor(body: Uint8Array) {
    this.body = body;
    this.dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  }

  get remaining(): number {
    return this.body.length - this.pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.body.length) throw Errors.protocolViolation('insufficient data left in message');
  }
  byte(): number {
    this.need(1);
    return this.body[this.pos++]!;
  }
  int16(): number {
    this.need(2);
    const v = this.dv.getInt16(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.dv.getInt32(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): number {
    this.need(8);
    const v = readInt64BE(this.dv, this.pos);
    this.pos += 8;
    return v;
  }
  lsn(): Lsn {
    this.need(8);
    const hi = this.dv.getUint32(this.pos);
    if (hi >= 0x20_0000) throw Errors.protocolViolation('LSN beyond 2^53 is not supported');
    const v = readLsnBE(this.dv, this.pos);
    this.pos += 8;
    return v;
  }
  /** NUL-terminated string (UTF-8). */
  cstring(): string {
    const end = this.body.indexOf(0, this.pos);
    if (end < 0) throw Errors.protocolViolation('invalid string in message');
    const s = utf8.decode(this.body.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }
  /** A view of the next n bytes. */
  bytes(n: number): Uint8Array {
    if (n < 0) throw Errors.protocolViolation('insufficient data left in message');
    this.need(n);
    const v = this.body.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  rest(): Uint8Array {
    const v = this.body.subarray(this.pos);
    this.pos = this.body.length;
    return v;
  }
  /** pq_getmsgend(): the whole body must have been read. */
  end(): void {
    if (this.pos !== this.body.length) throw Errors.protocolViolation('invalid message format');
  }
}

// ---------------------------------------------------------------------------------------------
// Timestamps: TimestampTz = Int64 microseconds since 2000-01-01 00:00:00 UTC.

export const PG_EPOCH_UNIX_MS = 946_684_800_000;
export const PG_EPOCH_UNIX_US = 946_684_800_000_000;

/** Now as a PostgreSQL timestamp, with microsecond resolution (performance clock anchored on the wall clock). */
export function pgTimestampNow(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000) - PG_EPOCH_UNIX_US;
}
/** From Unix milliseconds (Date.now()). */
export function unixMsToPgTimestamp(ms: number): number {
  return Math.round(ms * 1000) - PG_EPOCH_UNIX_US;
}
/** To Unix milliseconds (may carry a fraction for the microseconds). */
export function pgTimestampToUnixMs(ts: number): number {
  return (ts + PG_EPOCH_UNIX_US) / 1000;
}
export function pgTimestampToDate(ts: number): Date {
  return new Date(Math.floor(pgTimestampToUnixMs(ts)));
}
