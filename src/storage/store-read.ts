// The read side of the shared store: point lookups, range scans (forward and reverse over the
// linked leaves), counts, the ordered walk over every table and entry that snapshots and digests
// use (visitFrom), value decoding straight from shared memory, and the consistency check. Every
// method here expects the caller to hold a latch (the public API in store.ts takes it). Layer
// three of SharedStore (btree.ts ← store-write.ts ← store-read.ts ← store.ts).
//
// Values decode with msgpackr straight from shared memory (copyBuffers: binaries are copies); keys
// and raw values are copied out into small slabs (like Buffer's pool).

import { Unpackr } from '../util/msgpackr.js';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { MAX_KEY_BYTES } from '../wal/txn-ops.js';
import type { CheckedScan, ScanEntry, StoreCursor, StoreHandle } from './store-api.js';
import { EMPTY, type SearchKey, SL, textEncoder, utf8 } from './store-layout.js';
import { StoreWriter } from './store-write.js';

/** Copies of at most COPY_SLAB_MAX_BYTES share COPY_SLAB_BYTES ArrayBuffers. */
const COPY_SLAB_BYTES = 64 * 1024;
const COPY_SLAB_MAX_BYTES = 4 * 1024;

export abstract class StoreReader extends StoreWriter {
  private readonly unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
  private readonly unpackRange = { start: 0, end: 0 };
  private keyScratch = new Uint8Array(256);
  private slab = new ArrayBuffer(COPY_SLAB_BYTES);
  private slabOff = 0;

  protected constructor(handle: StoreHandle) {
    super(handle);
  }

  protected keyBytes(key: string | Uint8Array): Uint8Array {
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
    const ref = u32[s + SL.S_VAL]!;
    const len = u32[s + SL.S_LEN]! & SL.LEN_MASK;
    return this.copyOut(ref, len);
  }

  /** @internal */
  getU(table: string, key: string | Uint8Array): unknown {
    const s = this.locate(table, key);
    if (s < 0) return undefined;
    const u32 = this.m.u32;
    return this.decodeValue(u32[s + SL.S_VAL]!, u32[s + SL.S_LEN]! & SL.LEN_MASK);
  }

  protected locate(table: string, key: string | Uint8Array): number {
    const desc = this.findTable(table);
    const k = this.keyBytes(key);
    if (desc === 0) return -1;
    return this.findSlot(desc, this.skA.set(k));
  }

  protected decodeValue(ref: number, len: number): unknown {
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
  protected copyOut(ref: number, len: number): Uint8Array {
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
    if (table === undefined) return this.m.f64[SL.S_ENTRIES / 8]!;
    const desc = this.findTable(table);
    return desc === 0 ? 0 : this.m.u32[(desc >>> 2) + SL.D_COUNT]!;
  }

  protected slotKey(s: number): string | Uint8Array {
    const u32 = this.m.u32;
    const kr = u32[s + SL.S_KEY]!;
    const klen = u32[(kr >>> 2) + SL.K_LEN]!;
    const start = kr + SL.K_BYTES;
    if ((u32[s + SL.S_LEN]! & SL.KEY_IS_STRING) !== 0) return utf8(this.m.u8, start, start + klen);
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
      this.walkForward(desc, lo, o.loExclusive, (s) => {
        if (hi !== undefined) {
          const c = this.cmpSlot(hi, s); // sign of hi - key
          if (c < 0 || (c === 0 && o.hiExclusive)) return false;
        }
        out.push({ key: this.slotKey(s), value: this.decodeValue(u32[s + SL.S_VAL]!, u32[s + SL.S_LEN]! & SL.LEN_MASK) });
        return out.length < limit;
      });
    } else {
      if (hi !== undefined) {
        leaf = this.descend(desc, hi, false).leaf;
        pos = this.bound(leaf, hi, !o.hiExclusive) - 1;
      } else {
        leaf = u32[dw + SL.D_LAST]!;
        pos = (u32[(leaf >>> 2) + SL.N_META]! & SL.COUNT_MASK) - 1;
      }
      while (leaf !== 0) {
        const w = leaf >>> 2;
        for (; pos >= 0; pos--) {
          const s = w + SL.N_SLOTS + pos * SL.SLOT_WORDS;
          if (lo !== undefined) {
            const c = this.cmpSlot(lo, s); // sign of lo - key
            if (c > 0 || (c === 0 && o.loExclusive)) return out;
          }
          out.push({ key: this.slotKey(s), value: this.decodeValue(u32[s + SL.S_VAL]!, u32[s + SL.S_LEN]! & SL.LEN_MASK) });
          if (out.length >= limit) return out;
        }
        leaf = u32[w + SL.N_PREV]!;
        if (leaf !== 0) pos = (u32[(leaf >>> 2) + SL.N_META]! & SL.COUNT_MASK) - 1;
      }
    }
    return out;
  }

  /** Calls fn(name, nameBytes view) for each table in name order until it returns false. */
  protected forEachTable(fn: (name: string, desc: number, nameView: Uint8Array) => boolean, startAfterOrAt?: { name: Uint8Array; inclusive: boolean }): void {
    const u32 = this.m.u32;
    const from = startAfterOrAt === undefined ? undefined : this.skB.set(startAfterOrAt.name);
    this.walkForward(SL.S_DIR, from, !(startAfterOrAt?.inclusive ?? true), (s) => {
      const kr = u32[s + SL.S_KEY]!;
      const klen = u32[(kr >>> 2) + SL.K_LEN]!;
      const nv = this.m.u8.subarray(kr + SL.K_BYTES, kr + SL.K_BYTES + klen);
      return fn(utf8(this.m.u8, kr + SL.K_BYTES, kr + SL.K_BYTES + klen), u32[s + SL.S_VAL]!, nv);
    });
  }

  /**
   * Visit the slots of the tree `desc` in key order, from the first key ≥ `from` (> with
   * `fromExclusive`; the first key when `from` is undefined), along the leaves' next links, while
   * `visit(slotWord)` returns true.
   */
  private walkForward(desc: number, from: SearchKey | undefined, fromExclusive: boolean, visit: (slotWord: number) => boolean): void {
    const u32 = this.m.u32;
    let leaf: number;
    let pos: number;
    if (from !== undefined) {
      leaf = this.descend(desc, from, false).leaf;
      pos = this.bound(leaf, from, fromExclusive);
    } else {
      leaf = u32[(desc >>> 2) + SL.D_FIRST]!;
      pos = 0;
    }
    while (leaf !== 0) {
      const w = leaf >>> 2;
      const count = u32[w + SL.N_META]! & SL.COUNT_MASK;
      for (; pos < count; pos++) if (!visit(w + SL.N_SLOTS + pos * SL.SLOT_WORDS)) return;
      leaf = u32[w + SL.N_NEXT]!;
      pos = 0;
    }
  }

  /**
   * Visit entries after cursor `after` in (table, key) order. Stops after maxEntries entries or
   * once maxBytes of key+value bytes were visited. Returns true if it stopped early (more may
   * follow), false when it reached the end.
   */
  protected visitFrom(
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
        const from = afterKey !== undefined && name === after!.table ? this.skA.set(afterKey) : undefined;
        this.walkForward(desc, from, true, (s) => {
          if (entries >= maxEntries || bytes >= maxBytes) {
            stopped = true;
            return false;
          }
          const kr = u32[s + SL.S_KEY]!;
          const klen = u32[(kr >>> 2) + SL.K_LEN]!;
          const vr = u32[s + SL.S_VAL]!;
          const lf = u32[s + SL.S_LEN]!;
          const vlen = lf & SL.LEN_MASK;
          visit(name, nameView, u8.subarray(kr + SL.K_BYTES, kr + SL.K_BYTES + klen), (lf & SL.KEY_IS_STRING) !== 0, vlen === 0 ? EMPTY : u8.subarray(vr, vr + vlen));
          entries++;
          bytes += klen + vlen;
          return true;
        });
        return !stopped;
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
      this.checkTree(SL.S_DIR);
      this.forEachTable((_name, desc) => {
        const n = this.checkTree(desc);
        assert(n > 0, 'empty table survived a transaction');
        total += n;
        tables++;
        return true;
      });
      assert(total === this.m.f64[SL.S_ENTRIES / 8], `entries counter ${this.m.f64[SL.S_ENTRIES / 8]} != ${total}`);
      assert(tables === this.m.u32[SL.S_TABLES >>> 2], 'tables counter mismatch');
    } finally {
      this.readUnlock();
    }
  }
}
