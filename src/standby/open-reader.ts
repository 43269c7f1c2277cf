// openReader(handle): reads of a standby's (or primary's) shared store from any thread of the
// application, given the handle from standby.readerHandle() / primary.readerHandle()
// (reader-handle.ts, whose header has the DEV DOCS: who writes which word, in which order).
// Who runs it: the application's own worker threads (or its main thread). What it owns: per
// reader, its replay waits (a ReplayWaiters over the handle's WalRcvData), one Atomics.waitAsync
// on the control STATE word while waits are pending, and a timer that keeps the thread's event
// loop alive meanwhile (Atomics.waitAsync alone does not); the attached SharedStore is shared by
// the readers of one thread. How it stops: close() (its waits reject with WS_CLOSED), or the
// standby/primary closing (every read and wait then rejects with WS_CLOSED).
//
// get/scan/count/readConsistent read the store in place under its read latch: transaction-
// consistent, no copy of the store, no message per read. waitForReplay(lsn) resolves once replay
// has passed lsn (a standby: Atomics.waitAsync on REPLAY_SEQ, counted in REPLAY_WAITING so the
// startup worker notifies only while someone waits; a primary: at once, since its commits are in
// the store before they return).

import { Errors } from '../errors.js';
import { SharedStore } from '../storage/store.js';
import type { ScanEntry, ScanOptions, StoreReadView } from '../storage/store-api.js';
import { checkLsn, type Lsn, lsnToString } from '../wal/lsn.js';
import { XC_INSERTED_UPTO } from '../wal/xlogctl.js';
import { checkReaderHandle, RC_STATE, type ReaderHandle, type ReaderRole, ReaderState, stateError } from './reader-handle.js';
import { ReplayWaiters } from './replay-waiters.js';
import { WalRcvData } from './walrcvdata.js';

export type { ReaderHandle, ReaderRole } from './reader-handle.js';

/** waitForReplay's default timeout, in ms (as Standby.waitForReplay). */
export const DEFAULT_REPLAY_WAIT_TIMEOUT_MS = 30_000;
/** A keep-alive timer's period, in ms: it only holds the event loop open while waits are pending. */
const KEEP_ALIVE_MS = 2 ** 30;

/** The attached store of each store id in this thread (attach costs a few buffers; readers of the same handle share it). */
const stores = new Map<number, SharedStore>();

/** Open a reader on the shared store named by `handle` (from standby.readerHandle() or primary.readerHandle()). */
export function openReader(handle: ReaderHandle): SharedReader {
  const h = checkReaderHandle(handle);
  if (Atomics.load(new Int32Array(h.control, 0, 1), RC_STATE) === ReaderState.CLOSED) throw Errors.closed(h.role);
  let store = stores.get(h.store.id);
  if (store === undefined || store.handle.buffer !== h.store.buffer) {
    store = SharedStore.attach(h.store);
    stores.set(h.store.id, store);
  }
  return new SharedReader(h, store);
}

export class SharedReader {
  readonly role: ReaderRole;
  private readonly control: Int32Array;
  private readonly walrcv: WalRcvData | null;
  private readonly inserted: BigInt64Array | null;
  private readonly waiters: ReplayWaiters | null;
  private closed = false;
  private pending = 0;
  private keepAlive: NodeJS.Timeout | null = null;
  private stateArmed = false;

  /** @internal use openReader() */
  constructor(private readonly handle: ReaderHandle, private readonly store: SharedStore) {
    this.role = handle.role;
    this.control = new Int32Array(handle.control, 0, 2);
    if (handle.role === 'standby') {
      this.walrcv = new WalRcvData({ buffer: handle.positions });
      this.waiters = new ReplayWaiters(this.walrcv);
      this.inserted = null;
    } else {
      this.walrcv = null;
      this.waiters = null;
      this.inserted = new BigInt64Array(handle.positions, 0, XC_INSERTED_UPTO + 1);
    }
  }

  private check(): void {
    if (this.closed) throw Errors.closed('reader');
    if (Atomics.load(this.control, RC_STATE) === ReaderState.CLOSED) throw Errors.closed(this.role);
  }

  // ---- reads ------------------------------------------------------------------------------------

  get(table: string, key: string | Uint8Array): unknown {
    this.check();
    return this.store.get(table, key);
  }

  getRaw(table: string, key: string | Uint8Array): Uint8Array | undefined {
    this.check();
    return this.store.getRaw(table, key);
  }

  scan(table: string, opts?: ScanOptions): ScanEntry[] {
    this.check();
    return this.store.scan(table, opts);
  }

  count(table?: string): number {
    this.check();
    return this.store.count(table);
  }

  /** Several reads under one read latch: one transaction-consistent state. */
  readConsistent<T>(fn: (view: StoreReadView) => T): T {
    this.check();
    return this.store.readConsistent(fn);
  }

  // ---- positions and waits ----------------------------------------------------------------------

  /** The standby's replay position; a primary's WAL insert position (everything below it is in the store). */
  get replayLsn(): Lsn {
    return this.walrcv !== null ? this.walrcv.replay : Number(Atomics.load(this.inserted!, XC_INSERTED_UPTO));
  }

  /**
   * Resolve (with the replay position) once replay has passed `lsn`; reject after timeoutMs
   * (Infinity: no timeout), when the standby closes or replay stops for good.
   */
  waitForReplay(lsn: Lsn, timeoutMs = DEFAULT_REPLAY_WAIT_TIMEOUT_MS): Promise<Lsn> {
    try {
      checkLsn('lsn', lsn);
    } catch (err) {
      return Promise.reject(err);
    }
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) return Promise.reject(Errors.invalidOption('timeoutMs', `must be >= 0, got ${String(timeoutMs)}`));
    if (this.closed) return Promise.reject(Errors.closed('reader'));
    const state = Atomics.load(this.control, RC_STATE);
    if (state === ReaderState.CLOSED) return Promise.reject(Errors.closed(this.role));
    const r = this.replayLsn;
    if (r >= lsn) return Promise.resolve(r);
    if (state !== ReaderState.OPEN) return Promise.reject(stateError(this.handle.control, this.role)!);
    if (this.waiters === null) {
      return Promise.reject(Errors.invalidOption('lsn', `${lsnToString(lsn)} is past this primary's WAL insert position ${lsnToString(r)}`));
    }
    this.hold();
    this.armStateWait();
    return this.waiters.wait(lsn, timeoutMs).finally(() => this.release());
  }

  /** Stop this reader: later calls throw WS_CLOSED, pending waits reject with it. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiters?.rejectAll(Errors.closed('reader'));
  }

  /** Keep the thread's event loop alive while waits are pending (Atomics.waitAsync does not). */
  private hold(): void {
    if (this.pending++ === 0) this.keepAlive = setInterval(() => undefined, KEEP_ALIVE_MS);
  }

  private release(): void {
    if (--this.pending === 0 && this.keepAlive !== null) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }

  /** One Atomics.waitAsync on the control STATE word (armed once): a state change rejects every wait. */
  private armStateWait(): void {
    if (this.stateArmed) return;
    const s = Atomics.load(this.control, RC_STATE);
    const onChange = () => {
      this.stateArmed = false;
      const e = stateError(this.handle.control, this.role);
      if (e !== null) this.waiters!.rejectAll(e);
      else if (this.pending > 0) this.armStateWait();
    };
    if (s !== ReaderState.OPEN) {
      queueMicrotask(onChange);
      return;
    }
    const w = Atomics.waitAsync(this.control, RC_STATE, s);
    this.stateArmed = true;
    if (!w.async) queueMicrotask(onChange);
    else void w.value.then(onChange);
  }
}
