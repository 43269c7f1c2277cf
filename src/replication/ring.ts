// ByteRing: a single-producer single-consumer ring of 8-byte-aligned records in one
// SharedArrayBuffer: the byte pipe of an in-process replication connection (one ring per
// direction, see ring-socket.ts). Used by exactly two threads: the producer (writes records,
// publishes HEAD) and the consumer (reads records, releases them by publishing TAIL). Owns nothing
// but its buffer; it stops when either side closes it (CLOSED bits, both waiting words notified).
//
// Layout (the SharedArrayBuffer is RING_CTRL_BYTES + capacity bytes; capacity a power of two):
//   control block, Int32 words each on its own 64-byte line:
//     HEAD      end of the published records (producer; a position, free-running modulo 2^32)
//     TAIL      start of the records the consumer still holds (consumer)
//     C_WAIT    1 while the consumer waits (or is about to) for HEAD to move
//     P_WAIT    1 while the producer waits for TAIL to reach P_WANT
//     CLOSED    bit 0: the producer closed (no more records), bit 1: the consumer closed
//   data region, records at 8-aligned offsets:
//     Int32 length of the data, Int32 meta = RECORD_MAGIC << 16 | kind << 8 | pad, `pad` bytes
//     (0..7, chosen by the producer so that a payload inside the data lands 8-aligned), the data,
//     zeros up to the next multiple of 8. A record never wraps: when it does not fit before the end,
//     a WRAP record (kind 1, length 0) fills the rest and the record starts at offset 0.
// Memory order: records are written with plain stores, then HEAD with Atomics.store; the consumer
// reads HEAD with Atomics.load before it reads the records (and TAIL likewise the other way), so a
// published record is always complete. Waits: Atomics.waitAsync on HEAD / TAIL after a brief spin,
// and the other side calls Atomics.notify only when the waiting word says someone sleeps.
// Everything read from the buffer is checked (the peer is another thread of this process, but a
// damaged record must fail one connection, never crash a thread or read out of bounds).

import { Errors, type WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';

/** Bytes of the control block before the data region. */
export const RING_CTRL_BYTES = 256;
/** Int32 word indices of the control block (exported for tests that damage a ring on purpose). */
export const RG_HEAD = 0;
export const RG_TAIL = 16;
export const RG_C_WAIT = 32;
export const RG_P_WAIT = 48;
export const RG_P_WANT = 49;
export const RG_CLOSED = 56;
const CLOSED_PRODUCER = 1;
const CLOSED_CONSUMER = 2;

export const RECORD_HEADER_BYTES = 8;
export const RECORD_MAGIC = 0x5752; // "WR"
export const RECORD_DATA = 0;
export const RECORD_WRAP = 1;
export const MIN_RING_CAPACITY_BYTES = 64 * 1024;
export const MAX_RING_CAPACITY_BYTES = 1 << 30;

export interface ByteRingHandle {
  sab: SharedArrayBuffer;
}

export interface RingRecord {
  /** Position of the record (for release / tokens). */
  start: number;
  /** Position after the record. */
  end: number;
  /** Byte offset of the data in the SharedArrayBuffer (after the pad). */
  dataOffset: number;
  length: number;
}

const align8 = (n: number) => (n + 7) & ~7;
/** b - a for free-running 32-bit positions. */
const dist = (a: number, b: number) => (b - a) | 0;

export function isValidRingCapacity(bytes: number): boolean {
  return Number.isInteger(bytes) && bytes >= MIN_RING_CAPACITY_BYTES && bytes <= MAX_RING_CAPACITY_BYTES && (bytes & (bytes - 1)) === 0;
}

function corrupt(why: string): WalstreamError {
  return Errors.protocolViolationDetail('invalid record in the in-process replication ring', why);
}

export class ByteRing {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  readonly bytes: Uint8Array;
  private readonly i32: Int32Array;
  private readonly mask: number;
  // producer side
  private head: number;
  private resv: { skip: number; off: number; size: number; pad: number; max: number } | null = null;
  // consumer side
  private readPos: number;

  static create(capacityBytes: number): ByteRing {
    assert(isValidRingCapacity(capacityBytes), `ring capacity must be a power of two from ${MIN_RING_CAPACITY_BYTES} to ${MAX_RING_CAPACITY_BYTES}, got ${capacityBytes}`);
    return new ByteRing({ sab: new SharedArrayBuffer(RING_CTRL_BYTES + capacityBytes) });
  }

  /** Attach to a ring made by create() (in any thread). Throws if the buffer cannot be one. */
  constructor(handle: ByteRingHandle) {
    const sab = handle?.sab;
    if (!(sab instanceof SharedArrayBuffer) || !isValidRingCapacity(sab.byteLength - RING_CTRL_BYTES)) {
      throw Errors.protocolViolation('in-process replication ring: not a ring buffer');
    }
    this.sab = sab;
    this.capacity = sab.byteLength - RING_CTRL_BYTES;
    this.mask = this.capacity - 1;
    this.bytes = new Uint8Array(sab);
    this.i32 = new Int32Array(sab);
    this.head = Atomics.load(this.i32, RG_HEAD);
    this.readPos = Atomics.load(this.i32, RG_TAIL);
  }

  get handle(): ByteRingHandle {
    return { sab: this.sab };
  }

  /** Bytes published and not yet released. */
  used(): number {
    return dist(Atomics.load(this.i32, RG_TAIL), Atomics.load(this.i32, RG_HEAD)) >>> 0;
  }

  get producerClosed(): boolean {
    return (Atomics.load(this.i32, RG_CLOSED) & CLOSED_PRODUCER) !== 0;
  }
  get consumerClosed(): boolean {
    return (Atomics.load(this.i32, RG_CLOSED) & CLOSED_CONSUMER) !== 0;
  }

  /** No more records will be written (the consumer reads what is there, then sees the end). */
  closeProducer(): void {
    Atomics.or(this.i32, RG_CLOSED, CLOSED_PRODUCER);
    Atomics.notify(this.i32, RG_HEAD);
    Atomics.notify(this.i32, RG_TAIL);
  }
  /** Nobody reads any more (the producer's writes are dropped). */
  closeConsumer(): void {
    Atomics.or(this.i32, RG_CLOSED, CLOSED_CONSUMER);
    Atomics.notify(this.i32, RG_HEAD);
    Atomics.notify(this.i32, RG_TAIL);
  }

  // ---- producer ------------------------------------------------------------------------------

  /** Largest data length of one record (a quarter of the ring, so reservations never starve). */
  get maxRecordData(): number {
    return (this.capacity >>> 2) - RECORD_HEADER_BYTES - 8;
  }

  /**
   * Reserve one record for `pad + dataBytes` bytes; returns the offset in `bytes` where the pad
   * starts (the data starts `pad` bytes later; `offset + pad` ≡ pad (mod 8) with the record
   * 8-aligned), or -1 when the ring has no room now. Nothing is visible until commit().
   */
  reserve(dataBytes: number, pad: number): number {
    if (!(pad >= 0 && pad < 8 && dataBytes >= 0 && dataBytes <= this.maxRecordData)) assert(false, `ring reservation of ${dataBytes} bytes (pad ${pad})`);
    const size = align8(RECORD_HEADER_BYTES + pad + dataBytes);
    const free = this.capacity - (dist(Atomics.load(this.i32, RG_TAIL), this.head) >>> 0);
    const off = this.head & this.mask;
    const skip = off + size > this.capacity ? this.capacity - off : 0;
    if (skip + size > free) {
      this.resv = null;
      return -1;
    }
    const recOff = skip === 0 ? off : 0;
    this.resv = { skip, off: recOff, size, pad, max: dataBytes };
    return RING_CTRL_BYTES + recOff + RECORD_HEADER_BYTES;
  }

  /** The current reservation's data offset and length limit, or null. */
  get reservation(): { dataOffset: number; maxLength: number } | null {
    const r = this.resv;
    return r === null ? null : { dataOffset: RING_CTRL_BYTES + r.off + RECORD_HEADER_BYTES + r.pad, maxLength: r.max };
  }

  cancelReservation(): void {
    this.resv = null;
  }

  /** Publish the reserved record with `dataBytes` (≤ the reserved length) of data. */
  commit(dataBytes: number): void {
    const r = this.resv;
    assert(r !== null && dataBytes >= 0 && dataBytes <= r.max, 'ring commit without a matching reservation');
    this.resv = null;
    const i32 = this.i32;
    if (r.skip > 0) {
      const w = (RING_CTRL_BYTES + (this.head & this.mask)) >> 2;
      i32[w] = 0;
      i32[w + 1] = (RECORD_MAGIC << 16) | (RECORD_WRAP << 8);
    }
    const size = align8(RECORD_HEADER_BYTES + r.pad + dataBytes);
    const w = (RING_CTRL_BYTES + r.off) >> 2;
    i32[w] = dataBytes;
    i32[w + 1] = (RECORD_MAGIC << 16) | (RECORD_DATA << 8) | r.pad;
    this.head = (this.head + r.skip + size) | 0;
    Atomics.store(i32, RG_HEAD, this.head);
    if (Atomics.load(i32, RG_C_WAIT) !== 0) Atomics.notify(i32, RG_HEAD);
  }

  /** Copy `src` into one record (pad 0) if it fits now; false otherwise. */
  tryWrite(src: Uint8Array): boolean {
    const at = this.reserve(src.length, 0);
    if (at < 0) return false;
    this.bytes.set(src, at);
    this.commit(src.length);
    return true;
  }

  /**
   * Wait (without blocking the thread) until TAIL reaches `want` or either side closed. The
   * consumer notifies only when P_WAIT is set and TAIL passed P_WANT, so one wake-up covers a batch.
   */
  waitSpace(want: number): Promise<unknown> | null {
    const i32 = this.i32;
    Atomics.store(i32, RG_P_WANT, want);
    Atomics.store(i32, RG_P_WAIT, 1);
    const tail = Atomics.load(i32, RG_TAIL);
    if (dist(want, tail) >= 0 || Atomics.load(i32, RG_CLOSED) !== 0) {
      Atomics.store(i32, RG_P_WAIT, 0);
      return null;
    }
    const r = Atomics.waitAsync(i32, RG_TAIL, tail);
    if (!r.async) {
      Atomics.store(i32, RG_P_WAIT, 0);
      return null;
    }
    return r.value.then(() => Atomics.store(i32, RG_P_WAIT, 0));
  }

  /** Current published head (producer's view). */
  get headPos(): number {
    return this.head;
  }

  // ---- consumer ------------------------------------------------------------------------------

  /** Position after the last record read (records before it may still be unreleased). */
  get readPosition(): number {
    return this.readPos;
  }

  /** True when a published record is not read yet. */
  hasUnread(): boolean {
    return Atomics.load(this.i32, RG_HEAD) !== this.readPos;
  }

  /** Bytes published and not read yet (records with their headers). */
  unreadBytes(): number {
    return dist(this.readPos, Atomics.load(this.i32, RG_HEAD)) >>> 0;
  }

  /**
   * The next record (advancing the read position past it), or null when none is published.
   * Throws a protocol violation (08P01) when the ring holds something that is not a record.
   */
  next(): RingRecord | null {
    const i32 = this.i32;
    for (;;) {
      const head = Atomics.load(i32, RG_HEAD);
      const avail = dist(this.readPos, head);
      if (avail === 0) return null;
      if (avail < 0 || avail > this.capacity) throw corrupt(`head ${head >>> 0} is not within the ring (read position ${this.readPos >>> 0})`);
      const off = this.readPos & this.mask;
      if ((off & 7) !== 0) throw corrupt(`read position ${this.readPos >>> 0} is not 8-aligned`);
      const w = (RING_CTRL_BYTES + off) >> 2;
      const len = i32[w]!;
      const meta = i32[w + 1]!;
      const pad = meta & 0xff;
      const kind = (meta >>> 8) & 0xff;
      if (meta >>> 16 !== RECORD_MAGIC) throw corrupt(`record at ${this.readPos >>> 0} has no record marker (0x${(meta >>> 0).toString(16)})`);
      if (kind === RECORD_WRAP) {
        const skip = this.capacity - off;
        if (len !== 0 || pad !== 0 || skip > avail) throw corrupt(`bad wrap record at ${this.readPos >>> 0}`);
        this.readPos = (this.readPos + skip) | 0;
        continue;
      }
      if (kind !== RECORD_DATA || pad > 7 || len < 0) throw corrupt(`bad record header at ${this.readPos >>> 0} (kind ${kind}, pad ${pad}, length ${len})`);
      const size = align8(RECORD_HEADER_BYTES + pad + len);
      if (size > this.capacity - off || size > avail) throw corrupt(`record at ${this.readPos >>> 0} of ${len} bytes runs past ${size > avail ? 'the published data' : 'the end of the ring'}`);
      const start = this.readPos;
      this.readPos = (this.readPos + size) | 0;
      return { start, end: this.readPos, dataOffset: RING_CTRL_BYTES + off + RECORD_HEADER_BYTES + pad, length: len };
    }
  }

  /** Give the bytes before `pos` back to the producer (pos between TAIL and the read position). */
  release(pos: number): void {
    const i32 = this.i32;
    const tail = Atomics.load(i32, RG_TAIL);
    if (dist(tail, pos) <= 0) return;
    assert(dist(pos, this.readPos) >= 0, 'ring release past the read position');
    Atomics.store(i32, RG_TAIL, pos);
    if (Atomics.load(i32, RG_P_WAIT) !== 0 && dist(Atomics.load(i32, RG_P_WANT), pos) >= 0) {
      Atomics.store(i32, RG_P_WAIT, 0);
      Atomics.notify(i32, RG_TAIL);
    }
  }

  /**
   * Wait (without blocking the thread) for a record or a close: spins `spinIterations` times on
   * HEAD first (a wake-up costs tens of µs), then Atomics.waitAsync. Null when there is one already.
   */
  waitData(spinIterations: number): Promise<unknown> | null {
    const i32 = this.i32;
    for (let i = 0; i < spinIterations; i++) {
      if (Atomics.load(i32, RG_HEAD) !== this.readPos || Atomics.load(i32, RG_CLOSED) !== 0) return null;
    }
    Atomics.store(i32, RG_C_WAIT, 1);
    const head = Atomics.load(i32, RG_HEAD);
    if (head !== this.readPos || Atomics.load(i32, RG_CLOSED) !== 0) {
      Atomics.store(i32, RG_C_WAIT, 0);
      return null;
    }
    const r = Atomics.waitAsync(i32, RG_HEAD, head);
    if (!r.async) {
      Atomics.store(i32, RG_C_WAIT, 0);
      return null;
    }
    return r.value.then(() => Atomics.store(i32, RG_C_WAIT, 0));
  }
}

/** Both rings of one in-process connection, as sent between threads. */
export interface RingPairHandle {
  /** Server → client (walsender → walreceiver): XLogData, keepalives, results. */
  toClient: ByteRingHandle;
  /** Client → server: startup, commands, status updates. */
  toServer: ByteRingHandle;
}

/** Capacity of the client → server ring (startup, commands and `r`/`h` replies are small). */
export const TO_SERVER_RING_BYTES = 64 * 1024;

export function createRingPair(toClientBytes: number): RingPairHandle {
  return { toClient: ByteRing.create(toClientBytes).handle, toServer: ByteRing.create(TO_SERVER_RING_BYTES).handle };
}
