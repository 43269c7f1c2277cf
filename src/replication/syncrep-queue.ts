// SyncRepQueue: commits waiting for synchronous standbys, queued by LSN per wait mode in one
// SharedArrayBuffer (PostgreSQL's SyncRepQueue[mode] + WalSndCtl->lsn[mode] +
// sync_standbys_defined). Created by the primary's thread, mapped by every thread that waits
// (SyncWaiter: the thread that runs transactions) or releases (walsender workers after a standby
// reply: releaseWaiters(); the primary's thread after a config change). Nothing to stop: it is
// words in shared memory; a SyncWaiter clears its own timers and unregisters in close().
//
// DEV DOCS — layout. Byte offsets are the named `SQ_*` (header) and `W_*` (one waiter slot)
// constants. A spinlock (SQ_LOCK, futex-style) guards every word except the per-thread latches;
// critical sections are short: list splicing and a walk over the released prefix of one queue.
//   header    SQ_* words, then SQ_RELEASED_LSN[4] (Int64, monotonic: the synced position each
//             mode has been released up to), then one latch word per registered waiting thread
//             (maxWaitingThreads of them, bit i of SQ_OWNERS_USED).
//   config    the synchronous_standby_names text (maxConfigBytes), generation-counted so each
//             thread re-parses it only when it changed.
//   waiters   maxSyncWaiters slots of WAITER_BYTES: LSN, state, mode, owner, next, prev. A slot is
//             either on the free list or on its mode's queue, which is kept sorted by LSN (inserted
//             walking back from the tail: commits arrive nearly in order) — or released and not
//             yet collected by its owner.
// Protocol: a releaser marks waiters CONFIRMED (or NOT_REQUIRED / DEGRADED) and unlinks them under
// the lock, then bumps and notifies the latch of each owner it released something for. The owner
// reads its latch word, scans its own pending slots (Atomics.load of the state), frees the finished
// ones and waits again with Atomics.waitAsync on the latch word it read — a release between the
// read and the wait changes the word, so no wake-up is lost and nothing polls. Only the owner
// frees a slot, so a slot index identifies one wait until its owner collects it.
//
// Bounded waits (walstream; PostgreSQL waits forever): SyncWaiter's (syncrep-waiter.ts) syncTimeoutMs with policy
//   block    keep waiting; emit `syncWaitSlow` once when the timeout passes (PostgreSQL's behaviour);
//   fail     stop waiting: outcome `timeout` (the caller reports WS_SYNC_NOT_CONFIRMED);
//   degrade  stop waiting and switch to local commits: every queued waiter is released with
//            outcome `degraded` and later commits do not wait, until the degraded mode's released
//            position reaches the LSN that timed out (a synchronous standby caught up again).
// Every outcome other than `confirmed`/`notRequired` means "committed locally, not confirmed by
// the synchronous standbys" — never a rollback. Each is counted and emitted as an event.

import { assert } from '../util/assert.js';
import { SpinLock } from '../storage/latch.js';
import { Errors } from '../errors.js';
import type { Lsn } from '../wal/lsn.js';
import {
  isChosenSyncStandby, parseSynchronousStandbyNames, positionFor, SYNC_WAIT_MODES, syncedPositions,
  type SyncedPositions, type SyncRepConfig, type SyncSenderState, type SyncWaitMode,
} from './syncrep.js';

export const NUM_SYNC_WAIT_MODES = 4;
export const SYNC_WAIT_MODE_INDEX: Record<SyncWaitMode, number> = { remote_receive: 0, remote_write: 1, remote_flush: 2, remote_apply: 3 };

// ---- header (byte offsets) ----
export const SQ_LOCK = 0; // Int32 spinlock
export const SQ_FREE_HEAD = 4; // Int32 first free waiter slot, -1 = none
export const SQ_QUEUED = 8; // Int32 waiters on the queues (all modes)
export const SQ_STANDBYS_DEFINED = 12; // Int32 1 while synchronous_standby_names is non-empty
export const SQ_CONFIG_GEN = 16; // Int32 bumped by every setConfig
export const SQ_CONFIG_LEN = 20; // Int32 bytes of config text
export const SQ_DEGRADED = 24; // Int32 1 while the degrade policy has switched to local commits
export const SQ_DEGRADED_MODE = 28; // Int32 mode index whose position ends the degradation
export const SQ_OWNERS_USED = 32; // Int32 bitmask of registered waiting threads
export const SQ_OVERFLOW = 36; // Int32 waits parked outside the queue because it was full
export const SQ_HEAD = 40; // Int32[4] first waiter of each mode's queue, -1 = empty
export const SQ_TAIL = 56; // Int32[4] last waiter of each mode's queue
export const SQ_RELEASED_LSN = 72; // Int64[4] released-up-to position per mode
export const SQ_DEGRADED_AT = 104; // Int64 LSN whose wait timed out under the degrade policy
export const SQ_LATCHES = 112; // Int32[maxWaitingThreads] one latch word per waiting thread
export const MAX_WAITING_THREADS = 32; // bits in SQ_OWNERS_USED
export const SQ_HEADER_BYTES = SQ_LATCHES + 4 * MAX_WAITING_THREADS;

// ---- one waiter slot (byte offsets) ----
export const W_LSN = 0; // Int64 commit end LSN waited for
export const W_STATE = 8; // Int32 WaiterState
export const W_MODE = 12; // Int32 mode index
export const W_OWNER = 16; // Int32 owner (waiting thread) index
export const W_NEXT = 20; // Int32 next slot in the queue or free list, -1 = none
export const W_PREV = 24; // Int32 previous slot in the queue, -1 = none
export const WAITER_BYTES = 32;

export const WaiterState = {
  FREE: 0,
  WAITING: 1,
  CONFIRMED: 2,
  NOT_REQUIRED: 3,
  DEGRADED: 4,
} as const;

export interface SyncRepQueueHandle {
  sab: SharedArrayBuffer;
  maxSyncWaiters: number;
  maxConfigBytes: number;
}

export interface SyncRepQueueOptions {
  /** Commits that can wait at once in shared memory (more wait in a local overflow list). */
  maxSyncWaiters?: number;
  /** Bytes reserved for the synchronous_standby_names text. */
  maxConfigBytes?: number;
}

const utf8d = new TextDecoder();

export class SyncRepQueue {
  readonly maxSyncWaiters: number;
  readonly maxConfigBytes: number;
  readonly i32: Int32Array;
  private readonly big: BigInt64Array;
  private readonly u8: Uint8Array;
  private readonly lock: SpinLock;
  private readonly configAt: number;
  private readonly waitersAt: number;
  private cachedGen = -1;
  private cachedConfig: SyncRepConfig | null = null;
  private cachedText = '';

  constructor(readonly handle: SyncRepQueueHandle) {
    this.maxSyncWaiters = handle.maxSyncWaiters;
    this.maxConfigBytes = handle.maxConfigBytes;
    this.configAt = SQ_HEADER_BYTES;
    this.waitersAt = Math.ceil((SQ_HEADER_BYTES + handle.maxConfigBytes) / 8) * 8;
    assert(handle.sab.byteLength >= SyncRepQueue.bytesFor(handle.maxSyncWaiters, handle.maxConfigBytes), 'SyncRepQueue buffer too small');
    this.i32 = new Int32Array(handle.sab);
    this.big = new BigInt64Array(handle.sab);
    this.u8 = new Uint8Array(handle.sab);
    this.lock = new SpinLock(this.i32, SQ_LOCK / 4);
  }

  static bytesFor(maxSyncWaiters: number, maxConfigBytes: number): number {
    return Math.ceil((SQ_HEADER_BYTES + maxConfigBytes) / 8) * 8 + maxSyncWaiters * WAITER_BYTES;
  }

  static create(opts: SyncRepQueueOptions = {}): SyncRepQueue {
    const maxSyncWaiters = opts.maxSyncWaiters ?? 4096;
    const maxConfigBytes = opts.maxConfigBytes ?? 4096;
    if (!Number.isInteger(maxSyncWaiters) || maxSyncWaiters < 1 || maxSyncWaiters > 1 << 20) throw Errors.invalidOption('maxSyncWaiters', `must be an integer from 1 to ${1 << 20}`);
    if (!Number.isInteger(maxConfigBytes) || maxConfigBytes < 64 || maxConfigBytes > 1 << 20) throw Errors.invalidOption('maxConfigBytes', `must be an integer from 64 to ${1 << 20}`);
    const q = new SyncRepQueue({ sab: new SharedArrayBuffer(SyncRepQueue.bytesFor(maxSyncWaiters, maxConfigBytes)), maxSyncWaiters, maxConfigBytes });
    q.init();
    return q;
  }

  private init(): void {
    const i = this.i32;
    for (let m = 0; m < NUM_SYNC_WAIT_MODES; m++) {
      i[(SQ_HEAD >> 2) + m] = -1;
      i[(SQ_TAIL >> 2) + m] = -1;
    }
    for (let s = 0; s < this.maxSyncWaiters; s++) this.setw(s, W_NEXT, s + 1 < this.maxSyncWaiters ? s + 1 : -1);
    i[SQ_FREE_HEAD >> 2] = 0;
  }

  // ---- raw access (callers hold the lock unless noted) ----
  private w(s: number, off: number): number {
    return (this.waitersAt + s * WAITER_BYTES + off) >> 2;
  }
  private getw(s: number, off: number): number {
    return this.i32[this.w(s, off)]!;
  }
  private setw(s: number, off: number, v: number): void {
    this.i32[this.w(s, off)] = v;
  }
  private wlsn(s: number): Lsn {
    return Number(this.big[(this.waitersAt + s * WAITER_BYTES + W_LSN) >> 3]!);
  }
  private hdr(off: number): number {
    return this.i32[off >> 2]!;
  }
  private setHdr(off: number, v: number): void {
    this.i32[off >> 2] = v;
  }
  private released(mode: number): Lsn {
    return Number(this.big[(SQ_RELEASED_LSN >> 3) + mode]!);
  }

  private locked<T>(fn: () => T): T {
    this.lock.lock();
    try {
      return fn();
    } finally {
      this.lock.unlock();
    }
  }

  /** Waiter state word, read without the lock (the owner's scan). */
  stateOf(slot: number): number {
    return Atomics.load(this.i32, this.w(slot, W_STATE));
  }

  // ---- configuration ----

  /**
   * Set synchronous_standby_names (validated first: a bad value throws PostgreSQL's error and
   * changes nothing). Clearing it releases every waiter (PostgreSQL: sync_standbys_defined off).
   */
  setConfig(text: string): SyncRepConfig | null {
    const config = parseSynchronousStandbyNames(text);
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > this.maxConfigBytes) throw Errors.invalidOption('synchronousStandbyNames', `longer than maxConfigBytes (${this.maxConfigBytes})`);
    const owners = this.locked(() => {
      this.u8.set(bytes, this.configAt);
      this.setHdr(SQ_CONFIG_LEN, bytes.length);
      this.setHdr(SQ_CONFIG_GEN, (this.hdr(SQ_CONFIG_GEN) + 1) | 0);
      this.setHdr(SQ_STANDBYS_DEFINED, config === null ? 0 : 1);
      if (config !== null) return 0;
      this.setHdr(SQ_DEGRADED, 0);
      return this.releaseAllLocked(WaiterState.NOT_REQUIRED);
    });
    this.wake(owners);
    return config;
  }

  /** The current configuration (re-parsed only when its generation changed). */
  config(): SyncRepConfig | null {
    const gen = Atomics.load(this.i32, SQ_CONFIG_GEN >> 2);
    if (gen === this.cachedGen) return this.cachedConfig;
    const { text, g } = this.locked(() => ({
      text: utf8d.decode(this.u8.slice(this.configAt, this.configAt + this.hdr(SQ_CONFIG_LEN))),
      g: this.hdr(SQ_CONFIG_GEN),
    }));
    this.cachedText = text;
    this.cachedConfig = parseSynchronousStandbyNames(text); // validated when set
    this.cachedGen = g;
    return this.cachedConfig;
  }

  configText(): string {
    this.config();
    return this.cachedText;
  }

  get standbysDefined(): boolean {
    return Atomics.load(this.i32, SQ_STANDBYS_DEFINED >> 2) !== 0;
  }

  get degraded(): boolean {
    return Atomics.load(this.i32, SQ_DEGRADED >> 2) !== 0;
  }

  /** Waiters currently on the queues. */
  get queued(): number {
    return Atomics.load(this.i32, SQ_QUEUED >> 2);
  }

  /** Free waiter slots (diagnostics and tests: equals maxSyncWaiters when nothing waits). */
  freeSlots(): number {
    return this.locked(() => {
      let n = 0;
      for (let s = this.hdr(SQ_FREE_HEAD); s !== -1; s = this.getw(s, W_NEXT)) n++;
      return n;
    });
  }

  /** The position each mode has been released up to. */
  releasedPositions(): Record<SyncWaitMode, Lsn> {
    return this.locked(() => {
      const out = {} as Record<SyncWaitMode, Lsn>;
      for (const m of SYNC_WAIT_MODES) out[m] = this.released(SYNC_WAIT_MODE_INDEX[m]);
      return out;
    });
  }

  // ---- releasing side (walsender workers, primary) ----

  /**
   * SyncRepReleaseWaiters: compute the synced positions over `senders` (a WalSndCtl snapshot) and
   * release every waiter they cover. With `mySlot`, nothing happens unless that walsender is one
   * of the synchronous standbys (as in PostgreSQL). Returns how many waiters were released.
   */
  releaseWaiters(senders: readonly SyncSenderState[], mySlot?: number): number {
    if (!this.standbysDefined) return 0;
    const p = syncedPositions(this.config(), senders, mySlot);
    return p === null ? 0 : this.releaseUpTo(p);
  }

  /** Whether walsender `slot` is one of the synchronous standbys over `senders` (a WalSndCtl snapshot). */
  isSyncStandby(senders: readonly SyncSenderState[], slot: number): boolean {
    return isChosenSyncStandby(this.config(), senders, slot);
  }

  /** Advance the released positions (never backwards) and release the waiters they cover. */
  releaseUpTo(p: SyncedPositions): number {
    let n = 0;
    const owners = this.locked(() => {
      let mask = 0;
      for (const mode of SYNC_WAIT_MODES) {
        const m = SYNC_WAIT_MODE_INDEX[mode];
        const pos = positionFor(mode, p);
        if (pos <= this.released(m)) continue;
        this.big[(SQ_RELEASED_LSN >> 3) + m] = BigInt(pos);
        let s = this.hdr(SQ_HEAD + 4 * m);
        while (s !== -1 && this.wlsn(s) <= pos) {
          const next = this.getw(s, W_NEXT);
          this.unlinkLocked(s, m);
          Atomics.store(this.i32, this.w(s, W_STATE), WaiterState.CONFIRMED);
          mask |= 1 << this.getw(s, W_OWNER);
          n++;
          s = next;
        }
      }
      if (this.hdr(SQ_DEGRADED) !== 0) {
        const dm = this.hdr(SQ_DEGRADED_MODE);
        if (this.released(dm) >= Number(this.big[SQ_DEGRADED_AT >> 3]!)) this.setHdr(SQ_DEGRADED, 0);
      }
      if (this.hdr(SQ_OVERFLOW) > 0) mask |= this.hdr(SQ_OWNERS_USED);
      return mask;
    });
    this.wake(owners);
    return n;
  }

  /** Release every queued waiter with `state` (config cleared, degradation). Lock held. Returns owner mask. */
  private releaseAllLocked(state: number): number {
    let mask = 0;
    for (let m = 0; m < NUM_SYNC_WAIT_MODES; m++) {
      let s = this.hdr(SQ_HEAD + 4 * m);
      while (s !== -1) {
        const next = this.getw(s, W_NEXT);
        this.unlinkLocked(s, m);
        Atomics.store(this.i32, this.w(s, W_STATE), state);
        mask |= 1 << this.getw(s, W_OWNER);
        s = next;
      }
    }
    if (this.hdr(SQ_OVERFLOW) > 0) mask |= this.hdr(SQ_OWNERS_USED);
    return mask;
  }

  private unlinkLocked(s: number, m: number): void {
    const prev = this.getw(s, W_PREV);
    const next = this.getw(s, W_NEXT);
    if (prev === -1) this.setHdr(SQ_HEAD + 4 * m, next);
    else this.setw(prev, W_NEXT, next);
    if (next === -1) this.setHdr(SQ_TAIL + 4 * m, prev);
    else this.setw(next, W_PREV, prev);
    this.setw(s, W_NEXT, -1);
    this.setw(s, W_PREV, -1);
    this.setHdr(SQ_QUEUED, this.hdr(SQ_QUEUED) - 1);
  }

  private wake(mask: number): void {
    for (let o = 0; mask !== 0; o++, mask >>>= 1) {
      if ((mask & 1) === 0) continue;
      const at = (SQ_LATCHES >> 2) + o;
      Atomics.add(this.i32, at, 1);
      Atomics.notify(this.i32, at);
    }
  }

  // ---- waiting side (used by SyncWaiter) ----

  /** @internal Claim a waiting-thread index (its latch word). */
  registerOwner(): number {
    for (;;) {
      const used = Atomics.load(this.i32, SQ_OWNERS_USED >> 2);
      let o = 0;
      while (o < MAX_WAITING_THREADS && (used & (1 << o)) !== 0) o++;
      if (o === MAX_WAITING_THREADS) throw Errors.configurationLimitExceeded(`more than ${MAX_WAITING_THREADS} threads wait for synchronous replication`);
      if (Atomics.compareExchange(this.i32, SQ_OWNERS_USED >> 2, used, used | (1 << o)) === used) return o;
    }
  }

  /** @internal */
  unregisterOwner(o: number): void {
    Atomics.and(this.i32, SQ_OWNERS_USED >> 2, ~(1 << o));
  }

  /** @internal Index of an owner's latch word in i32. */
  latchIndex(o: number): number {
    return (SQ_LATCHES >> 2) + o;
  }

  /**
   * @internal Queue a wait (SyncRepQueueInsert). Returns a slot index, or a final state when no
   * wait is needed (NOT_REQUIRED, CONFIRMED, DEGRADED), or -1 when the queue is full.
   */
  enqueue(lsn: Lsn, mode: SyncWaitMode, owner: number): { slot: number } | { state: number } | { full: true } {
    const m = SYNC_WAIT_MODE_INDEX[mode];
    return this.locked(() => {
      if (this.hdr(SQ_STANDBYS_DEFINED) === 0) return { state: WaiterState.NOT_REQUIRED };
      if (lsn <= this.released(m)) return { state: WaiterState.CONFIRMED };
      if (this.hdr(SQ_DEGRADED) !== 0) {
        const dm = this.hdr(SQ_DEGRADED_MODE);
        if (this.released(dm) >= Number(this.big[SQ_DEGRADED_AT >> 3]!)) this.setHdr(SQ_DEGRADED, 0);
        else return { state: WaiterState.DEGRADED };
      }
      const s = this.hdr(SQ_FREE_HEAD);
      if (s === -1) return { full: true as const };
      this.setHdr(SQ_FREE_HEAD, this.getw(s, W_NEXT));
      this.big[(this.waitersAt + s * WAITER_BYTES + W_LSN) >> 3] = BigInt(lsn);
      this.setw(s, W_MODE, m);
      this.setw(s, W_OWNER, owner);
      Atomics.store(this.i32, this.w(s, W_STATE), WaiterState.WAITING);
      // Walk back from the tail to the last waiter with a smaller or equal LSN.
      let after = this.hdr(SQ_TAIL + 4 * m);
      while (after !== -1 && this.wlsn(after) > lsn) after = this.getw(after, W_PREV);
      const next = after === -1 ? this.hdr(SQ_HEAD + 4 * m) : this.getw(after, W_NEXT);
      this.setw(s, W_PREV, after);
      this.setw(s, W_NEXT, next);
      if (after === -1) this.setHdr(SQ_HEAD + 4 * m, s);
      else this.setw(after, W_NEXT, s);
      if (next === -1) this.setHdr(SQ_TAIL + 4 * m, s);
      else this.setw(next, W_PREV, s);
      this.setHdr(SQ_QUEUED, this.hdr(SQ_QUEUED) + 1);
      return { slot: s };
    });
  }

  /**
   * @internal Give slots back (their owner collects finished waits, or cancels waiting ones).
   * Returns each slot's state at that moment (a cancel that lost the race to a release reports
   * the release).
   */
  collect(slots: readonly number[]): number[] {
    return this.locked(() =>
      slots.map((s) => {
        const st = this.getw(s, W_STATE);
        assert(st !== WaiterState.FREE, 'collecting a free sync waiter slot');
        if (st === WaiterState.WAITING) this.unlinkLocked(s, this.getw(s, W_MODE));
        this.setw(s, W_STATE, WaiterState.FREE);
        this.setw(s, W_NEXT, this.hdr(SQ_FREE_HEAD));
        this.setHdr(SQ_FREE_HEAD, s);
        return st;
      }),
    );
  }

  /**
   * @internal Switch to local commits (degrade policy): release every waiter as DEGRADED until
   * `mode`'s released position reaches `lsn`. Returns false if already degraded.
   */
  degrade(lsn: Lsn, mode: SyncWaitMode): boolean {
    let first = false;
    const owners = this.locked(() => {
      first = this.hdr(SQ_DEGRADED) === 0;
      this.setHdr(SQ_DEGRADED, 1);
      this.setHdr(SQ_DEGRADED_MODE, SYNC_WAIT_MODE_INDEX[mode]);
      const prev = Number(this.big[SQ_DEGRADED_AT >> 3]!);
      this.big[SQ_DEGRADED_AT >> 3] = BigInt(first ? lsn : Math.max(prev, lsn));
      return this.releaseAllLocked(WaiterState.DEGRADED);
    });
    this.wake(owners);
    return first;
  }

  /** @internal */
  addOverflow(n: number): void {
    Atomics.add(this.i32, SQ_OVERFLOW >> 2, n);
  }
}

export {
  SyncWaiter, syncNotConfirmedError, SYNC_WAIT_POLICIES, SYNC_WAIT_OUTCOMES,
  type SyncWaitPolicy, type SyncWaitOutcome, type SyncWaitResult, type SyncWaitEvent, type SyncWaiterOptions,
} from './syncrep-waiter.js';
