// WAL records in PostgreSQL 15's format: a 24-byte XLogRecord header, body fragment headers, then
// payloads; CRC-32C over body then header[0,20). walstream's change records carry everything in
// the main data of a record of rmgr RM_WALSTREAM_ID; this module builds and decodes them.
// Pure functions: no I/O.

import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import {
  MAX_RECORD_BYTES, RM_MAX_BUILTIN_ID, RM_MIN_CUSTOM_ID, RM_WALSTREAM_ID, SIZE_OF_XLOG_RECORD,
  WS_TXN, XLR_BLOCK_ID_DATA_LONG, XLR_BLOCK_ID_DATA_SHORT, XLR_BLOCK_ID_ORIGIN, XLR_BLOCK_ID_TOPLEVEL_XID,
  XLR_MAX_BLOCK_ID,
} from './consts.js';
import { CRC32C_INIT, crc32cFinal, crc32cOrdinary, crc32cUpdate } from './crc32c.js';
import { type Lsn, readLsnLE, writeLsnLE } from './lsn.js';
import { BATCH_DELETE, BATCH_PUT, MAX_KEY_BYTES, type StoreOp, type StoreOpBatch } from './txn-ops.js';
import { encodeValue, fastValueBound, writeValue } from '../util/codec.js';
import { i64leNumber, u16le, u32le } from '../util/bytes.js';

/** Op kinds as written in WAL. */
export const OP_PUT = 1;
export const OP_DELETE = 2;
const OPF_KEY_IS_STRING = 1;

/**
 * One operation of a TXN record: the store's own op type, so a transaction goes from the API to
 * WAL and from WAL (redo) to the store without being mapped.
 */
export type TxnOp = StoreOp;

export interface RecordHeader {
  totLen: number;
  xid: number;
  prev: Lsn;
  info: number;
  rmid: number;
  crc: number;
}

const enc = new TextEncoder();

export function readRecordHeader(buf: Uint8Array, off = 0): RecordHeader {
  assert(off >= 0 && off + SIZE_OF_XLOG_RECORD <= buf.length, 'readRecordHeader: header outside the buffer');
  return {
    totLen: u32le(buf, off),
    xid: u32le(buf, off + 4),
    prev: readLsnLE(buf, off + 8),
    info: buf[off + 16]!,
    rmid: buf[off + 17]!,
    crc: u32le(buf, off + 20),
  };
}

export function validRmid(rmid: number): boolean {
  return rmid <= RM_MAX_BUILTIN_ID || rmid >= RM_MIN_CUSTOM_ID;
}

/** CRC-32C of a whole record laid out contiguously in `rec[0, totLen)`. */
export function recordCrc(rec: Uint8Array, totLen: number): number {
  let c = crc32cUpdate(CRC32C_INIT, rec, SIZE_OF_XLOG_RECORD, totLen);
  c = crc32cUpdate(c, rec, 0, 20);
  return crc32cFinal(c);
}

/** Size of a record whose body is only main data of `mainLen` bytes. */
export function mainDataRecordSize(mainLen: number): number {
  if (mainLen === 0) return SIZE_OF_XLOG_RECORD;
  return SIZE_OF_XLOG_RECORD + (mainLen < 256 ? 2 : 5) + mainLen;
}

/**
 * Lay out a record with main data only into `out` (which must hold mainDataRecordSize bytes):
 * writes header and data header, returns the offset at which the caller writes main data. Call
 * `finishRecord` afterwards to set the CRC.
 */
export function beginMainDataRecord(out: Uint8Array, xid: number, prev: Lsn, rmid: number, info: number, mainLen: number): number {
  const totLen = mainDataRecordSize(mainLen);
  putU32(out, 0, totLen);
  putU32(out, 4, xid >>> 0);
  writeLsnLE(out, 8, prev);
  out[16] = info;
  out[17] = rmid;
  out[18] = 0;
  out[19] = 0;
  putU32(out, 20, 0);
  if (mainLen === 0) return SIZE_OF_XLOG_RECORD;
  if (mainLen < 256) {
    out[24] = XLR_BLOCK_ID_DATA_SHORT;
    out[25] = mainLen;
    return 26;
  }
  out[24] = XLR_BLOCK_ID_DATA_LONG;
  putU32(out, 25, mainLen);
  return 29;
}

export function finishRecord(out: Uint8Array, totLen: number): void {
  putU32(out, 20, recordCrc(out, totLen));
}

const tableBytesCache = new Map<string, Uint8Array>();
/** UTF-8 bytes of a table name (names are few and repeat: cached). */
export function tableNameBytes(t: string): Uint8Array {
  let b = tableBytesCache.get(t);
  if (b === undefined) {
    b = enc.encode(t);
    if (tableBytesCache.size < 10_000) tableBytesCache.set(t, b);
  }
  return b;
}

/** Main-data size of a TXN record. */
export function txnMainDataSize(ops: readonly TxnOp[]): number {
  let n = 8 + 4;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    n += 3 + tableNameBytes(op.table).length + 4 + op.key.length;
    if (op.kind === 'put') n += 4 + op.value!.length;
  }
  return n;
}

function putU32(out: Uint8Array, p: number, v: number): void {
  out[p] = v & 0xff;
  out[p + 1] = (v >>> 8) & 0xff;
  out[p + 2] = (v >>> 16) & 0xff;
  out[p + 3] = (v >>> 24) & 0xff;
}

/**
 * Build a TXN record: main data = commitTime i64 (PG µs), nops u32, then per op:
 * kind u8, flags u8, tableLen u8, table, keyLen u32, key, [valueLen u32, value]. All little-endian.
 */
export function buildTxnRecord(xid: number, prev: Lsn, commitTimeUs: number, ops: readonly TxnOp[], scratch?: Uint8Array): Uint8Array {
  const mainLen = txnMainDataSize(ops);
  const totLen = mainDataRecordSize(mainLen);
  if (totLen > MAX_RECORD_BYTES) throw Errors.transactionTooLarge(totLen, MAX_RECORD_BYTES);
  const out = scratch !== undefined && scratch.length >= totLen ? scratch.subarray(0, totLen) : new Uint8Array(totLen);
  let p = beginMainDataRecord(out, xid, prev, RM_WALSTREAM_ID, WS_TXN, mainLen);
  writeLsnLE(out, p, commitTimeUs); // non-negative µs since 2000 fit the LSN (uint64) writer
  p += 8;
  putU32(out, p, ops.length);
  p += 4;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const tb = tableNameBytes(op.table);
    out[p++] = op.kind === 'put' ? OP_PUT : OP_DELETE;
    out[p++] = op.keyIsString ? OPF_KEY_IS_STRING : 0;
    out[p++] = tb.length;
    out.set(tb, p);
    p += tb.length;
    putU32(out, p, op.key.length);
    p += 4;
    out.set(op.key, p);
    p += op.key.length;
    if (op.kind === 'put') {
      const v = op.value!;
      putU32(out, p, v.length);
      p += 4;
      out.set(v, p);
      p += v.length;
    }
  }
  assert(p === totLen, 'TXN record size mismatch');
  finishRecord(out, totLen);
  return out;
}

/** Offset of the first op in a TxnRecordBuilder: header, long main-data header, commit time, op count. */
const TXN_OPS_START = SIZE_OF_XLOG_RECORD + 5 + 8 + 4;
/** A builder grown past this goes back to its initial size on reset(). */
const BUILDER_KEEP_BYTES = 4 * 1024 * 1024;

/**
 * Builds one TXN record in place, op by op, in a reused buffer: keys and values are encoded
 * straight into the record (values as encodeValue's bytes), and the builder is the StoreOpBatch
 * of those same bytes, so the store applies exactly what the record logs with no per-op
 * objects. Same format as buildTxnRecord. Used by one thread; reset() before each transaction.
 * An op is written in three steps (openOp, writeValue for puts, closeOp) and only closeOp
 * makes it part of the record, so an op refused half-way (bad key, value too large) leaves none.
 */
export class TxnRecordBuilder implements StoreOpBatch {
  buf: Uint8Array;
  /** end of the closed ops */
  pos = TXN_OPS_START;
  n = 0;
  readonly kind: number[] = [];
  readonly table: string[] = [];
  readonly tableBytes: Uint8Array[] = [];
  readonly keyBuf: Uint8Array[] = [];
  readonly keyOff: number[] = [];
  readonly keyLen: number[] = [];
  readonly keyIsString: boolean[] = [];
  readonly valBuf: Uint8Array[] = [];
  readonly valOff: number[] = [];
  readonly valLen: number[] = [];
  // the op being written
  private cur = 0;
  private pKind = 0;
  private pTable = '';
  private pTableBytes: Uint8Array = new Uint8Array(0);
  private pKeyOff = 0;
  /** key length of the op being written */
  pKeyLen = 0;
  private pKeyIsString = false;
  private pValOff = 0;
  private pValLen = 0;

  constructor(private readonly initialBytes = 64 * 1024) {
    this.buf = new Uint8Array(Math.max(initialBytes, 256));
  }

  reset(): void {
    if (this.buf.length > BUILDER_KEEP_BYTES) this.buf = new Uint8Array(Math.max(this.initialBytes, 256));
    for (let i = 0; i < this.n; i++) {
      this.keyBuf[i] = this.buf;
      this.valBuf[i] = this.buf;
    }
    this.pos = TXN_OPS_START;
    this.n = 0;
  }

  /** Size of the record the closed ops make. */
  recordBytes(): number {
    return mainDataRecordSize(this.pos - (SIZE_OF_XLOG_RECORD + 5));
  }

  private room(end: number): Uint8Array {
    const b = this.buf;
    if (end <= b.length) return b;
    const nb = new Uint8Array(Math.max(end, b.length * 2));
    nb.set(b.subarray(0, this.cur));
    this.buf = nb;
    return nb;
  }

  /**
   * Start an op: kind OP_PUT/OP_DELETE, table (validated by the caller; tb = its UTF-8) and key
   * (a string is stored as UTF-8 with the key-is-string flag). Throws invalidKey (nothing written).
   */
  openOp(kind: number, table: string, tb: Uint8Array, key: string | Uint8Array): void {
    let p = this.pos;
    this.cur = p;
    const tl = tb.length;
    const keyAt = p + 3 + tl + 4;
    let klen: number;
    let isString: boolean;
    if (typeof key === 'string') {
      isString = true;
      const n = key.length;
      // every UTF-16 unit is at least one UTF-8 byte: refuse an overlong key before making room for it
      if (n > MAX_KEY_BYTES) throw Errors.invalidKey(`longer than ${MAX_KEY_BYTES} bytes (${Buffer.byteLength(key, 'utf8')})`);
      const b = this.room(keyAt + n * 3);
      klen = -1;
      if (n <= 64) {
        let i = 0;
        for (; i < n; i++) {
          const c = key.charCodeAt(i);
          if (c >= 0x80) break;
          b[keyAt + i] = c;
        }
        if (i === n) klen = n;
      }
      if (klen < 0) klen = enc.encodeInto(key, b.subarray(keyAt, keyAt + n * 3)).written;
    } else if (key instanceof Uint8Array) {
      isString = false;
      klen = key.length;
      const b = this.room(keyAt + klen);
      if (klen <= 32) for (let i = 0; i < klen; i++) b[keyAt + i] = key[i]!;
      else b.set(key, keyAt);
    } else {
      throw Errors.invalidKey('must be a string or Uint8Array');
    }
    if (klen === 0) throw Errors.invalidKey('must not be empty');
    if (klen > MAX_KEY_BYTES) throw Errors.invalidKey(`longer than ${MAX_KEY_BYTES} bytes (${klen})`);
    const b = this.buf;
    b[p++] = kind;
    b[p++] = isString ? OPF_KEY_IS_STRING : 0;
    b[p++] = tl;
    for (let i = 0; i < tl; i++) b[p + i] = tb[i]!;
    p += tl;
    putU32(b, p, klen);
    this.pKind = kind;
    this.pTable = table;
    this.pTableBytes = tb;
    this.pKeyOff = keyAt;
    this.pKeyLen = klen;
    this.pKeyIsString = isString;
    this.pValOff = 0;
    this.pValLen = 0;
    this.cur = keyAt + klen;
  }

  /** A put's value, encoded as encodeValue(value) would; returns the encoded length. */
  writeValue(value: unknown): number {
    const lenAt = this.cur;
    const at = lenAt + 4;
    let end = -1;
    const bound = fastValueBound(value);
    if (bound >= 0) end = writeValue(value, this.room(at + bound), at);
    if (end < 0) {
      const v = encodeValue(value);
      this.room(at + v.length).set(v, at);
      end = at + v.length;
    }
    const len = end - at;
    putU32(this.buf, lenAt, len);
    this.pValOff = at;
    this.pValLen = len;
    this.cur = end;
    return len;
  }

  /** Make the op being written part of the record. */
  closeOp(): void {
    const i = this.n;
    if (i === this.kind.length) {
      this.kind.push(0);
      this.table.push('');
      this.tableBytes.push(this.pTableBytes);
      this.keyBuf.push(this.buf);
      this.keyOff.push(0);
      this.keyLen.push(0);
      this.keyIsString.push(false);
      this.valBuf.push(this.buf);
      this.valOff.push(0);
      this.valLen.push(0);
    }
    this.kind[i] = this.pKind === OP_PUT ? BATCH_PUT : BATCH_DELETE;
    this.table[i] = this.pTable;
    this.tableBytes[i] = this.pTableBytes;
    this.keyOff[i] = this.pKeyOff;
    this.keyLen[i] = this.pKeyLen;
    this.keyIsString[i] = this.pKeyIsString;
    this.valOff[i] = this.pValOff;
    this.valLen[i] = this.pValLen;
    this.n = i + 1;
    this.pos = this.cur;
  }

  /** Point every op's key and value at the current buffer (it may have grown): call before applying. */
  seal(): void {
    const b = this.buf;
    for (let i = 0; i < this.n; i++) {
      this.keyBuf[i] = b;
      this.valBuf[i] = b;
    }
  }

  /**
   * Finish the record (header with xid, xl_prev and CRC; commit time; op count) and return it: a
   * view of this builder's buffer, valid until the next reset(). Throws transactionTooLarge past
   * MAX_RECORD_BYTES.
   */
  finish(xid: number, prev: Lsn, commitTimeUs: number): Uint8Array {
    const mainStart = SIZE_OF_XLOG_RECORD + 5;
    const mainLen = this.pos - mainStart;
    const totLen = mainDataRecordSize(mainLen);
    if (totLen > MAX_RECORD_BYTES) throw Errors.transactionTooLarge(totLen, MAX_RECORD_BYTES);
    // a short main-data header (2 bytes, not 5) puts the record 3 bytes later in the buffer
    const start = this.pos - totLen;
    this.cur = this.pos;
    const b = this.room(this.pos + 20); // room for the CRC's copy of the header (below)
    const rec = b.subarray(start, this.pos);
    const p = beginMainDataRecord(rec, xid, prev, RM_WALSTREAM_ID, WS_TXN, mainLen);
    assert(start + p === mainStart, 'TXN builder layout');
    writeLsnLE(rec, p, commitTimeUs);
    putU32(rec, p + 8, this.n);
    // CRC-32C of body then header[0, 20) (PostgreSQL's order) in one pass: a copy of the header
    // bytes goes right after the record, so body and header are one contiguous range.
    b.copyWithin(this.pos, start, start + 20);
    putU32(rec, 20, crc32cOrdinary(b, start + SIZE_OF_XLOG_RECORD, this.pos + 20));
    return rec;
  }
}

export interface DecodedTxn {
  commitTimeUs: number;
  ops: TxnOp[];
}

const dec = new TextDecoder();

const badTxn = (why: string) => Errors.walCorrupt('?', `malformed TXN record: ${why}`);

/** Table names as decoded last: a record's ops name few tables, replay decodes them per op. */
let lastTableBytes: Uint8Array = new Uint8Array(0);
let lastTable = '';

function decodeTable(b: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n === lastTableBytes.length) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (b[start + i] !== lastTableBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastTable;
  }
  lastTable = dec.decode(b.subarray(start, end));
  lastTableBytes = b.slice(start, end);
  return lastTable;
}

/** Decode TXN main data. `copy` = copy keys/values out (needed when `main` is in a reused buffer). */
export function decodeTxnMainData(main: Uint8Array, copy: boolean): DecodedTxn {
  const len = main.length;
  if (len < 12) throw badTxn('too short');
  const commitTimeUs = i64leNumber(main, 0);
  const nops = u32le(main, 8);
  let p = 12;
  const ops: TxnOp[] = [];
  for (let i = 0; i < nops; i++) {
    if (p + 3 > len) throw badTxn('op header past end');
    const kind = main[p]!;
    const flags = main[p + 1]!;
    const tlen = main[p + 2]!;
    p += 3;
    if (kind !== OP_PUT && kind !== OP_DELETE) throw badTxn(`unknown op kind ${kind}`);
    if (p + tlen + 4 > len) throw badTxn('table past end');
    const table = decodeTable(main, p, p + tlen);
    p += tlen;
    const klen = u32le(main, p);
    p += 4;
    if (p + klen > len) throw badTxn('key past end');
    const key = copy ? main.slice(p, p + klen) : main.subarray(p, p + klen);
    p += klen;
    const op: TxnOp = { kind: kind === OP_PUT ? 'put' : 'delete', table, key, keyIsString: (flags & OPF_KEY_IS_STRING) !== 0 };
    if (kind === OP_PUT) {
      if (p + 4 > len) throw badTxn('value length past end');
      const vlen = u32le(main, p);
      p += 4;
      if (p + vlen > len) throw badTxn('value past end');
      op.value = copy ? main.slice(p, p + vlen) : main.subarray(p, p + vlen);
      p += vlen;
    }
    ops.push(op);
  }
  if (p !== len) throw badTxn('trailing bytes');
  return { commitTimeUs, ops };
}

export interface BlockRef {
  id: number;
  forkFlags: number;
  dataLength: number;
  hasImage: boolean;
  imageLength: number;
  rel: [number, number, number] | null;
  block: number;
}

export interface DecodedBody {
  /** Block references in block-id order (one shared empty array when there are none). */
  blocks: readonly BlockRef[];
  origin: number | null;
  toplevelXid: number | null;
  mainDataOffset: number;
  mainDataLength: number;
}

const NO_BLOCKS: readonly BlockRef[] = Object.freeze([]);

/** decodeBody's failure: the reason goes to `errOut`. */
function failBody(errOut: { why: string } | undefined, why: string): null {
  if (errOut) errOut.why = why;
  return null;
}

/**
 * Validate and decode the fragment headers of a whole record (PostgreSQL's DecodeXLogRecord).
 * Returns null with `why` on a malformed body (the reader reports it like pg_waldump does).
 */
export function decodeBody(rec: Uint8Array, totLen: number, errOut?: { why: string }): DecodedBody | null {
  let p = SIZE_OF_XLOG_RECORD;
  let blocks: BlockRef[] | null = null;
  let origin: number | null = null;
  let toplevelXid: number | null = null;
  let mainLen = 0;
  let declared = 0;
  let lastId = -1;
  let prevRel: [number, number, number] | null = null;
  while (p < totLen - declared) {
    const id = rec[p]!;
    if (id === XLR_BLOCK_ID_DATA_SHORT) {
      if (p + 2 > totLen) return failBody(errOut, 'record with invalid length');
      mainLen = rec[p + 1]!;
      p += 2;
      declared += mainLen;
      break;
    } else if (id === XLR_BLOCK_ID_DATA_LONG) {
      if (p + 5 > totLen) return failBody(errOut, 'record with invalid length');
      mainLen = u32le(rec, p + 1);
      p += 5;
      declared += mainLen;
      break;
    } else if (id === XLR_BLOCK_ID_ORIGIN) {
      if (p + 3 > totLen) return failBody(errOut, 'record with invalid length');
      origin = u16le(rec, p + 1);
      p += 3;
    } else if (id === XLR_BLOCK_ID_TOPLEVEL_XID) {
      if (p + 5 > totLen) return failBody(errOut, 'record with invalid length');
      toplevelXid = u32le(rec, p + 1);
      p += 5;
    } else if (id <= XLR_MAX_BLOCK_ID) {
      if (id <= lastId) return failBody(errOut, `out-of-order block_id ${id}`);
      lastId = id;
      if (p + 4 > totLen) return failBody(errOut, 'record with invalid length');
      const forkFlags = rec[p + 1]!;
      const dataLength = u16le(rec, p + 2);
      p += 4;
      const hasData = (forkFlags & 0x20) !== 0;
      if (hasData && dataLength === 0) return failBody(errOut, 'BKPBLOCK_HAS_DATA set, but no data included');
      if (!hasData && dataLength !== 0) return failBody(errOut, `BKPBLOCK_HAS_DATA not set, but data length is ${dataLength}`);
      let imageLength = 0;
      const hasImage = (forkFlags & 0x10) !== 0;
      if (hasImage) {
        if (p + 5 > totLen) return failBody(errOut, 'record with invalid length');
        imageLength = u16le(rec, p);
        const holeOffset = u16le(rec, p + 2);
        const bimg = rec[p + 4]!;
        p += 5;
        const hasHole = (bimg & 0x01) !== 0;
        const compressed = (bimg & 0x1c) !== 0;
        let holeLength = 0;
        if (hasHole && compressed) {
          if (p + 2 > totLen) return failBody(errOut, 'record with invalid length');
          holeLength = u16le(rec, p);
          p += 2;
        } else holeLength = 8192 - imageLength;
        if (hasHole && (holeOffset === 0 || holeLength === 0 || imageLength === 8192)) return failBody(errOut, 'BKPIMAGE_HAS_HOLE set, but hole offset/length invalid');
        if (!hasHole && !compressed && imageLength !== 8192) return failBody(errOut, 'neither BKPIMAGE_HAS_HOLE nor compression set, but block image length is not 8192');
      }
      let rel: [number, number, number] | null;
      if ((forkFlags & 0x80) === 0) {
        if (p + 12 > totLen) return failBody(errOut, 'record with invalid length');
        rel = [u32le(rec, p), u32le(rec, p + 4), u32le(rec, p + 8)];
        p += 12;
      } else {
        if (prevRel === null) return failBody(errOut, 'BKPBLOCK_SAME_REL set but no previous rel');
        rel = prevRel;
      }
      prevRel = rel;
      if (p + 4 > totLen) return failBody(errOut, 'record with invalid length');
      const block = u32le(rec, p);
      p += 4;
      declared += imageLength + dataLength;
      (blocks ??= []).push({ id, forkFlags, dataLength, hasImage, imageLength, rel, block });
    } else {
      return failBody(errOut, `invalid block_id ${id}`);
    }
  }
  if (p + declared !== totLen) return failBody(errOut, 'record with invalid length');
  return { blocks: blocks ?? NO_BLOCKS, origin, toplevelXid, mainDataOffset: totLen - mainLen, mainDataLength: mainLen };
}

export interface CheckpointData {
  redo: Lsn;
  nextXid: number;
  tli: number;
  timeUs: number;
  snapshotName: string;
}

/** Checkpoint main data: redo u64, nextXid u32, tli u32, time i64, nameLen u8, name. */
export function buildCheckpointRecord(xidPrev: Lsn, info: number, c: CheckpointData): Uint8Array {
  const name = enc.encode(c.snapshotName);
  const mainLen = 8 + 4 + 4 + 8 + 1 + name.length;
  const totLen = mainDataRecordSize(mainLen);
  const out = new Uint8Array(totLen);
  let p = beginMainDataRecord(out, 0, xidPrev, RM_WALSTREAM_ID, info, mainLen);
  const dv = new DataView(out.buffer, out.byteOffset, totLen);
  writeLsnLE(out, p, c.redo);
  p += 8;
  dv.setUint32(p, c.nextXid >>> 0, true);
  dv.setUint32(p + 4, c.tli, true);
  dv.setBigInt64(p + 8, BigInt(c.timeUs), true);
  p += 16;
  out[p++] = name.length;
  out.set(name, p);
  finishRecord(out, totLen);
  return out;
}

export function decodeCheckpointMainData(main: Uint8Array): CheckpointData {
  if (main.length < 25 || main.length !== 25 + main[24]!) throw Errors.walCorrupt('?', 'malformed checkpoint record');
  const dv = new DataView(main.buffer, main.byteOffset, main.byteLength);
  return {
    redo: readLsnLE(main, 0),
    nextXid: dv.getUint32(8, true),
    tli: dv.getUint32(12, true),
    timeUs: Number(dv.getBigInt64(16, true)),
    snapshotName: dec.decode(main.subarray(25, 25 + main[24]!)),
  };
}
