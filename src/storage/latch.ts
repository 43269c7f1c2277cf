// Shared-memory synchronisation primitives over Int32Array words (usually inside a
// SharedArrayBuffer that several worker_threads map). Any thread may use them; nothing here owns a
// thread or a timer except Latch.waitAsync's optional keep-alive timer, which it clears itself.
// Nothing to stop: a primitive is just words in shared memory.
//
// DEV DOCS
// --------
// Every primitive is constructed over `(i32: Int32Array, index: number)` and uses the words
// `i32[index + slot]` for the slots named in its `*Slot` constant; `*_WORDS` says how many words to
// reserve. Words must start zeroed (a fresh SharedArrayBuffer is), or call `init()` once before
// sharing. Construct one object per thread over the same words (the objects hold no shared state;
// `Latch` remembers per object the last wake count it consumed).
//
//   SpinLock  short critical sections (a few hundred ns). 0 = free, 1 = held, 2 = held with
//             sleepers. lock() spins `spinLimit` times, then sleeps in Atomics.wait (futex style),
//             so a holder that gets descheduled on our shared 2-core machine does not burn a core.
//   RWLatch   writer-preferring reader/writer latch: readers share, one writer excludes all;
//             once a writer waits, new readers wait too (so a stream of readers cannot starve the
//             replay writer). Not re-entrant: a thread holding the read latch must not take it
//             again (a waiting writer would deadlock it) nor take the write latch.
//   Latch     PostgreSQL-style SetLatch/WaitLatch: set() bumps a wake counter and wakes every
//             waiter; wait(timeoutMs) returns 'set' at once if the counter moved since this object
//             last returned 'set' (a set() before wait() is never lost), else sleeps. waitAsync()
//             does the same without blocking, for threads with an event loop. NB
//             Atomics.waitAsync does NOT keep Node's event loop alive; waitAsync therefore holds a
//             timer (keepAlive, default true) until it settles.
//
// Atomics.wait on Node's main thread is allowed (it blocks the event loop: only use blocking waits
// where that is acceptable, e.g. a replay worker or a reader that holds no sockets). All waits in
// loops use a bounded sleep (`SAFETY_WAIT_MS`) as a belt-and-braces guard; correctness does not
// depend on it.

import { assert } from '../util/assert.js';

/** Longest single Atomics.wait inside lock loops, in ms (re-checks the condition afterwards). */
export const SAFETY_WAIT_MS = 100;
/** Default busy-wait iterations before sleeping. */
export const DEFAULT_SPIN_LIMIT = 100;

let missedWakeups = 0;

/**
 * RWLatch waits in this thread whose SAFETY_WAIT_MS expired although the latch had been released
 * for them without a wake-up: the sequence word they slept on had not moved, yet the latch was
 * free for them. A release bumps that word whenever it sees a sleeper, and a sleeper announces
 * itself before it re-checks, so this count is 0 unless a wake-up is lost (the tests assert it).
 */
export function rwLatchMissedWakeups(): number {
  return missedWakeups;
}

function checkSlot(i32: Int32Array, index: number, words: number, what: string): void {
  assert(i32.buffer instanceof SharedArrayBuffer, `${what}: words must live in a SharedArrayBuffer`);
  assert(Number.isInteger(index) && index >= 0 && index + words <= i32.length, `${what}: words [${index}, ${index + words}) out of range`);
}

// ---------------------------------------------------------------------------------------------
// SpinLock

export const SPINLOCK_WORDS = 1;
export const SpinLockSlot = { STATE: 0 } as const;
const SL_FREE = 0;
const SL_HELD = 1;
const SL_CONTENDED = 2;

export class SpinLock {
  private readonly at: number;
  constructor(readonly i32: Int32Array, readonly index: number, readonly spinLimit = DEFAULT_SPIN_LIMIT) {
    checkSlot(i32, index, SPINLOCK_WORDS, 'SpinLock');
    this.at = index + SpinLockSlot.STATE;
  }

  init(): void {
    Atomics.store(this.i32, this.at, SL_FREE);
  }

  tryLock(): boolean {
    return Atomics.compareExchange(this.i32, this.at, SL_FREE, SL_HELD) === SL_FREE;
  }

  lock(): void {
    const a = this.i32;
    const at = this.at;
    let c = Atomics.compareExchange(a, at, SL_FREE, SL_HELD);
    if (c === SL_FREE) return;
    for (let i = 0; i < this.spinLimit; i++) {
      if (Atomics.load(a, at) === SL_FREE) {
        c = Atomics.compareExchange(a, at, SL_FREE, SL_HELD);
        if (c === SL_FREE) return;
      }
    }
    // Drepper's futex mutex: mark contended, sleep while contended.
    if (c !== SL_CONTENDED) c = Atomics.exchange(a, at, SL_CONTENDED);
    while (c !== SL_FREE) {
      Atomics.wait(a, at, SL_CONTENDED, SAFETY_WAIT_MS);
      c = Atomics.exchange(a, at, SL_CONTENDED);
    }
  }

  unlock(): void {
    const prev = Atomics.exchange(this.i32, this.at, SL_FREE);
    assert(prev !== SL_FREE, 'SpinLock.unlock: not locked');
    if (prev === SL_CONTENDED) Atomics.notify(this.i32, this.at, 1);
  }

  isLocked(): boolean {
    return Atomics.load(this.i32, this.at) !== SL_FREE;
  }
}

// ---------------------------------------------------------------------------------------------
// RWLatch

export const RWLATCH_WORDS = 4;
export const RWLatchSlot = {
  /** reader count in bits 0..29; WRITER bit when a writer holds it */
  STATE: 0,
  /** bits 0..15: writers waiting (readers defer to them); bits 16..30: readers about to sleep or asleep */
  WRITERS_WAITING: 1,
  /** bumped to wake sleeping readers */
  READER_SEQ: 2,
  /** bumped to wake sleeping writers */
  WRITER_SEQ: 3,
} as const;
const RW_WRITER = 1 << 30;
const RW_READERS_MASK = RW_WRITER - 1;
/** WRITERS_WAITING: the writer count, and one RW_SLEEPER per reader going to sleep (so releaseWrite
 *  skips Atomics.notify, ~40 ns, when no reader can be asleep: the single-writer common case). */
const RW_WW_MASK = 0xffff;
const RW_SLEEPER = 1 << 16; // one announced sleeper

export class RWLatch {
  private readonly st: number;
  private readonly ww: number;
  private readonly rseq: number;
  private readonly wseq: number;
  constructor(readonly i32: Int32Array, readonly index: number, readonly spinLimit = DEFAULT_SPIN_LIMIT) {
    checkSlot(i32, index, RWLATCH_WORDS, 'RWLatch');
    this.st = index + RWLatchSlot.STATE;
    this.ww = index + RWLatchSlot.WRITERS_WAITING;
    this.rseq = index + RWLatchSlot.READER_SEQ;
    this.wseq = index + RWLatchSlot.WRITER_SEQ;
  }

  init(): void {
    for (let i = 0; i < RWLATCH_WORDS; i++) Atomics.store(this.i32, this.index + i, 0);
  }

  tryAcquireRead(): boolean {
    const a = this.i32;
    if ((Atomics.load(a, this.ww) & RW_WW_MASK) !== 0) return false;
    const s = Atomics.load(a, this.st);
    if ((s & RW_WRITER) !== 0) return false;
    assert((s & RW_READERS_MASK) < RW_READERS_MASK, 'RWLatch: too many readers');
    return Atomics.compareExchange(a, this.st, s, s + 1) === s;
  }

  acquireRead(): void {
    const a = this.i32;
    let spins = 0;
    for (;;) {
      if ((Atomics.load(a, this.ww) & RW_WW_MASK) === 0) {
        const s = Atomics.load(a, this.st);
        if ((s & RW_WRITER) === 0) {
          if (Atomics.compareExchange(a, this.st, s, s + 1) === s) return;
          continue; // another reader raced us: retry at once
        }
      }
      if (spins++ < this.spinLimit) continue;
      // Announce the sleep first: a releaseWrite that then misses the announcement released before
      // the re-check below, which sees it (sequentially consistent atomics).
      Atomics.add(a, this.ww, RW_SLEEPER);
      const seq = Atomics.load(a, this.rseq);
      // re-check after reading seq: a release that happens now bumps seq and wait returns at once
      if ((Atomics.load(a, this.ww) & RW_WW_MASK) === 0 && (Atomics.load(a, this.st) & RW_WRITER) === 0) {
        Atomics.sub(a, this.ww, RW_SLEEPER);
        continue;
      }
      const r = Atomics.wait(a, this.rseq, seq, SAFETY_WAIT_MS);
      Atomics.sub(a, this.ww, RW_SLEEPER);
      if (r === 'timed-out' && Atomics.load(a, this.rseq) === seq && (Atomics.load(a, this.ww) & RW_WW_MASK) === 0 && (Atomics.load(a, this.st) & RW_WRITER) === 0) missedWakeups++;
    }
  }

  releaseRead(): void {
    const a = this.i32;
    const prev = Atomics.sub(a, this.st, 1);
    assert((prev & RW_READERS_MASK) > 0 && (prev & RW_WRITER) === 0, 'RWLatch.releaseRead: not read-held');
    if (prev === 1 && (Atomics.load(a, this.ww) & RW_WW_MASK) !== 0) {
      Atomics.add(a, this.wseq, 1);
      Atomics.notify(a, this.wseq, 1);
    }
  }

  tryAcquireWrite(): boolean {
    return Atomics.compareExchange(this.i32, this.st, 0, RW_WRITER) === 0;
  }

  acquireWrite(): void {
    const a = this.i32;
    if (Atomics.compareExchange(a, this.st, 0, RW_WRITER) === 0) return;
    Atomics.add(a, this.ww, 1);
    let spins = 0;
    for (;;) {
      if (Atomics.compareExchange(a, this.st, 0, RW_WRITER) === 0) {
        Atomics.sub(a, this.ww, 1);
        return;
      }
      if (spins++ < this.spinLimit) continue;
      const seq = Atomics.load(a, this.wseq);
      if (Atomics.load(a, this.st) === 0) continue;
      const r = Atomics.wait(a, this.wseq, seq, SAFETY_WAIT_MS);
      if (r === 'timed-out' && Atomics.load(a, this.wseq) === seq && Atomics.load(a, this.st) === 0) missedWakeups++;
    }
  }

  releaseWrite(): void {
    const a = this.i32;
    const prev = Atomics.exchange(a, this.st, 0);
    assert(prev === RW_WRITER, 'RWLatch.releaseWrite: not write-held');
    const w = Atomics.load(a, this.ww);
    if ((w & RW_WW_MASK) !== 0) {
      // writer preference: hand over to the next writer; readers stay asleep until writers drain
      Atomics.add(a, this.wseq, 1);
      Atomics.notify(a, this.wseq, 1);
    } else if (w !== 0) {
      Atomics.add(a, this.rseq, 1);
      Atomics.notify(a, this.rseq);
    }
  }

  read<T>(fn: () => T): T {
    this.acquireRead();
    try {
      return fn();
    } finally {
      this.releaseRead();
    }
  }

  write<T>(fn: () => T): T {
    this.acquireWrite();
    try {
      return fn();
    } finally {
      this.releaseWrite();
    }
  }

  /** For diagnostics and tests: current readers and whether a writer holds the latch. */
  peek(): { readers: number; writer: boolean; writersWaiting: number } {
    const s = Atomics.load(this.i32, this.st);
    return { readers: s & RW_READERS_MASK, writer: (s & RW_WRITER) !== 0, writersWaiting: Atomics.load(this.i32, this.ww) & RW_WW_MASK };
  }
}

// ---------------------------------------------------------------------------------------------
// Latch (SetLatch / WaitLatch)

export const LATCH_WORDS = 1;
export const LatchSlot = { WAKE_COUNT: 0 } as const;

export type LatchWaitResult = 'set' | 'timeout';

/** performance.now() at which a wait of timeoutMs (Infinity: none; negative: 0) ends. */
function latchDeadline(timeoutMs: number): number {
  return timeoutMs === Infinity ? Infinity : performance.now() + Math.max(0, timeoutMs);
}

export class Latch {
  private readonly at: number;
  private seen: number;
  constructor(readonly i32: Int32Array, readonly index: number) {
    checkSlot(i32, index, LATCH_WORDS, 'Latch');
    this.at = index + LatchSlot.WAKE_COUNT;
    this.seen = Atomics.load(i32, this.at);
  }

  /** SetLatch: wake every thread waiting on these words (and make their next wait return). */
  set(): void {
    Atomics.add(this.i32, this.at, 1);
    Atomics.notify(this.i32, this.at);
  }

  /** True if set() was called since this object last consumed a wake-up (does not consume it). */
  isSet(): boolean {
    return Atomics.load(this.i32, this.at) !== this.seen;
  }

  /** ResetLatch: forget pending sets (call before re-checking for work, as in PostgreSQL). */
  reset(): void {
    this.seen = Atomics.load(this.i32, this.at);
  }

  /** WaitLatch: block up to timeoutMs (Infinity = forever) until set() is called. */
  wait(timeoutMs: number = Infinity): LatchWaitResult {
    const deadline = latchDeadline(timeoutMs);
    for (;;) {
      const cur = this.pending();
      if (cur === 'set') return 'set';
      const left = deadline - performance.now();
      if (left <= 0) return 'timeout';
      Atomics.wait(this.i32, this.at, cur, left);
    }
  }

  /** 'set' (and remembered as seen) when set() was called since the last reset or return; else the word's value to sleep on. */
  private pending(): number | 'set' {
    const cur = Atomics.load(this.i32, this.at);
    if (cur === this.seen) return cur;
    this.seen = cur;
    return 'set';
  }

  /**
   * Non-blocking WaitLatch for threads with an event loop. Atomics.waitAsync alone does not keep
   * Node's loop alive; with keepAlive (default) a timer holds the loop open until this settles.
   */
  async waitAsync(timeoutMs: number = Infinity, opts: { keepAlive?: boolean } = {}): Promise<LatchWaitResult> {
    const keepAlive = opts.keepAlive ?? true;
    const deadline = latchDeadline(timeoutMs);
    let timer: ReturnType<typeof setInterval> | undefined;
    if (keepAlive) timer = setInterval(() => {}, 1 << 30);
    try {
      for (;;) {
        const cur = this.pending();
        if (cur === 'set') return 'set';
        const left = deadline - performance.now();
        if (left <= 0) return 'timeout';
        const r = Atomics.waitAsync(this.i32, this.at, cur, left);
        if (r.async) await r.value;
      }
    } finally {
      if (timer !== undefined) clearInterval(timer);
    }
  }
}
