// Encoders and decoders for the PostgreSQL v3 messages a physical replication connection uses,
// named after the wire messages, plus the CopyBoth sub-messages (XLogData `w`, PrimaryKeepalive
// `k`, StandbyStatusUpdate `r`, HotStandbyFeedback `h`), PostgreSQL timestamps and the exact
// RowDescriptions of each replication command's result. Pure functions over bytes: used by
// ReplicationServerConn and ReplicationClientConn; no state, no I/O.
//
// Encoders return whole framed messages (type byte + length word + body) in fresh Buffers, except
// the XLogData header writers, which fill a caller-provided buffer so WAL bytes can follow without
// a copy. Decoders take a message *body* (what FrameDecoder returns) and throw WalstreamErrors
// worded like PostgreSQL's pqformat.c ("insufficient data left in message", 08P01).

import { Errors, WalstreamError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { readLsnBE, writeLsnBE, type Lsn } from '../../wal/lsn.js';

const TWO32 = 0x1_0000_0000;
const utf8 = new TextDecoder('utf-8');
const enc = new TextEncoder();

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

// ---------------------------------------------------------------------------------------------
// Authentication (server `R`, client `p`)

export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

export function encodeAuthenticationOk(): Buffer {
  return new MessageWriter('R').int32(AuthCode.Ok).finish();
}
export function encodeAuthenticationCleartextPassword(): Buffer {
  return new MessageWriter('R').int32(AuthCode.CleartextPassword).finish();
}
export function encodeAuthenticationMD5Password(salt: Uint8Array): Buffer {
  assert(salt.length === 4, 'MD5 salt is 4 bytes');
  return new MessageWriter('R').int32(AuthCode.MD5Password).bytes(salt).finish();
}
export function encodeAuthenticationSASL(mechanisms: string[]): Buffer {
  const w = new MessageWriter('R').int32(AuthCode.SASL);
  for (const m of mechanisms) w.cstring(m);
  return w.byte(0).finish();
}
export function encodeAuthenticationSASLContinue(data: Uint8Array): Buffer {
  return new MessageWriter('R', 16 + data.length).int32(AuthCode.SASLContinue).bytes(data).finish();
}
export function encodeAuthenticationSASLFinal(data: Uint8Array): Buffer {
  return new MessageWriter('R', 16 + data.length).int32(AuthCode.SASLFinal).bytes(data).finish();
}

export type AuthenticationRequest =
  | { code: 0 }
  | { code: 3 }
  | { code: 5; salt: Uint8Array }
  | { code: 10; mechanisms: string[] }
  | { code: 11; data: Uint8Array }
  | { code: 12; data: Uint8Array }
  | { code: number; other: true };

export function decodeAuthentication(body: Uint8Array): AuthenticationRequest {
  const r = new MessageReader(body);
  const code = r.int32();
  switch (code) {
    case 0:
      r.end();
      return { code: 0 };
    case 3:
      r.end();
      return { code: 3 };
    case 5: {
      const salt = r.bytes(4);
      r.end();
      return { code, salt };
    }
    case 10: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring();
        if (m === '') break;
        mechanisms.push(m);
      }
      r.end();
      return { code, mechanisms };
    }
    case 11:
      return { code: 11, data: r.rest() };
    case 12:
      return { code: 12, data: r.rest() };
    default:
      return { code, other: true };
  }
}

/** PasswordMessage `p`: the password (cleartext or md5 hash) as a String. */
export function encodePasswordMessage(password: string): Buffer {
  return new MessageWriter('p').cstring(password).finish();
}
/** SASLInitialResponse `p`: mechanism, Int32 length of data (-1 = none), data. */
export function encodeSASLInitialResponse(mechanism: string, data: Uint8Array | null): Buffer {
  const w = new MessageWriter('p', 32 + (data?.length ?? 0)).cstring(mechanism);
  if (data === null) w.int32(-1);
  else w.int32(data.length).bytes(data);
  return w.finish();
}
/** SASLResponse `p`: raw bytes. */
export function encodeSASLResponse(data: Uint8Array): Buffer {
  return new MessageWriter('p', 16 + data.length).bytes(data).finish();
}

/** Server side of `p` as a PasswordMessage (recv_password_packet): exact PostgreSQL errors. */
export function decodePasswordMessage(body: Uint8Array): string {
  const nul = body.indexOf(0);
  if (nul !== body.length - 1) throw Errors.protocolViolation('invalid password packet size');
  if (body.length === 1) throw new WalstreamError('WS_INVALID_PASSWORD', '28P01', 'empty password returned by client');
  return utf8.decode(body.subarray(0, nul));
}

export function decodeSASLInitialResponse(body: Uint8Array): { mechanism: string; data: Uint8Array | null } {
  const r = new MessageReader(body);
  const mechanism = r.cstring();
  const n = r.int32();
  const data = n === -1 ? null : r.bytes(n);
  r.end();
  return { mechanism, data };
}

// ---------------------------------------------------------------------------------------------
// Startup phase (client → server, untyped) and its answers

export function encodeStartupMessage(params: Record<string, string> | Map<string, string>): Buffer {
  const w = new MessageWriter(null, 128).int32(0x0003_0000);
  const entries = params instanceof Map ? [...params] : Object.entries(params);
  for (const [k, v] of entries) w.cstring(k).cstring(v);
  return w.byte(0).finish();
}
export function encodeSSLRequest(): Buffer {
  return new MessageWriter(null, 8).int32(80877103).finish();
}
export function encodeGSSENCRequest(): Buffer {
  return new MessageWriter(null, 8).int32(80877104).finish();
}
export function encodeCancelRequest(processId: number, secretKey: number): Buffer {
  return new MessageWriter(null, 16).int32(80877102).int32(processId).int32(secretKey).finish();
}
/** NegotiateProtocolVersion `v`: newest supported protocol (3.0) and the options not recognized. */
export function encodeNegotiateProtocolVersion(newestVersion: number, unrecognizedOptions: string[]): Buffer {
  const w = new MessageWriter('v').int32(newestVersion).int32(unrecognizedOptions.length);
  for (const o of unrecognizedOptions) w.cstring(o);
  return w.finish();
}
export function decodeNegotiateProtocolVersion(body: Uint8Array): { newestVersion: number; unrecognizedOptions: string[] } {
  const r = new MessageReader(body);
  const newestVersion = r.int32();
  const n = r.int32();
  const unrecognizedOptions: string[] = [];
  for (let i = 0; i < n; i++) unrecognizedOptions.push(r.cstring());
  return { newestVersion, unrecognizedOptions };
}

// ---------------------------------------------------------------------------------------------
// Session messages

export function encodeParameterStatus(name: string, value: string): Buffer {
  return new MessageWriter('S').cstring(name).cstring(value).finish();
}
export function decodeParameterStatus(body: Uint8Array): { name: string; value: string } {
  const r = new MessageReader(body);
  return { name: r.cstring(), value: r.cstring() };
}
export function encodeBackendKeyData(processId: number, secretKey: number): Buffer {
  return new MessageWriter('K', 16).int32(processId).int32(secretKey).finish();
}
export function decodeBackendKeyData(body: Uint8Array): { processId: number; secretKey: number } {
  const r = new MessageReader(body);
  return { processId: r.int32(), secretKey: r.int32() };
}
export type TransactionStatus = 'I' | 'T' | 'E';
export function encodeReadyForQuery(status: TransactionStatus = 'I'): Buffer {
  return new MessageWriter('Z', 8).byte(status.charCodeAt(0)).finish();
}
export function decodeReadyForQuery(body: Uint8Array): TransactionStatus {
  const r = new MessageReader(body);
  return String.fromCharCode(r.byte()) as TransactionStatus;
}
export function encodeQuery(sql: string): Buffer {
  return new MessageWriter('Q', 16 + sql.length * 3).cstring(sql).finish();
}
/** Server side of `Q`: pq_getmsgstring + pq_getmsgend, with their exact errors. */
export function decodeQuery(body: Uint8Array): string {
  const r = new MessageReader(body);
  const s = r.cstring();
  r.end();
  return s;
}
export function encodeTerminate(): Buffer {
  return new MessageWriter('X', 8).finish();
}
export function encodeEmptyQueryResponse(): Buffer {
  return new MessageWriter('I', 8).finish();
}

// ---------------------------------------------------------------------------------------------
// Result sets

export const TypeOid = { INT8: 20, INT4: 23, TEXT: 25, OID: 26 } as const;

export interface ColumnSpec {
  name: string;
  typeOid: number;
  /** pg_type.typlen as sent (libpq ignores it; copied for byte-identical replies). */
  typlen: number;
  typmod: number;
  tableOid?: number;
  columnNumber?: number;
  /** 0 = text (the only format here). */
  format?: number;
}

function col(name: string, typeOid: number, typlen: number, typmod: number): ColumnSpec {
  return { name, typeOid, typlen, typmod };
}

/**
 * The exact RowDescription columns of each replication command's result set (PostgreSQL 15),
 * quirks included: TIMELINE_HISTORY and BASE_BACKUP use typmod 0, BASE_BACKUP's int8 `tli` has typlen -1.
 */
export const ReplicationColumns = {
  identifySystem: [col('systemid', 25, -1, -1), col('timeline', 23, 4, -1), col('xlogpos', 25, -1, -1), col('dbname', 25, -1, -1)],
  /** SHOW: one text column named after the variable (its canonical name, e.g. `DateStyle`). */
  show: (name: string): ColumnSpec[] => [col(name, 25, -1, -1)],
  timelineHistory: [col('filename', 25, -1, 0), col('content', 25, -1, 0)],
  createReplicationSlot: [col('slot_name', 25, -1, -1), col('consistent_point', 25, -1, -1), col('snapshot_name', 25, -1, -1), col('output_plugin', 25, -1, -1)],
  readReplicationSlot: [col('slot_type', 25, -1, -1), col('restart_lsn', 25, -1, -1), col('restart_tli', 20, 8, -1)],
  /** After streaming a historic timeline to its end. */
  startReplicationNextTli: [col('next_tli', 20, 8, -1), col('next_tli_startpos', 25, -1, -1)],
  /** BASE_BACKUP start and end positions. */
  baseBackupXlogRecPtr: [col('recptr', 25, -1, 0), col('tli', 20, -1, 0)],
  baseBackupTablespaces: [col('spcoid', 26, 4, 0), col('spclocation', 25, -1, 0), col('size', 20, 8, 0)],
} as const satisfies Record<string, ColumnSpec[] | ((n: string) => ColumnSpec[])>;

export function encodeRowDescription(columns: readonly ColumnSpec[]): Buffer {
  const w = new MessageWriter('T', 32 + columns.length * 40).int16(columns.length);
  for (const c of columns) {
    w.cstring(c.name)
      .int32(c.tableOid ?? 0)
      .int16(c.columnNumber ?? 0)
      .int32(c.typeOid)
      .int16(c.typlen)
      .int32(c.typmod)
      .int16(c.format ?? 0);
  }
  return w.finish();
}
export function decodeRowDescription(body: Uint8Array): ColumnSpec[] {
  const r = new MessageReader(body);
  const n = r.int16();
  const cols: ColumnSpec[] = [];
  for (let i = 0; i < n; i++) {
    const name = r.cstring();
    const tableOid = r.uint32();
    const columnNumber = r.int16();
    const typeOid = r.uint32();
    const typlen = r.int16();
    const typmod = r.int32();
    const format = r.int16();
    cols.push({ name, tableOid, columnNumber, typeOid, typlen, typmod, format });
  }
  return cols;
}

export type CellValue = string | Uint8Array | null;

export function encodeDataRow(values: readonly CellValue[]): Buffer {
  let size = 16;
  for (const v of values) size += 4 + (v === null ? 0 : typeof v === 'string' ? v.length * 3 : v.length);
  const w = new MessageWriter('D', size).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else {
      const b = typeof v === 'string' ? enc.encode(v) : v;
      w.int32(b.length).bytes(b);
    }
  }
  return w.finish();
}
/** DataRow cells as views into the body (null for SQL NULL). */
export function decodeDataRow(body: Uint8Array): (Uint8Array | null)[] {
  const r = new MessageReader(body);
  const n = r.int16();
  const cells: (Uint8Array | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    cells.push(len === -1 ? null : r.bytes(len));
  }
  return cells;
}
export function encodeCommandComplete(tag: string): Buffer {
  return new MessageWriter('C', 8 + tag.length).cstring(tag).finish();
}
export function decodeCommandComplete(body: Uint8Array): string {
  return new MessageReader(body).cstring();
}

/** RowDescription + DataRows + CommandComplete, as one buffer (no ReadyForQuery). */
export function encodeResultSet(columns: readonly ColumnSpec[], rows: readonly (readonly CellValue[])[], tag: string): Buffer {
  const parts = [encodeRowDescription(columns)];
  for (const row of rows) {
    assert(row.length === columns.length, 'DataRow width differs from RowDescription');
    parts.push(encodeDataRow(row));
  }
  parts.push(encodeCommandComplete(tag));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// ErrorResponse `E` / NoticeResponse `N`

export type Severity = 'PANIC' | 'FATAL' | 'ERROR' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

export interface ErrorFields {
  /** `S`: localized severity. */
  severity: string;
  /** `V`: severity, never localized. */
  severityV?: string;
  /** `C`: SQLSTATE. */
  code: string;
  /** `M` */
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

// Field codes in the order PostgreSQL's send_message_to_frontend() writes them.
const FIELD_CODES: [string, keyof ErrorFields][] = [
  ['S', 'severity'],
  ['V', 'severityV'],
  ['C', 'code'],
  ['M', 'message'],
  ['D', 'detail'],
  ['H', 'hint'],
  ['P', 'position'],
  ['p', 'internalPosition'],
  ['q', 'internalQuery'],
  ['W', 'where'],
  ['s', 'schema'],
  ['t', 'table'],
  ['c', 'column'],
  ['d', 'dataType'],
  ['n', 'constraint'],
  ['F', 'file'],
  ['L', 'line'],
  ['R', 'routine'],
];
const FIELD_BY_CODE = new Map(FIELD_CODES.map(([c, k]) => [c.charCodeAt(0), k]));

function encodeFields(type: 'E' | 'N', f: ErrorFields): Buffer {
  const w = new MessageWriter(type, 128);
  for (const [c, k] of FIELD_CODES) {
    const v = f[k];
    if (v === undefined) continue;
    w.byte(c.charCodeAt(0)).cstring(v);
  }
  return w.byte(0).finish();
}
export function encodeErrorResponse(f: ErrorFields): Buffer {
  return encodeFields('E', f);
}
export function encodeNoticeResponse(f: ErrorFields): Buffer {
  return encodeFields('N', f);
}

/** Wire fields for a WalstreamError: S, V, C, M, D, H, then F (walstream), L (if given) and R (the stable error code). */
export function errorFieldsFrom(err: WalstreamError, severity: Severity, where: { file?: string; line?: string; routine?: string } = {}): ErrorFields {
  const f: ErrorFields = { severity, severityV: severity, code: err.sqlstate, message: err.message };
  if (err.detail !== undefined) f.detail = err.detail;
  if (err.hint !== undefined) f.hint = err.hint;
  f.file = where.file ?? 'walstream';
  if (where.line !== undefined) f.line = where.line;
  f.routine = where.routine ?? err.code;
  return f;
}
export function errorResponseFrom(err: WalstreamError, severity: Severity = 'ERROR', where?: { file?: string; line?: string; routine?: string }): Buffer {
  return encodeErrorResponse(errorFieldsFrom(err, severity, where));
}
export function noticeResponseFrom(err: WalstreamError, severity: Severity = 'NOTICE'): Buffer {
  return encodeNoticeResponse(errorFieldsFrom(err, severity));
}
/** The protocol-2 style error PostgreSQL sends to a client asking for protocol < 3: 'E' + text, no length word. */
export function encodeErrorResponseV2(message: string): Buffer {
  return Buffer.concat([Buffer.from('EFATAL:  ' + message + '\n', 'utf8'), Buffer.from([0])]);
}

export function decodeErrorFields(body: Uint8Array): ErrorFields {
  const r = new MessageReader(body);
  const f: Partial<ErrorFields> & Record<string, string> = {};
  for (;;) {
    const c = r.byte();
    if (c === 0) break;
    const v = r.cstring();
    const k = FIELD_BY_CODE.get(c);
    if (k !== undefined) f[k] = v;
  }
  return { ...f, severity: f.severity ?? f.severityV ?? 'ERROR', code: f.code ?? 'XX000', message: f.message ?? '' } as ErrorFields;
}
/** A received ErrorResponse as a WalstreamError (code WS_REMOTE, the server's SQLSTATE). */
export function errorFromFields(f: ErrorFields): WalstreamError {
  const opts: { detail?: string; hint?: string } = {};
  if (f.detail !== undefined) opts.detail = f.detail;
  if (f.hint !== undefined) opts.hint = f.hint;
  return Errors.remote(f.code, f.message, opts);
}

// ---------------------------------------------------------------------------------------------
// COPY

/** CopyBothResponse `W`: overall format 0, 0 columns (what a walsender sends). */
export function encodeCopyBothResponse(): Buffer {
  return new MessageWriter('W', 8).byte(0).int16(0).finish();
}
/** CopyOutResponse `H`: overall format 0, 0 columns (what BASE_BACKUP sends). */
export function encodeCopyOutResponse(): Buffer {
  return new MessageWriter('H', 8).byte(0).int16(0).finish();
}
export function decodeCopyResponse(body: Uint8Array): { format: number; columnFormats: number[] } {
  const r = new MessageReader(body);
  const format = r.byte();
  const n = r.int16();
  const columnFormats: number[] = [];
  for (let i = 0; i < n; i++) columnFormats.push(r.int16());
  return { format, columnFormats };
}
/** CopyData `d` carrying `payload` (copies it; see writeCopyDataHeader for the zero-copy way). */
export function encodeCopyData(payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + payload.length);
  writeCopyDataHeader(b, 0, payload.length);
  b.set(payload, 5);
  return b;
}
export const COPY_DATA_HEADER_BYTES = 5;
/** Writes the 5-byte CopyData header for a payload of `payloadBytes` at `buf[off]`. */
export function writeCopyDataHeader(buf: Uint8Array, off: number, payloadBytes: number): void {
  assert(payloadBytes >= 0 && payloadBytes <= 0x7fff_fffb, 'CopyData payload too large');
  buf[off] = 0x64;
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(off + 1, payloadBytes + 4);
}
export function encodeCopyDone(): Buffer {
  return new MessageWriter('c', 8).finish();
}

// ---------------------------------------------------------------------------------------------
// CopyBoth sub-messages (the CopyData payload starts with the kind byte)

/** `w` + dataStart + walEnd + sendTime. */
export const XLOGDATA_HEADER_BYTES = 25;
/** CopyData header (5) + XLogData header (25): what precedes the WAL bytes on the wire. */
export const XLOGDATA_FRAME_HEADER_BYTES = 30;

export interface XLogDataHeader {
  dataStart: Lsn;
  walEnd: Lsn;
  /** Server clock, PostgreSQL timestamp (µs since 2000-01-01). */
  sendTime: number;
}

/** Writes the 25-byte XLogData header (`w`, dataStart, walEnd, sendTime) at `buf[off]`. */
export function writeXLogDataHeader(buf: Uint8Array, off: number, h: XLogDataHeader): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf[off] = 0x77;
  writeLsnBE(dv, off + 1, h.dataStart);
  writeLsnBE(dv, off + 9, h.walEnd);
  writeInt64BE(buf, off + 17, h.sendTime);
}
/**
 * Writes CopyData header + XLogData header (30 bytes) at `buf[off]` for `payloadBytes` of WAL that
 * the caller places at `buf[off + 30]`: the whole message then goes out as one buffer, no copy.
 */
export function writeXLogDataFrameHeader(buf: Uint8Array, off: number, h: XLogDataHeader, payloadBytes: number): void {
  writeCopyDataHeader(buf, off, XLOGDATA_HEADER_BYTES + payloadBytes);
  writeXLogDataHeader(buf, off + 5, h);
}
/** A whole XLogData CopyData message (copies `wal`). */
export function encodeXLogData(h: XLogDataHeader, wal: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(XLOGDATA_FRAME_HEADER_BYTES + wal.length);
  writeXLogDataFrameHeader(b, 0, h, wal.length);
  b.set(wal, XLOGDATA_FRAME_HEADER_BYTES);
  return b;
}
export interface XLogData extends XLogDataHeader {
  /** View of the WAL bytes (little-endian WAL, as in the segment files). */
  data: Uint8Array;
}
/** Decodes a CopyData payload that starts with `w`. */
export function decodeXLogData(payload: Uint8Array): XLogData {
  const r = new MessageReader(payload);
  if (r.byte() !== 0x77) throw Errors.protocolViolation('not an XLogData message');
  const dataStart = r.lsn();
  const walEnd = r.lsn();
  const sendTime = r.int64();
  return { dataStart, walEnd, sendTime, data: r.rest() };
}

export interface PrimaryKeepalive {
  walEnd: Lsn;
  sendTime: number;
  replyRequested: boolean;
}
/** A whole PrimaryKeepalive CopyData message (`k`). */
export function encodePrimaryKeepalive(k: PrimaryKeepalive): Buffer {
  const b = Buffer.allocUnsafe(5 + 18);
  writeCopyDataHeader(b, 0, 18);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[5] = 0x6b;
  writeLsnBE(dv, 6, k.walEnd);
  writeInt64BE(b, 14, k.sendTime);
  b[22] = k.replyRequested ? 1 : 0;
  return b;
}
export function decodePrimaryKeepalive(payload: Uint8Array): PrimaryKeepalive {
  const r = new MessageReader(payload);
  if (r.byte() !== 0x6b) throw Errors.protocolViolation('not a keepalive message');
  const walEnd = r.lsn();
  const sendTime = r.int64();
  const replyRequested = r.byte() !== 0;
  return { walEnd, sendTime, replyRequested };
}

export interface StandbyStatusUpdate {
  /** Last WAL byte + 1 received and written; 0 = unknown. */
  write: Lsn;
  flush: Lsn;
  apply: Lsn;
  clientTime: number;
  replyRequested: boolean;
}
/** A whole StandbyStatusUpdate CopyData message (`r`). */
export function encodeStandbyStatusUpdate(s: StandbyStatusUpdate): Buffer {
  const b = Buffer.allocUnsafe(5 + 34);
  writeCopyDataHeader(b, 0, 34);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[5] = 0x72;
  writeLsnBE(dv, 6, s.write);
  writeLsnBE(dv, 14, s.flush);
  writeLsnBE(dv, 22, s.apply);
  writeInt64BE(b, 30, s.clientTime);
  b[38] = s.replyRequested ? 1 : 0;
  return b;
}
/** Like PostgreSQL's ProcessStandbyReplyMessage: a short message is 08P01 "insufficient data left in message"; extra bytes are ignored. */
export function decodeStandbyStatusUpdate(payload: Uint8Array): StandbyStatusUpdate {
  const r = new MessageReader(payload);
  if (r.byte() !== 0x72) throw Errors.protocolViolation('not a standby status update');
  const write = r.lsn();
  const flush = r.lsn();
  const apply = r.lsn();
  const clientTime = r.int64();
  const replyRequested = r.byte() !== 0;
  return { write, flush, apply, clientTime, replyRequested };
}

export interface HotStandbyFeedback {
  clientTime: number;
  xmin: number;
  xminEpoch: number;
  catalogXmin: number;
  catalogXminEpoch: number;
}
/** A whole HotStandbyFeedback CopyData message (`h`). */
export function encodeHotStandbyFeedback(h: HotStandbyFeedback): Buffer {
  const b = Buffer.allocUnsafe(5 + 25);
  writeCopyDataHeader(b, 0, 25);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[5] = 0x68;
  writeInt64BE(b, 6, h.clientTime);
  dv.setUint32(14, h.xmin >>> 0);
  dv.setUint32(18, h.xminEpoch >>> 0);
  dv.setUint32(22, h.catalogXmin >>> 0);
  dv.setUint32(26, h.catalogXminEpoch >>> 0);
  return b;
}
export function decodeHotStandbyFeedback(payload: Uint8Array): HotStandbyFeedback {
  const r = new MessageReader(payload);
  if (r.byte() !== 0x68) throw Errors.protocolViolation('not a hot standby feedback message');
  const clientTime = r.int64();
  return { clientTime, xmin: r.uint32(), xminEpoch: r.uint32(), catalogXmin: r.uint32(), catalogXminEpoch: r.uint32() };
}

// walstream extension: StandbyReceivedUpdate `R` (standby → primary), for synchronous_commit =
// remote_receive. PostgreSQL's walsender ends the connection on a CopyData kind it does not know,
// so both sides agree first: the client asks with the startup parameter RECEIVED_REPORT_PARAMETER
// = 'on'; walstream's walsender answers with a ParameterStatus of the same name and value and then
// accepts `R` during COPY BOTH. PostgreSQL takes the dotted name as a custom placeholder setting
// and reports nothing back, so the client never sends it `R`. Without the request the handshake is
// PostgreSQL's, byte for byte, and `R` is an unexpected message type, as in PostgreSQL.

/** Startup parameter (client's request) and ParameterStatus (server's agreement), value 'on'. */
export const RECEIVED_REPORT_PARAMETER = 'walstream.received_report';

export interface StandbyReceivedUpdate {
  /** Last WAL byte + 1 the standby holds (received, maybe not yet written); 0 = unknown. */
  received: Lsn;
  /** Standby's clock (PostgreSQL µs). */
  clientTime: number;
}
/** A whole StandbyReceivedUpdate CopyData message: Byte1('R') Int64 received Int64 clientTime. */
export function encodeStandbyReceivedUpdate(u: StandbyReceivedUpdate): Buffer {
  const b = Buffer.allocUnsafe(5 + 17);
  writeCopyDataHeader(b, 0, 17);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[5] = 0x52;
  writeLsnBE(dv, 6, u.received);
  writeInt64BE(b, 14, u.clientTime);
  return b;
}
/** Short: 08P01 "insufficient data left in message"; extra bytes are ignored (as for `r`). */
export function decodeStandbyReceivedUpdate(payload: Uint8Array): StandbyReceivedUpdate {
  const r = new MessageReader(payload);
  if (r.byte() !== 0x52) throw Errors.protocolViolation('not a standby received update');
  const received = r.lsn();
  const clientTime = r.int64();
  return { received, clientTime };
}

export type CopyBothMessage =
  | ({ kind: 'w' } & XLogData)
  | ({ kind: 'k' } & PrimaryKeepalive)
  | ({ kind: 'r' } & StandbyStatusUpdate)
  | ({ kind: 'h' } & HotStandbyFeedback)
  | ({ kind: 'R' } & StandbyReceivedUpdate)
  | { kind: 'unknown'; type: number };

/** Decodes any CopyBoth sub-message by its kind byte; an empty payload or another kind gives `unknown`. */
export function decodeCopyBothMessage(payload: Uint8Array): CopyBothMessage {
  const k = payload.length > 0 ? payload[0]! : -1;
  switch (k) {
    case 0x77:
      return { kind: 'w', ...decodeXLogData(payload) };
    case 0x6b:
      return { kind: 'k', ...decodePrimaryKeepalive(payload) };
    case 0x72:
      return { kind: 'r', ...decodeStandbyStatusUpdate(payload) };
    case 0x68:
      return { kind: 'h', ...decodeHotStandbyFeedback(payload) };
    case 0x52:
      return { kind: 'R', ...decodeStandbyReceivedUpdate(payload) };
    default:
      return { kind: 'unknown', type: k };
  }
}

export function textCell(cell: Uint8Array | null): string | null {
  return cell === null ? null : utf8.decode(cell);
}
