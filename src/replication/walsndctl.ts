// WalSndCtl: PostgreSQL's WalSndCtlData — one slot per walsender in a SharedArrayBuffer, mapped by
// the primary's thread (pins WAL at the minimum sent position, reports replicationStatus()) and by
// every walsender worker (claims a slot at startup, publishes its state and the standby's
// reported positions, releases the slot when its connection ends). Nothing to stop: it is words
// in shared memory; a slot is free again once its walsender released it (or the primary reclaims
// the slot of a worker that died, by id).
//
// DEV DOCS — layout. Byte offsets inside one slot are the named `WS_*` constants below; a slot is
// WALSND_SLOT_BYTES long (a multiple of 8, so every Int64 field is 8-aligned). The buffer starts
// with an 8-byte header (WS_HDR_NEXT_ID: id counter). Every field of a slot is read and written
// under the slot's spinlock (its first word), so a reader always sees one consistent snapshot.
// Invariants checked on every update: apply <= flush <= write <= sent, receive <= sent, and each is monotonic
// while the slot is held by one walsender. Standby-reported positions are sanitised before
// they get here (0 = unknown keeps the old value; claims beyond what was sent are clamped): bad
// input from a client never reaches an assertion.

import { Errors } from '../errors.js';
import { SpinLock } from '../storage/latch.js';
import { assert, assertOrdered } from '../util/assert.js';
import type { Lsn } from '../wal/lsn.js';

export const WalSndState = {
  FREE: 0,
  STARTUP: 1,
  BACKUP: 2,
  CATCHUP: 3,
  STREAMING: 4,
  STOPPING: 5,
} as const;
export type WalSndStateValue = (typeof WalSndState)[keyof typeof WalSndState];
export const WALSND_STATE_NAMES: Record<number, string> = {
  0: 'free',
  1: 'startup',
  2: 'backup',
  3: 'catchup',
  4: 'streaming',
  5: 'stopping',
};

// Header
export const WS_HDR_NEXT_ID = 0; // Int32: last id handed out
export const WS_HEADER_BYTES = 8;

// Slot fields (byte offsets within a slot)
export const WS_LOCK = 0; // Int32 spinlock word
export const WS_ID = 4; // Int32 pid-like walsender id, 0 = slot free
export const WS_STATE = 8; // Int32 WalSndState
export const WS_APPNAME_LEN = 12; // Int32 bytes used in WS_APPNAME
export const WS_ADDR_LEN = 16; // Int32 bytes used in WS_ADDR
export const WS_CLIENT_PORT = 20; // Int32
export const WS_XMIN = 24; // Uint32 hot-standby feedback xmin (0 = none)
export const WS_XMIN_EPOCH = 28; // Uint32
export const WS_CATALOG_XMIN = 32; // Uint32
export const WS_CATALOG_XMIN_EPOCH = 36; // Uint32
export const WS_SENT = 40; // Int64 LSN: end of WAL sent (0 = not streaming yet)
export const WS_WRITE = 48; // Int64 LSN reported written by the standby
export const WS_FLUSH = 56; // Int64 LSN reported flushed
export const WS_APPLY = 64; // Int64 LSN reported applied (replayed)
export const WS_REPLY_TIME = 72; // Int64 standby's clock of its last reply (PostgreSQL µs), 0 = none
export const WS_BACKEND_START = 80; // Int64 Unix ms the connection was accepted
export const WS_APPNAME = 88; // bytes[WS_APPNAME_MAX]
export const WS_APPNAME_MAX = 64;
export const WS_ADDR = WS_APPNAME + WS_APPNAME_MAX; // bytes[WS_ADDR_MAX]
export const WS_ADDR_MAX = 48;
/** Int64 LSN the standby reported received (walstream's `R`; 0 = none: counts as its write). */
export const WS_RECEIVE = Math.ceil((WS_ADDR + WS_ADDR_MAX) / 8) * 8;
export const WALSND_SLOT_BYTES = WS_RECEIVE + 8;

export interface WalSndCtlHandle {
  sab: SharedArrayBuffer;
  maxWalSenders: number;
}

export interface WalSndSnapshot {
  slot: number;
  id: number;
  state: WalSndStateValue;
  stateName: string;
  applicationName: string;
  clientAddr: string;
  clientPort: number;
  sent: Lsn;
  write: Lsn;
  flush: Lsn;
  apply: Lsn;
  /** Reported received (walstream standbys only); 0 = none reported. */
  receive: Lsn;
  /** Standby's clock at its last status update (PostgreSQL µs since 2000-01-01), or 0. */
  replyTime: number;
  backendStartMs: number;
  xmin: number;
  xminEpoch: number;
  catalogXmin: number;
  catalogXminEpoch: number;
}

const utf8 = new TextDecoder();

/** Truncate to at most `max` bytes of UTF-8 without splitting a character. */
function fitUtf8(s: string, max: number): Uint8Array {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return b;
  let n = max;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return b.subarray(0, n);
}

export class WalSndCtl {
  readonly maxWalSenders: number;
  private readonly i32: Int32Array;
  private readonly big: BigInt64Array;
  private readonly u8: Uint8Array;
  private readonly locks: SpinLock[] = [];

  constructor(readonly handle: WalSndCtlHandle) {
    this.maxWalSenders = handle.maxWalSenders;
    assert(handle.sab.byteLength >= WalSndCtl.bytesFor(handle.maxWalSenders), 'WalSndCtl buffer too small');
    this.i32 = new Int32Array(handle.sab);
    this.big = new BigInt64Array(handle.sab);
    this.u8 = new Uint8Array(handle.sab);
    for (let s = 0; s < this.maxWalSenders; s++) this.locks.push(new SpinLock(this.i32, this.base(s) / 4 + WS_LOCK / 4));
  }

  static bytesFor(maxWalSenders: number): number {
    return WS_HEADER_BYTES + maxWalSenders * WALSND_SLOT_BYTES;
  }

  static create(maxWalSenders: number): WalSndCtl {
    assert(Number.isInteger(maxWalSenders) && maxWalSenders >= 0, 'maxWalSenders');
    return new WalSndCtl({ sab: new SharedArrayBuffer(Math.max(8, WalSndCtl.bytesFor(maxWalSenders))), maxWalSenders });
  }

  private base(slot: number): number {
    return WS_HEADER_BYTES + slot * WALSND_SLOT_BYTES;
  }
  private geti(slot: number, off: number): number {
    return this.i32[(this.base(slot) + off) / 4]!;
  }
  private seti(slot: number, off: number, v: number): void {
    this.i32[(this.base(slot) + off) / 4] = v | 0;
  }
  private getu(slot: number, off: number): number {
    return this.geti(slot, off) >>> 0;
  }
  private getb(slot: number, off: number): number {
    return Number(this.big[(this.base(slot) + off) / 8]!);
  }
  private setb(slot: number, off: number, v: number): void {
    this.big[(this.base(slot) + off) / 8] = BigInt(v);
  }
  private getText(slot: number, off: number, lenOff: number): string {
    const at = this.base(slot) + off;
    return utf8.decode(this.u8.slice(at, at + this.geti(slot, lenOff)));
  }
  private setText(slot: number, off: number, lenOff: number, max: number, s: string): void {
    const b = fitUtf8(s, max);
    const at = this.base(slot) + off;
    this.u8.fill(0, at, at + max);
    this.u8.set(b, at);
    this.seti(slot, lenOff, b.length);
  }

  private locked<T>(slot: number, fn: () => T): T {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.maxWalSenders)) assert(false, `walsender slot ${slot} out of range`);
    const l = this.locks[slot]!;
    l.lock();
    try {
      return fn();
    } finally {
      l.unlock();
    }
  }

  /**
   * Claim a free slot for a new walsender (InitWalSenderSlot). Throws PostgreSQL's FATAL 53300
   * when all max_wal_senders slots are taken.
   */
  claim(info: { applicationName: string; clientAddr: string; clientPort: number; backendStartMs: number }): { slot: number; id: number } {
    for (let s = 0; s < this.maxWalSenders; s++) {
      const got = this.locked(s, () => {
        if (this.geti(s, WS_ID) !== 0) return 0;
        const id = Atomics.add(this.i32, WS_HDR_NEXT_ID / 4, 1) + 1;
        this.seti(s, WS_ID, id);
        this.seti(s, WS_STATE, WalSndState.STARTUP);
        for (const off of [WS_SENT, WS_WRITE, WS_FLUSH, WS_APPLY, WS_RECEIVE, WS_REPLY_TIME]) this.setb(s, off, 0);
        for (const off of [WS_XMIN, WS_XMIN_EPOCH, WS_CATALOG_XMIN, WS_CATALOG_XMIN_EPOCH]) this.seti(s, off, 0);
        this.setb(s, WS_BACKEND_START, info.backendStartMs);
        this.seti(s, WS_CLIENT_PORT, info.clientPort);
        this.setText(s, WS_APPNAME, WS_APPNAME_LEN, WS_APPNAME_MAX, info.applicationName);
        this.setText(s, WS_ADDR, WS_ADDR_LEN, WS_ADDR_MAX, info.clientAddr);
        return id;
      });
      if (got !== 0) return { slot: s, id: got };
    }
    throw Errors.tooManyConnections(`number of requested standby connections exceeds max_wal_senders (currently ${this.maxWalSenders})`);
  }

  /** Release a slot; `id` must still own it (a slot reclaimed by the primary is left alone). */
  release(slot: number, id: number): boolean {
    return this.locked(slot, () => {
      if (this.geti(slot, WS_ID) !== id) return false;
      this.seti(slot, WS_ID, 0);
      this.seti(slot, WS_STATE, WalSndState.FREE);
      this.setb(slot, WS_SENT, 0);
      return true;
    });
  }

  /** Release whatever slot `id` holds (the primary does this when a worker exits). */
  releaseById(id: number): boolean {
    for (let s = 0; s < this.maxWalSenders; s++) if (this.release(s, id)) return true;
    return false;
  }

  setApplicationName(slot: number, name: string): void {
    this.locked(slot, () => this.setText(slot, WS_APPNAME, WS_APPNAME_LEN, WS_APPNAME_MAX, name));
  }

  setState(slot: number, state: WalSndStateValue): void {
    this.locked(slot, () => {
      assert(this.geti(slot, WS_ID) !== 0, 'setState on a free walsender slot');
      this.seti(slot, WS_STATE, state);
    });
  }

  /**
   * Publish the start of streaming (sent = start; write/flush/apply = 0: nothing reported yet).
   * A new START_REPLICATION on the same connection may start anywhere, so positions reset here.
   */
  startStreaming(slot: number, start: Lsn, state: WalSndStateValue): void {
    this.locked(slot, () => {
      assert(this.geti(slot, WS_ID) !== 0, 'startStreaming on a free walsender slot');
      this.setb(slot, WS_SENT, start);
      this.setb(slot, WS_WRITE, 0);
      this.setb(slot, WS_FLUSH, 0);
      this.setb(slot, WS_APPLY, 0);
      this.setb(slot, WS_RECEIVE, 0);
      this.seti(slot, WS_STATE, state);
    });
  }

  /** Advance the sent position (monotonic). */
  setSent(slot: number, sent: Lsn): void {
    this.locked(slot, () => {
      assertOrdered(this.getb(slot, WS_SENT), sent, 'walsender sent position went backwards');
      this.setb(slot, WS_SENT, sent);
    });
  }

  /**
   * Record a standby status update. Reported values are sanitised: 0 (unknown) keeps the previous
   * value, values never go backwards, write is clamped to sent, flush to write, apply to flush.
   * Returns the positions stored.
   */
  reportReply(slot: number, r: { write: Lsn; flush: Lsn; apply: Lsn; replyTime: number }): { write: Lsn; flush: Lsn; apply: Lsn } {
    return this.locked(slot, () => {
      const sent = this.getb(slot, WS_SENT);
      const pw = this.getb(slot, WS_WRITE);
      const pf = this.getb(slot, WS_FLUSH);
      const pa = this.getb(slot, WS_APPLY);
      const write = Math.min(Math.max(pw, r.write), sent);
      const flush = Math.min(Math.max(pf, r.flush), write);
      const apply = Math.min(Math.max(pa, r.apply), flush);
      assertOrdered(apply, flush, 'walsender apply > flush');
      assertOrdered(flush, write, 'walsender flush > write');
      assertOrdered(write, sent, 'walsender write > sent');
      assertOrdered(pw, write, 'walsender write went backwards');
      assertOrdered(pf, flush, 'walsender flush went backwards');
      assertOrdered(pa, apply, 'walsender apply went backwards');
      this.setb(slot, WS_WRITE, write);
      this.setb(slot, WS_FLUSH, flush);
      this.setb(slot, WS_APPLY, apply);
      this.setb(slot, WS_REPLY_TIME, r.replyTime);
      return { write, flush, apply };
    });
  }

  /**
   * Record a standby's received position (walstream's `R`). Sanitised like reportReply: 0 keeps
   * the previous value, it never goes backwards and is clamped to sent. Independent of write
   * (reports may cross): synchronous waits take the larger of the two. Returns the value stored.
   */
  reportReceived(slot: number, received: Lsn): Lsn {
    return this.locked(slot, () => {
      const prev = this.getb(slot, WS_RECEIVE);
      const v = Math.min(Math.max(prev, received), this.getb(slot, WS_SENT));
      assertOrdered(prev, v, 'walsender receive went backwards');
      this.setb(slot, WS_RECEIVE, v);
      return v;
    });
  }

  /** Record hot-standby feedback (xmin 0 clears it, as in PostgreSQL). */
  reportFeedback(slot: number, f: { xmin: number; xminEpoch: number; catalogXmin: number; catalogXminEpoch: number; replyTime: number }): void {
    this.locked(slot, () => {
      this.seti(slot, WS_XMIN, f.xmin);
      this.seti(slot, WS_XMIN_EPOCH, f.xmin === 0 ? 0 : f.xminEpoch);
      this.seti(slot, WS_CATALOG_XMIN, f.catalogXmin);
      this.seti(slot, WS_CATALOG_XMIN_EPOCH, f.catalogXmin === 0 ? 0 : f.catalogXminEpoch);
      if (f.replyTime !== 0) this.setb(slot, WS_REPLY_TIME, f.replyTime);
    });
  }

  /** One consistent copy of a slot, or null if it is free. */
  read(slot: number): WalSndSnapshot | null {
    return this.locked(slot, () => {
      const id = this.geti(slot, WS_ID);
      if (id === 0) return null;
      const state = this.geti(slot, WS_STATE) as WalSndStateValue;
      return {
        slot,
        id,
        state,
        stateName: WALSND_STATE_NAMES[state] ?? 'unknown',
        applicationName: this.getText(slot, WS_APPNAME, WS_APPNAME_LEN),
        clientAddr: this.getText(slot, WS_ADDR, WS_ADDR_LEN),
        clientPort: this.geti(slot, WS_CLIENT_PORT),
        sent: this.getb(slot, WS_SENT),
        write: this.getb(slot, WS_WRITE),
        flush: this.getb(slot, WS_FLUSH),
        apply: this.getb(slot, WS_APPLY),
        receive: this.getb(slot, WS_RECEIVE),
        replyTime: this.getb(slot, WS_REPLY_TIME),
        backendStartMs: this.getb(slot, WS_BACKEND_START),
        xmin: this.getu(slot, WS_XMIN),
        xminEpoch: this.getu(slot, WS_XMIN_EPOCH),
        catalogXmin: this.getu(slot, WS_CATALOG_XMIN),
        catalogXminEpoch: this.getu(slot, WS_CATALOG_XMIN_EPOCH),
      };
    });
  }

  /** Every walsender in use, in slot order. */
  all(): WalSndSnapshot[] {
    const out: WalSndSnapshot[] = [];
    for (let s = 0; s < this.maxWalSenders; s++) {
      const r = this.read(s);
      if (r) out.push(r);
    }
    return out;
  }

  /** Lowest sent position among walsenders that are streaming (catchup/streaming/stopping): the WAL they still need; null if none. */
  minSent(): Lsn | null {
    let min: Lsn | null = null;
    for (let s = 0; s < this.maxWalSenders; s++) {
      const v = this.locked(s, () => {
        const st = this.geti(s, WS_STATE);
        const active = st === WalSndState.CATCHUP || st === WalSndState.STREAMING || st === WalSndState.STOPPING;
        return this.geti(s, WS_ID) !== 0 && active ? this.getb(s, WS_SENT) : 0;
      });
      if (v > 0 && (min === null || v < min)) min = v;
    }
    return min;
  }

  /** Walsenders in use. */
  count(): number {
    let n = 0;
    for (let s = 0; s < this.maxWalSenders; s++) if (Atomics.load(this.i32, (this.base(s) + WS_ID) / 4) !== 0) n++;
    return n;
  }
}
