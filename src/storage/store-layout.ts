// The shared store's layout inside its SharedArrayBuffer: the store header words (after the
// arena's own, src/storage/alloc.ts), table descriptors, B+tree nodes, slots and key blocks, as
// named byte/word offsets; plus the helpers every layer of the store shares (the aligned search
// key, key prefixes, UTF-8 of shared views). Pure constants and small helpers: no state, no I/O.
// Used by btree.ts, store-write.ts, store-read.ts and store.ts (SharedStore), on any thread.
//
// Layout: B+tree nodes are NODE_BYTES; a node has a 16-byte header (meta = leaf bit | count,
// next, prev, child0) and CAP slots of 4 words:
//   leaf slot     [key prefix, key block, value block, value length | KEY_IS_STRING bit]
//   internal slot [key prefix, key block, right child, 0]   (key i separates child i and i+1)
// Key prefix = first 4 key bytes big-endian (zero padded): many comparisons end there, the rest go
// a word at a time (key bytes are 16-aligned; the searched key is copied to aligned scratch). Keys
// live in refcounted key blocks [refs, length, bytes...] shared by the leaf and any separators, so
// a split never allocates a key. Values are raw 16-aligned blocks. The table directory is itself a
// B+tree (descriptor at S_DIR) keyed by table name, whose values are table descriptors.

import { assert } from '../util/assert.js';
import { H } from './alloc.js';
import { RWLATCH_WORDS } from './latch.js';

/**
 * Every offset and size of the layout, as one const enum: tsc writes each member as a literal
 * where it is used, so the hot paths (node search, splits, scans) read no module bindings. Byte
 * offsets for S_* (store header, after the arena's own words), word offsets for D_* (tree
 * descriptor), N_* (node header), S_PREFIX..S_LEN (slot words) and K_* (key block).
 */
export const enum SL {
  /** Buffer magic ('WSST') and layout version, checked by SharedStore.attach. */
  MAGIC = 0x54535357,
  LAYOUT_VERSION = 1,

  // store header area (byte offsets; the arena's H.STORE_AREA is 48, asserted below)
  S_ENTRIES = 48, // f64
  S_COMMITS = 56, // f64
  S_LATCH = 64, // RWLATCH_WORDS (4) words
  S_TABLES = 80, // u32
  S_DIR_VERSION = 84, // u32
  S_DIR = 88, // tree descriptor (DESC_BYTES)

  // tree descriptor words
  D_ROOT = 0,
  D_HEIGHT = 1, // levels; 1 = the root is a leaf
  D_COUNT = 2,
  D_FIRST = 3,
  D_LAST = 4,
  DESC_BYTES = 32,

  // nodes
  NODE_BYTES = 1024,
  N_META = 0,
  N_NEXT = 1,
  N_PREV = 2,
  N_CHILD0 = 3,
  N_SLOTS = 4,
  SLOT_WORDS = 4,
  CAP = 63, // (NODE_BYTES / 4 - N_SLOTS) / SLOT_WORDS
  LEAF = 0x80000000,
  COUNT_MASK = 0xffff,
  // slot words
  S_PREFIX = 0,
  S_KEY = 1,
  S_VAL = 2, // value block (leaf) or right child (internal)
  S_LEN = 3,
  KEY_IS_STRING = 0x80000000,
  LEN_MASK = 0x7fffffff,
  // key blocks
  K_REFS = 0,
  K_LEN = 1,
  K_BYTES = 8,
  /** A leaf left with fewer entries than this after a delete tries to merge with a sibling... */
  MERGE_BELOW = 16,
  /** ...if the two together hold at most this many (room is left for inserts before a split). */
  MERGE_UP_TO = 48,
  /** Minimum fill after a split; bounds how fast a tree can grow in height. */
  MIN_SPLIT_FILL = 31,
}

// The literals above agree with what they are derived from.
assert(SL.S_ENTRIES === H.STORE_AREA && SL.S_COMMITS === H.STORE_AREA + 8 && SL.S_LATCH === H.STORE_AREA + 16, 'store header: STORE_AREA moved');
assert(SL.S_TABLES === SL.S_LATCH + 4 * RWLATCH_WORDS && SL.S_DIR_VERSION === SL.S_TABLES + 4 && SL.S_DIR === SL.S_DIR_VERSION + 4, 'store header: field sizes');
assert(SL.S_DIR % 8 === 0 && SL.S_DIR + SL.DESC_BYTES <= H.FREE_HEADS, 'store header overflow');
assert(SL.CAP === (SL.NODE_BYTES / 4 - SL.N_SLOTS) / SL.SLOT_WORDS, 'node capacity');

export const textEncoder = new TextEncoder();
export const textDecoder = new TextDecoder('utf-8', { fatal: false });
export const EMPTY = new Uint8Array(0);

export function prefixOf(k: Uint8Array): number {
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
export class SearchKey {
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
export function utf8(u8: Uint8Array, start: number, end: number): string {
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

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}
