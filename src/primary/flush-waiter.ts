// Commit waits for the local WAL flush, on the thread that owns transactions. Waiters are queued
// in LSN order (inserts are in LSN order); one Atomics.waitAsync on XLogCtl's FLUSH_SEQ is armed
// while any waiter is queued, so commits are woken by the walwriter, never by polling.
// At low concurrency commits flush their own WAL on this thread instead (PostgreSQL's backend
// XLogFlush): at the end of this turn of the event loop (setImmediate: every commit of the turn
// has inserted), if WRITE_LOCK is free and the segment exists, one write + fdatasync covers
// everything inserted, saving the two thread wake-ups (≈ 60 µs each here) of asking the
// walwriter; this thread is blocked for that fdatasync. As soon as one flush releases several
// commits (concurrent committers, or commits arriving faster than one fdatasync each), flushes go
// to the walwriter for GROUP_COMMIT_HOLD_MS and more: it fdatasyncs while this thread goes on.

import { Errors } from '../errors.js';
import type { Lsn } from '../wal/lsn.js';
import type { WalFileWriter } from '../wal/wal-file-writer.js';
import {
  XC_FLUSHED, XC_FLUSH_SEQ, XC_INSERTED_UPTO, XC_WAITERS, XC_WRITE_REQUEST, XC_WRITER_FAILED, type XLogCtl,
} from '../wal/xlogctl.js';

/**
 * Once a flush releases more than one commit (commits are concurrent, or arrive faster than this
 * thread can fdatasync alone), every flush goes to the walwriter for at least this long.
 */
const GROUP_COMMIT_HOLD_MS = 100;

interface Waiter {
  lsn: Lsn;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class FlushWaiter {
  private q: Waiter[] = [];
  private head = 0;
  private armed = false;
  /** performance.now() until which flushes go to the walwriter (see GROUP_COMMIT_HOLD_MS). */
  private groupCommitUntil = 0;
  private selfFlushScheduled = false;
  /** Commits flushed on this thread (the rest were flushed by the walwriter). */
  selfFlushes = 0;

  /**
   * Flush every commit on this thread (with `writer`) until the walwriter's thread is running: a
   * promoted primary accepts commits before that thread has booted. Cleared by the primary.
   */
  walWriterStarting = false;

  /**
   * `writer`: this thread's WAL file writer (null: always the walwriter); `loneCommits`: it flushes
   * lone commits (committerFlush), else only while walWriterStarting.
   */
  constructor(private readonly ctl: XLogCtl, private readonly writer: WalFileWriter | null = null, private readonly loneCommits = writer !== null) {}

  get waiting(): number {
    return this.q.length - this.head;
  }

  waitFor(lsn: Lsn): Promise<void> {
    const ctl = this.ctl;
    if (ctl.load(XC_FLUSHED) >= lsn) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.q.push({ lsn, resolve, reject });
      Atomics.add(ctl.i32, XC_WAITERS, 1);
      if (this.writer !== null && (this.walWriterStarting || (this.loneCommits && performance.now() >= this.groupCommitUntil))) {
        this.scheduleSelfFlush();
      } else {
        this.requestWalWriter(lsn);
      }
    });
  }

  private requestWalWriter(lsn: Lsn): void {
    this.ctl.advance(XC_WRITE_REQUEST, lsn);
    this.ctl.wakeWalWriter();
    this.arm();
  }

  /**
   * Flush on this thread once the commits of this turn of the event loop have inserted (one
   * fdatasync for all of them); if the walwriter holds WRITE_LOCK or the segment is not there
   * yet, ask the walwriter instead.
   */
  private scheduleSelfFlush(): void {
    if (this.selfFlushScheduled) return;
    this.selfFlushScheduled = true;
    setImmediate(() => {
      this.selfFlushScheduled = false;
      if (this.waiting === 0) return;
      const lsn = this.q[this.q.length - 1]!.lsn;
      let flushed = false;
      try {
        flushed = this.flushSelf(lsn);
      } catch {
        flushed = true; // WRITER_FAILED is set: drain() rejects every waiter
      }
      if (flushed) this.drain();
      else this.requestWalWriter(lsn);
    });
  }

  /** flushSelf for a promotion's END_OF_RECOVERY: false, with nothing done, when it must be the walwriter's. */
  flushHere(lsn: Lsn): boolean {
    return this.writer !== null && this.flushSelf(lsn);
  }

  /** Write and fdatasync everything inserted, on this thread, if WRITE_LOCK is free; true if `lsn` is now flushed. */
  private flushSelf(lsn: Lsn): boolean {
    const ctl = this.ctl;
    const writer = this.writer!;
    if (Atomics.load(ctl.i32, XC_WRITER_FAILED) !== 0 || !ctl.tryLockWrite()) return false;
    try {
      if (ctl.load(XC_FLUSHED) < lsn) {
        const target = ctl.load(XC_INSERTED_UPTO);
        if (!writer.canWrite(target)) return false; // the walwriter creates segments
        writer.flushTo(target);
      }
    } catch (e) {
      ctl.markWriterFailed(); // as when the walwriter fails
      throw Errors.internal(`could not write or fdatasync WAL: ${(e as Error).message}`);
    } finally {
      ctl.unlockWrite();
    }
    this.selfFlushes++;
    return true;
  }

  private arm(): void {
    if (this.armed || this.waiting === 0) return;
    const ctl = this.ctl;
    const seq = Atomics.load(ctl.i32, XC_FLUSH_SEQ);
    if (ctl.load(XC_FLUSHED) >= this.q[this.head]!.lsn || Atomics.load(ctl.i32, XC_WRITER_FAILED) !== 0) {
      queueMicrotask(() => this.drain());
      return;
    }
    const r = Atomics.waitAsync(ctl.i32, XC_FLUSH_SEQ, seq);
    if (!r.async) {
      queueMicrotask(() => this.drain());
      return;
    }
    this.armed = true;
    void r.value.then(() => {
      this.armed = false;
      this.drain();
    });
  }

  drain(): void {
    const ctl = this.ctl;
    const failed = Atomics.load(ctl.i32, XC_WRITER_FAILED) !== 0;
    const flushed = ctl.load(XC_FLUSHED);
    let n = 0;
    while (this.head < this.q.length) {
      const w = this.q[this.head]!;
      if (w.lsn <= flushed) w.resolve();
      else if (failed) w.reject(Errors.internal('walwriter failed: commit not known to be durable'));
      else break;
      this.q[this.head++] = undefined as unknown as Waiter;
      n++;
    }
    if (n > 0) Atomics.sub(ctl.i32, XC_WAITERS, n);
    if (n > 1) this.groupCommitUntil = performance.now() + GROUP_COMMIT_HOLD_MS;
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q = this.q.slice(this.head);
      this.head = 0;
    }
    this.arm();
  }

  rejectAll(e: Error): void {
    while (this.head < this.q.length) this.q[this.head++]!.reject(e);
    this.q = [];
    this.head = 0;
  }
}
