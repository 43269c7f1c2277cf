// Encoders and decoders for the PostgreSQL v3 messages a physical replication connection uses,
// named after the wire messages, and the exact RowDescriptions of each replication command's
// result. Framing primitives and timestamps are in message-io.ts, COPY and its CopyBoth
// sub-messages (XLogData, keepalives, status updates) in copy-messages.ts; both re-exported here. Pure functions over bytes: used by
// ReplicationServerConn and ReplicationClientConn; no state, no I/O.
//
// Encoders return whole framed messages (type byte + length word + body) in fresh Buffers, except
// the XLogData header writers, which fill a caller-provided buffer so WAL bytes can follow without
// a copy. Decoders take a message *body* (what FrameDecoder returns) and throw WalstreamErrors
// worded like PostgreSQL's pqformat.c ("insufficient data left in message", 08P01).

import { Errors, WalstreamError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { enc, MessageReader, MessageWriter, utf8 } from './message-io.js';

export * from './message-io.js';
export * from './copy-messages.js';

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

export function textCell(cell: Uint8Array | null): string | null {
  return cell === null ? null : utf8.decode(cell);
}
