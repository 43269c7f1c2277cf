// Reader handles: what `standby.readerHandle()` and `primary.readerHandle()` return, a small
// structured-cloneable object (SharedArrayBuffers inside) that an application posts to its own
// worker threads, where `openReader(handle)` (open-reader.ts) reads the same shared store in place.
// This file: the handle's format and validation, the reader control words, and the owner side
// (ReaderControl: one per Standby or Primary, made on the first readerHandle() call, on the thread
// that opened it). Nothing to stop: the owner marks the words when its standby or primary closes,
// fails or is promoted; the buffers live as long as some thread holds them.
//
// DEV DOCS (threads; who writes which word, in which order)
// --------------------------------------------------------
// A handle carries three shared buffers:
//   store      the SharedStore's buffer. Written only by the store's one writer (the standby's
//              startup worker, or the primary's main thread) under the store's RWLatch; readers in
//              any thread take the read latch for a whole get/scan/readConsistent (store-write.ts),
//              so a read never sees half a transaction. No copy, no message per read.
//   positions  standby: WalRcvData's buffer (walrcvdata.ts). The startup worker publishes REPLAY
//              (under WalRcvData's mutex, after the transaction is in the store), then bumps
//              REPLAY_SEQ, then notifies REPLAY_SEQ only if REPLAY_WAITING is non-zero. A thread
//              that waits (ReplayWaiters) adds 1 to REPLAY_WAITING before it reads REPLAY_SEQ and
//              REPLAY, and sleeps with Atomics.waitAsync on REPLAY_SEQ: sequentially consistent, so
//              no replay is missed and a thread with no waiter costs startup no notify.
//              primary: XLogCtl's buffer (xlogctl.ts). The main thread applies a transaction to the
//              store, then inserts its record and publishes INSERTED_UPTO: every LSN a commit
//              returned is at or below INSERTED_UPTO and already in the store.
//   control    this file's words, written only by the owner (the thread that opened the standby or
//              primary): the failure text first (FAILURE_LEN, then the bytes), then STATE with
//              Atomics.store (publishing the text), then Atomics.notify(STATE), always (it changes at
//              most a few times in a standby's life). Readers Atomics.load STATE before every read
//              (closed: WS_CLOSED) and while they have waits pending keep one Atomics.waitAsync on
//              STATE, so a close, a failure or a promotion rejects them at once.
// STATE: OPEN → FAILED (replay stopped for good: reads go on, waits reject with that error) or
// PROMOTED (replay ended: reads go on and see the new primary's commits, waits past the last
// replayed LSN reject) → CLOSED (reads and waits reject with WS_CLOSED). It never goes back.

import type { EventEmitter } from 'node:events';
import { Errors, errorFromInfo, errorInfo, type ErrorInfo, type WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { StoreHandle } from '../storage/store-api.js';
import { WALRCVDATA_BYTES } from './walrcvdata.js';
import { XLOGCTL_BYTES } from '../wal/xlogctl.js';

/** The `kind` tag of every reader handle (tells a handle from any other object). */
export const READER_HANDLE_KIND = 'walstream.readerHandle';
/** The handle format this code makes and reads. */
export const READER_HANDLE_VERSION = 1;

export type ReaderRole = 'standby' | 'primary';

/** Structured-cloneable: postMessage it (or pass it as workerData) and call openReader() there. */
export interface ReaderHandle {
  readonly kind: typeof READER_HANDLE_KIND;
  readonly version: number;
  readonly role: ReaderRole;
  readonly store: StoreHandle;
  /** standby: WalRcvData's buffer; primary: XLogCtl's position buffer */
  readonly positions: SharedArrayBuffer;
  /** the reader control words (this file) */
  readonly control: SharedArrayBuffer;
}

// control words (Int32 indexes) and the failure text after them
export const RC_STATE = 0;
/** Bytes of the failure text (UTF-8 JSON of an ErrorInfo) at RC_FAILURE_OFFSET. */
export const RC_FAILURE_LEN = 1;
const RC_WORDS = 2;
export const RC_FAILURE_OFFSET = RC_WORDS * 4;
/** Longest failure text kept, in bytes (message and detail are cut to fit). */
export const FAILURE_MAX_BYTES = 2048;
export const READER_CONTROL_BYTES = RC_FAILURE_OFFSET + FAILURE_MAX_BYTES;

export const ReaderState = { OPEN: 0, FAILED: 1, PROMOTED: 2, CLOSED: 3 } as const;
export type ReaderStateValue = (typeof ReaderState)[keyof typeof ReaderState];

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Check that `h` is a reader handle this code can open; a WS_INVALID_OPTION error naming what is wrong. */
export function checkReaderHandle(h: unknown): ReaderHandle {
  const bad = (why: string) => Errors.invalidOption('handle', `not a reader handle from standby.readerHandle() or primary.readerHandle(): ${why}`);
  if (h === null || typeof h !== 'object') throw bad(`got ${h === null ? 'null' : typeof h}`);
  const o = h as Partial<ReaderHandle>;
  if (o.kind !== READER_HANDLE_KIND) throw bad(`its kind is ${JSON.stringify(o.kind)}`);
  if (o.version !== READER_HANDLE_VERSION) throw bad(`handle format ${String(o.version)}, this code reads ${READER_HANDLE_VERSION}`);
  if (o.role !== 'standby' && o.role !== 'primary') throw bad(`role ${JSON.stringify(o.role)}`);
  if (!(o.control instanceof SharedArrayBuffer) || o.control.byteLength !== READER_CONTROL_BYTES) throw bad('control is not its SharedArrayBuffer');
  const need = o.role === 'standby' ? WALRCVDATA_BYTES : XLOGCTL_BYTES;
  if (!(o.positions instanceof SharedArrayBuffer) || o.positions.byteLength < need) throw bad('positions is not its SharedArrayBuffer');
  if (o.store === null || typeof o.store !== 'object' || !(o.store.buffer instanceof SharedArrayBuffer)) throw bad('store is not a store handle');
  const state = Atomics.load(new Int32Array(o.control, 0, RC_WORDS), RC_STATE);
  if (state < ReaderState.OPEN || state > ReaderState.CLOSED) throw bad(`control state ${state}`);
  return o as ReaderHandle;
}

/** The error a reader reports for a state (CLOSED, FAILED with its text, PROMOTED); null while OPEN. */
export function stateError(control: SharedArrayBuffer, role: ReaderRole): WalstreamError | null {
  const i32 = new Int32Array(control, 0, RC_WORDS);
  const state = Atomics.load(i32, RC_STATE);
  switch (state) {
    case ReaderState.OPEN:
      return null;
    case ReaderState.CLOSED:
      return Errors.closed(role);
    case ReaderState.PROMOTED:
      return Errors.objectNotInPrerequisiteState('recovery is not in progress', 'The standby was promoted: replay has ended, waits past its last replayed LSN cannot be met.');
    default: {
      const n = Atomics.load(i32, RC_FAILURE_LEN);
      const text = dec.decode(new Uint8Array(control, RC_FAILURE_OFFSET, n).slice());
      return errorFromInfo(JSON.parse(text) as ErrorInfo);
    }
  }
}

/** What the owner side needs of a Standby or Primary: its events. */
type Owner = Pick<EventEmitter, 'on' | 'once'>;

/**
 * The owner side: one per Standby or Primary, on the thread that opened it. Follows the owner's
 * events ('error' of a standby, 'promoted', 'close') into STATE.
 */
export class ReaderControl {
  readonly handle: ReaderHandle;
  private readonly i32: Int32Array;

  private constructor(role: ReaderRole, store: StoreHandle, positions: SharedArrayBuffer) {
    const control = new SharedArrayBuffer(READER_CONTROL_BYTES);
    this.i32 = new Int32Array(control, 0, RC_WORDS);
    this.handle = Object.freeze({ kind: READER_HANDLE_KIND, version: READER_HANDLE_VERSION, role, store, positions, control });
  }

  /**
   * For a standby in replica mode: `failure` / `promoted` say what already happened before the
   * first handle was asked for; later, its 'error', 'promoted' and 'close' events move STATE.
   */
  static forStandby(standby: Owner, store: StoreHandle, walrcv: SharedArrayBuffer, now: { failure: WalstreamError | null; promoted: boolean }): ReaderControl {
    const rc = new ReaderControl('standby', store, walrcv);
    if (now.failure !== null) rc.fail(now.failure);
    if (now.promoted) rc.set(ReaderState.PROMOTED);
    standby.on('error', (e: unknown) => rc.fail(e));
    standby.once('promoted', () => rc.set(ReaderState.PROMOTED));
    standby.once('close', () => rc.set(ReaderState.CLOSED));
    return rc;
  }

  /** For a primary: only its close matters to readers (its commits are in the store before they return). */
  static forPrimary(primary: Owner, store: StoreHandle, xlogctl: SharedArrayBuffer): ReaderControl {
    const rc = new ReaderControl('primary', store, xlogctl);
    primary.once('close', () => rc.set(ReaderState.CLOSED));
    return rc;
  }

  get state(): ReaderStateValue {
    return Atomics.load(this.i32, RC_STATE) as ReaderStateValue;
  }

  /** Replay stopped for good: keep the first failure's text for the readers' waits. */
  private fail(e: unknown): void {
    if (this.state !== ReaderState.OPEN) return;
    const info = errorInfo(e, 'replay');
    let bytes = enc.encode(JSON.stringify(info));
    if (bytes.length > FAILURE_MAX_BYTES) {
      // cut message and detail to fit (the code and SQLSTATE are what callers match on)
      const cut: ErrorInfo = { code: info.code, sqlstate: info.sqlstate, message: info.message.slice(0, FAILURE_MAX_BYTES / 8) };
      bytes = enc.encode(JSON.stringify(cut));
    }
    assert(bytes.length <= FAILURE_MAX_BYTES, 'reader control: failure text too long');
    new Uint8Array(this.handle.control, RC_FAILURE_OFFSET, bytes.length).set(bytes);
    Atomics.store(this.i32, RC_FAILURE_LEN, bytes.length);
    this.set(ReaderState.FAILED);
  }

  /** STATE only moves forward (OPEN → FAILED | PROMOTED → CLOSED); wakes every reader's state wait. */
  private set(state: ReaderStateValue): void {
    if (state <= this.state) return;
    Atomics.store(this.i32, RC_STATE, state);
    Atomics.notify(this.i32, RC_STATE);
  }
}
