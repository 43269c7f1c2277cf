// ReplayWaiters: the read-your-writes waits of one thread: a Standby's (waitForReplay, on the
// thread that opened it) or a reader's in an application thread (openReader, open-reader.ts).
// Owns the waiting promises, one timer for all their timeouts (armed for the earliest deadline: a
// timer per call costs allocation and timer-list work on every wait), and at most one
// Atomics.waitAsync on WalRcvData's REPLAY_SEQ while anyone waits. Stops with rejectAll() (a
// worker failed for good, or close()).
//
// DEV DOCS (threads): the startup worker bumps REPLAY_SEQ after publishing REPLAY and notifies it
// only while REPLAY_WAITING is non-zero. REPLAY_WAITING counts the ReplayWaiters objects (in any
// thread) that have waiters: each adds 1 before it reads REPLAY_SEQ and REPLAY (sequentially
// consistent pair: a replay published after our read bumps the sequence we wait on), and takes
// its 1 back when its last waiter is gone, so one thread going idle never silences another's.
// A thread terminated while it waits leaves its 1 behind: startup then notifies after every replay
// (a wasted notify each time, never a missed wake-up).

import { Errors } from '../errors.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { type WalRcvData, WI_REPLAY_SEQ, WI_REPLAY_WAITING } from './walrcvdata.js';

interface ReplayWaiter {
  lsn: Lsn;
  resolve: (lsn: Lsn) => void;
  reject: (e: Error) => void;
  /** performance.now() past which it is rejected (Infinity: never). */
  deadline: number;
  timeoutMs: number;
}

export class ReplayWaiters {
  private list: ReplayWaiter[] = [];
  /**
   * One timer for every waiter's timeout, armed for the earliest deadline (a timer per call costs
   * allocation and timer-list work on every read-your-writes wait).
   */
  private waitTimer: NodeJS.Timeout | null = null;
  private waitTimerAt = Infinity;
  private armed = false;
  /** This object's 1 is in REPLAY_WAITING. */
  private counted = false;

  constructor(private readonly walrcv: WalRcvData) {}

  /** Resolve (with the replay position) once replay has passed `lsn`; reject after timeoutMs (Infinity: never). */
  wait(lsn: Lsn, timeoutMs: number): Promise<Lsn> {
    return new Promise<Lsn>((resolve, reject) => {
      const deadline = Number.isFinite(timeoutMs) ? performance.now() + timeoutMs : Infinity;
      this.list.push({ lsn, resolve, reject, deadline, timeoutMs });
      if (deadline < this.waitTimerAt) this.armWaitTimer(deadline);
      this.arm();
    });
  }

  private armWaitTimer(at: number): void {
    if (this.waitTimer !== null) clearTimeout(this.waitTimer);
    this.waitTimer = null;
    this.waitTimerAt = at;
    if (at === Infinity) return;
    this.waitTimer = setTimeout(() => this.expire(), Math.max(0, at - performance.now()));
    this.waitTimer.unref?.();
  }

  /** The wait timer fired: reject every waiter past its deadline; re-arm for the earliest left. */
  private expire(): void {
    this.waitTimer = null;
    this.waitTimerAt = Infinity;
    const now = performance.now();
    const expired: ReplayWaiter[] = [];
    let next = Infinity;
    let n = 0;
    for (const w of this.list) {
      if (w.deadline <= now) expired.push(w);
      else {
        this.list[n++] = w;
        if (w.deadline < next) next = w.deadline;
      }
    }
    this.list.length = n;
    this.armWaitTimer(next);
    const replay = lsnToString(this.walrcv.replay);
    for (const w of expired) w.reject(Errors.waitTimeout(lsnToString(w.lsn), w.timeoutMs, replay));
  }

  /** Reject every waiter (replay stopped for good). */
  rejectAll(e: Error): void {
    const ws = this.list;
    this.list = [];
    this.armWaitTimer(Infinity);
    if (!this.armed) this.uncount();
    for (const w of ws) w.reject(e);
  }

  private uncount(): void {
    if (!this.counted) return;
    this.counted = false;
    Atomics.sub(this.walrcv.i32, WI_REPLAY_WAITING, 1); // startup stops notifying once no one counts
  }

  /** One Atomics.waitAsync on REPLAY_SEQ while anyone waits; the startup worker bumps and notifies it. */
  private arm(): void {
    if (this.armed) return;
    const i32 = this.walrcv.i32;
    if (this.list.length === 0) {
      this.uncount();
      return;
    }
    if (!this.counted) {
      this.counted = true;
      Atomics.add(i32, WI_REPLAY_WAITING, 1); // (before REPLAY_SEQ is read: see publishReplay)
    }
    const seq = Atomics.load(i32, WI_REPLAY_SEQ);
    if (this.drain()) {
      this.arm();
      return;
    }
    const r = Atomics.waitAsync(i32, WI_REPLAY_SEQ, seq);
    if (!r.async) {
      queueMicrotask(() => {
        this.drain();
        this.arm();
      });
      return;
    }
    this.armed = true;
    void r.value.then(() => {
      this.armed = false;
      this.drain();
      this.arm();
    });
  }

  /** Resolve waiters whose LSN is replayed; true if any was. */
  private drain(): boolean {
    const replay = this.walrcv.replay;
    const ws = this.list;
    let n = 0;
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i]!;
      if (w.lsn <= replay) w.resolve(replay);
      else ws[n++] = w;
    }
    const any = n < ws.length;
    ws.length = n;
    if (n === 0 && this.waitTimer !== null) this.armWaitTimer(Infinity);
    return any;
  }
}
