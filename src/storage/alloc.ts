// Arena: the store's memory. One growable SharedArrayBuffer (maxByteLength = maxStoreBytes, at
// most 4 GiB in Node 20), a fixed header at offset 0 and a size-class allocator behind it. Every
// thread that attaches builds its own Arena object over the same buffer; only the thread holding
// the store's write latch may call alloc/free/grow. Readers call refresh() after taking the read
// latch so their fixed-length views cover a buffer the writer has grown. Nothing to stop.
//
// Blocks carry no header: the caller frees with the same size it allocated (the store always
// knows it: node size, key length, value length). Sizes round up to a class: multiples of 16 up
// to 128 B, then 4 classes per doubling (waste < 25 %), so every block is 16-aligned (copies
// between shared and ordinary memory are ~6x faster when 8-aligned: src/util/shm-copy.ts). Freed
// blocks go on a per-class free list (next pointer in the block's first word). When the bump
// pointer would pass maxStoreBytes, a block of a larger class is split and the remainder is
// returned to the free lists.

import { assert } from '../util/assert.js';

/** Header layout, byte offsets. The store owns [STORE_AREA, FREE_HEADS). */
export const H = {
  MAGIC: 0, // u32
  LAYOUT_VERSION: 4, // u32
  ID: 8, // f64: random store id (handles of the same store share it)
  MAX_STORE_BYTES: 16, // f64
  MAX_VALUE_BYTES: 24, // f64
  TOP: 32, // f64: bump pointer
  BYTES_USED: 40, // f64: sum of live block sizes (plus the header)
  STORE_AREA: 48, // the store's own header words start here
  FREE_HEADS: 128, // u32[NUM_CLASSES], then u32[NUM_CLASSES] free counts
} as const;

export const MIN_CLASS_BYTES = 16;
const SMALL_CLASSES = 8; // 16, 32, ..., 128
/** Size classes cover 16 B .. 4 GiB. */
export const NUM_CLASSES = SMALL_CLASSES + 4 * (32 - 7);
const FREE_COUNTS = H.FREE_HEADS + 4 * NUM_CLASSES;
/** First allocatable byte; everything before is header. */
export const HEADER_BYTES = 1024;
assert(FREE_COUNTS + 4 * NUM_CLASSES <= HEADER_BYTES, 'arena header overflow');

/** Growth granularity of the SharedArrayBuffer, in bytes. */
export const GROW_STEP_BYTES = 64 * 1024;
/** Largest maxByteLength Node 20 (V8 11.3) accepts for a growable SharedArrayBuffer. */
export const MAX_ARENA_BYTES = 2 ** 32;

export function classOf(size: number): number {
  if (size <= 128) return size <= 16 ? 0 : ((size + 15) >>> 4) - 1;
  const p = 31 - Math.clz32(size - 1); // 2^p < size <= 2^(p+1)
  // idx = ceil((size - 2^p) / 2^(p-2)) - 1, in int32 arithmetic while 2^p fits (hot: every alloc/free)
  if (p <= 29) return SMALL_CLASSES + (p - 7) * 4 + ((size - 1 - (1 << p)) >>> (p - 2));
  const step = 2 ** (p - 2);
  const idx = Math.ceil((size - 2 ** p) / step) - 1;
  return SMALL_CLASSES + (p - 7) * 4 + idx;
}

export function classSize(c: number): number {
  if (c < SMALL_CLASSES) return (c + 1) << 4;
  const p = 7 + ((c - SMALL_CLASSES) >>> 2);
  const idx = (c - SMALL_CLASSES) & 3;
  if (p <= 28) return (1 << p) + ((idx + 1) << (p - 2));
  return 2 ** p + (idx + 1) * 2 ** (p - 2);
}

/** Bytes a block for `size` really takes. */
export function blockBytes(size: number): number {
  return size === 0 ? 0 : classSize(classOf(size));
}

export class Arena {
  readonly sab: SharedArrayBuffer;
  u8!: Uint8Array;
  u32!: Uint32Array;
  f64!: Float64Array;
  /** byteLength the views were built for */
  viewBytes = 0;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.refresh();
  }

  /** Rebuild views if the buffer grew since they were made. Cheap when it did not. */
  refresh(): void {
    const n = this.sab.byteLength;
    if (n === this.viewBytes) return;
    this.u8 = new Uint8Array(this.sab, 0, n);
    this.u32 = new Uint32Array(this.sab, 0, n >>> 2);
    this.f64 = new Float64Array(this.sab, 0, Math.floor(n / 8));
    this.viewBytes = n;
  }

  /** Creator only, before sharing: set up an empty allocator. */
  initAllocator(maxStoreBytes: number): void {
    this.f64[H.MAX_STORE_BYTES / 8] = maxStoreBytes;
    this.reset();
  }

  /** Forget every block (store.clear()). Writer only. */
  reset(): void {
    this.f64[H.TOP / 8] = HEADER_BYTES;
    this.f64[H.BYTES_USED / 8] = HEADER_BYTES;
    this.u32.fill(0, H.FREE_HEADS >>> 2, (FREE_COUNTS >>> 2) + NUM_CLASSES);
  }

  get maxStoreBytes(): number {
    return this.f64[H.MAX_STORE_BYTES / 8]!;
  }
  get top(): number {
    return this.f64[H.TOP / 8]!;
  }
  get bytesUsed(): number {
    return this.f64[H.BYTES_USED / 8]!;
  }
  /** Bytes the bump pointer can still hand out before maxStoreBytes. */
  bumpRemaining(): number {
    return this.maxStoreBytes - this.top;
  }

  /** Make sure the buffer covers [0, end) (end <= maxStoreBytes). Writer only. */
  ensureCapacity(end: number): void {
    const cur = this.sab.byteLength;
    if (end <= cur) return;
    const max = this.maxStoreBytes;
    assert(end <= max, 'Arena.ensureCapacity beyond maxStoreBytes');
    let n = Math.max(end, Math.min(max, cur * 2));
    n = Math.min(max, Math.ceil(n / GROW_STEP_BYTES) * GROW_STEP_BYTES);
    this.sab.grow(n);
    this.refresh();
  }

  /** Allocate a block of at least `size` (> 0) bytes; 0 when maxStoreBytes leaves no room. */
  alloc(size: number): number {
    assert(size > 0, 'Arena.alloc: size must be > 0');
    const c = classOf(size);
    const bytes = classSize(c);
    const u32 = this.u32;
    const hi = (H.FREE_HEADS >>> 2) + c;
    let ref = u32[hi]!;
    if (ref !== 0) {
      u32[hi] = u32[ref >>> 2]!;
      u32[(FREE_COUNTS >>> 2) + c]!--;
    } else {
      const top = this.top;
      if (top + bytes <= this.maxStoreBytes) {
        this.ensureCapacity(top + bytes);
        this.f64[H.TOP / 8] = top + bytes;
        ref = top;
      } else {
        ref = this.splitLarger(c);
        if (ref === 0) return 0;
      }
    }
    this.f64[H.BYTES_USED / 8] = this.bytesUsed + bytes;
    return ref;
  }

  free(ref: number, size: number): void {
    if (size === 0) return;
    assert(ref >= HEADER_BYTES && ref < this.top && (ref & 15) === 0, `Arena.free: bad block ${ref}`);
    const c = classOf(size);
    this.push(c, ref);
    this.f64[H.BYTES_USED / 8] = this.bytesUsed - classSize(c);
  }

  /** How many blocks of class(size) the free lists hold. */
  freeCount(size: number): number {
    return this.u32[(FREE_COUNTS >>> 2) + classOf(size)]!;
  }

  private push(c: number, ref: number): void {
    const u32 = this.u32;
    const hi = (H.FREE_HEADS >>> 2) + c;
    u32[ref >>> 2] = u32[hi]!;
    u32[hi] = ref;
    u32[(FREE_COUNTS >>> 2) + c]!++;
  }

  /** Take a free block of a class above c, keep classSize(c) of it, free the rest. */
  private splitLarger(c: number): number {
    const u32 = this.u32;
    for (let c2 = c + 1; c2 < NUM_CLASSES; c2++) {
      const hi = (H.FREE_HEADS >>> 2) + c2;
      const ref = u32[hi]!;
      if (ref === 0) continue;
      u32[hi] = u32[ref >>> 2]!;
      u32[(FREE_COUNTS >>> 2) + c2]!--;
      let pos = ref + classSize(c);
      let rest = classSize(c2) - classSize(c);
      while (rest > 0) {
        let k = classOf(rest);
        if (classSize(k) > rest) k--;
        const sz = classSize(k);
        this.push(k, pos);
        pos += sz;
        rest -= sz;
      }
      return ref;
    }
    return 0;
  }
}
