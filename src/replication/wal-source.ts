// WalSource: where a walsender's WAL is readable up to, and how it waits for more — the one seam
// between the walsender (walsender.ts, its send loop walsend.ts and reads wal-read.ts) and the
// server it runs in. A primary's walsender reads XLogCtl (FLUSHED, FLUSH_SEQ, the wal_buffers
// ring: GetFlushRecPtr); a cascading walsender on a standby reads the standby's WalRcvData
// (the walreceiver's flushed position and the standby's timeline: walsender.c's
// GetStandbyFlushRecPtr with am_cascading_walsender) and the standby's pg_wal segment files.
// Built by each walsender worker from a structured-cloneable WalSourceHandle over the same
// SharedArrayBuffers; it owns nothing but its waiter count while a wait is armed. Nothing to stop.
//
// DEV DOCS — waiting for more WAL without missing a flush (threads: the walsender waits, the
// walwriter or committing thread (primary) or the walreceiver (standby) publishes):
//   * Primary: read FLUSH_SEQ, then FLUSHED; if FLUSHED has not moved past `sent`, waitAsync on
//     FLUSH_SEQ with the value read (a flush in between changed it: the wait returns at once).
//     The walwriter notifies FLUSH_SEQ at every flush.
//   * Standby: the walreceiver notifies FLUSH_SEQ only while FLUSH_WAITERS > 0 (it publishes a
//     flush per batch and usually nobody waits), so the waiter adds to FLUSH_WAITERS first, then
//     reads FLUSH_SEQ and FLUSHED; the walreceiver bumps FLUSH_SEQ before it reads FLUSH_WAITERS.
//     Both sides use sequentially consistent Atomics, so either the waiter sees the new FLUSHED or
//     the walreceiver sees the waiter and notifies. The count is dropped when the wait ends, or at
//     the end of streaming (release(): the send loop forgets a wait it no longer wants, so a
//     walsender that exits leaves no count behind; only one terminated by force does, which costs
//     the walreceiver a needless notify per flush).
//   * A timeline switch (threads: the walreceiver following its upstream onto a new timeline, the
//     cascading walsender streaming the old one): the walreceiver stores TIMELINE at the start of
//     the new timeline's stream (WalRcvData.startStreaming), before any of its WAL is published
//     as flushed, then bumps FLUSH_SEQ and notifies waiters. The walsender reads FLUSHED first,
//     then TIMELINE (flushedOn()): if TIMELINE is still the one it streams, that FLUSHED is WAL of
//     it; if TIMELINE moved, its timeline became historic (walsend.ts) and it sends only up to the
//     switch point, which FLUSHED never exceeds on the old timeline (the walreceiver checked the
//     new history against its flush before following). A waiter that streams the current
//     timeline passes it to waitForFlushPast, which returns null once TIMELINE differs: the same
//     FLUSH_WAITERS / FLUSH_SEQ handshake as for a flush, so no switch is missed either.
//   * Why WAL up to the standby's FLUSHED is safe to send: the walreceiver publishes FLUSHED only
//     after the fdatasync of every byte up to it (the flush rule, flush-pipeline.ts), so the files
//     hold it, and it never moves back. A downstream thus never gets WAL its upstream could lose.
//     (PostgreSQL sends up to the standby's receive position or its replay position, whichever is
//     further, on the replay timeline; here replay <= flushed always, so flushed is that maximum.)

import { assert } from '../util/assert.js';
import type { Lsn } from '../wal/lsn.js';
import { XC_FLUSHED, XC_FLUSH_SEQ, XC_INSERTED_UPTO, XLogCtl, type XLogCtlHandle } from '../wal/xlogctl.js';
import { WalRcvData, type WalRcvDataHandle, WI_FLUSH_SEQ, WI_FLUSH_WAITERS } from '../standby/walrcvdata.js';
import { copyFromWalBuffers } from './wal-read.js';

/** A primary's walsender: XLogCtl. A cascading walsender: the standby's WalRcvData. */
export type WalSourceHandle =
  | { kind: 'primary'; xlog: XLogCtlHandle }
  | { kind: 'standby'; walrcv: WalRcvDataHandle; segSize: number };

export interface WalSource {
  /** am_cascading_walsender: this server is a standby (BASE_BACKUP says "BACKUP FROM: standby"). */
  readonly cascading: boolean;
  readonly segSize: number;
  /** The server's current timeline (primary: its ThisTimeLineID; standby: WalRcvData TIMELINE). */
  timeline(): number;
  /** WAL durable and readable up to here (GetFlushRecPtr / GetStandbyFlushRecPtr). */
  flushed(): Lsn;
  /** WAL on its way to durable (a primary's INSERTED_UPTO; a standby's flushed: nothing is behind it). */
  insertedUpto(): Lsn;
  /**
   * The flushed position and the timeline it is on, read in that order (see DEV DOCS): if `tli`
   * is the timeline a walsender streams, every byte below `flushed` is WAL of that timeline.
   */
  flushedOn(): { flushed: Lsn; tli: number };
  /**
   * A promise that settles once flushed() may have moved past `sent` (or, `tli` > 0, the timeline
   * is no longer `tli`); null if it already has (then read flushedOn() again). One call arms one wait.
   */
  waitForFlushPast(sent: Lsn, tli?: number): Promise<unknown> | null;
  /** The armed wait is no longer wanted (end of streaming): stop counting as a waiter. Idempotent. */
  release(): void;
  /** Copy WAL [from, to) out of memory (a primary's wal_buffers, validated); false: read the segment files. */
  copyFromMemory(buf: Uint8Array, off: number, from: Lsn, to: Lsn): boolean;
  /**
   * A standby's StandbyFlushRequest `F`: a primary asks its walwriter to flush up to `lsn` now
   * (XLogCtl.requestFlush); a standby flushes only what it receives, so a cascading walsender has
   * nothing to ask. False when nothing was asked.
   */
  requestFlush(lsn: Lsn): boolean;
}

/** A primary's walsender: XLogCtl's FLUSHED, FLUSH_SEQ and wal_buffers ring. */
export class PrimaryWalSource implements WalSource {
  readonly cascading = false;
  readonly segSize: number;
  constructor(readonly ctl: XLogCtl) {
    this.segSize = ctl.segSize;
  }
  timeline(): number {
    return this.ctl.tli;
  }
  flushed(): Lsn {
    return this.ctl.load(XC_FLUSHED);
  }
  insertedUpto(): Lsn {
    return this.ctl.load(XC_INSERTED_UPTO);
  }
  flushedOn(): { flushed: Lsn; tli: number } {
    return { flushed: this.ctl.load(XC_FLUSHED), tli: this.ctl.tli }; // (a primary's timeline never changes)
  }
  waitForFlushPast(sent: Lsn): Promise<unknown> | null {
    const ctl = this.ctl;
    const seq = Atomics.load(ctl.i32, XC_FLUSH_SEQ); // before FLUSHED: a flush in between changes it
    if (ctl.load(XC_FLUSHED) > sent) return null;
    const r = Atomics.waitAsync(ctl.i32, XC_FLUSH_SEQ, seq);
    return r.async ? r.value : null;
  }
  release(): void {
    // The walwriter notifies FLUSH_SEQ at every flush: nothing to undo.
  }
  copyFromMemory(buf: Uint8Array, off: number, from: Lsn, to: Lsn): boolean {
    return copyFromWalBuffers(this.ctl, buf, off, from, to);
  }
  requestFlush(lsn: Lsn): boolean {
    return this.ctl.requestFlush(lsn);
  }
}

/** A cascading walsender: the standby's WalRcvData (flushed position, timeline) and its pg_wal files. */
export class StandbyWalSource implements WalSource {
  readonly cascading = true;
  private readonly walrcv: WalRcvData;
  /** This walsender counts in FLUSH_WAITERS (one wait at a time). */
  private counted = false;
  /** Which wait is the current one: a wait that ends after a newer one was armed leaves the count alone. */
  private waitToken = 0;
  constructor(handle: WalRcvDataHandle, readonly segSize: number) {
    this.walrcv = new WalRcvData(handle);
  }
  timeline(): number {
    const tli = this.walrcv.timeline;
    assert(tli > 0, 'standby timeline not set');
    return tli;
  }
  flushed(): Lsn {
    return this.walrcv.flushed;
  }
  insertedUpto(): Lsn {
    return this.walrcv.flushed;
  }
  flushedOn(): { flushed: Lsn; tli: number } {
    const flushed = this.walrcv.flushed; // before TIMELINE (see DEV DOCS)
    return { flushed, tli: this.timeline() };
  }
  waitForFlushPast(sent: Lsn, tli = 0): Promise<unknown> | null {
    const i32 = this.walrcv.i32;
    if (!this.counted) {
      this.counted = true;
      Atomics.add(i32, WI_FLUSH_WAITERS, 1); // before FLUSH_SEQ, FLUSHED and TIMELINE (see DEV DOCS)
    }
    const seq = Atomics.load(i32, WI_FLUSH_SEQ);
    if (this.walrcv.flushed > sent || (tli > 0 && this.walrcv.timeline !== tli)) {
      this.release();
      return null;
    }
    const r = Atomics.waitAsync(i32, WI_FLUSH_SEQ, seq);
    if (!r.async) {
      this.release();
      return null;
    }
    const token = ++this.waitToken;
    return r.value.finally(() => {
      if (token === this.waitToken) this.release();
    });
  }
  release(): void {
    if (!this.counted) return;
    this.counted = false;
    Atomics.sub(this.walrcv.i32, WI_FLUSH_WAITERS, 1);
  }
  copyFromMemory(): boolean {
    return false; // the walreceiver keeps no WAL in shared memory: the segment files have it
  }
  requestFlush(): boolean {
    return false;
  }
}

export function openWalSource(h: WalSourceHandle): WalSource {
  return h.kind === 'primary' ? new PrimaryWalSource(new XLogCtl(h.xlog)) : new StandbyWalSource(h.walrcv, h.segSize);
}
