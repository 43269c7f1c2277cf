// XLogCtl: the WAL positions and latches shared by the inserting thread, the walwriter worker and
// walsender workers, in one SharedArrayBuffer; and the wal_buffers ring of 8 KiB pages.
//
// DEV DOCS — who touches what:
//   inserter (one thread: the primary's main thread) writes records into ring pages, then publishes
//     INSERTED_UPTO (Atomics.store, after the bytes: readers that Atomics.load it see the bytes).
//     Before re-using a ring slot it waits until WRITTEN covers the page that was there, and then
//     advances RING_VALID_FROM (oldest LSN whose page is still in the ring).
//   walwriter (worker) reads INSERTED_UPTO, writes [WRITTEN, target) to segment files, fdatasyncs,
//     publishes WRITTEN then FLUSHED, bumps FLUSH_SEQ and notifies it.
//   flush requests (requestFlush: Primary.requestWalFlush for an in-process standby, a walsender for
//     a standby's StandbyFlushRequest `F`) raise WRITE_REQUEST to at most INSERTED_UPTO, count in
//     FLUSH_REQUESTS and set WALWRITER_LATCH, as a committer does, without waiting.
//   committers set WRITE_REQUEST (max) and SetLatch(WALWRITER_LATCH) (wakeWalWriter: it notifies
//     only while the walwriter sleeps, WALWRITER_SLEEPING); they wait on FLUSH_SEQ. A
//     committer that finds no other commit waiting may instead write and fdatasync WAL itself
//     (PostgreSQL's XLogFlush in the backend) if it takes WRITE_LOCK without waiting.
//   WRITE_LOCK (PostgreSQL's WALWriteLock): held by whoever writes segment files and publishes
//     WRITTEN/FLUSHED — the walwriter (lockWrite) or a committing thread (tryLockWrite).
//   walsenders read FLUSHED, wait on FLUSH_SEQ, and copy pages from the ring while
//     RING_VALID_FROM <= their position (re-checked after the copy), else read segment files.
// Invariant: RING_VALID_FROM <= FLUSHED <= WRITTEN <= INSERTED_UPTO.

import { assert } from '../util/assert.js';
import { XLOG_BLCKSZ } from './consts.js';
import type { Lsn } from './lsn.js';

// BigInt64 slots (index into BigInt64Array)
export const XC_INSERTED_UPTO = 0;
export const XC_WRITE_REQUEST = 1;
export const XC_WRITTEN = 2;
export const XC_FLUSHED = 3;
export const XC_RING_VALID_FROM = 4;
export const XC_FSYNC_COUNT = 5;
export const XC_WRITE_COUNT = 6;
export const XC_BYTES_WRITTEN = 7;
const N_BIG = 8;
// Int32 slots (index into Int32Array), after the BigInt64 area
const I32_BASE = N_BIG * 2;
export const XC_WALWRITER_LATCH = I32_BASE + 0;
export const XC_FLUSH_SEQ = I32_BASE + 1;
export const XC_WAITERS = I32_BASE + 2;
export const XC_STOP = I32_BASE + 3;
export const XC_WRITE_SEQ = I32_BASE + 4;
export const XC_WRITER_FAILED = I32_BASE + 5;
/** 0 = free, 1 = held (see DEV DOCS). */
export const XC_WRITE_LOCK = I32_BASE + 6;
/** 1 while the walwriter sleeps (or is about to) on WALWRITER_LATCH: wakeWalWriter() notifies only then. */
export const XC_WALWRITER_SLEEPING = I32_BASE + 7;
/** Threads waiting on WRITE_SEQ (an inserter waiting for ring space): bumpWriteSeq() notifies only then. */
export const XC_WRITE_SEQ_WAITERS = I32_BASE + 8;
/** Flush requests that asked the walwriter for WAL it had not flushed (requestFlush), a counter. */
export const XC_FLUSH_REQUESTS = I32_BASE + 9;
const N_I32 = I32_BASE + 10;
export const XLOGCTL_BYTES = N_I32 * 4;

export interface XLogCtlHandle {
  ctl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  segSize: number;
  sysid: bigint;
  tli: number;
}

export class XLogCtl {
  readonly big: BigInt64Array;
  readonly i32: Int32Array;
  readonly ring: Uint8Array;
  readonly ringPages: number;
  readonly segSize: number;
  readonly sysid: bigint;
  readonly tli: number;

  constructor(readonly handle: XLogCtlHandle) {
    this.big = new BigInt64Array(handle.ctl, 0, N_BIG);
    this.i32 = new Int32Array(handle.ctl, 0, N_I32);
    this.ring = new Uint8Array(handle.ring);
    assert(this.ring.length % XLOG_BLCKSZ === 0, 'ring must be whole pages');
    this.ringPages = this.ring.length / XLOG_BLCKSZ;
    this.segSize = handle.segSize;
    this.sysid = handle.sysid;
    this.tli = handle.tli;
  }

  static create(walBuffersBytes: number, segSize: number, sysid: bigint, tli: number, startLsn: Lsn): XLogCtl {
    const ctl = new SharedArrayBuffer(XLOGCTL_BYTES);
    const ring = new SharedArrayBuffer(walBuffersBytes);
    const x = new XLogCtl({ ctl, ring, segSize, sysid, tli });
    x.store(XC_INSERTED_UPTO, startLsn);
    x.store(XC_WRITE_REQUEST, startLsn);
    x.store(XC_WRITTEN, startLsn);
    x.store(XC_FLUSHED, startLsn);
    x.store(XC_RING_VALID_FROM, startLsn);
    return x;
  }

  load(slot: number): number {
    return Number(Atomics.load(this.big, slot));
  }

  store(slot: number, v: number): void {
    Atomics.store(this.big, slot, BigInt(v));
  }

  /** Raise a BigInt slot to at least v (CAS loop); returns the new value. */
  advance(slot: number, v: number): number {
    const nv = BigInt(v);
    for (;;) {
      const cur = Atomics.load(this.big, slot);
      if (cur >= nv) return Number(cur);
      if (Atomics.compareExchange(this.big, slot, cur, nv) === cur) return v;
    }
  }

  addCounter(slot: number, n: number): void {
    Atomics.add(this.big, slot, BigInt(n));
  }

  /** Byte offset in the ring of the page holding `lsn`. */
  ringOffset(lsn: Lsn): number {
    return (Math.floor(lsn / XLOG_BLCKSZ) % this.ringPages) * XLOG_BLCKSZ + (lsn % XLOG_BLCKSZ);
  }

  /**
   * SetLatch(WALWRITER_LATCH). Atomics.notify only while the walwriter sleeps on it: every
   * Atomics.notify/wait in the process takes one mutex inside V8, and a committer sets this latch
   * at every commit, mostly while the walwriter is busy. (Sequentially consistent: either this
   * load sees SLEEPING, or the walwriter's wait, which follows its store of SLEEPING, sees the new
   * latch value and does not sleep.)
   */
  wakeWalWriter(): void {
    Atomics.add(this.i32, XC_WALWRITER_LATCH, 1);
    if (Atomics.load(this.i32, XC_WALWRITER_SLEEPING) !== 0) Atomics.notify(this.i32, XC_WALWRITER_LATCH);
  }

  /**
   * Ask the walwriter to flush up to `lsn` now rather than at wal_writer_delay (a standby's
   * waitForReplay of a synchronousCommit 'off' commit); no wait. Never past INSERTED_UPTO: the
   * LSN may come from another process, and WAL not inserted cannot be flushed. False when there
   * was nothing to ask (flushed already).
   */
  requestFlush(lsn: Lsn): boolean {
    const target = Math.min(lsn, this.load(XC_INSERTED_UPTO));
    if (this.load(XC_FLUSHED) >= target) return false;
    this.advance(XC_WRITE_REQUEST, target);
    Atomics.add(this.i32, XC_FLUSH_REQUESTS, 1);
    this.wakeWalWriter();
    return true;
  }

  /** Flush requests that found WAL to flush (requestFlush), since this XLogCtl was created. */
  get flushRequests(): number {
    return Atomics.load(this.i32, XC_FLUSH_REQUESTS);
  }

  /** Walwriter: sleep on WALWRITER_LATCH while it still holds `seen`, up to timeoutMs. */
  sleepWalWriter(seen: number, timeoutMs: number): void {
    Atomics.store(this.i32, XC_WALWRITER_SLEEPING, 1);
    Atomics.wait(this.i32, XC_WALWRITER_LATCH, seen, timeoutMs);
    Atomics.store(this.i32, XC_WALWRITER_SLEEPING, 0);
  }

  /** Inserter: wait up to timeoutMs for WRITE_SEQ to move from `seen` (ring space); true if the wait timed out. */
  waitWriteSeq(seen: number, timeoutMs: number): boolean {
    Atomics.add(this.i32, XC_WRITE_SEQ_WAITERS, 1);
    const r = Atomics.wait(this.i32, XC_WRITE_SEQ, seen, timeoutMs);
    Atomics.sub(this.i32, XC_WRITE_SEQ_WAITERS, 1);
    return r === 'timed-out';
  }

  /** WRITE_LOCK without waiting: true if taken. */
  tryLockWrite(): boolean {
    return Atomics.compareExchange(this.i32, XC_WRITE_LOCK, 0, 1) === 0;
  }

  /** WRITE_LOCK, sleeping while another thread holds it (blocking threads only: the walwriter). */
  lockWrite(): void {
    while (Atomics.compareExchange(this.i32, XC_WRITE_LOCK, 0, 1) !== 0) Atomics.wait(this.i32, XC_WRITE_LOCK, 1, 10);
  }

  unlockWrite(): void {
    const was = Atomics.exchange(this.i32, XC_WRITE_LOCK, 0);
    assert(was === 1, 'WRITE_LOCK released while not held');
    Atomics.notify(this.i32, XC_WRITE_LOCK);
  }

  /**
   * WAL could not be written or fdatasynced (PostgreSQL PANICs): no commit can be known durable
   * any more. Every thread waiting on FLUSH_SEQ or WRITE_SEQ is woken to see WRITER_FAILED.
   */
  markWriterFailed(): void {
    Atomics.store(this.i32, XC_WRITER_FAILED, 1);
    this.bump(XC_FLUSH_SEQ);
    this.bumpWriteSeq();
  }

  /** Bump a sequence word and wake all its waiters. */
  bump(index: number): void {
    Atomics.add(this.i32, index, 1);
    Atomics.notify(this.i32, index);
  }

  /** Bump WRITE_SEQ; notify only while an inserter waits on it (waitWriteSeq). */
  bumpWriteSeq(): void {
    Atomics.add(this.i32, XC_WRITE_SEQ, 1);
    if (Atomics.load(this.i32, XC_WRITE_SEQ_WAITERS) !== 0) Atomics.notify(this.i32, XC_WRITE_SEQ);
  }
}
