// SharedStore: the replicated key-value store, living entirely in one growable SharedArrayBuffer.
// Who runs it: one writer at a time applies whole transactions (the primary's main thread, or the
// standby's startup/replay worker); any number of threads attach() to the same buffer through the
// structured-cloneable `handle` and read it in place. What it owns: the buffer (arena + header),
// a per-table B+tree and a table directory (itself a B+tree keyed by table name), all inside the
// buffer so every thread sees tables created later. How it stops: it does not; drop the handle.
// Use one SharedStore object per thread.
//
// This file: creation and attachment, the public read API (each call takes the read latch), the
// digest and the export walk (snapshots). The layers below, one concept each:
//   store-layout.ts  the SharedArrayBuffer layout (named offsets) and shared helpers
//   store-api.ts     public types, limits, scan-option validation
//   btree.ts         the B+tree algorithms over the arena (alloc.ts)
//   store-write.ts   the table directory, the latch discipline, the one transaction apply path
//   store-read.ts    lookups, scans, the ordered walk, value decoding, the consistency check
// Writes: applyTransaction(StoreOp[]) and applyBatch(StoreOpBatch: ops as ranges of byte buffers,
// which is how the primary applies the very bytes of the WAL record it builds) share one apply path
// (store-write.ts); the op types come from the WAL layer (src/wal/txn-ops.ts).

import { createHash } from 'node:crypto';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { BATCH_DELETE, BATCH_PUT, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES, type StoreOp, type StoreOpBatch } from '../wal/txn-ops.js';
import { Arena, H, HEADER_BYTES, MAX_ARENA_BYTES } from './alloc.js';
import {
  checkScanOptions, DEFAULT_INITIAL_BYTES, DEFAULT_MAX_STORE_BYTES, DEFAULT_MAX_VALUE_BYTES, type EntryVisitor, MAX_MAX_VALUE_BYTES, MIN_STORE_BYTES,
  type ScanEntry, type ScanOptions, type StoreCursor, type StoreHandle, type StoreOptions, type StoreReadView, type StoreStats,
} from './store-api.js';
import { EMPTY, isInt, SL } from './store-layout.js';
import { StoreReader } from './store-read.js';

export { BATCH_DELETE, BATCH_PUT, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES, type StoreOp, type StoreOpBatch };
export * from './store-api.js';

export class SharedStore extends StoreReader {
  private readonly view: ReadView;

  private constructor(handle: StoreHandle) {
    super(handle);
    this.view = new ReadView(this);
  }

  // ------------------------------------------------------------------------------------------
  // creation

  static create(opts: StoreOptions = {}): SharedStore {
    if (opts === null || typeof opts !== 'object') throw Errors.invalidOption('options', 'must be an object');
    const maxStoreBytes = opts.maxStoreBytes ?? DEFAULT_MAX_STORE_BYTES;
    if (!isInt(maxStoreBytes) || maxStoreBytes < MIN_STORE_BYTES || maxStoreBytes > MAX_ARENA_BYTES) {
      throw Errors.invalidOption('maxStoreBytes', `must be an integer from ${MIN_STORE_BYTES} to ${MAX_ARENA_BYTES} (4 GiB, the largest growable SharedArrayBuffer), got ${String(opts.maxStoreBytes)}`);
    }
    const initialBytes = opts.initialBytes ?? Math.min(DEFAULT_INITIAL_BYTES, maxStoreBytes);
    if (!isInt(initialBytes) || initialBytes < MIN_STORE_BYTES || initialBytes > maxStoreBytes) {
      throw Errors.invalidOption('initialBytes', `must be an integer from ${MIN_STORE_BYTES} to maxStoreBytes (${maxStoreBytes}), got ${String(opts.initialBytes)}`);
    }
    const maxValueBytes = opts.maxValueBytes ?? Math.min(DEFAULT_MAX_VALUE_BYTES, Math.floor(maxStoreBytes / 2));
    if (!isInt(maxValueBytes) || maxValueBytes < 1 || maxValueBytes > MAX_MAX_VALUE_BYTES || maxValueBytes > maxStoreBytes) {
      throw Errors.invalidOption('maxValueBytes', `must be an integer from 1 to ${MAX_MAX_VALUE_BYTES} and at most maxStoreBytes (${maxStoreBytes}), got ${String(opts.maxValueBytes)}`);
    }
    const maxStore = Math.floor(maxStoreBytes / 16) * 16;
    const initial = Math.min(maxStore, Math.ceil(initialBytes / 16) * 16);
    let sab: SharedArrayBuffer;
    try {
      sab = new SharedArrayBuffer(initial, { maxByteLength: maxStore });
    } catch (e) {
      throw Errors.invalidOption('maxStoreBytes', `cannot reserve a growable SharedArrayBuffer of ${maxStore} bytes: ${(e as Error).message}`);
    }
    const u32 = new Uint32Array(sab, 0, HEADER_BYTES / 4);
    const f64 = new Float64Array(sab, 0, HEADER_BYTES / 8);
    const id = Math.floor(Math.random() * 2 ** 48) + 1;
    u32[H.MAGIC / 4] = SL.MAGIC;
    u32[H.LAYOUT_VERSION / 4] = SL.LAYOUT_VERSION;
    f64[H.ID / 8] = id;
    f64[H.MAX_VALUE_BYTES / 8] = maxValueBytes;
    const arena = new Arena(sab);
    arena.initAllocator(maxStore);
    const store = new SharedStore({ buffer: sab, id, layoutVersion: SL.LAYOUT_VERSION });
    store.initEmpty();
    return store;
  }

  static attach(handle: StoreHandle): SharedStore {
    if (handle === null || typeof handle !== 'object' || !(handle.buffer instanceof SharedArrayBuffer)) {
      throw Errors.invalidOption('handle', 'not a StoreHandle (expected { buffer: SharedArrayBuffer, id, layoutVersion })');
    }
    const b = handle.buffer;
    if (b.byteLength < HEADER_BYTES) throw Errors.invalidOption('handle', 'buffer too small for a store');
    const u32 = new Uint32Array(b, 0, HEADER_BYTES / 4);
    const f64 = new Float64Array(b, 0, HEADER_BYTES / 8);
    if (u32[H.MAGIC / 4] !== SL.MAGIC) throw Errors.invalidOption('handle', 'buffer does not hold a store');
    if (u32[H.LAYOUT_VERSION / 4] !== SL.LAYOUT_VERSION || handle.layoutVersion !== SL.LAYOUT_VERSION) {
      throw Errors.invalidOption('handle', `store layout version ${u32[H.LAYOUT_VERSION / 4]}, this code reads ${SL.LAYOUT_VERSION}`);
    }
    if (f64[H.ID / 8] !== handle.id) throw Errors.invalidOption('handle', 'store id does not match the buffer');
    return new SharedStore({ buffer: b, id: handle.id, layoutVersion: SL.LAYOUT_VERSION });
  }

  // ------------------------------------------------------------------------------------------
  // public read API (each call takes the read latch)

  getRaw(table: string, key: string | Uint8Array): Uint8Array | undefined {
    this.readLock();
    try {
      return this.getRawU(table, key);
    } finally {
      this.readUnlock();
    }
  }

  get(table: string, key: string | Uint8Array): unknown {
    this.readLock();
    try {
      return this.getU(table, key);
    } finally {
      this.readUnlock();
    }
  }

  scan(table: string, opts?: ScanOptions): ScanEntry[] {
    const o = checkScanOptions(opts);
    this.readLock();
    try {
      return this.scanU(table, o);
    } finally {
      this.readUnlock();
    }
  }

  readConsistent<T>(fn: (view: StoreReadView) => T): T {
    this.readLock();
    try {
      return fn(this.view);
    } finally {
      this.readUnlock();
    }
  }

  tables(): string[] {
    this.readLock();
    try {
      const out: string[] = [];
      this.forEachTable((name) => {
        out.push(name);
        return true;
      });
      return out;
    } finally {
      this.readUnlock();
    }
  }

  count(table?: string): number {
    this.readLock();
    try {
      return this.countU(table);
    } finally {
      this.readUnlock();
    }
  }

  stats(): StoreStats {
    this.readLock();
    try {
      const m = this.m;
      return { bytesUsed: m.bytesUsed, bytesReserved: this.handle.buffer.byteLength, entries: m.f64[SL.S_ENTRIES / 8]!, tables: m.u32[SL.S_TABLES / 4]! };
    } finally {
      this.readUnlock();
    }
  }

  /** Number of transactions applied since create/clear (diagnostics). */
  commits(): number {
    this.readLock();
    try {
      return this.m.f64[SL.S_COMMITS / 8]!;
    } finally {
      this.readUnlock();
    }
  }

  /**
   * Hex SHA-256 over every entry in table-name then key order. Per entry it hashes
   * u32 nameLen, name, u32 keyLen, key, u8 keyIsString, u32 valueLen, value (little-endian).
   */
  digest(): string {
    const h = createHash('sha256');
    const stage = new Uint8Array(64 * 1024);
    const dv = new DataView(stage.buffer);
    let n = 0;
    const flush = () => {
      if (n > 0) h.update(stage.subarray(0, n));
      n = 0;
    };
    const put = (src: Uint8Array) => {
      if (src.length > stage.length - n) {
        flush();
        if (src.length > stage.length) {
          h.update(src);
          return;
        }
      }
      stage.set(src, n);
      n += src.length;
    };
    const u32le = (v: number) => {
      if (stage.length - n < 4) flush();
      dv.setUint32(n, v, true);
      n += 4;
    };
    this.readLock();
    try {
      this.visitFrom(null, Infinity, Infinity, (_t, nameBytes, key, isString, value) => {
        u32le(nameBytes.length);
        put(nameBytes);
        u32le(key.length);
        put(key);
        if (stage.length - n < 1) flush();
        stage[n++] = isString ? 1 : 0;
        u32le(value.length);
        put(value);
      });
    } finally {
      this.readUnlock();
    }
    flush();
    return h.digest('hex');
  }

  /**
   * Visit up to maxEntries entries (and about maxBytes of key+value bytes, at least one entry)
   * after `after` (null = from the start) under one read latch. Views passed to `visit` are only
   * valid during the call. Returns where to continue, or null when the store was exhausted.
   * Used by snapshot.ts to stream the store without holding the latch for long.
   */
  exportBatch(after: StoreCursor | null, maxEntries: number, maxBytes: number, visit: EntryVisitor): StoreCursor | null {
    this.readLock();
    try {
      let lastTable = '';
      let lastKey: Uint8Array = EMPTY;
      let seen = 0;
      const more = this.visitFrom(after, maxEntries, maxBytes, (table, _nb, key, isString, value) => {
        visit(table, key, isString, value);
        lastTable = table;
        lastKey = key;
        seen++;
      });
      if (!more) return null;
      assert(seen > 0, 'exportBatch: no progress');
      return { table: lastTable, key: lastKey.slice() };
    } finally {
      this.readUnlock();
    }
  }
}

/** The view handed to readConsistent callbacks: no latch traffic, valid only inside the call. */
class ReadView implements StoreReadView {
  constructor(private readonly s: SharedStore) {}
  private check(): void {
    if (!this.s.reading) throw Errors.closed('StoreReadView (used outside its readConsistent callback)');
  }
  get(table: string, key: string | Uint8Array): unknown {
    this.check();
    return this.s.getU(table, key);
  }
  getRaw(table: string, key: string | Uint8Array): Uint8Array | undefined {
    this.check();
    return this.s.getRawU(table, key);
  }
  scan(table: string, opts?: ScanOptions): ScanEntry[] {
    this.check();
    return this.s.scanU(table, checkScanOptions(opts));
  }
  count(table?: string): number {
    this.check();
    return this.s.countU(table);
  }
}
