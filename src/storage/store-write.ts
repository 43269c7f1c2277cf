// The write side of the shared store and the latch discipline: the table directory (lookups
// cached per thread, tables created on their first put and dropped when their last entry goes),
// and the one apply path of a transaction (applyTransaction with StoreOp objects and applyBatch
// with a StoreOpBatch: validate, take the write latch, reserve every block, apply, release).
// Layer two of SharedStore (btree.ts ← store-write.ts ← store-read.ts ← store.ts).
//
// DEV DOCS (threads): one writer at a time (the primary's main thread, or the standby's startup
// worker) holds the write latch (RWLatch in the store header, writer-preferring) for a whole
// transaction; readers on any thread hold the read latch for a whole get/scan/readConsistent, so a
// reader never sees half a transaction. Reads nest inside readConsistent on the same object
// (readDepth, no second latch); writing from inside a readConsistent callback throws
// WS_OBJECT_IN_USE. Every latch acquisition refreshes the arena views (the buffer may have grown).
//
// Running out of space: before mutating, reserve() allocates the values and checks that the bump
// space covers a worst-case bound for keys and split nodes; if not, it reserves those blocks from
// the free lists, and if that fails it frees everything and throws Errors.storeFull with the store
// unchanged. So the tree is never left half-updated. A table whose last entry is deleted is dropped
// at the end of the transaction, so the set of tables is a function of the entries (snapshots and
// replay agree).

import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { copyToShared } from '../util/shm-copy.js';
import { BATCH_DELETE, BATCH_PUT, MAX_KEY_BYTES, MAX_TABLE_NAME_BYTES, type StoreOp, type StoreOpBatch } from '../wal/txn-ops.js';
import { Arena, blockBytes, classOf, H, HEADER_BYTES } from './alloc.js';
import { BTree } from './btree.js';
import { RWLatch } from './latch.js';
import type { StoreHandle } from './store-api.js';
import { EMPTY, SearchKey, SL, textEncoder } from './store-layout.js';

/** Values up to this size are copied into the arena through a bounce buffer when misaligned (larger: copyToShared). */
const BOUNCE_MAX_BYTES = 256 * 1024;

/** Most table names a SharedStore object caches (per thread) before starting over. */
const TABLE_CACHE_LIMIT = 4096;

interface TableCacheEntry {
  ver: number;
  desc: number;
  bytes: Uint8Array;
}

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

export abstract class StoreWriter extends BTree {
  readonly handle: StoreHandle;
  protected readonly latch: RWLatch;
  readonly maxValueBytes: number;
  readonly maxStoreBytes: number;
  protected readonly tableCache = new Map<string, TableCacheEntry>();
  protected readonly nameBytes = new Map<string, Uint8Array>();
  /** read latch nesting depth of this thread through this object */
  protected readDepth = 0;
  // search keys: A = the op/get key or a scan's lower bound, B = table names, C = a scan's upper bound
  protected readonly skA = new SearchKey();
  protected readonly skB = new SearchKey();
  protected readonly skC = new SearchKey();
  /** applyTransaction's StoreOp objects as a batch (reused) */
  private readonly opsBatch = new OpsBatch();
  /** value blocks of the running transaction, by op index */
  private valRefs: number[] = new Array<number>(16).fill(0);
  /** table descriptor of each put as reserve() found it (0: not there yet) */
  private opDesc: number[] = new Array<number>(16).fill(0);
  private bounce = new Uint8Array(4096);

  protected constructor(handle: StoreHandle) {
    super(new Arena(handle.buffer));
    this.handle = handle;
    const i32 = new Int32Array(handle.buffer, 0, HEADER_BYTES / 4);
    this.latch = new RWLatch(i32, SL.S_LATCH / 4);
    this.maxValueBytes = this.m.f64[H.MAX_VALUE_BYTES / 8]!;
    this.maxStoreBytes = this.m.maxStoreBytes;
  }

  /** Writer, under the write latch (or before sharing): empty directory, no entries. */
  protected initEmpty(): void {
    const m = this.m;
    m.f64[SL.S_ENTRIES / 8] = 0;
    m.f64[SL.S_COMMITS / 8] = 0;
    m.u32[SL.S_TABLES / 4] = 0;
    m.u32[SL.S_DIR_VERSION / 4] = (m.u32[SL.S_DIR_VERSION / 4]! + 1) >>> 0;
    const root = m.alloc(SL.NODE_BYTES);
    assert(root !== 0, 'store too small for its directory');
    this.initNode(root, true);
    const dw = SL.S_DIR >>> 2;
    const u32 = this.m.u32;
    u32[dw + SL.D_ROOT] = root;
    u32[dw + SL.D_HEIGHT] = 1;
    u32[dw + SL.D_COUNT] = 0;
    u32[dw + SL.D_FIRST] = root;
    u32[dw + SL.D_LAST] = root;
    this.tableCache.clear();
  }

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

  protected applyChecked(b: StoreOpBatch): void {
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
      this.m.f64[SL.S_COMMITS / 8] = this.m.f64[SL.S_COMMITS / 8]! + 1;
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

  /**
   * Allocate and fill every value block (refs in this.valRefs); make sure keys and split nodes
   * cannot run out of space (bump space, else reserve into this.pool). On failure free everything
   * and throw storeFull.
   */
  protected reserve(b: StoreOpBatch): void {
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
      keyBytes += blockBytes(SL.K_BYTES + b.keyLen[i]!);
      const table = b.table[i]!;
      const desc = this.findTableBytes(table, b.tableBytes[i]!);
      opDesc[i] = desc;
      if (desc !== 0) nodeSlots += m.u32[(desc >>> 2) + SL.D_HEIGHT]!;
      else {
        nodeSlots += 1;
        if (newTables === undefined) newTables = new Map();
        if (!newTables.has(table)) newTables.set(table, b.tableBytes[i]!.length);
      }
    }
    // height can grow by one per SL.MIN_SPLIT_FILL-fold growth of the tree within this transaction:
    // growth = 1 + ceil(log_MIN_SPLIT_FILL(puts + 1))
    let growth = 1;
    for (let x = 1; x < puts + 1; x *= SL.MIN_SPLIT_FILL) growth++;
    let nodes = nodeSlots + puts * growth;
    const dirH = m.u32[(SL.S_DIR >>> 2) + SL.D_HEIGHT]!;
    if (newTables !== undefined) {
      for (const len of newTables.values()) {
        nodes += 1 + dirH + growth;
        keyBytes += blockBytes(SL.K_BYTES + len) + blockBytes(SL.DESC_BYTES);
      }
    }
    const need = nodes * SL.NODE_BYTES + keyBytes;
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
    for (let i = 0; ok && i < nodes; i++) ok = take(SL.NODE_BYTES);
    for (let i = 0; ok && i < n; i++) if (b.kind[i] === BATCH_PUT) ok = take(SL.K_BYTES + b.keyLen[i]!);
    for (const len of newTables?.values() ?? []) {
      if (ok) ok = take(SL.K_BYTES + len);
      if (ok) ok = take(SL.DESC_BYTES);
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
   * time only when source and destination agree mod 8 (src/util/shm-copy.ts), so a source that does not
   * (a value inside a WAL record) goes through an ordinary bounce buffer placed to agree.
   */
  protected copyIn(ref: number, src: Uint8Array, off: number, len: number): void {
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

  protected applyReserved(b: StoreOpBatch): void {
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
        const lenFlag = (b.valLen[i]! | (b.keyIsString[i] ? SL.KEY_IS_STRING : 0)) >>> 0;
        if (this.treePut(desc, k, valRefs[i]!, lenFlag)) {
          m.free(this.oldVal, this.oldLen & SL.LEN_MASK);
        } else {
          m.f64[SL.S_ENTRIES / 8] = m.f64[SL.S_ENTRIES / 8]! + 1;
        }
      } else {
        if (desc === 0) continue;
        if (this.treeDelete(desc, k)) {
          m.free(this.oldVal, this.oldLen & SL.LEN_MASK);
          m.f64[SL.S_ENTRIES / 8] = m.f64[SL.S_ENTRIES / 8]! - 1;
          if (touched === undefined) touched = new Map();
          touched.set(table, nb);
        }
      }
    }
    if (touched === undefined) return;
    for (const [name, nb] of touched) {
      const desc = this.findTableBytes(name, nb);
      if (desc !== 0 && m.u32[(desc >>> 2) + SL.D_COUNT] === 0) this.dropTable(name, nb, desc);
    }
  }

  protected createTable(name: string, nb: Uint8Array): number {
    const desc = this.allocW(SL.DESC_BYTES);
    const root = this.allocW(SL.NODE_BYTES);
    this.initNode(root, true);
    let u32 = this.m.u32;
    const dw = desc >>> 2;
    u32.fill(0, dw, dw + SL.DESC_BYTES / 4);
    u32[dw + SL.D_ROOT] = root;
    u32[dw + SL.D_HEIGHT] = 1;
    u32[dw + SL.D_FIRST] = root;
    u32[dw + SL.D_LAST] = root;
    const existed = this.treePut(SL.S_DIR, this.skB.set(nb), desc, SL.DESC_BYTES);
    assert(!existed, 'createTable: table exists');
    u32 = this.m.u32; // treePut may have grown the buffer
    u32[SL.S_TABLES >>> 2]!++;
    u32[SL.S_DIR_VERSION >>> 2] = (u32[SL.S_DIR_VERSION >>> 2]! + 1) >>> 0;
    this.tableCache.set(name, { ver: u32[SL.S_DIR_VERSION >>> 2]!, desc, bytes: nb });
    return desc;
  }

  protected dropTable(name: string, nb: Uint8Array, desc: number): void {
    const m = this.m;
    const u32 = m.u32;
    const dw = desc >>> 2;
    assert(u32[dw + SL.D_COUNT] === 0 && u32[dw + SL.D_HEIGHT] === 1, 'dropTable: table not empty');
    const found = this.treeDelete(SL.S_DIR, this.skB.set(nb));
    assert(found && this.oldVal === desc, 'dropTable: directory entry missing');
    m.free(u32[dw + SL.D_ROOT]!, SL.NODE_BYTES);
    m.free(desc, SL.DESC_BYTES);
    u32[SL.S_TABLES >>> 2]!--;
    u32[SL.S_DIR_VERSION >>> 2] = (u32[SL.S_DIR_VERSION >>> 2]! + 1) >>> 0;
    this.tableCache.delete(name);
  }

  /**
   * Take the read latch unless this thread already holds it through this object (a get or scan
   * inside a readConsistent callback nests instead of re-taking it, which could deadlock behind a
   * waiting writer).
   */
  protected readLock(): void {
    if (this.readDepth === 0) {
      this.latch.acquireRead();
      this.m.refresh();
    }
    this.readDepth++;
  }

  protected readUnlock(): void {
    assert(this.readDepth > 0, 'readUnlock without readLock');
    if (--this.readDepth === 0) this.latch.releaseRead();
  }

  /** @internal true while this thread holds the read latch through this object */
  get reading(): boolean {
    return this.readDepth > 0;
  }

  protected refuseWriteWhileReading(what: string): void {
    if (this.readDepth > 0) throw Errors.objectInUse(`cannot ${what} inside readConsistent: this thread holds the store's read latch`);
  }

  /** Validated UTF-8 bytes of a table name (cached per name). */
  protected tableNameBytes(name: string): Uint8Array {
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
  protected findTable(name: string): number {
    const c = this.tableCache.get(name);
    const ver = this.m.u32[SL.S_DIR_VERSION >>> 2]!;
    if (c !== undefined && c.ver === ver) return c.desc;
    const nb = c !== undefined ? c.bytes : this.tableNameBytes(name);
    return this.lookupTable(name, nb, ver);
  }

  protected findTableBytes(name: string, nb: Uint8Array): number {
    const c = this.tableCache.get(name);
    const ver = this.m.u32[SL.S_DIR_VERSION >>> 2]!;
    if (c !== undefined && c.ver === ver) return c.desc;
    return this.lookupTable(name, nb, ver);
  }

  protected lookupTable(name: string, nb: Uint8Array, ver: number): number {
    const s = this.findSlot(SL.S_DIR, this.skB.set(nb));
    const desc = s < 0 ? 0 : this.m.u32[s + SL.S_VAL]!;
    if (this.tableCache.size >= TABLE_CACHE_LIMIT) this.tableCache.clear();
    this.tableCache.set(name, { ver, desc, bytes: nb });
    return desc;
  }
}
