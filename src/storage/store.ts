// SharedStore: the replicated key-value store, living entirely in one growable SharedArrayBuffer.
// Who runs it: one writer at a time applies whole transactions (the primary's main thread, or the
// standby's startup/replay worker); any number of threads attach() to the same buffer through the
// structured-cloneable `handle` and read it in place. What it owns: the buffer (arena + header),
// a per-table B+tree and a table directory (itself a B+tree keyed by table name), all inside the
// buffer so every thread sees tables created later. How it stops: it does not; drop the handle.
//
// Writes: applyTransaction(StoreOp[]) and applyBatch(StoreOpBatch: ops as ranges of byte buffers,
// which is how the primary applies the very bytes of the WAL record it builds) share one apply path.
// Consistency: applyTransaction holds the write latch (RWLatch in the header) for the whole
// transaction, readers hold the read latch for a whole get/scan/readConsistent, so a reader never
// sees half a transaction. The latch is writer-preferring, so readers cannot starve replay.
// Reads nest inside readConsistent on the same SharedStore object (no second latch); writing from
// inside a readConsistent callback throws WS_OBJECT_IN_USE. Use one SharedStore object per thread.
// Values decode with msgpackr straight from shared memory (copyBuffers: binaries are copies).
//
// Layout: see alloc.ts for the arena. B+tree nodes are NODE_BYTES; a node has a 16-byte header
// (meta = leaf bit | count, next, prev, child0) and CAP slots of 4 words:
//   leaf slot     [key prefix, key block, value block, value length | KEY_IS_STRING bit]
//   internal slot [key prefix, key block, right child, 0]   (key i separates child i and i+1)
// Key prefix = first 4 key bytes big-endian (zero padded): many comparisons end there, the rest go
// a word at a time (key bytes are 16-aligned; the searched key is copied to aligned scratch). Keys live
// in refcounted key blocks [refs, length, bytes...] shared by the leaf and any separators, so a
// split never allocates a key. Values are raw 16-aligned blocks. Leaves are doubly linked for
// forward and reverse scans. Empty leaves are freed at once and underfull leaves merge with a
// sibling under the same parent (internal nodes are only freed when empty);
// a table whose last entry is deleted is dropped at the end of the transaction, so the set of
// tables is a function of the entries (snapshots and replay agree).
//
// Running out of space: before mutating, applyTransaction allocates the values and checks that
// the bump space covers a worst-case bound for keys and split nodes; if not, it reserves those
// blocks from the free lists, and if that fails it frees everything and throws Errors.storeFull
// with the store unchanged. So the tree is never left half-updated.

import { copyToShared } from '../util/shm-copy.js';
import { createHash } from 'node:crypto';
import { Unpackr } from 'msgpackr';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { Arena, H, HEADER_BYTES, MAX_ARENA_BYTES, blockBytes, classOf, classSize } from './alloc.js';
import { RWLatch, RWLATCH_WORDS } from './latch.js';
import { BATCH_DELETE, BATCH_PUT, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES, type StoreOp, type StoreOpBatch } from '../wal/txn-ops.js';

export { BATCH_DELETE, BATCH_PUT, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES, type StoreOp, type StoreOpBatch };

/** A reusable StoreOpBatch (applyTransaction's view of StoreOp objects). */
class OpsBatch implements StoreOpBatch {
  n = 0;
  kind: number[] = [];
  table: string[] = [];
  tableBytes: Uint8Array[] = [];
  keyBuf: Uint8Array[] = [];
  keyOff: number[] = [];
  keyLen: number[] = [];
  keyIsString: boolean[] = [];
  valBuf: Uint8Array[] = [];
  valOff: number[] = [];
  valLen: number[] = [];
  ensure(n: number): void {
    for (let i = this.kind.length; i < n; i++) {
      this.kind.push(0);
      this.table.push('');
      this.tableBytes.push(EMPTY);
      this.keyBuf.push(EMPTY);
      this.keyOff.push(0);
      this.keyLen.push(0);
      this.keyIsString.push(false);
      this.valBuf.push(EMPTY);
      this.valOff.push(0);
      this.valLen.push(0);
    }
  }
  /** Drop references to the caller's keys and values. */
  release(): void {
    for (let i = 0; i < this.n; i++) {
      this.keyBuf[i] = EMPTY;
      this.valBuf[i] = EMPTY;
    }
    this.n = 0;
  }
}

/** Structured-cloneable: postMessage it to a worker and SharedStore.attach() it there. */
export interface StoreHandle {
  readonly buffer: SharedArrayBuffer;
  readonly id: number;
  readonly layoutVersion: number;
}

export interface ScanOptions {
  gte?: string | Uint8Array;
  gt?: string | Uint8Array;
  lt?: string | Uint8Array;
  lte?: string | Uint8Array;
  limit?: number;
  reverse?: boolean;
}

export interface StoreOptions {
  /** initial buffer size in bytes (default 4 MiB) */
  initialBytes?: number;
  /** hard limit on the buffer in bytes (default 1 GiB, at most 4 GiB) */
  maxStoreBytes?: number;
  /** largest value in bytes (default 16 MiB, at most 1 GiB) */
  maxValueBytes?: number;
}

export interface ScanEntry {
  key: string | Uint8Array;
  value: unknown;
}

export interface StoreReadView {
  get(table: string, key: string | Uint8Array): unknown;
  getRaw(table: string, key: string | Uint8Array): Uint8Array | undefined;
  scan(table: string, opts?: ScanOptions): ScanEntry[];
  count(table?: string): number;
}

export interface StoreStats {
  bytesUsed: number;
  bytesReserved: number;
  entries: number;
  tables: number;
}

/** Where a batched export stopped: the next batch starts after (table, key). */
export interface StoreCursor {
  table: string;
  key: Uint8Array;
}

export type EntryVisitor = (table: string, key: Uint8Array, keyIsString: boolean, value: Uint8Array) => void;

export const DEFAULT_INITIAL_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_STORE_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024;
/** Upper bound for maxValueBytes (the value length shares a word with the key-is-string bit). */
export const MAX_MAX_VALUE_BYTES = 1024 * 1024 * 1024;
/** Smallest buffer, in bytes. */
export const MIN_STORE_BYTES = 64 * 1024;
/** Longest key, in bytes. */

const MAGIC = 0x54535357; // 'WSST'
const LAYOUT_VERSION = 1;

// store header area (byte offsets, after the arena's own fields)
const S_ENTRIES = H.STORE_AREA; // f64
const S_COMMITS = H.STORE_AREA + 8; // f64
const S_LATCH = H.STORE_AREA + 16; // RWLATCH_WORDS words
const S_TABLES = S_LATCH + 4 * RWLATCH_WORDS; // u32
const S_DIR_VERSION = S_TABLES + 4; // u32
const S_DIR = S_DIR_VERSION + 4; // tree descriptor (DESC_BYTES)
assert(S_DIR % 8 === 0 && S_DIR + 32 <= H.FREE_HEADS, 'store header overflow');

// tree descriptor words
const D_ROOT = 0;
const D_HEIGHT = 1; // levels; 1 = the root is a leaf
const D_COUNT = 2;
const D_FIRST = 3;
const D_LAST = 4;
const DESC_BYTES = 32;

// nodes
const NODE_BYTES = 1024;
const N_META = 0;
const N_NEXT = 1;
const N_PREV = 2;
const N_CHILD0 = 3;
const N_SLOTS = 4;
const SLOT_WORDS = 4;
const CAP = (NODE_BYTES / 4 - N_SLOTS) / SLOT_WORDS; // 63
const LEAF = 0x80000000;
const COUNT_MASK = 0xffff;
// slot words
const S_PREFIX = 0;
const S_KEY = 1;
const S_VAL = 2; // value block (leaf) or right child (internal)
const S_LEN = 3;
const KEY_IS_STRING = 0x80000000;
const LEN_MASK = 0x7fffffff;
// key blocks
const K_REFS = 0;
const K_LEN = 1;
const K_BYTES = 8;
/** A leaf left with fewer entries than this after a delete tries to merge with a sibling... */
const MERGE_BELOW = 16;
/** ...if the two together hold at most this many (room is left for inserts before a split). */
const MERGE_UP_TO = 48;
/** Minimum fill after a split; bounds how fast a tree can grow in height. */
const MIN_SPLIT_FILL = 31;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });
const EMPTY = new Uint8Array(0);

function prefixOf(k: Uint8Array): number {
  const n = k.length;
  if (n >= 4) return ((k[0]! << 24) | (k[1]! << 16) | (k[2]! << 8) | k[3]!) >>> 0;
  return ((n > 0 ? k[0]! << 24 : 0) | (n > 1 ? k[1]! << 16 : 0) | (n > 2 ? k[2]! << 8 : 0)) >>> 0;
}

// word-at-a-time key comparison reads little-endian words
assert(new Uint8Array(new Uint32Array([1]).buffer)[0] === 1, 'SharedStore needs a little-endian host');

/**
 * A key being searched for, copied into 4-byte-aligned scratch memory so comparisons can go a
 * word at a time against the (16-aligned) key blocks. Zero padded to a whole word.
 */
class SearchKey {
  private buf = new ArrayBuffer(256);
  words = new Uint32Array(this.buf);
  /** the whole scratch; the key is u8[0, len) */
  u8 = new Uint8Array(this.buf);
  len = 0;
  prefix = 0;
  set(key: Uint8Array): this {
    return this.setFrom(key, 0, key.length);
  }
  /** The key src[off, off + n) (no allocation unless the scratch must grow). */
  setFrom(src: Uint8Array, off: number, n: number): this {
    if (n + 4 > this.buf.byteLength) {
      this.buf = new ArrayBuffer(Math.max(n + 4, this.buf.byteLength * 2));
      this.words = new Uint32Array(this.buf);
      this.u8 = new Uint8Array(this.buf);
    }
    const u8 = this.u8;
    if (n <= 32) for (let i = 0; i < n; i++) u8[i] = src[off + i]!;
    else u8.set(src.subarray(off, off + n));
    const padEnd = n < 4 ? 4 : (n + 3) & ~3;
    for (let i = n; i < padEnd; i++) u8[i] = 0;
    this.len = n;
    this.prefix = ((u8[0]! << 24) | (u8[1]! << 16) | (u8[2]! << 8) | u8[3]!) >>> 0;
    return this;
  }
}

/** UTF-8 decode of a (possibly shared) view; short ASCII without TextDecoder. */
function utf8(u8: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 24) {
    let s = '';
    for (let i = start; i < end; i++) {
      const b = u8[i]!;
      if (b >= 0x80) return textDecoder.decode(u8.subarray(start, end));
      s += String.fromCharCode(b);
    }
    return s;
  }
  return textDecoder.decode(u8.subarray(start, end));
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

interface TableCacheEntry {
  ver: number;
  desc: number;
  bytes: Uint8Array;
}

/** Values up to this size are copied into the arena through a bounce buffer when misaligned (larger: copyToShared). */
const BOUNCE_MAX_BYTES = 256 * 1024;

/** Copies of at most COPY_SLAB_MAX_BYTES share COPY_SLAB_BYTES ArrayBuffers. */
const COPY_SLAB_BYTES = 64 * 1024;
const COPY_SLAB_MAX_BYTES = 4 * 1024;

/** Most table names a SharedStore object caches (per thread) before starting over. */
const TABLE_CACHE_LIMIT = 4096;

export class SharedStore {
  readonly handle: StoreHandle;
  private readonly m: Arena;
  private readonly latch: RWLatch;
  readonly maxValueBytes: number;
  readonly maxStoreBytes: number;
  private readonly tableCache = new Map<string, TableCacheEntry>();
  private readonly nameBytes = new Map<string, Uint8Array>();
  private readonly unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
  private readonly view: ReadView;
  // descent path (write side)
  private readonly pathN: number[] = new Array(64).fill(0);
  private readonly pathI: number[] = new Array(64).fill(0);
  // result of the last bound() call
  private eq = false;
  // old value of the last treePut/treeDelete
  private oldVal = 0;
  private oldLen = 0;
  // blocks reserved for the running transaction (slow path), by size class
  private pool: Map<number, number[]> | null = null;
  private keyScratch = new Uint8Array(256);
  /** read latch nesting depth of this thread through this object */
  private readDepth = 0;
  // search keys: A = the op/get key or a scan's lower bound, B = table names, C = a scan's upper bound
  private readonly skA = new SearchKey();
  private readonly skB = new SearchKey();
  private readonly skC = new SearchKey();
  private readonly unpackRange = { start: 0, end: 0 };
  private slab = new ArrayBuffer(COPY_SLAB_BYTES);
  private slabOff = 0;
  /** applyTransaction's StoreOp objects as a batch (reused) */
  private readonly opsBatch = new OpsBatch();
  /** value blocks of the running transaction, by op index */
  private valRefs: number[] = new Array<number>(16).fill(0);
  /** table descriptor of each put as reserve() found it (0: not there yet) */
  private opDesc: number[] = new Array<number>(16).fill(0);
  private bounce = new Uint8Array(4096);

  private constructor(handle: StoreHandle) {
    this.handle = handle;
    this.m = new Arena(handle.buffer);
    const i32 = new Int32Array(handle.buffer, 0, HEADER_BYTES / 4);
    this.latch = new RWLatch(i32, S_LATCH / 4);
    this.maxValueBytes = this.m.f64[H.MAX_VALUE_BYTES / 8]!;
    this.maxStoreBytes = this.m.maxStoreBytes;
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
    u32[H.MAGIC / 4] = MAGIC;
    u32[H.LAYOUT_VERSION / 4] = LAYOUT_VERSION;
    f64[H.ID / 8] = id;
    f64[H.MAX_VALUE_BYTES / 8] = maxValueBytes;
    const arena = new Arena(sab);
    arena.initAllocator(maxStore);
    const store = new SharedStore({ buffer: sab, id, layoutVersion: LAYOUT_VERSION });
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
    if (u32[H.MAGIC / 4] !== MAGIC) throw Errors.invalidOption('handle', 'buffer does not hold a store');
    if (u32[H.LAYOUT_VERSION / 4] !== LAYOUT_VERSION || handle.layoutVersion !== LAYOUT_VERSION) {
      throw Errors.invalidOption('handle', `store layout version ${u32[H.LAYOUT_VERSION / 4]}, this code reads ${LAYOUT_VERSION}`);
    }
    if (f64[H.ID / 8] !== handle.id) throw Errors.invalidOption('handle', 'store id does not match the buffer');
    return new SharedStore({ buffer: b, id: handle.id, layoutVersion: LAYOUT_VERSION });
  }

  /** Writer, under the write latch (or before sharing): empty directory, no entries. */
  private initEmpty(): void {
    const m = this.m;
    m.f64[S_ENTRIES / 8] = 0;
    m.f64[S_COMMITS / 8] = 0;
    m.u32[S_TABLES / 4] = 0;
    m.u32[S_DIR_VERSION / 4] = (m.u32[S_DIR_VERSION / 4]! + 1) >>> 0;
    const root = m.alloc(NODE_BYTES);
    assert(root !== 0, 'store too small for its directory');
    this.initNode(root, true);
    const dw = S_DIR >>> 2;
    const u32 = this.m.u32;
    u32[dw + D_ROOT] = root;
    u32[dw + D_HEIGHT] = 1;
    u32[dw + D_COUNT] = 0;
    u32[dw + D_FIRST] = root;
    u32[dw + D_LAST] = root;
    this.tableCache.clear();
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
      return { bytesUsed: m.bytesUsed, bytesReserved: this.handle.buffer.byteLength, entries: m.f64[S_ENTRIES / 8]!, tables: m.u32[S_TABLES / 4]! };
    } finally {
      this.readUnlock();
    }
  }

  /** Number of transactions applied since create/clear (diagnostics). */
  commits(): number {
    this.readLock();
    try {
      return this.m.f64[S_COMMITS / 8]!;
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

  // ------------------------------------------------------------------------------------------
  // write API

  applyTransaction(ops: readonly StoreOp[]): void {
    if (!Array.isArray(ops)) throw Errors.invalidOption('ops', 'must be an array of StoreOp');
    const n = ops.length;
    if (n === 0) return;
    const b = this.opsBatch;
    b.ensure(n);
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (op === null || typeof op !== 'object') throw Errors.invalidOption(`ops[${i}]`, 'must be a StoreOp');
      b.table[i] = op.table;
      b.tableBytes[i] = this.tableNameBytes(op.table);
      if (!(op.key instanceof Uint8Array)) throw Errors.invalidKey(`ops[${i}].key must be a Uint8Array`);
      if (op.key.length > MAX_KEY_BYTES) throw Errors.invalidKey(`ops[${i}].key is ${op.key.length} bytes, more than maxKeyBytes (${MAX_KEY_BYTES})`);
      b.keyBuf[i] = op.key;
      b.keyOff[i] = 0;
      b.keyLen[i] = op.key.length;
      b.keyIsString[i] = op.keyIsString;
      if (op.kind === 'put') {
        const v = op.value;
        if (!(v instanceof Uint8Array)) throw Errors.invalidOption(`ops[${i}].value`, 'a put needs a Uint8Array value');
        if (v.length > this.maxValueBytes) throw Errors.valueTooLarge(v.length, this.maxValueBytes);
        b.kind[i] = BATCH_PUT;
        b.valBuf[i] = v;
        b.valOff[i] = 0;
        b.valLen[i] = v.length;
      } else if (op.kind === 'delete') {
        b.kind[i] = BATCH_DELETE;
        b.valBuf[i] = EMPTY;
        b.valOff[i] = 0;
        b.valLen[i] = 0;
      } else {
        throw Errors.invalidOption(`ops[${i}].kind`, `must be 'put' or 'delete', got ${String(op.kind)}`);
      }
    }
    b.n = n;
    try {
      this.applyChecked(b);
    } finally {
      b.release();
    }
  }

  /**
   * Apply one transaction given as a StoreOpBatch (keys and values as ranges of byte buffers): the
   * primary applies the operations straight from the WAL record it is building, so the store and
   * the WAL get the same bytes with no per-op objects. Same checks and atomicity as
   * applyTransaction (which is this with StoreOp objects).
   */
  applyBatch(b: StoreOpBatch): void {
    const n = b.n;
    if (n === 0) return;
    for (let i = 0; i < n; i++) {
      const k = b.kind[i];
      if (k !== BATCH_PUT && k !== BATCH_DELETE) throw Errors.invalidOption(`ops[${i}].kind`, `must be ${BATCH_PUT} (put) or ${BATCH_DELETE} (delete), got ${String(k)}`);
      const tl = b.tableBytes[i]!.length;
      if (tl === 0 || tl > MAX_TABLE_NAME_BYTES) throw Errors.invalidTable(b.table[i]!);
      if (b.keyLen[i]! > MAX_KEY_BYTES) throw Errors.invalidKey(`ops[${i}].key is ${b.keyLen[i]} bytes, more than maxKeyBytes (${MAX_KEY_BYTES})`);
      if (k === BATCH_PUT && b.valLen[i]! > this.maxValueBytes) throw Errors.valueTooLarge(b.valLen[i]!, this.maxValueBytes);
    }
    this.applyChecked(b);
  }

  private applyChecked(b: StoreOpBatch): void {
    this.refuseWriteWhileReading('apply a transaction');
    this.latch.acquireWrite();
    try {
      this.m.refresh();
      this.reserve(b);
      try {
        this.applyReserved(b);
      } finally {
        this.releasePool();
      }
      this.m.f64[S_COMMITS / 8] = this.m.f64[S_COMMITS / 8]! + 1;
    } finally {
      this.latch.releaseWrite();
    }
  }

  /** Drop every entry and table (writer only; e.g. before loading a snapshot). */
  clear(): void {
    this.refuseWriteWhileReading('clear the store');
    this.latch.acquireWrite();
    try {
      this.m.refresh();
      this.m.reset();
      this.initEmpty();
    } finally {
      this.latch.releaseWrite();
    }
  }

  // ------------------------------------------------------------------------------------------
  // transaction internals

  /**
   * Allocate and fill every value block (refs in this.valRefs); make sure keys and split nodes
   * cannot run out of space (bump space, else reserve into this.pool). On failure free everything
   * and throw storeFull.
   */
  private reserve(b: StoreOpBatch): void {
    const m = this.m;
    const n = b.n;
    if (this.valRefs.length < n) {
      this.valRefs = new Array<number>(Math.max(n, this.valRefs.length * 2)).fill(0);
      this.opDesc = new Array<number>(this.valRefs.length).fill(0);
    }
    const valRefs = this.valRefs;
    const opDesc = this.opDesc;
    let puts = 0;
    let keyBytes = 0;
    let nodeSlots = 0; // sum over puts of the table's height
    let newTables: Map<string, number> | undefined;
    for (let i = 0; i < n; i++) {
      valRefs[i] = 0;
      opDesc[i] = 0;
      if (b.kind[i] !== BATCH_PUT) continue;
      const len = b.valLen[i]!;
      if (len > 0) {
        const ref = m.alloc(len);
        if (ref === 0) {
          for (let j = 0; j < i; j++) if (valRefs[j] !== 0) m.free(valRefs[j]!, b.valLen[j]!);
          throw Errors.storeFull(this.maxStoreBytes);
        }
        this.copyIn(ref, b.valBuf[i]!, b.valOff[i]!, len);
        valRefs[i] = ref;
      }
      puts++;
      keyBytes += blockBytes(K_BYTES + b.keyLen[i]!);
      const table = b.table[i]!;
      const desc = this.findTableBytes(table, b.tableBytes[i]!);
      opDesc[i] = desc;
      if (desc !== 0) nodeSlots += m.u32[(desc >>> 2) + D_HEIGHT]!;
      else {
        nodeSlots += 1;
        if (newTables === undefined) newTables = new Map();
        if (!newTables.has(table)) newTables.set(table, b.tableBytes[i]!.length);
      }
    }
    // height can grow by one per MIN_SPLIT_FILL-fold growth of the tree within this transaction:
    // growth = 1 + ceil(log_MIN_SPLIT_FILL(puts + 1))
    let growth = 1;
    for (let x = 1; x < puts + 1; x *= MIN_SPLIT_FILL) growth++;
    let nodes = nodeSlots + puts * growth;
    const dirH = m.u32[(S_DIR >>> 2) + D_HEIGHT]!;
    if (newTables !== undefined) {
      for (const len of newTables.values()) {
        nodes += 1 + dirH + growth;
        keyBytes += blockBytes(K_BYTES + len) + blockBytes(DESC_BYTES);
      }
    }
    const need = nodes * NODE_BYTES + keyBytes;
    if (need <= m.bumpRemaining()) return; // allocations below cannot fail
    // slow path: reserve every block now
    const pool = new Map<number, number[]>();
    const take = (size: number): boolean => {
      const ref = m.alloc(size);
      if (ref === 0) return false;
      const c = classOf(size);
      let l = pool.get(c);
      if (l === undefined) pool.set(c, (l = []));
      l.push(ref);
      return true;
    };
    let ok = true;
    for (let i = 0; ok && i < nodes; i++) ok = take(NODE_BYTES);
    for (let i = 0; ok && i < n; i++) if (b.kind[i] === BATCH_PUT) ok = take(K_BYTES + b.keyLen[i]!);
    for (const len of newTables?.values() ?? []) {
      if (ok) ok = take(K_BYTES + len);
      if (ok) ok = take(DESC_BYTES);
    }
    this.pool = pool;
    if (!ok) {
      this.releasePool();
      for (let j = 0; j < n; j++) if (valRefs[j] !== 0) m.free(valRefs[j]!, b.valLen[j]!);
      throw Errors.storeFull(this.maxStoreBytes);
    }
  }

  /**
   * Copy src[off, off + len) to arena offset ref (16-aligned). Shared memory is copied a word at a
   * time only when source and destination agree mod 8 (limits-here.md), so a source that does not
   * (a value inside a WAL record) goes through an ordinary bounce buffer placed to agree.
   */
  private copyIn(ref: number, src: Uint8Array, off: number, len: number): void {
    const u8 = this.m.u8;
    if (len < 64 || ((src.byteOffset + off) & 7) === 0 || len > BOUNCE_MAX_BYTES) {
      if (len <= 48) for (let i = 0; i < len; i++) u8[ref + i] = src[off + i]!;
      else copyToShared(u8, ref, src.subarray(off, off + len));
      return;
    }
    let bounce = this.bounce;
    if (bounce.length < len) bounce = this.bounce = new Uint8Array(Math.min(BOUNCE_MAX_BYTES, Math.max(len, bounce.length * 2)));
    // ref is 16-aligned and the bounce buffer starts 8-aligned: copy to its start, then across.
    bounce.set(src.subarray(off, off + len));
    u8.set(len === bounce.length ? bounce : bounce.subarray(0, len), ref);
  }

  private releasePool(): void {
    const pool = this.pool;
    if (pool === null) return;
    this.pool = null;
    for (const [c, refs] of pool) {
      const size = classSize(c);
      for (const r of refs) this.m.free(r, size);
    }
  }

  /** Allocation during apply: from the reservation pool, else from the arena (guaranteed). */
  private allocW(size: number): number {
    const pool = this.pool;
    if (pool !== null) {
      const l = pool.get(classOf(size));
      if (l !== undefined && l.length > 0) return l.pop()!;
    }
    const ref = this.m.alloc(size);
    assert(ref !== 0, 'store: reservation bound violated');
    return ref;
  }

  private applyReserved(b: StoreOpBatch): void {
    const m = this.m;
    const valRefs = this.valRefs;
    // tables that lost entries: dropped at the end if empty (only deletes can empty a table)
    let touched: Map<string, Uint8Array> | undefined;
    const opDesc = this.opDesc;
    for (let i = 0; i < b.n; i++) {
      const table = b.table[i]!;
      const nb = b.tableBytes[i]!;
      // reserve() looked puts' tables up; a table created by an earlier op of this transaction is new
      let desc = opDesc[i]!;
      if (desc === 0) desc = this.findTableBytes(table, nb);
      const k = this.skA.setFrom(b.keyBuf[i]!, b.keyOff[i]!, b.keyLen[i]!);
      if (b.kind[i] === BATCH_PUT) {
        if (desc === 0) desc = this.createTable(table, nb);
        const lenFlag = (b.valLen[i]! | (b.keyIsString[i] ? KEY_IS_STRING : 0)) >>> 0;
        if (this.treePut(desc, k, valRefs[i]!, lenFlag)) {
          m.free(this.oldVal, this.oldLen & LEN_MASK);
        } else {
          m.f64[S_ENTRIES / 8] = m.f64[S_ENTRIES / 8]! + 1;
        }
      } else {
        if (desc === 0) continue;
        if (this.treeDelete(desc, k)) {
          m.free(this.oldVal, this.oldLen & LEN_MASK);
          m.f64[S_ENTRIES / 8] = m.f64[S_ENTRIES / 8]! - 1;
          if (touched === undefined) touched = new Map();
          touched.set(table, nb);
        }
      }
    }
    if (touched === undefined) return;
    for (const [name, nb] of touched) {
      const desc = this.findTableBytes(name, nb);
      if (desc !== 0 && m.u32[(desc >>> 2) + D_COUNT] === 0) this.dropTable(name, nb, desc);
    }
  }

  private createTable(name: string, nb: Uint8Array): number {
    const desc = this.allocW(DESC_BYTES);
    const root = this.allocW(NODE_BYTES);
    this.initNode(root, true);
    let u32 = this.m.u32;
    const dw = desc >>> 2;
    u32.fill(0, dw, dw + DESC_BYTES / 4);
    u32[dw + D_ROOT] = root;
    u32[dw + D_HEIGHT] = 1;
    u32[dw + D_FIRST] = root;
    u32[dw + D_LAST] = root;
    const existed = this.treePut(S_DIR, this.skB.set(nb), desc, DESC_BYTES);
    assert(!existed, 'createTable: table exists');
    u32 = this.m.u32; // treePut may have grown the buffer
    u32[S_TABLES >>> 2]!++;
    u32[S_DIR_VERSION >>> 2] = (u32[S_DIR_VERSION >>> 2]! + 1) >>> 0;
    this.tableCache.set(name, { ver: u32[S_DIR_VERSION >>> 2]!, desc, bytes: nb });
    return desc;
  }

  private dropTable(name: string, nb: Uint8Array, desc: number): void {
    const m = this.m;
    const u32 = m.u32;
    const dw = desc >>> 2;
    assert(u32[dw + D_COUNT] === 0 && u32[dw + D_HEIGHT] === 1, 'dropTable: table not empty');
    const found = this.treeDelete(S_DIR, this.skB.set(nb));
    assert(found && this.oldVal === desc, 'dropTable: directory entry missing');
    m.free(u32[dw + D_ROOT]!, NODE_BYTES);
    m.free(desc, DESC_BYTES);
    u32[S_TABLES >>> 2]!--;
    u32[S_DIR_VERSION >>> 2] = (u32[S_DIR_VERSION >>> 2]! + 1) >>> 0;
    this.tableCache.delete(name);
  }

  // ------------------------------------------------------------------------------------------
  // B+tree (descriptor offset d: a table descriptor block or S_DIR)

  private initNode(node: number, leaf: boolean): void {
    const u32 = this.m.u32;
    const w = node >>> 2;
    u32[w + N_META] = leaf ? LEAF : 0;
    u32[w + N_NEXT] = 0;
    u32[w + N_PREV] = 0;
    u32[w + N_CHILD0] = 0;
  }

  private newKeyBlock(k: SearchKey): number {
    const n = k.len;
    const ref = this.allocW(K_BYTES + n);
    const m = this.m;
    m.u32[(ref >>> 2) + K_REFS] = 1;
    m.u32[(ref >>> 2) + K_LEN] = n;
    const u8 = m.u8;
    const kb = k.u8;
    const at = ref + K_BYTES;
    if (n <= 32) for (let i = 0; i < n; i++) u8[at + i] = kb[i]!;
    else u8.set(kb.subarray(0, n), at);
    return ref;
  }

  private unrefKey(ref: number): void {
    const u32 = this.m.u32;
    const w = ref >>> 2;
    const r = u32[w + K_REFS]! - 1;
    assert(r >= 0, 'key block refcount underflow');
    if (r === 0) this.m.free(ref, K_BYTES + u32[w + K_LEN]!);
    else u32[w + K_REFS] = r;
  }

  /** Compare search key k against the key of slot word index s: <0, 0, >0. */
  private cmpSlot(k: SearchKey, s: number): number {
    const u32 = this.m.u32;
    const sp = u32[s + S_PREFIX]!;
    const kp = k.prefix;
    if (kp !== sp) return kp < sp ? -1 : 1;
    const kw = u32[s + S_KEY]! >>> 2;
    const klen = u32[kw + K_LEN]!;
    const len = k.len;
    const n = len < klen ? len : klen;
    // equal prefixes mean bytes [0, min(n, 4)) are equal; go on a word at a time
    const words = n >>> 2;
    const a = k.words;
    const base = kw + K_BYTES / 4;
    for (let j = 1; j < words; j++) {
      const x = a[j]!;
      const y = u32[base + j]!;
      if (x !== y) {
        const d = x ^ y;
        const shift = (31 - Math.clz32(d & -d)) & ~7; // lowest differing byte (little-endian)
        return ((x >>> shift) & 255) - ((y >>> shift) & 255);
      }
    }
    const u8 = this.m.u8;
    const kb = k.u8;
    const bb = base << 2;
    for (let i = n < 4 ? n : words << 2; i < n; i++) {
      const d = kb[i]! - u8[bb + i]!;
      if (d !== 0) return d;
    }
    return len - klen;
  }

  /** First slot index whose key is >= key (upper: > key). Sets this.eq for an exact match. */
  private bound(node: number, k: SearchKey, upper: boolean): number {
    const u32 = this.m.u32;
    const w = node >>> 2;
    let lo = 0;
    let hi = u32[w + N_META]! & COUNT_MASK;
    let eq = false;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.cmpSlot(k, w + N_SLOTS + mid * SLOT_WORDS);
      if (c > 0 || (upper && c === 0)) lo = mid + 1;
      else {
        hi = mid;
        if (c === 0) eq = true;
      }
      if (c === 0 && upper) eq = true;
    }
    this.eq = eq;
    return lo;
  }

  private childAt(node: number, ci: number): number {
    const u32 = this.m.u32;
    const w = node >>> 2;
    return ci === 0 ? u32[w + N_CHILD0]! : u32[w + N_SLOTS + (ci - 1) * SLOT_WORDS + S_VAL]!;
  }

  /** Leaf that would hold key, recording the path (pathN/pathI) when record is true. */
  private descend(d: number, k: SearchKey, record: boolean): { leaf: number; depth: number } {
    const u32 = this.m.u32;
    const dw = d >>> 2;
    let node = u32[dw + D_ROOT]!;
    let depth = 0;
    for (let lvl = u32[dw + D_HEIGHT]!; lvl > 1; lvl--) {
      const ci = this.bound(node, k, true);
      if (record) {
        this.pathN[depth] = node;
        this.pathI[depth] = ci;
      }
      depth++;
      node = this.childAt(node, ci);
    }
    return { leaf: node, depth };
  }

  /** Slot word index of key in tree d, or -1. */
  private findSlot(d: number, k: SearchKey): number {
    const { leaf } = this.descend(d, k, false);
    const pos = this.bound(leaf, k, false);
    return this.eq ? (leaf >>> 2) + N_SLOTS + pos * SLOT_WORDS : -1;
  }

  /** Insert or overwrite. Returns true if the key existed (old value in oldVal/oldLen). */
  private treePut(d: number, k: SearchKey, valRef: number, lenFlag: number): boolean {
    const { leaf, depth } = this.descend(d, k, true);
    const pos = this.bound(leaf, k, false);
    const u32 = this.m.u32;
    if (this.eq) {
      const s = (leaf >>> 2) + N_SLOTS + pos * SLOT_WORDS;
      this.oldVal = u32[s + S_VAL]!;
      this.oldLen = u32[s + S_LEN]!;
      u32[s + S_VAL] = valRef;
      u32[s + S_LEN] = lenFlag;
      return true;
    }
    const keyRef = this.newKeyBlock(k);
    this.leafInsert(d, leaf, depth, pos, k.prefix, keyRef, valRef, lenFlag);
    this.m.u32[(d >>> 2) + D_COUNT]!++; // re-read: allocations may have grown the buffer
    return false;
  }

  /** Open a gap at slot i of node (count < CAP) and write the slot there. */
  private insertSlot(node: number, i: number, prefix: number, keyRef: number, val: number, len: number): void {
    const u32 = this.m.u32;
    const w = node >>> 2;
    const meta = u32[w + N_META]!;
    const count = meta & COUNT_MASK;
    assert(count < CAP, 'insertSlot: node full');
    const s = w + N_SLOTS + i * SLOT_WORDS;
    if (i < count) u32.copyWithin(s + SLOT_WORDS, s, w + N_SLOTS + count * SLOT_WORDS);
    u32[s + S_PREFIX] = prefix;
    u32[s + S_KEY] = keyRef;
    u32[s + S_VAL] = val;
    u32[s + S_LEN] = len;
    u32[w + N_META] = meta + 1;
  }

  private removeSlot(node: number, i: number): void {
    const u32 = this.m.u32;
    const w = node >>> 2;
    const meta = u32[w + N_META]!;
    const count = meta & COUNT_MASK;
    const s = w + N_SLOTS + i * SLOT_WORDS;
    if (i + 1 < count) u32.copyWithin(s, s + SLOT_WORDS, w + N_SLOTS + count * SLOT_WORDS);
    u32[w + N_META] = meta - 1;
  }

  private leafInsert(d: number, leaf: number, depth: number, pos: number, kp: number, keyRef: number, valRef: number, lenFlag: number): void {
    const w = leaf >>> 2;
    const count = this.m.u32[w + N_META]! & COUNT_MASK;
    if (count < CAP) {
      this.insertSlot(leaf, pos, kp, keyRef, valRef, lenFlag);
      return;
    }
    // split: appending at the very end leaves the left leaf full (sequential loads pack tightly)
    const right = this.allocW(NODE_BYTES);
    this.initNode(right, true);
    const u32 = this.m.u32; // after allocW (the buffer may have grown)
    const rw = right >>> 2;
    const next = u32[w + N_NEXT]!;
    const m = pos === CAP && next === 0 ? CAP : (CAP + 1) >>> 1;
    if (m < CAP) u32.copyWithin(rw + N_SLOTS, w + N_SLOTS + m * SLOT_WORDS, w + N_SLOTS + CAP * SLOT_WORDS);
    u32[rw + N_META] = LEAF | (CAP - m);
    u32[w + N_META] = LEAF | m;
    u32[rw + N_NEXT] = next;
    u32[rw + N_PREV] = leaf;
    u32[w + N_NEXT] = right;
    const dw = d >>> 2;
    if (next === 0) u32[dw + D_LAST] = right;
    else u32[(next >>> 2) + N_PREV] = right;
    if (pos < m) this.insertSlot(leaf, pos, kp, keyRef, valRef, lenFlag);
    else this.insertSlot(right, pos - m, kp, keyRef, valRef, lenFlag);
    // separator: the right leaf's first key (shared key block)
    const sepKey = u32[rw + N_SLOTS + S_KEY]!;
    u32[(sepKey >>> 2) + K_REFS]!++;
    this.parentInsert(d, depth - 1, u32[rw + N_SLOTS + S_PREFIX]!, sepKey, right);
  }

  /** Insert separator (prefix,keyRef) with right child `child` into the node at path level lvl. */
  private parentInsert(d: number, lvl: number, prefix: number, keyRef: number, child: number): void {
    const dw = d >>> 2;
    if (lvl < 0) {
      const root = this.allocW(NODE_BYTES);
      this.initNode(root, false);
      const u32 = this.m.u32;
      const oldRoot = u32[dw + D_ROOT]!;
      u32[(root >>> 2) + N_CHILD0] = oldRoot;
      this.insertSlot(root, 0, prefix, keyRef, child, 0);
      u32[dw + D_ROOT] = root;
      u32[dw + D_HEIGHT]!++;
      return;
    }
    const node = this.pathN[lvl]!;
    const ci = this.pathI[lvl]!;
    const w = node >>> 2;
    const count = this.m.u32[w + N_META]! & COUNT_MASK;
    if (count < CAP) {
      this.insertSlot(node, ci, prefix, keyRef, child, 0);
      return;
    }
    // split a full internal node: keys [0,mid) stay, key mid moves up, keys (mid,CAP) go right
    const mid = CAP >>> 1;
    const right = this.allocW(NODE_BYTES);
    this.initNode(right, false);
    const u32 = this.m.u32; // after allocW
    const rw = right >>> 2;
    const ms = w + N_SLOTS + mid * SLOT_WORDS;
    const upPrefix = u32[ms + S_PREFIX]!;
    const upKey = u32[ms + S_KEY]!;
    u32[rw + N_CHILD0] = u32[ms + S_VAL]!;
    u32.copyWithin(rw + N_SLOTS, ms + SLOT_WORDS, w + N_SLOTS + CAP * SLOT_WORDS);
    u32[rw + N_META] = CAP - mid - 1;
    u32[w + N_META] = mid;
    if (ci <= mid) this.insertSlot(node, ci, prefix, keyRef, child, 0);
    else this.insertSlot(right, ci - mid - 1, prefix, keyRef, child, 0);
    this.parentInsert(d, lvl - 1, upPrefix, upKey, right);
  }

  /** Delete key. Returns true if it existed (old value in oldVal/oldLen). */
  private treeDelete(d: number, k: SearchKey): boolean {
    const { leaf, depth } = this.descend(d, k, true);
    const pos = this.bound(leaf, k, false);
    if (!this.eq) return false;
    const u32 = this.m.u32;
    const s = (leaf >>> 2) + N_SLOTS + pos * SLOT_WORDS;
    this.oldVal = u32[s + S_VAL]!;
    this.oldLen = u32[s + S_LEN]!;
    const keyRef = u32[s + S_KEY]!;
    this.removeSlot(leaf, pos);
    this.unrefKey(keyRef);
    const dw = d >>> 2;
    u32[dw + D_COUNT]!--;
    const left = u32[(leaf >>> 2) + N_META]! & COUNT_MASK;
    if (depth > 0 && left < MERGE_BELOW) {
      if (left === 0) {
        this.unlinkLeaf(d, leaf);
        this.m.free(leaf, NODE_BYTES);
        this.removeChild(depth - 1);
      } else {
        this.mergeLeaf(d, leaf, depth - 1);
      }
      // collapse a root left with one child
      for (;;) {
        const root = u32[dw + D_ROOT]!;
        if (u32[dw + D_HEIGHT] === 1 || (u32[(root >>> 2) + N_META]! & COUNT_MASK) !== 0) break;
        u32[dw + D_ROOT] = u32[(root >>> 2) + N_CHILD0]!;
        u32[dw + D_HEIGHT]!--;
        this.m.free(root, NODE_BYTES);
      }
    }
    return true;
  }

  private unlinkLeaf(d: number, leaf: number): void {
    const u32 = this.m.u32;
    const dw = d >>> 2;
    const lw = leaf >>> 2;
    const prev = u32[lw + N_PREV]!;
    const next = u32[lw + N_NEXT]!;
    if (prev === 0) u32[dw + D_FIRST] = next;
    else u32[(prev >>> 2) + N_NEXT] = next;
    if (next === 0) u32[dw + D_LAST] = prev;
    else u32[(next >>> 2) + N_PREV] = prev;
  }

  /**
   * An underfull leaf (child pathI[lvl] of pathN[lvl]) merges with a sibling under the same
   * parent when both fit in MERGE_UP_TO slots: the right one of the pair moves into the left one
   * and is freed with its separator.
   */
  private mergeLeaf(d: number, leaf: number, lvl: number): void {
    const u32 = this.m.u32;
    const parent = this.pathN[lvl]!;
    const ci = this.pathI[lvl]!;
    const pc = u32[(parent >>> 2) + N_META]! & COUNT_MASK;
    const n = u32[(leaf >>> 2) + N_META]! & COUNT_MASK;
    let l: number;
    let r: number;
    let rci: number;
    if (ci < pc) {
      l = leaf;
      r = this.childAt(parent, ci + 1);
      rci = ci + 1;
    } else if (ci > 0) {
      l = this.childAt(parent, ci - 1);
      r = leaf;
      rci = ci;
    } else {
      return; // an only child
    }
    const lw = l >>> 2;
    const rw = r >>> 2;
    const ln = l === leaf ? n : u32[lw + N_META]! & COUNT_MASK;
    const rn = r === leaf ? n : u32[rw + N_META]! & COUNT_MASK;
    if (ln + rn > MERGE_UP_TO) return;
    u32.copyWithin(lw + N_SLOTS + ln * SLOT_WORDS, rw + N_SLOTS, rw + N_SLOTS + rn * SLOT_WORDS);
    u32[lw + N_META] = LEAF | (ln + rn);
    this.unlinkLeaf(d, r);
    this.m.free(r, NODE_BYTES);
    this.pathI[lvl] = rci;
    this.removeChild(lvl);
  }

  /** The child at pathI[lvl] of pathN[lvl] was freed: drop it and its separator. */
  private removeChild(lvl: number): void {
    const node = this.pathN[lvl]!;
    const ci = this.pathI[lvl]!;
    const u32 = this.m.u32;
    const w = node >>> 2;
    const count = u32[w + N_META]! & COUNT_MASK;
    if (count === 0) {
      // the node had this one child only: it goes too
      assert(lvl > 0, 'removeChild: root with a single child survived a collapse');
      this.m.free(node, NODE_BYTES);
      this.removeChild(lvl - 1);
      return;
    }
    let sepKey: number;
    if (ci === 0) {
      sepKey = u32[w + N_SLOTS + S_KEY]!;
      u32[w + N_CHILD0] = u32[w + N_SLOTS + S_VAL]!;
      this.removeSlot(node, 0);
    } else {
      sepKey = u32[w + N_SLOTS + (ci - 1) * SLOT_WORDS + S_KEY]!;
      this.removeSlot(node, ci - 1);
    }
    this.unrefKey(sepKey);
  }

  // ------------------------------------------------------------------------------------------
  // read internals (caller holds a latch)

  /**
   * Take the read latch unless this thread already holds it through this object (a get or scan
   * inside a readConsistent callback nests instead of re-taking it, which could deadlock behind a
   * waiting writer).
   */
  private readLock(): void {
    if (this.readDepth === 0) {
      this.latch.acquireRead();
      this.m.refresh();
    }
    this.readDepth++;
  }

  private readUnlock(): void {
    assert(this.readDepth > 0, 'readUnlock without readLock');
    if (--this.readDepth === 0) this.latch.releaseRead();
  }

  /** @internal true while this thread holds the read latch through this object */
  get reading(): boolean {
    return this.readDepth > 0;
  }

  private refuseWriteWhileReading(what: string): void {
    if (this.readDepth > 0) throw Errors.objectInUse(`cannot ${what} inside readConsistent: this thread holds the store's read latch`);
  }

  /** Validated UTF-8 bytes of a table name (cached per name). */
  private tableNameBytes(name: string): Uint8Array {
    let b = this.nameBytes.get(name);
    if (b !== undefined) return b;
    if (typeof name !== 'string' || name.length === 0) throw Errors.invalidTable(String(name));
    b = textEncoder.encode(name);
    if (b.length > MAX_TABLE_NAME_BYTES) throw Errors.invalidTable(name);
    if (this.nameBytes.size >= TABLE_CACHE_LIMIT) this.nameBytes.clear();
    this.nameBytes.set(name, b);
    return b;
  }

  /** Descriptor of table `name` or 0. Validates the name. */
  private findTable(name: string): number {
    const c = this.tableCache.get(name);
    const ver = this.m.u32[S_DIR_VERSION >>> 2]!;
    if (c !== undefined && c.ver === ver) return c.desc;
    const nb = c !== undefined ? c.bytes : this.tableNameBytes(name);
    return this.lookupTable(name, nb, ver);
  }

  private findTableBytes(name: string, nb: Uint8Array): number {
    const c = this.tableCache.get(name);
    const ver = this.m.u32[S_DIR_VERSION >>> 2]!;
    if (c !== undefined && c.ver === ver) return c.desc;
    return this.lookupTable(name, nb, ver);
  }

  private lookupTable(name: string, nb: Uint8Array, ver: number): number {
    const s = this.findSlot(S_DIR, this.skB.set(nb));
    const desc = s < 0 ? 0 : this.m.u32[s + S_VAL]!;
    if (this.tableCache.size >= TABLE_CACHE_LIMIT) this.tableCache.clear();
    this.tableCache.set(name, { ver, desc, bytes: nb });
    return desc;
  }

  private keyBytes(key: string | Uint8Array): Uint8Array {
    if (key instanceof Uint8Array) {
      if (key.length > MAX_KEY_BYTES) throw Errors.invalidKey(`key is ${key.length} bytes, more than maxKeyBytes (${MAX_KEY_BYTES})`);
      return key;
    }
    if (typeof key !== 'string') throw Errors.invalidKey(`must be a string or Uint8Array, got ${typeof key}`);
    if (key.length * 3 > this.keyScratch.length) this.keyScratch = new Uint8Array(Math.max(key.length * 3, this.keyScratch.length * 2));
    const r = textEncoder.encodeInto(key, this.keyScratch);
    if (r.written > MAX_KEY_BYTES) throw Errors.invalidKey(`key is ${r.written} bytes, more than maxKeyBytes (${MAX_KEY_BYTES})`);
    return this.keyScratch.subarray(0, r.written);
  }

  /** @internal */
  getRawU(table: string, key: string | Uint8Array): Uint8Array | undefined {
    const s = this.locate(table, key);
    if (s < 0) return undefined;
    const u32 = this.m.u32;
    const ref = u32[s + S_VAL]!;
    const len = u32[s + S_LEN]! & LEN_MASK;
    return this.copyOut(ref, len);
  }

  /** @internal */
  getU(table: string, key: string | Uint8Array): unknown {
    const s = this.locate(table, key);
    if (s < 0) return undefined;
    const u32 = this.m.u32;
    return this.decodeValue(u32[s + S_VAL]!, u32[s + S_LEN]! & LEN_MASK);
  }

  private locate(table: string, key: string | Uint8Array): number {
    const desc = this.findTable(table);
    const k = this.keyBytes(key);
    if (desc === 0) return -1;
    return this.findSlot(desc, this.skA.set(k));
  }

  private decodeValue(ref: number, len: number): unknown {
    if (len === 0) return undefined;
    // msgpackr decodes straight from shared memory: copyBuffers makes binary values copies, and
    // Node 20's TextDecoder accepts shared views (checked by the store tests). Decoding a range of
    // the whole-buffer view lets msgpackr reuse the DataView it caches on that view (a fresh
    // subarray per value costs a DataView and a hidden-class change each time).
    const r = this.unpackRange;
    r.start = ref;
    r.end = ref + len;
    return this.unpackr.unpack(this.m.u8, r);
  }

  /** Copy len bytes at ref out of shared memory into a plain Uint8Array. */
  private copyOut(ref: number, len: number): Uint8Array {
    if (len === 0) return new Uint8Array(0);
    if (len > COPY_SLAB_MAX_BYTES) {
      const out = new Uint8Array(len);
      out.set(this.m.u8.subarray(ref, ref + len));
      return out;
    }
    // small copies come from a shared slab (like Buffer's pool): one ArrayBuffer per 64 KiB
    let off = this.slabOff;
    if (off + len > COPY_SLAB_BYTES) {
      this.slab = new ArrayBuffer(COPY_SLAB_BYTES);
      off = 0;
    }
    const out = new Uint8Array(this.slab, off, len);
    out.set(this.m.u8.subarray(ref, ref + len));
    this.slabOff = (off + len + 7) & ~7; // keep copies 8-aligned (fast shared-memory copies)
    return out;
  }

  /** @internal */
  countU(table?: string): number {
    if (table === undefined) return this.m.f64[S_ENTRIES / 8]!;
    const desc = this.findTable(table);
    return desc === 0 ? 0 : this.m.u32[(desc >>> 2) + D_COUNT]!;
  }

  private slotKey(s: number): string | Uint8Array {
    const u32 = this.m.u32;
    const kr = u32[s + S_KEY]!;
    const klen = u32[(kr >>> 2) + K_LEN]!;
    const start = kr + K_BYTES;
    if ((u32[s + S_LEN]! & KEY_IS_STRING) !== 0) return utf8(this.m.u8, start, start + klen);
    return this.copyOut(start, klen);
  }

  /** @internal */
  scanU(table: string, o: CheckedScan): ScanEntry[] {
    const out: ScanEntry[] = [];
    const desc = this.findTable(table);
    if (desc === 0 || o.limit === 0) return out;
    const lo = o.lo === undefined ? undefined : this.skA.set(this.keyBytes(o.lo));
    const hi = o.hi === undefined ? undefined : this.skC.set(this.keyBytes(o.hi));
    const u32 = this.m.u32;
    const dw = desc >>> 2;
    const limit = o.limit;
    let leaf: number;
    let pos: number;
    if (!o.reverse) {
      if (lo !== undefined) {
        leaf = this.descend(desc, lo, false).leaf;
        pos = this.bound(leaf, lo, o.loExclusive);
      } else {
        leaf = u32[dw + D_FIRST]!;
        pos = 0;
      }
      while (leaf !== 0) {
        const w = leaf >>> 2;
        const count = u32[w + N_META]! & COUNT_MASK;
        for (; pos < count; pos++) {
          const s = w + N_SLOTS + pos * SLOT_WORDS;
          if (hi !== undefined) {
            const c = this.cmpSlot(hi, s); // sign of hi - key
            if (c < 0 || (c === 0 && o.hiExclusive)) return out;
          }
          out.push({ key: this.slotKey(s), value: this.decodeValue(u32[s + S_VAL]!, u32[s + S_LEN]! & LEN_MASK) });
          if (out.length >= limit) return out;
        }
        leaf = u32[w + N_NEXT]!;
        pos = 0;
      }
    } else {
      if (hi !== undefined) {
        leaf = this.descend(desc, hi, false).leaf;
        pos = this.bound(leaf, hi, !o.hiExclusive) - 1;
      } else {
        leaf = u32[dw + D_LAST]!;
        pos = (u32[(leaf >>> 2) + N_META]! & COUNT_MASK) - 1;
      }
      while (leaf !== 0) {
        const w = leaf >>> 2;
        for (; pos >= 0; pos--) {
          const s = w + N_SLOTS + pos * SLOT_WORDS;
          if (lo !== undefined) {
            const c = this.cmpSlot(lo, s); // sign of lo - key
            if (c > 0 || (c === 0 && o.loExclusive)) return out;
          }
          out.push({ key: this.slotKey(s), value: this.decodeValue(u32[s + S_VAL]!, u32[s + S_LEN]! & LEN_MASK) });
          if (out.length >= limit) return out;
        }
        leaf = u32[w + N_PREV]!;
        if (leaf !== 0) pos = (u32[(leaf >>> 2) + N_META]! & COUNT_MASK) - 1;
      }
    }
    return out;
  }

  /** Calls fn(name, nameBytes view) for each table in name order until it returns false. */
  private forEachTable(fn: (name: string, desc: number, nameView: Uint8Array) => boolean, startAfterOrAt?: { name: Uint8Array; inclusive: boolean }): void {
    const u32 = this.m.u32;
    const dw = S_DIR >>> 2;
    let leaf: number;
    let pos: number;
    if (startAfterOrAt !== undefined) {
      const k = this.skB.set(startAfterOrAt.name);
      leaf = this.descend(S_DIR, k, false).leaf;
      pos = this.bound(leaf, k, !startAfterOrAt.inclusive);
    } else {
      leaf = u32[dw + D_FIRST]!;
      pos = 0;
    }
    while (leaf !== 0) {
      const w = leaf >>> 2;
      const count = u32[w + N_META]! & COUNT_MASK;
      for (; pos < count; pos++) {
        const s = w + N_SLOTS + pos * SLOT_WORDS;
        const kr = u32[s + S_KEY]!;
        const klen = u32[(kr >>> 2) + K_LEN]!;
        const nv = this.m.u8.subarray(kr + K_BYTES, kr + K_BYTES + klen);
        if (!fn(utf8(this.m.u8, kr + K_BYTES, kr + K_BYTES + klen), u32[s + S_VAL]!, nv)) return;
      }
      leaf = u32[w + N_NEXT]!;
      pos = 0;
    }
  }

  /**
   * Visit entries after cursor `after` in (table, key) order. Stops after maxEntries entries or
   * once maxBytes of key+value bytes were visited. Returns true if it stopped early (more may
   * follow), false when it reached the end.
   */
  private visitFrom(
    after: StoreCursor | null,
    maxEntries: number,
    maxBytes: number,
    visit: (table: string, nameBytes: Uint8Array, key: Uint8Array, isString: boolean, value: Uint8Array) => void,
  ): boolean {
    let entries = 0;
    let bytes = 0;
    let stopped = false;
    const afterName = after === null ? undefined : this.tableNameBytes(after.table);
    const afterKey = after === null ? undefined : after.key;
    this.forEachTable(
      (name, desc, nameView) => {
        const u32 = this.m.u32;
        const u8 = this.m.u8;
        let leaf: number;
        let pos: number;
        if (afterKey !== undefined && name === after!.table) {
          const k = this.skA.set(afterKey);
          leaf = this.descend(desc, k, false).leaf;
          pos = this.bound(leaf, k, true);
        } else {
          leaf = u32[(desc >>> 2) + D_FIRST]!;
          pos = 0;
        }
        while (leaf !== 0) {
          const w = leaf >>> 2;
          const count = u32[w + N_META]! & COUNT_MASK;
          for (; pos < count; pos++) {
            if (entries >= maxEntries || bytes >= maxBytes) {
              stopped = true;
              return false;
            }
            const s = w + N_SLOTS + pos * SLOT_WORDS;
            const kr = u32[s + S_KEY]!;
            const klen = u32[(kr >>> 2) + K_LEN]!;
            const vr = u32[s + S_VAL]!;
            const lf = u32[s + S_LEN]!;
            const vlen = lf & LEN_MASK;
            visit(name, nameView, u8.subarray(kr + K_BYTES, kr + K_BYTES + klen), (lf & KEY_IS_STRING) !== 0, vlen === 0 ? EMPTY : u8.subarray(vr, vr + vlen));
            entries++;
            bytes += klen + vlen;
          }
          leaf = u32[w + N_NEXT]!;
          pos = 0;
        }
        return true;
      },
      afterName === undefined ? undefined : { name: afterName, inclusive: true },
    );
    return stopped;
  }

  /** @internal: consistency check of every tree (tests). Throws AssertionError on damage. */
  checkInvariants(): void {
    this.readLock();
    try {
      let total = 0;
      let tables = 0;
      this.checkTree(S_DIR);
      this.forEachTable((_name, desc) => {
        const n = this.checkTree(desc);
        assert(n > 0, 'empty table survived a transaction');
        total += n;
        tables++;
        return true;
      });
      assert(total === this.m.f64[S_ENTRIES / 8], `entries counter ${this.m.f64[S_ENTRIES / 8]} != ${total}`);
      assert(tables === this.m.u32[S_TABLES >>> 2], 'tables counter mismatch');
    } finally {
      this.readUnlock();
    }
  }

  private checkTree(d: number): number {
    const u32 = this.m.u32;
    const dw = d >>> 2;
    const height = u32[dw + D_HEIGHT]!;
    const leaves: number[] = [];
    const walk = (node: number, lvl: number, lo: Uint8Array | null, hi: Uint8Array | null): void => {
      const w = node >>> 2;
      const meta = u32[w + N_META]!;
      const count = meta & COUNT_MASK;
      assert(count <= CAP, 'node overfull');
      const leaf = (meta & LEAF) !== 0;
      assert(leaf === (lvl === 1), 'leaf at wrong level');
      let prev: Uint8Array | null = null;
      const keyAt = (i: number) => {
        const kr = u32[w + N_SLOTS + i * SLOT_WORDS + S_KEY]!;
        const k = this.m.u8.slice(kr + K_BYTES, kr + K_BYTES + u32[(kr >>> 2) + K_LEN]!);
        assert(prefixOf(k) === u32[w + N_SLOTS + i * SLOT_WORDS + S_PREFIX], 'prefix mismatch');
        assert(u32[(kr >>> 2) + K_REFS]! >= 1, 'dead key block referenced');
        return k;
      };
      for (let i = 0; i < count; i++) {
        const k = keyAt(i);
        if (prev !== null) assert(Buffer.compare(prev, k) < 0, 'keys out of order');
        if (lo !== null) assert(Buffer.compare(lo, k) <= 0, 'key below separator');
        if (hi !== null) assert(Buffer.compare(k, hi) < 0, 'key above separator');
        prev = k;
      }
      if (leaf) {
        assert(count > 0 || lvl === height, 'empty non-root leaf');
        leaves.push(node);
        return;
      }
      for (let ci = 0; ci <= count; ci++) {
        walk(this.childAt(node, ci), lvl - 1, ci === 0 ? lo : keyAt(ci - 1), ci === count ? hi : keyAt(ci));
      }
    };
    walk(u32[dw + D_ROOT]!, height, null, null);
    assert(u32[dw + D_FIRST] === leaves[0] && u32[dw + D_LAST] === leaves[leaves.length - 1], 'first/last leaf wrong');
    let n = 0;
    for (let i = 0; i < leaves.length; i++) {
      const w = leaves[i]! >>> 2;
      assert(u32[w + N_PREV] === (i === 0 ? 0 : leaves[i - 1]), 'leaf prev link wrong');
      assert(u32[w + N_NEXT] === (i === leaves.length - 1 ? 0 : leaves[i + 1]), 'leaf next link wrong');
      n += u32[w + N_META]! & COUNT_MASK;
    }
    assert(n === u32[dw + D_COUNT], `tree count ${u32[dw + D_COUNT]} != ${n}`);
    return n;
  }
}

export interface CheckedScan {
  lo: string | Uint8Array | undefined;
  loExclusive: boolean;
  hi: string | Uint8Array | undefined;
  hiExclusive: boolean;
  limit: number;
  reverse: boolean;
}

/** Validate ScanOptions once (precise errors). */
export function checkScanOptions(opts: ScanOptions | undefined): CheckedScan {
  if (opts === undefined) return { lo: undefined, loExclusive: false, hi: undefined, hiExclusive: false, limit: Infinity, reverse: false };
  if (opts === null || typeof opts !== 'object') throw Errors.invalidOption('scan options', 'must be an object');
  if (opts.gt !== undefined && opts.gte !== undefined) throw Errors.invalidOption('gt', 'give gt or gte, not both');
  if (opts.lt !== undefined && opts.lte !== undefined) throw Errors.invalidOption('lt', 'give lt or lte, not both');
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = opts[k];
    if (v !== undefined && typeof v !== 'string' && !(v instanceof Uint8Array)) throw Errors.invalidOption(k, 'must be a string or Uint8Array');
  }
  const limit = opts.limit ?? Infinity;
  if (limit !== Infinity && (!isInt(limit) || limit < 0)) throw Errors.invalidOption('limit', `must be a non-negative integer, got ${String(opts.limit)}`);
  if (opts.reverse !== undefined && typeof opts.reverse !== 'boolean') throw Errors.invalidOption('reverse', 'must be a boolean');
  return {
    lo: opts.gt ?? opts.gte,
    loExclusive: opts.gt !== undefined,
    hi: opts.lt ?? opts.lte,
    hiExclusive: opts.lt !== undefined,
    limit,
    reverse: opts.reverse === true,
  };
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
