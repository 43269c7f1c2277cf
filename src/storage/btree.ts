// The B+tree algorithms of the shared store, over its arena (src/storage/alloc.ts): search
// (bound, descend, findSlot), insert with splits (treePut, leafInsert, parentInsert), delete with
// leaf merges (treeDelete, mergeLeaf, removeChild), key blocks with reference counts, and the
// consistency check. A tree is named by its descriptor offset `d` (a table descriptor block, or
// SL.S_DIR for the table directory). The base layer of SharedStore (btree.ts ← store-write.ts ←
// store-read.ts ← store.ts): the writer thread mutates under the write latch, readers only search
// under the read latch; nothing here takes a latch. Node allocation during a transaction comes from
// the reservation pool (allocW), so a mutation can never fail half-way.
//
// Leaves are doubly linked for forward and reverse scans. Empty leaves are freed at once and
// underfull leaves merge with a sibling under the same parent (internal nodes are only freed when
// empty).

import { assert } from '../util/assert.js';
import { type Arena, classOf, classSize } from './alloc.js';
import { prefixOf, type SearchKey, SL } from './store-layout.js';

export abstract class BTree {
  // descent path (write side)
  protected readonly pathN: number[] = new Array(64).fill(0);
  protected readonly pathI: number[] = new Array(64).fill(0);
  // result of the last bound() call
  protected eq = false;
  // old value of the last treePut/treeDelete
  protected oldVal = 0;
  protected oldLen = 0;
  // blocks reserved for the running transaction (slow path), by size class
  protected pool: Map<number, number[]> | null = null;

  protected constructor(protected readonly m: Arena) {}

  protected releasePool(): void {
    const pool = this.pool;
    if (pool === null) return;
    this.pool = null;
    for (const [c, refs] of pool) {
      const size = classSize(c);
      for (const r of refs) this.m.free(r, size);
    }
  }

  /** Allocation during apply: from the reservation pool, else from the arena (guaranteed). */
  protected allocW(size: number): number {
    const pool = this.pool;
    if (pool !== null) {
      const l = pool.get(classOf(size));
      if (l !== undefined && l.length > 0) return l.pop()!;
    }
    const ref = this.m.alloc(size);
    assert(ref !== 0, 'store: reservation bound violated');
    return ref;
  }

  protected initNode(node: number, leaf: boolean): void {
    const u32 = this.m.u32;
    const w = node >>> 2;
    u32[w + SL.N_META] = leaf ? SL.LEAF : 0;
    u32[w + SL.N_NEXT] = 0;
    u32[w + SL.N_PREV] = 0;
    u32[w + SL.N_CHILD0] = 0;
  }

  protected newKeyBlock(k: SearchKey): number {
    const n = k.len;
    const ref = this.allocW(SL.K_BYTES + n);
    const m = this.m;
    m.u32[(ref >>> 2) + SL.K_REFS] = 1;
    m.u32[(ref >>> 2) + SL.K_LEN] = n;
    const u8 = m.u8;
    const kb = k.u8;
    const at = ref + SL.K_BYTES;
    if (n <= 32) for (let i = 0; i < n; i++) u8[at + i] = kb[i]!;
    else u8.set(kb.subarray(0, n), at);
    return ref;
  }

  protected unrefKey(ref: number): void {
    const u32 = this.m.u32;
    const w = ref >>> 2;
    const r = u32[w + SL.K_REFS]! - 1;
    assert(r >= 0, 'key block refcount underflow');
    if (r === 0) this.m.free(ref, SL.K_BYTES + u32[w + SL.K_LEN]!);
    else u32[w + SL.K_REFS] = r;
  }

  /** Compare search key k against the key of slot word index s: <0, 0, >0. */
  protected cmpSlot(k: SearchKey, s: number): number {
    const u32 = this.m.u32;
    const sp = u32[s + SL.S_PREFIX]!;
    const kp = k.prefix;
    if (kp !== sp) return kp < sp ? -1 : 1;
    const kw = u32[s + SL.S_KEY]! >>> 2;
    const klen = u32[kw + SL.K_LEN]!;
    const len = k.len;
    const n = len < klen ? len : klen;
    // equal prefixes mean bytes [0, min(n, 4)) are equal; go on a word at a time
    const words = n >>> 2;
    const a = k.words;
    const base = kw + SL.K_BYTES / 4;
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
  protected bound(node: number, k: SearchKey, upper: boolean): number {
    const u32 = this.m.u32;
    const w = node >>> 2;
    let lo = 0;
    let hi = u32[w + SL.N_META]! & SL.COUNT_MASK;
    let eq = false;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.cmpSlot(k, w + SL.N_SLOTS + mid * SL.SLOT_WORDS);
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

  protected childAt(node: number, ci: number): number {
    const u32 = this.m.u32;
    const w = node >>> 2;
    return ci === 0 ? u32[w + SL.N_CHILD0]! : u32[w + SL.N_SLOTS + (ci - 1) * SL.SLOT_WORDS + SL.S_VAL]!;
  }

  /** Leaf that would hold key, recording the path (pathN/pathI) when record is true. */
  protected descend(d: number, k: SearchKey, record: boolean): { leaf: number; depth: number } {
    const u32 = this.m.u32;
    const dw = d >>> 2;
    let node = u32[dw + SL.D_ROOT]!;
    let depth = 0;
    for (let lvl = u32[dw + SL.D_HEIGHT]!; lvl > 1; lvl--) {
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
  protected findSlot(d: number, k: SearchKey): number {
    const { leaf } = this.descend(d, k, false);
    const pos = this.bound(leaf, k, false);
    return this.eq ? (leaf >>> 2) + SL.N_SLOTS + pos * SL.SLOT_WORDS : -1;
  }

  /** Insert or overwrite. Returns true if the key existed (old value in oldVal/oldLen). */
  protected treePut(d: number, k: SearchKey, valRef: number, lenFlag: number): boolean {
    const { leaf, depth } = this.descend(d, k, true);
    const pos = this.bound(leaf, k, false);
    const u32 = this.m.u32;
    if (this.eq) {
      const s = (leaf >>> 2) + SL.N_SLOTS + pos * SL.SLOT_WORDS;
      this.oldVal = u32[s + SL.S_VAL]!;
      this.oldLen = u32[s + SL.S_LEN]!;
      u32[s + SL.S_VAL] = valRef;
      u32[s + SL.S_LEN] = lenFlag;
      return true;
    }
    const keyRef = this.newKeyBlock(k);
    this.leafInsert(d, leaf, depth, pos, k.prefix, keyRef, valRef, lenFlag);
    this.m.u32[(d >>> 2) + SL.D_COUNT]!++; // re-read: allocations may have grown the buffer
    return false;
  }

  /** Open a gap at slot i of node (count < SL.CAP) and write the slot there. */
  protected insertSlot(node: number, i: number, prefix: number, keyRef: number, val: number, len: number): void {
    const u32 = this.m.u32;
    const w = node >>> 2;
    const meta = u32[w + SL.N_META]!;
    const count = meta & SL.COUNT_MASK;
    assert(count < SL.CAP, 'insertSlot: node full');
    const s = w + SL.N_SLOTS + i * SL.SLOT_WORDS;
    if (i < count) u32.copyWithin(s + SL.SLOT_WORDS, s, w + SL.N_SLOTS + count * SL.SLOT_WORDS);
    u32[s + SL.S_PREFIX] = prefix;
    u32[s + SL.S_KEY] = keyRef;
    u32[s + SL.S_VAL] = val;
    u32[s + SL.S_LEN] = len;
    u32[w + SL.N_META] = meta + 1;
  }

  protected removeSlot(node: number, i: number): void {
    const u32 = this.m.u32;
    const w = node >>> 2;
    const meta = u32[w + SL.N_META]!;
    const count = meta & SL.COUNT_MASK;
    const s = w + SL.N_SLOTS + i * SL.SLOT_WORDS;
    if (i + 1 < count) u32.copyWithin(s, s + SL.SLOT_WORDS, w + SL.N_SLOTS + count * SL.SLOT_WORDS);
    u32[w + SL.N_META] = meta - 1;
  }

  protected leafInsert(d: number, leaf: number, depth: number, pos: number, kp: number, keyRef: number, valRef: number, lenFlag: number): void {
    const w = leaf >>> 2;
    const count = this.m.u32[w + SL.N_META]! & SL.COUNT_MASK;
    if (count < SL.CAP) {
      this.insertSlot(leaf, pos, kp, keyRef, valRef, lenFlag);
      return;
    }
    // split: appending at the very end leaves the left leaf full (sequential loads pack tightly)
    const right = this.allocW(SL.NODE_BYTES);
    this.initNode(right, true);
    const u32 = this.m.u32; // after allocW (the buffer may have grown)
    const rw = right >>> 2;
    const next = u32[w + SL.N_NEXT]!;
    const m = pos === SL.CAP && next === 0 ? SL.CAP : (SL.CAP + 1) >>> 1;
    if (m < SL.CAP) u32.copyWithin(rw + SL.N_SLOTS, w + SL.N_SLOTS + m * SL.SLOT_WORDS, w + SL.N_SLOTS + SL.CAP * SL.SLOT_WORDS);
    u32[rw + SL.N_META] = SL.LEAF | (SL.CAP - m);
    u32[w + SL.N_META] = SL.LEAF | m;
    u32[rw + SL.N_NEXT] = next;
    u32[rw + SL.N_PREV] = leaf;
    u32[w + SL.N_NEXT] = right;
    const dw = d >>> 2;
    if (next === 0) u32[dw + SL.D_LAST] = right;
    else u32[(next >>> 2) + SL.N_PREV] = right;
    if (pos < m) this.insertSlot(leaf, pos, kp, keyRef, valRef, lenFlag);
    else this.insertSlot(right, pos - m, kp, keyRef, valRef, lenFlag);
    // separator: the right leaf's first key (shared key block)
    const sepKey = u32[rw + SL.N_SLOTS + SL.S_KEY]!;
    u32[(sepKey >>> 2) + SL.K_REFS]!++;
    this.parentInsert(d, depth - 1, u32[rw + SL.N_SLOTS + SL.S_PREFIX]!, sepKey, right);
  }

  /** Insert separator (prefix,keyRef) with right child `child` into the node at path level lvl. */
  protected parentInsert(d: number, lvl: number, prefix: number, keyRef: number, child: number): void {
    const dw = d >>> 2;
    if (lvl < 0) {
      const root = this.allocW(SL.NODE_BYTES);
      this.initNode(root, false);
      const u32 = this.m.u32;
      const oldRoot = u32[dw + SL.D_ROOT]!;
      u32[(root >>> 2) + SL.N_CHILD0] = oldRoot;
      this.insertSlot(root, 0, prefix, keyRef, child, 0);
      u32[dw + SL.D_ROOT] = root;
      u32[dw + SL.D_HEIGHT]!++;
      return;
    }
    const node = this.pathN[lvl]!;
    const ci = this.pathI[lvl]!;
    const w = node >>> 2;
    const count = this.m.u32[w + SL.N_META]! & SL.COUNT_MASK;
    if (count < SL.CAP) {
      this.insertSlot(node, ci, prefix, keyRef, child, 0);
      return;
    }
    // split a full internal node: keys [0,mid) stay, key mid moves up, keys (mid,SL.CAP) go right
    const mid = SL.CAP >>> 1;
    const right = this.allocW(SL.NODE_BYTES);
    this.initNode(right, false);
    const u32 = this.m.u32; // after allocW
    const rw = right >>> 2;
    const ms = w + SL.N_SLOTS + mid * SL.SLOT_WORDS;
    const upPrefix = u32[ms + SL.S_PREFIX]!;
    const upKey = u32[ms + SL.S_KEY]!;
    u32[rw + SL.N_CHILD0] = u32[ms + SL.S_VAL]!;
    u32.copyWithin(rw + SL.N_SLOTS, ms + SL.SLOT_WORDS, w + SL.N_SLOTS + SL.CAP * SL.SLOT_WORDS);
    u32[rw + SL.N_META] = SL.CAP - mid - 1;
    u32[w + SL.N_META] = mid;
    if (ci <= mid) this.insertSlot(node, ci, prefix, keyRef, child, 0);
    else this.insertSlot(right, ci - mid - 1, prefix, keyRef, child, 0);
    this.parentInsert(d, lvl - 1, upPrefix, upKey, right);
  }

  /** Delete key. Returns true if it existed (old value in oldVal/oldLen). */
  protected treeDelete(d: number, k: SearchKey): boolean {
    const { leaf, depth } = this.descend(d, k, true);
    const pos = this.bound(leaf, k, false);
    if (!this.eq) return false;
    const u32 = this.m.u32;
    const s = (leaf >>> 2) + SL.N_SLOTS + pos * SL.SLOT_WORDS;
    this.oldVal = u32[s + SL.S_VAL]!;
    this.oldLen = u32[s + SL.S_LEN]!;
    const keyRef = u32[s + SL.S_KEY]!;
    this.removeSlot(leaf, pos);
    this.unrefKey(keyRef);
    const dw = d >>> 2;
    u32[dw + SL.D_COUNT]!--;
    const left = u32[(leaf >>> 2) + SL.N_META]! & SL.COUNT_MASK;
    if (depth > 0 && left < SL.MERGE_BELOW) {
      if (left === 0) {
        this.unlinkLeaf(d, leaf);
        this.m.free(leaf, SL.NODE_BYTES);
        this.removeChild(depth - 1);
      } else {
        this.mergeLeaf(d, leaf, depth - 1);
      }
      // collapse a root left with one child
      for (;;) {
        const root = u32[dw + SL.D_ROOT]!;
        if (u32[dw + SL.D_HEIGHT] === 1 || (u32[(root >>> 2) + SL.N_META]! & SL.COUNT_MASK) !== 0) break;
        u32[dw + SL.D_ROOT] = u32[(root >>> 2) + SL.N_CHILD0]!;
        u32[dw + SL.D_HEIGHT]!--;
        this.m.free(root, SL.NODE_BYTES);
      }
    }
    return true;
  }

  protected unlinkLeaf(d: number, leaf: number): void {
    const u32 = this.m.u32;
    const dw = d >>> 2;
    const lw = leaf >>> 2;
    const prev = u32[lw + SL.N_PREV]!;
    const next = u32[lw + SL.N_NEXT]!;
    if (prev === 0) u32[dw + SL.D_FIRST] = next;
    else u32[(prev >>> 2) + SL.N_NEXT] = next;
    if (next === 0) u32[dw + SL.D_LAST] = prev;
    else u32[(next >>> 2) + SL.N_PREV] = prev;
  }

  /**
   * An underfull leaf (child pathI[lvl] of pathN[lvl]) merges with a sibling under the same
   * parent when both fit in SL.MERGE_UP_TO slots: the right one of the pair moves into the left one
   * and is freed with its separator.
   */
  protected mergeLeaf(d: number, leaf: number, lvl: number): void {
    const u32 = this.m.u32;
    const parent = this.pathN[lvl]!;
    const ci = this.pathI[lvl]!;
    const pc = u32[(parent >>> 2) + SL.N_META]! & SL.COUNT_MASK;
    const n = u32[(leaf >>> 2) + SL.N_META]! & SL.COUNT_MASK;
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
    const ln = l === leaf ? n : u32[lw + SL.N_META]! & SL.COUNT_MASK;
    const rn = r === leaf ? n : u32[rw + SL.N_META]! & SL.COUNT_MASK;
    if (ln + rn > SL.MERGE_UP_TO) return;
    u32.copyWithin(lw + SL.N_SLOTS + ln * SL.SLOT_WORDS, rw + SL.N_SLOTS, rw + SL.N_SLOTS + rn * SL.SLOT_WORDS);
    u32[lw + SL.N_META] = SL.LEAF | (ln + rn);
    this.unlinkLeaf(d, r);
    this.m.free(r, SL.NODE_BYTES);
    this.pathI[lvl] = rci;
    this.removeChild(lvl);
  }

  /** The child at pathI[lvl] of pathN[lvl] was freed: drop it and its separator. */
  protected removeChild(lvl: number): void {
    const node = this.pathN[lvl]!;
    const ci = this.pathI[lvl]!;
    const u32 = this.m.u32;
    const w = node >>> 2;
    const count = u32[w + SL.N_META]! & SL.COUNT_MASK;
    if (count === 0) {
      // the node had this one child only: it goes too
      assert(lvl > 0, 'removeChild: root with a single child survived a collapse');
      this.m.free(node, SL.NODE_BYTES);
      this.removeChild(lvl - 1);
      return;
    }
    let sepKey: number;
    if (ci === 0) {
      sepKey = u32[w + SL.N_SLOTS + SL.S_KEY]!;
      u32[w + SL.N_CHILD0] = u32[w + SL.N_SLOTS + SL.S_VAL]!;
      this.removeSlot(node, 0);
    } else {
      sepKey = u32[w + SL.N_SLOTS + (ci - 1) * SL.SLOT_WORDS + SL.S_KEY]!;
      this.removeSlot(node, ci - 1);
    }
    this.unrefKey(sepKey);
  }

  protected checkTree(d: number): number {
    const u32 = this.m.u32;
    const dw = d >>> 2;
    const height = u32[dw + SL.D_HEIGHT]!;
    const leaves: number[] = [];
    const walk = (node: number, lvl: number, lo: Uint8Array | null, hi: Uint8Array | null): void => {
      const w = node >>> 2;
      const meta = u32[w + SL.N_META]!;
      const count = meta & SL.COUNT_MASK;
      assert(count <= SL.CAP, 'node overfull');
      const leaf = (meta & SL.LEAF) !== 0;
      assert(leaf === (lvl === 1), 'leaf at wrong level');
      let prev: Uint8Array | null = null;
      const keyAt = (i: number) => {
        const kr = u32[w + SL.N_SLOTS + i * SL.SLOT_WORDS + SL.S_KEY]!;
        const k = this.m.u8.slice(kr + SL.K_BYTES, kr + SL.K_BYTES + u32[(kr >>> 2) + SL.K_LEN]!);
        assert(prefixOf(k) === u32[w + SL.N_SLOTS + i * SL.SLOT_WORDS + SL.S_PREFIX], 'prefix mismatch');
        assert(u32[(kr >>> 2) + SL.K_REFS]! >= 1, 'dead key block referenced');
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
    walk(u32[dw + SL.D_ROOT]!, height, null, null);
    assert(u32[dw + SL.D_FIRST] === leaves[0] && u32[dw + SL.D_LAST] === leaves[leaves.length - 1], 'first/last leaf wrong');
    let n = 0;
    for (let i = 0; i < leaves.length; i++) {
      const w = leaves[i]! >>> 2;
      assert(u32[w + SL.N_PREV] === (i === 0 ? 0 : leaves[i - 1]), 'leaf prev link wrong');
      assert(u32[w + SL.N_NEXT] === (i === leaves.length - 1 ? 0 : leaves[i + 1]), 'leaf next link wrong');
      n += u32[w + SL.N_META]! & SL.COUNT_MASK;
    }
    assert(n === u32[dw + SL.D_COUNT], `tree count ${u32[dw + SL.D_COUNT]} != ${n}`);
    return n;
  }
}
