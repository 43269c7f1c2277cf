// COPY messages (CopyBothResponse, CopyOutResponse, CopyData, CopyDone) and the CopyBoth
// sub-messages of streaming replication (the CopyData payload starts with the kind byte): XLogData
// `w`, PrimaryKeepalive `k`, StandbyStatusUpdate `r`, HotStandbyFeedback `h` (PostgreSQL 15's
// src/backend/replication/walsender.c and walreceiver.c), and walstream's received report `R`
// (remote_receive). The CopyData and XLogData header writers fill a caller-provided buffer so WAL
// bytes can follow without a copy. Pure functions over bytes, no state, no I/O.

import { Errors } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { writeLsnBE, type Lsn } from '../../wal/lsn.js';
import { MessageReader, MessageWriter, writeInt64BE } from './message-io.js';

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

// walstream extension: StandbyFlushRequest `F` (standby → primary): "flush WAL up to here now".
// A standby's waitForReplay of a synchronousCommit 'off' commit needs WAL the primary has not
// flushed yet, and walsenders send flushed WAL only: without it, the wait lasts until the
// primary's walwriter flushes on its own (wal_writer_delay). Agreed the same way as `R`: the
// client asks with the startup parameter FLUSH_REQUEST_PARAMETER = 'on', walstream's walsender
// answers a ParameterStatus of the same name and value; PostgreSQL never does, and never gets `F`.
// A primary's walsender asks its walwriter to flush up to the LSN (no further than WAL inserted);
// a cascading walsender (a standby flushes only what it receives) agrees but has nothing to ask.

/** Startup parameter (client's request) and ParameterStatus (server's agreement), value 'on'. */
export const FLUSH_REQUEST_PARAMETER = 'walstream.flush_request';

export interface StandbyFlushRequest {
  /** Flush the primary's WAL up to this LSN (end of the commit record waited for). */
  lsn: Lsn;
}
/** A whole StandbyFlushRequest CopyData message: Byte1('F') Int64 lsn. */
export function encodeStandbyFlushRequest(f: StandbyFlushRequest): Buffer {
  const b = Buffer.allocUnsafe(5 + 9);
  writeCopyDataHeader(b, 0, 9);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[5] = 0x46;
  writeLsnBE(dv, 6, f.lsn);
  return b;
}
/** Short: 08P01 "insufficient data left in message"; extra bytes are ignored (as for `r`). */
export function decodeStandbyFlushRequest(payload: Uint8Array): StandbyFlushRequest {
  const r = new MessageReader(payload);
  if (r.byte() !== 0x46) throw Errors.protocolViolation('not a standby flush request');
  return { lsn: r.lsn() };
}

export type CopyBothMessage =
  | ({ kind: 'w' } & XLogData)
  | ({ kind: 'k' } & PrimaryKeepalive)
  | ({ kind: 'r' } & StandbyStatusUpdate)
  | ({ kind: 'h' } & HotStandbyFeedback)
  | ({ kind: 'R' } & StandbyReceivedUpdate)
  | ({ kind: 'F' } & StandbyFlushRequest)
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
    case 0x46:
      return { kind: 'F', ...decodeStandbyFlushRequest(payload) };
    default:
      return { kind: 'unknown', type: k };
  }
}
