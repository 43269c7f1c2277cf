// Commit waits for the local WAL flush, on the thread that owns transactions. Waiters are queued
// in LSN order (inserts are in LSN order); one Atomics.waitAsync on XLogCtl's FLUSH_SEQ is armed
// while any waiter is queued, so commits are woken by the walwriter, never by polling.

import { Errors } from '../errors.js';
import type { Lsn } from '../wal/lsn.js';
import {
  XC_FLUSHED, XC_FLUSH_SEQ, XC_WAITERS, XC_WALWRITER_LATCH, XC_WRITE_REQUEST, XC_WRITER_FAILED, type XLogCtl,
} from '../wal/xlogctl.js';

interface Waiter {
  lsn: Lsn;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class FlushWaiter {
  private q: Waiter[] = [];
  private head = 0;
  private armed = false;

  constructor(private readonly ctl: XLogCtl) {}

  get waiting(): number {
    return this.q.length - this.head;
  }

  waitFor(lsn: Lsn): Promise<void> {
    const ctl = this.ctl;
    if (ctl.load(XC_FLUSHED) >= lsn) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.q.push({ lsn, resolve, reject });
      Atomics.add(ctl.i32, XC_WAITERS, 1);
      ctl.advance(XC_WRITE_REQUEST, lsn);
      ctl.setLatch(XC_WALWRITER_LATCH);
      this.arm();
    });
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
