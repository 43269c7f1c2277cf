// SyncWaiter: the waiting side of synchronous replication (PostgreSQL's SyncRepWaitForLSN) on one
// thread — the primary's thread that runs transactions. A commit that must wait queues itself in
// the shared SyncRepQueue (src/replication/syncrep-queue.ts) and sleeps on this thread's latch
// word there; walsenders release it after their standby's reply and set the latch. Owns its
// pending waits, one Atomics.waitAsync, its timeout timers and a keep-alive timer while anything
// is pending. Stops: close() (or cancelAll() at shutdown) resolves every pending wait as
// cancelled, clears its timers and unregisters its latch.
// Imports: syncrep-queue.ts re-exports this module for its callers, so this module reads nothing
// of syncrep-queue.ts at load time (WaiterState only inside functions): the two form an import
// cycle that is safe in either load order.

import { assert } from '../util/assert.js';
import { Errors } from '../errors.js';
import type { Lsn } from '../wal/lsn.js';
import type { SyncWaitMode } from './syncrep.js';
import { type SyncRepQueue, WaiterState } from './syncrep-queue.js';

export type SyncWaitPolicy = 'block' | 'degrade' | 'fail';
export const SYNC_WAIT_POLICIES: readonly SyncWaitPolicy[] = ['block', 'degrade', 'fail'];

/**
 * confirmed    the synchronous standbys confirmed the commit at the requested level
 * notRequired  no synchronous standby is configured (synchronous_standby_names is empty)
 * timeout      fail policy: syncTimeoutMs passed without confirmation
 * degraded     degrade policy: the wait (or an earlier one) timed out; commits are local for now
 * cancelled    the wait was abandoned (shutdown)
 * The last three are "committed locally but not confirmed"; none is a rollback.
 */
export type SyncWaitOutcome = 'confirmed' | 'notRequired' | 'timeout' | 'degraded' | 'cancelled';
export const SYNC_WAIT_OUTCOMES: readonly SyncWaitOutcome[] = ['confirmed', 'notRequired', 'timeout', 'degraded', 'cancelled'];

export interface SyncWaitResult {
  outcome: SyncWaitOutcome;
  /** True for confirmed and notRequired. */
  confirmed: boolean;
  lsn: Lsn;
  mode: SyncWaitMode;
  waitedMs: number;
}

export type SyncWaitEvent =
  | { type: 'syncWaitSlow'; lsn: Lsn; mode: SyncWaitMode; waitedMs: number }
  | { type: 'syncWaitTimeout'; lsn: Lsn; mode: SyncWaitMode; waitedMs: number }
  | { type: 'syncDegraded'; lsn: Lsn; mode: SyncWaitMode; waitedMs: number }
  | { type: 'syncRestored'; mode: SyncWaitMode }
  | { type: 'syncWaitCancelled'; lsn: Lsn; mode: SyncWaitMode; reason: string };

export interface SyncWaiterOptions {
  /** Bound on one wait in ms; null = unbounded (PostgreSQL). */
  syncTimeoutMs?: number | null;
  policy?: SyncWaitPolicy;
  onEvent?: (e: SyncWaitEvent) => void;
}

interface Pending {
  lsn: Lsn;
  mode: SyncWaitMode;
  startedMs: number;
  resolve: (r: SyncWaitResult) => void;
  timer: NodeJS.Timeout | null;
  slowReported: boolean;
}

/** The outcome a finished waiter slot's state stands for (read at call time: see the header on imports). */
function stateOutcome(state: number): SyncWaitOutcome | undefined {
  switch (state) {
    case WaiterState.CONFIRMED:
      return 'confirmed';
    case WaiterState.NOT_REQUIRED:
      return 'notRequired';
    case WaiterState.DEGRADED:
      return 'degraded';
    default:
      return undefined;
  }
}

/**
 * The waiting side on one thread (the one that runs transactions): queues waits in the shared
 * queue and resolves them when a releaser sets this thread's latch. One Atomics.waitAsync is armed
 * while anything is pending; a ref'd timer keeps the event loop alive meanwhile (waitAsync alone
 * does not) and is cleared as soon as nothing is pending.
 */
export class SyncWaiter {
  readonly owner: number;
  private readonly pending = new Map<number, Pending>();
  private overflow: Pending[] = [];
  private armed = false;
  private seen: number;
  private keepAlive: NodeJS.Timeout | null = null;
  private closed = false;
  private wasDegraded = false;
  private readonly latchAt: number;
  readonly syncTimeoutMs: number | null;
  readonly policy: SyncWaitPolicy;
  private readonly onEvent: (e: SyncWaitEvent) => void;
  /** Outcomes so far, plus `slow` (block policy waits that passed syncTimeoutMs). */
  readonly counts: Record<SyncWaitOutcome | 'slow', number> = { confirmed: 0, notRequired: 0, timeout: 0, degraded: 0, cancelled: 0, slow: 0 };

  constructor(readonly queue: SyncRepQueue, opts: SyncWaiterOptions = {}) {
    const t = opts.syncTimeoutMs ?? null;
    if (t !== null && (!Number.isInteger(t) || t < 0 || t > 86_400_000)) throw Errors.invalidOption('syncTimeoutMs', 'must be null or an integer from 0 to 86400000');
    const policy = opts.policy ?? 'block';
    if (!SYNC_WAIT_POLICIES.includes(policy)) throw Errors.invalidOption('syncTimeoutPolicy', `must be one of ${SYNC_WAIT_POLICIES.join(', ')}`);
    this.syncTimeoutMs = t;
    this.policy = policy;
    this.onEvent = opts.onEvent ?? (() => {});
    this.owner = queue.registerOwner();
    this.latchAt = queue.latchIndex(this.owner);
    this.seen = Atomics.load(queue.i32, this.latchAt);
  }

  /** Waits in progress on this thread. */
  get waiting(): number {
    return this.pending.size + this.overflow.length;
  }

  /** Wait until the synchronous standbys confirm `lsn` at `mode` (or the wait ends otherwise). */
  wait(lsn: Lsn, mode: SyncWaitMode): Promise<SyncWaitResult> {
    if (this.closed) return Promise.resolve(this.result('cancelled', lsn, mode, performance.now()));
    this.noticeRestored(mode);
    const startedMs = performance.now();
    return new Promise<SyncWaitResult>((resolve) => {
      const p: Pending = { lsn, mode, startedMs, resolve, timer: null, slowReported: false };
      if (!this.tryQueue(p)) {
        this.overflow.push(p);
        this.queue.addOverflow(1);
        this.armTimer(p, -1);
        this.arm();
      }
    });
  }

  /** Queue `p` or finish it at once. False when the shared queue is full. */
  private tryQueue(p: Pending): boolean {
    const r = this.queue.enqueue(p.lsn, p.mode, this.owner);
    if ('full' in r) return false;
    if ('state' in r) {
      if (r.state === WaiterState.DEGRADED) this.noteDegraded();
      this.finish(p, stateOutcome(r.state)!);
      return true;
    }
    this.pending.set(r.slot, p);
    if (p.timer === null) this.armTimer(p, r.slot);
    this.arm();
    return true;
  }

  private armTimer(p: Pending, slot: number): void {
    const t = this.syncTimeoutMs;
    if (t === null) return;
    const left = Math.max(0, t - (performance.now() - p.startedMs));
    p.timer = setTimeout(() => this.onTimeout(p, slot), left);
  }

  private onTimeout(p: Pending, slot: number): void {
    p.timer = null;
    const waitedMs = performance.now() - p.startedMs;
    if (this.policy === 'block') {
      if (!p.slowReported) {
        p.slowReported = true;
        this.counts.slow++;
        this.onEvent({ type: 'syncWaitSlow', lsn: p.lsn, mode: p.mode, waitedMs });
      }
      return;
    }
    // Take the wait out of the queue (or the overflow list); a release that won the race counts.
    let state: number = WaiterState.WAITING;
    const current = this.slotOf(p, slot);
    if (current >= 0) {
      this.pending.delete(current);
      state = this.queue.collect([current])[0]!;
    } else {
      const i = this.overflow.indexOf(p);
      if (i < 0) return; // already finished
      this.overflow.splice(i, 1);
      this.queue.addOverflow(-1);
    }
    if (state !== WaiterState.WAITING) {
      if (state === WaiterState.DEGRADED) this.noteDegraded();
      this.finish(p, stateOutcome(state)!);
      return;
    }
    if (this.policy === 'fail') {
      this.onEvent({ type: 'syncWaitTimeout', lsn: p.lsn, mode: p.mode, waitedMs });
      this.finish(p, 'timeout');
      return;
    }
    // degrade: release everybody (they collect DEGRADED via their latch), report once.
    const first = this.queue.degrade(p.lsn, p.mode);
    this.wasDegraded = true;
    if (first) this.onEvent({ type: 'syncDegraded', lsn: p.lsn, mode: p.mode, waitedMs });
    this.finish(p, 'degraded');
    this.drainOverflowAsDegraded();
  }

  private slotOf(p: Pending, hint: number): number {
    if (hint >= 0 && this.pending.get(hint) === p) return hint;
    for (const [s, q] of this.pending) if (q === p) return s;
    return -1;
  }

  private drainOverflowAsDegraded(): void {
    if (this.overflow.length === 0) return;
    const all = this.overflow;
    this.overflow = [];
    this.queue.addOverflow(-all.length);
    for (const p of all) this.finish(p, 'degraded');
  }

  private noteDegraded(): void {
    this.wasDegraded = true;
  }

  private noticeRestored(mode: SyncWaitMode): void {
    if (this.wasDegraded && !this.queue.degraded) {
      this.wasDegraded = false;
      this.onEvent({ type: 'syncRestored', mode });
    }
  }

  private result(outcome: SyncWaitOutcome, lsn: Lsn, mode: SyncWaitMode, startedMs: number): SyncWaitResult {
    return { outcome, confirmed: outcome === 'confirmed' || outcome === 'notRequired', lsn, mode, waitedMs: performance.now() - startedMs };
  }

  private finish(p: Pending, outcome: SyncWaitOutcome): void {
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    this.counts[outcome]++;
    p.resolve(this.result(outcome, p.lsn, p.mode, p.startedMs));
    this.updateKeepAlive();
  }

  private updateKeepAlive(): void {
    const busy = this.waiting > 0;
    if (busy && this.keepAlive === null) this.keepAlive = setInterval(() => {}, 1 << 30);
    else if (!busy && this.keepAlive !== null) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }

  /** Arm one Atomics.waitAsync on this thread's latch word (nothing if idle or already armed). */
  private arm(): void {
    this.updateKeepAlive();
    if (this.armed || this.waiting === 0) return;
    const i32 = this.queue.i32;
    const cur = Atomics.load(i32, this.latchAt);
    if (cur !== this.seen) {
      this.armed = true;
      queueMicrotask(() => {
        this.armed = false;
        this.process();
      });
      return;
    }
    const r = Atomics.waitAsync(i32, this.latchAt, cur);
    this.armed = true;
    const then = () => {
      this.armed = false;
      this.process();
    };
    if (r.async) void r.value.then(then);
    else queueMicrotask(then);
  }

  /** Collect every finished wait of this thread, retry parked ones, re-arm. */
  private process(): void {
    this.seen = Atomics.load(this.queue.i32, this.latchAt);
    const done: number[] = [];
    for (const s of this.pending.keys()) if (this.queue.stateOf(s) !== WaiterState.WAITING) done.push(s);
    if (done.length > 0) {
      const states = this.queue.collect(done);
      for (let i = 0; i < done.length; i++) {
        const p = this.pending.get(done[i]!)!;
        this.pending.delete(done[i]!);
        const st = states[i]!;
        if (st === WaiterState.DEGRADED) this.noteDegraded();
        if (st === WaiterState.WAITING) {
          // cannot happen: only this thread collects, and it saw a final state
          assert(false, 'sync waiter went back to WAITING');
        }
        this.finish(p, stateOutcome(st)!);
      }
    }
    if (this.overflow.length > 0) {
      const parked = this.overflow;
      this.overflow = [];
      let requeued = 0;
      for (const p of parked) {
        if (this.tryQueue(p)) requeued++;
        else this.overflow.push(p);
      }
      if (requeued > 0) this.queue.addOverflow(-requeued);
    }
    this.arm();
  }

  /** Abandon every wait of this thread (shutdown): outcome `cancelled` unless already released. */
  cancelAll(reason: string): void {
    const slots = [...this.pending.keys()];
    const states = slots.length > 0 ? this.queue.collect(slots) : [];
    for (let i = 0; i < slots.length; i++) {
      const p = this.pending.get(slots[i]!)!;
      this.pending.delete(slots[i]!);
      const st = states[i]!;
      if (st === WaiterState.WAITING) {
        this.onEvent({ type: 'syncWaitCancelled', lsn: p.lsn, mode: p.mode, reason });
        this.finish(p, 'cancelled');
      } else this.finish(p, stateOutcome(st)!);
    }
    const parked = this.overflow;
    this.overflow = [];
    if (parked.length > 0) this.queue.addOverflow(-parked.length);
    for (const p of parked) {
      this.onEvent({ type: 'syncWaitCancelled', lsn: p.lsn, mode: p.mode, reason });
      this.finish(p, 'cancelled');
    }
    this.updateKeepAlive();
  }

  /** Cancel what is pending and give the latch back. */
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.cancelAll(reason);
    this.closed = true;
    this.queue.unregisterOwner(this.owner);
  }
}

/** The error a caller raises for a wait that ended without confirmation (never a rollback). */
export function syncNotConfirmedError(r: SyncWaitResult, lsnText: string): import('../errors.js').WalstreamError {
  const why =
    r.outcome === 'timeout' ? `no confirmation within syncTimeoutMs (${Math.round(r.waitedMs)} ms)`
    : r.outcome === 'degraded' ? 'synchronous replication is degraded to local commits'
    : r.outcome === 'cancelled' ? 'the server is shutting down'
    : r.outcome;
  return Errors.syncNotConfirmed(why, lsnText);
}
