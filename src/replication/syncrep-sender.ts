// SyncRepSender: the walsender's side of synchronous replication (PostgreSQL's syncrep.c as
// called from walsender.c), as one policy object the send loop (src/replication/walsend.ts) calls
// at fixed points, so the send loop itself has no synchronous-replication branches:
//   beforeSend()   tell a walstream walreceiver whether to send `R` and prompt apply reports
//                  (ParameterStatus walstream.received_report), before the WAL that follows;
//   deferSend()    a walsender whose standby is not synchronous, while commits wait for the
//                  synchronous ones, sends at most every walSenderAsyncDelayMs (one timer);
//   onReply()      SyncRepReleaseWaiters for an `r`, then spin briefly for the next flush when
//                  that released the last waiter; onReceived() the same for walstream's `R`.
// Run by one walsender worker; owns its defer timer and its cached "am I synchronous" answer.
// Stops: cancel() clears the timer (end of streaming). The queue is shared memory
// (src/replication/syncrep-queue.ts); without one (no synchronous_standby_names support) every
// call is a no-op but the received-report advice, which then says off.

import type { Lsn } from '../wal/lsn.js';
import type { WalSource } from './wal-source.js';
import type { ReplicationServerConn } from './protocol/server-conn.js';
import type { SyncRepQueue } from './syncrep-queue.js';
import { WalSndState, type WalSndCtl, type WalSndStateValue } from './walsndctl.js';

/** walSenderAsyncDelayMs: how long a cached "our standby is (not) synchronous" is trusted (ms). */
const AM_SYNC_RECHECK_MS = 10;
/** walSenderAsyncDelayMs applies while commits waited for synchronous standbys within this many ms. */
const SYNC_WAIT_RECENT_MS = 100;
/** Spin iterations between clock reads while watching FLUSHED (a mask: every 64th). */
const SPIN_CLOCK_MASK = 63;

/** What the policy needs from its send loop. */
export interface SyncRepSendLoop {
  readonly streaming: boolean;
  readonly sentLsn: Lsn;
  readonly walSndState: WalSndStateValue;
  /** WalSndCtl slot of this walsender (-1: none). */
  readonly walSndSlot: number;
  /** Send what is flushed now (the deferred send, or the flush the spin saw). */
  sendPending(): void;
}

export interface SyncRepSenderOptions {
  /** Where WAL is flushed and inserted up to (the spin watches it). */
  source: WalSource;
  walsnd: WalSndCtl;
  queue: SyncRepQueue | null;
  conn: ReplicationServerConn;
  /** walSenderAsyncDelayMs (ms; 0: never defer). */
  asyncDelayMs: number;
  /** walSenderSpinMicros (µs; 0: never spin). */
  spinMicros: number;
}

export class SyncRepSender {
  private readonly o: SyncRepSenderOptions;
  private loop: SyncRepSendLoop | null = null;
  /** What the client was last told by `walstream.received_report` (the startup exchange said on). */
  private receivedReportOn = true;
  private deferTimer: NodeJS.Timeout | null = null;
  private deferDue = false;
  private amSync = true;
  private amSyncCheckedAt = -Infinity;
  private syncWaitSeenAt = -Infinity;

  constructor(o: SyncRepSenderOptions) {
    this.o = o;
  }

  attach(loop: SyncRepSendLoop): void {
    this.loop = loop;
  }

  /**
   * `R` and prompt apply reports serve only commits that wait for synchronous standbys: a
   * walstream walreceiver is asked for them while synchronous_standby_names names any standby, and
   * told to stop when it names none (each is one more message per flush, in each direction). Sent
   * before the WAL that follows, so the standby knows before it receives what a commit waits for.
   */
  beforeSend(): void {
    const conn = this.o.conn;
    if (!conn.receivedReportAgreed) return;
    const want = this.o.queue !== null && this.o.queue.standbysDefined;
    if (want === this.receivedReportOn) return;
    this.receivedReportOn = want;
    conn.sendReceivedReportMode(want);
  }

  /**
   * A walsender whose standby is not synchronous, while commits wait for the synchronous ones,
   * sends at most every walSenderAsyncDelayMs (batching), leaving the CPU to the synchronous
   * path; true if this send is put off (a timer resumes it). Whether our standby is synchronous is
   * re-read from WalSndCtl at most every AM_SYNC_RECHECK_MS (a potential standby that takes over
   * is deferred at most that long).
   */
  deferSend(): boolean {
    const ms = this.o.asyncDelayMs;
    const q = this.o.queue;
    const loop = this.loop!;
    if (ms <= 0 || this.deferDue || q === null || !q.standbysDefined || loop.walSndState !== WalSndState.STREAMING) return false;
    const now = performance.now();
    // Commits wait for synchronous standbys now, or did lately (a lone committer is between its
    // local flush and its queue entry when this thread wakes for that flush).
    if (q.queued > 0) this.syncWaitSeenAt = now;
    else if (now - this.syncWaitSeenAt > SYNC_WAIT_RECENT_MS) return false;
    if (now - this.amSyncCheckedAt > AM_SYNC_RECHECK_MS) {
      this.amSync = q.isSyncStandby(this.o.walsnd.all(), loop.walSndSlot);
      this.amSyncCheckedAt = now;
    }
    if (this.amSync) return false;
    if (this.deferTimer === null) {
      this.deferTimer = setTimeout(() => {
        this.deferTimer = null;
        this.deferDue = true;
        loop.sendPending();
        this.deferDue = false;
      }, ms);
    }
    return true;
  }

  /** A standby's `r` (its positions are in WalSndCtl already): release the commits it covers. */
  onReply(): void {
    const q = this.o.queue;
    if (q === null || !q.standbysDefined) return;
    if (q.releaseWaiters(this.o.walsnd.all(), this.loop!.walSndSlot) > 0) this.spinForNextFlush();
  }

  /** walstream's `R` (remote_receive): releases waiters before the standby's write. */
  onReceived(): void {
    const q = this.o.queue;
    if (q !== null && q.standbysDefined) q.releaseWaiters(this.o.walsnd.all(), this.loop!.walSndSlot);
  }

  /** End of streaming: no deferred send any more. */
  cancel(): void {
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
  }

  /**
   * This reply released the last waiting commit (a lone committer, or a few): its next commit
   * usually follows within a flush time. Watch FLUSHED for up to walSenderSpinMicros instead of
   * sleeping, so that WAL goes out without the tens of µs of waking this thread, once per commit
   * on the synchronous path. Under concurrency (commits still queued) nothing spins: the
   * FLUSH_SEQ wait wakes us, and the CPU goes to the committers.
   */
  private spinForNextFlush(): void {
    const budgetMs = this.o.spinMicros / 1000;
    const loop = this.loop!;
    if (budgetMs <= 0 || !loop.streaming || this.o.queue!.queued > 0) return;
    const src = this.o.source;
    const deadline = performance.now() + budgetMs;
    for (let i = 0; ; i++) {
      if (src.flushed() > loop.sentLsn) {
        loop.sendPending();
        return;
      }
      // Nothing inserted yet and half the budget gone: the committer is not coming back soon.
      if ((i & SPIN_CLOCK_MASK) === SPIN_CLOCK_MASK) {
        const now = performance.now();
        if (now >= deadline) return;
        if (src.insertedUpto() <= loop.sentLsn && now >= deadline - budgetMs / 2) return;
      }
    }
  }
}
