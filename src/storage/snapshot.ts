// Store snapshots (the data half of a checkpoint). Who runs it: the checkpointer writes one while
// the writer keeps applying transactions; startup reads one into an empty store before WAL replay.
// What it owns: the snapshot file and its `.tmp` sibling while writing. How it stops: each call
// finishes or throws; a failed write removes its `.tmp` file.
//
// Fuzzy by design: writeSnapshot reads the store in batches (SNAPSHOT_BATCH_ENTRIES entries or
// SNAPSHOT_BATCH_BYTES, one read latch per batch, re-seeking after the last key written) and
// yields to the event loop between batches, so the writer goes on. Replaying WAL from the
// checkpoint's redo point repairs whatever changed meanwhile: puts and deletes carry whole values.
//
// File format (little-endian):
//   header   8 bytes magic "WSSNAP\r\n", u32 version (1), u32 flags (0)
//   records  0x01 TABLE  u8 nameLen (1..63), name             -- later ENTRYs belong to it
//            0x02 ENTRY  u32 keyLen | KEY_IS_STRING(bit 31), u32 valueLen, key, value
//            0x03 END    u32 metaLen, meta, u32 entries low, u32 entries high
//   trailer  u32 CRC-32C of every byte before it; nothing may follow.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errors, WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import { CRC32C_INIT, crc32cFinal, crc32cUpdate } from '../wal/crc32c.js';
import { MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES, type SharedStore, type StoreCursor, type StoreOp } from './store.js';
import { fsyncDirAsync, syncHandle } from '../util/fsync.js';

export const SNAPSHOT_MAGIC = Buffer.from('WSSNAP\r\n', 'latin1');
export const SNAPSHOT_VERSION = 1;
export const SNAPSHOT_HEADER_BYTES = 16;
/** Entries read under one read latch while writing. */
export const SNAPSHOT_BATCH_ENTRIES = 1000;
/** Key+value bytes read under one read latch while writing (at least one entry per batch). */
export const SNAPSHOT_BATCH_BYTES = 4 * 1024 * 1024;
/** Entries applied per transaction while loading. */
export const SNAPSHOT_LOAD_BATCH_ENTRIES = 1000;
/** Value bytes buffered per load transaction. */
export const SNAPSHOT_LOAD_BATCH_BYTES = 8 * 1024 * 1024;
/** Read size while loading, in bytes. */
export const SNAPSHOT_READ_CHUNK_BYTES = 1024 * 1024;

const REC_TABLE = 1;
const REC_ENTRY = 2;
const REC_END = 3;
const KEY_IS_STRING = 0x80000000;
const TWO32 = 0x1_0000_0000;

/** Growable output buffer for one batch. */
class ChunkBuilder {
  buf = Buffer.allocUnsafe(SNAPSHOT_BATCH_BYTES + 64 * 1024);
  n = 0;
  reserve(bytes: number): void {
    if (this.n + bytes <= this.buf.length) return;
    const nb = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + bytes));
    this.buf.copy(nb, 0, 0, this.n);
    this.buf = nb;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf[this.n++] = v;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.n += 4;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
}

/**
 * Stream the whole store into `file` (written to file + '.tmp', fsynced, renamed, directory
 * fsynced). Holds the read latch only per batch.
 */
export async function writeSnapshot(store: SharedStore, file: string, meta: Uint8Array): Promise<{ bytes: number; entries: number }> {
  if (!(meta instanceof Uint8Array)) throw Errors.invalidOption('meta', 'must be a Uint8Array');
  const tmp = file + '.tmp';
  const fh = await fs.promises.open(tmp, 'w');
  let crc = CRC32C_INIT;
  let bytes = 0;
  let entries = 0;
  const out = new ChunkBuilder();
  const flush = async () => {
    if (out.n === 0) return;
    const chunk = out.buf.subarray(0, out.n);
    crc = crc32cUpdate(crc, chunk);
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
    bytes += chunk.length;
    out.n = 0;
  };
  try {
    out.bytes(SNAPSHOT_MAGIC);
    out.u32(SNAPSHOT_VERSION);
    out.u32(0);
    let cursor: StoreCursor | null = null;
    let curTable: string | null = null;
    const enc = new TextEncoder();
    for (;;) {
      cursor = store.exportBatch(cursor, SNAPSHOT_BATCH_ENTRIES, SNAPSHOT_BATCH_BYTES, (table, key, isString, value) => {
        if (table !== curTable) {
          const nb = enc.encode(table);
          out.u8(REC_TABLE);
          out.u8(nb.length);
          out.bytes(nb);
          curTable = table;
        }
        out.u8(REC_ENTRY);
        out.u32(key.length | (isString ? KEY_IS_STRING : 0));
        out.u32(value.length);
        out.bytes(key);
        out.bytes(value);
        entries++;
      });
      await flush(); // also yields to the event loop, so the writer can go on
      if (cursor === null) break;
    }
    out.u8(REC_END);
    out.u32(meta.length);
    out.bytes(meta);
    out.u32(entries % TWO32);
    out.u32(Math.floor(entries / TWO32));
    await flush();
    const trailer = Buffer.allocUnsafe(4);
    trailer.writeUInt32LE(crc32cFinal(crc), 0);
    await fh.write(trailer, 0, 4);
    bytes += 4;
    await syncHandle(fh);
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => {});
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  await fs.promises.rename(tmp, file);
  await fsyncDirAsync(path.dirname(path.resolve(file)));
  return { bytes, entries };
}

/** Sequential reader over the snapshot file with a CRC over every consumed byte. */
class SnapReader {
  buf = Buffer.allocUnsafe(SNAPSHOT_READ_CHUNK_BYTES);
  /** window [pos, end) of buf holds unread bytes; buf[0, pos) is consumed */
  pos = 0;
  end = 0;
  /** file offset of buf[0] */
  base = 0;
  /** buf[0, crcPos) is already in crc */
  crcPos = 0;
  crc = CRC32C_INIT;
  constructor(
    private readonly fh: fs.promises.FileHandle,
    readonly size: number,
    private readonly beforeMove: () => void,
  ) {}
  /** file offset of the next unread byte */
  get offset(): number {
    return this.base + this.pos;
  }
  remaining(): number {
    return this.size - this.offset;
  }
  /** Make n bytes readable at buf[pos]; n must already be checked against remaining(). */
  async ensure(n: number): Promise<void> {
    assert(n <= this.remaining(), 'SnapReader.ensure beyond end of file');
    if (this.end - this.pos >= n) return;
    this.beforeMove(); // views into buf handed out so far must be consumed now
    this.crc = crc32cUpdate(this.crc, this.buf, this.crcPos, this.pos);
    const keep = this.end - this.pos;
    if (n > this.buf.length) {
      const nb = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(nb, 0, this.pos, this.end);
      this.buf = nb;
    } else {
      this.buf.copy(this.buf, 0, this.pos, this.end);
    }
    this.base += this.pos;
    this.pos = 0;
    this.crcPos = 0;
    this.end = keep;
    while (this.end < n) {
      const want = Math.min(this.buf.length - this.end, this.size - (this.base + this.end));
      const { bytesRead } = await this.fh.read(this.buf, this.end, want, this.base + this.end);
      if (bytesRead === 0) throw new Error('file shrank while reading');
      this.end += bytesRead;
    }
  }
  u8(): number {
    return this.buf[this.pos++]!;
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  take(n: number): Uint8Array {
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  crcSoFar(): number {
    return crc32cFinal(crc32cUpdate(this.crc, this.buf, this.crcPos, this.pos));
  }
}

class Corrupt extends Error {}

/**
 * Load a snapshot into an empty store. Verifies magic, version, every length (against the bytes
 * left in the file before allocating) and the trailing CRC. On damage the store is cleared and
 * Errors.checkpointCorrupt(file, why) is thrown.
 */
export async function readSnapshot(file: string, store: SharedStore): Promise<{ meta: Uint8Array; entries: number }> {
  if (store.count() !== 0) throw Errors.invalidOption('store', 'readSnapshot needs an empty store');
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw Errors.undefinedFile(`checkpoint file "${file}" does not exist`);
    throw e;
  }
  let pending: StoreOp[] = [];
  let pendingBytes = 0;
  const applyPending = () => {
    if (pending.length === 0) return;
    store.applyTransaction(pending);
    pending = [];
    pendingBytes = 0;
  };
  try {
    const size = (await fh.stat()).size;
    const r = new SnapReader(fh, size, applyPending);
    const need = async (n: number, what: string) => {
      if (n > r.remaining()) throw new Corrupt(`truncated: ${what} needs ${n} bytes at offset ${r.offset}, ${r.remaining()} left`);
      await r.ensure(n);
    };
    await need(SNAPSHOT_HEADER_BYTES + 4, 'header');
    if (!SNAPSHOT_MAGIC.equals(r.take(8))) throw new Corrupt('bad magic (not a walstream snapshot)');
    const version = r.u32();
    if (version !== SNAPSHOT_VERSION) throw new Corrupt(`unsupported snapshot version ${version}`);
    const flags = r.u32();
    if (flags !== 0) throw new Corrupt(`unknown flags 0x${flags.toString(16)}`);
    let table: string | null = null;
    let entries = 0;
    const dec = new TextDecoder('utf-8', { fatal: true });
    for (;;) {
      await need(1, 'record tag');
      const tag = r.u8();
      if (tag === REC_TABLE) {
        await need(1, 'table name length');
        const len = r.u8();
        if (len < 1 || len > MAX_TABLE_NAME_BYTES) throw new Corrupt(`table name length ${len} at offset ${r.offset - 1}`);
        await need(len, 'table name');
        try {
          table = dec.decode(r.take(len));
        } catch {
          throw new Corrupt(`table name is not UTF-8 at offset ${r.offset - len}`);
        }
      } else if (tag === REC_ENTRY) {
        if (table === null) throw new Corrupt(`entry before any table at offset ${r.offset - 1}`);
        await need(8, 'entry header');
        const kf = r.u32();
        const vlen = r.u32();
        const klen = kf & 0x7fffffff;
        if (klen > MAX_KEY_BYTES) throw new Corrupt(`key length ${klen} over maxKeyBytes at offset ${r.offset - 8}`);
        if (klen + vlen > r.remaining()) throw new Corrupt(`truncated: entry of ${klen + vlen} bytes at offset ${r.offset - 8}, ${r.remaining()} left`);
        if (vlen > store.maxValueBytes) throw Errors.valueTooLarge(vlen, store.maxValueBytes);
        if (pending.length >= SNAPSHOT_LOAD_BATCH_ENTRIES || pendingBytes + vlen > SNAPSHOT_LOAD_BATCH_BYTES) applyPending();
        await r.ensure(klen + vlen);
        const key = r.take(klen);
        const value = r.take(vlen);
        pending.push({ kind: 'put', table, key, keyIsString: (kf & KEY_IS_STRING) !== 0, value });
        pendingBytes += vlen;
        entries++;
      } else if (tag === REC_END) {
        await need(4, 'meta length');
        const mlen = r.u32();
        if (mlen + 12 > r.remaining()) throw new Corrupt(`truncated: meta of ${mlen} bytes at offset ${r.offset - 4}`);
        await r.ensure(mlen + 8);
        const meta = new Uint8Array(r.take(mlen)); // a copy: buf is reused
        const lo = r.u32();
        const hi = r.u32();
        const want = hi * TWO32 + lo;
        const crc = r.crcSoFar();
        await need(4, 'CRC');
        const stored = r.u32();
        if (stored !== crc) throw new Corrupt(`CRC mismatch: file says ${stored.toString(16)}, contents give ${crc.toString(16)}`);
        if (r.remaining() !== 0) throw new Corrupt(`${r.remaining()} bytes after the trailer`);
        if (want !== entries) throw new Corrupt(`trailer says ${want} entries, file holds ${entries}`);
        applyPending();
        return { meta, entries };
      } else {
        throw new Corrupt(`unknown record tag ${tag} at offset ${r.offset - 1}`);
      }
    }
  } catch (e) {
    pending = [];
    store.clear();
    if (e instanceof Corrupt) throw Errors.checkpointCorrupt(file, e.message);
    if (e instanceof WalstreamError) throw e;
    throw Errors.checkpointCorrupt(file, (e as Error).message);
  } finally {
    await fh.close();
  }
}
