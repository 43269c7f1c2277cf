// RingSocket: one end of an in-process replication connection, two ByteRings (ring.ts) in place
// of a TCP socket, with the part of net.Socket's surface the walsender and the walreceiver's
// connection use: write(b, cb), writableLength, 'drain', 'data', 'end', 'close', 'error',
// pause/resume, end(), destroy(). So the protocol code on both sides is the same as over TCP; only
// the byte pipe changes.
//
// Who runs it: the walsender worker (server end) and the walreceiver worker or Standby.open (client
// end), one connection each. It owns its two rings' roles (producer of tx, consumer of rx) and the
// peer MessagePort, whose 'close' event is the connection reset (the peer thread ended or dropped
// the connection without closing the rings). Stops: destroy() (closes both rings and the port), or
// once both directions ended (our end() after the peer's end, like a socket without half-open).
//
// Hot path, server → client: the walsender asks allocFrame() for a view of a reserved record and
// builds the XLogData message in place (its WAL bytes 8-aligned in the ring, copied once from
// wal_buffers or read straight from the segment file); write() of that view only publishes it.
// The client end (zeroCopy) emits each record's data as a view of the ring and gives the bytes back
// only when its owner says so (release()), so the walreceiver writes WAL to its segment file
// straight from the ring. Everything else is copied into or out of records.

import { EventEmitter } from 'node:events';
import type { MessagePort } from 'node:worker_threads';
import { Errors, WalstreamError } from '../errors.js';
import { ByteRing, type RingPairHandle } from './ring.js';

/** Unread bytes in the incoming ring from which more data is "likely" (Node's socket read size). */
export const MORE_DATA_BYTES = 64 * 1024;

/** The part of net.Socket a replication connection uses; net.Socket and RingSocket both have it. */
export interface ByteSocket {
  readonly destroyed: boolean;
  readonly writableLength: number;
  write(b: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  isPaused(): boolean;
  pause(): unknown;
  resume(): unknown;
  end(cb?: () => void): unknown;
  destroy(): unknown;
  setNoDelay(noDelay?: boolean): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): unknown;
  /** RingSocket only: a view of a reserved outgoing record to build a message in place. */
  allocFrame?(dataBytes: number, pad: number): Uint8Array | null;
  /** RingSocket only: the largest `pad + dataBytes` allocFrame() serves whenever writableLength is below the high-water mark. */
  readonly maxFrameBytes?: number;
  /** RingSocket only: emit 'drain' once the ring is down to its low-water mark (even if no write was refused). */
  requestDrain?(): void;
}

export interface RingSocketOptions {
  side: 'server' | 'client';
  rings: RingPairHandle;
  /** The connection's MessagePort (its 'close' is the peer's reset); closed with the socket. */
  peer: MessagePort | null;
  /** Emit 'data' as views of the ring, kept until release() (else each record is copied out). */
  zeroCopy: boolean;
  /** HEAD checks before sleeping when the ring is empty. Default 0. */
  spinIterations?: number;
  /** Largest frame allocFrame() will be asked for (sizes the high-water mark). Default a quarter ring. */
  maxFrameBytes?: number;
  /** Keep this thread's event loop alive while the connection is open (as a socket does). Default false. */
  keepAlive?: boolean;
}

/** A reserved record handed out by allocFrame(), published by write() of (a prefix of) it. */
interface Frame {
  view: Uint8Array;
  pad: number;
}

export class RingSocket extends EventEmitter {
  readonly rx: ByteRing;
  readonly tx: ByteRing;
  /** writableLength at and above which the writer should wait for 'drain'. */
  readonly highWaterBytes: number;
  /** Largest `pad + dataBytes` of a frame that always fits below highWaterBytes. */
  readonly maxFrameBytes: number;
  private readonly lowWaterBytes: number;
  private readonly zeroCopy: boolean;
  private readonly spin: number;
  private peer: MessagePort | null;
  private _destroyed = false;
  private paused = false;
  private pumping = false;
  private pumpScheduled = false;
  private readArmed = false;
  private spaceArmed = false;
  private needDrain = false;
  private writeEnded = false;
  private readEnded = false;
  private closeEmitted = false;
  private readonly queue: { b: Uint8Array; cb: ((err?: Error | null) => void) | undefined }[] = [];
  private queuedBytes = 0;
  private frame: Frame | null = null;
  /** Start of the record whose data the latest 'data' event carried (zero-copy tokens). */
  recordStart = 0;

  constructor(o: RingSocketOptions) {
    super();
    const server = o.side === 'server';
    this.rx = new ByteRing(server ? o.rings.toServer : o.rings.toClient);
    this.tx = new ByteRing(server ? o.rings.toClient : o.rings.toServer);
    this.zeroCopy = o.zeroCopy;
    this.spin = o.spinIterations ?? 0;
    const cap = this.tx.capacity;
    this.maxFrameBytes = Math.min(o.maxFrameBytes ?? this.tx.maxRecordData, this.tx.maxRecordData);
    const frame = this.maxFrameBytes + 16;
    // Below this, any reservation of a frame fits (worst case: a wrap wastes one frame's room).
    this.highWaterBytes = Math.max(cap >>> 1, cap - 2 * frame);
    this.lowWaterBytes = this.highWaterBytes >>> 1;
    this.peer = o.peer;
    if (this.peer !== null) {
      this.peer.on('close', () => {
        this.peer = null;
        if (!this._destroyed) this.reset('connection reset by peer (its thread ended)');
      });
      // Nothing is sent on the port; listening starts it, so it holds the loop unless unref'd.
      this.peer.on('message', () => undefined);
      if (o.keepAlive !== true) this.peer.unref();
    }
    this.schedulePump();
  }

  get destroyed(): boolean {
    return this._destroyed;
  }

  /** Bytes written and not yet read and released by the peer (queued here or in the ring). */
  get writableLength(): number {
    return this.queuedBytes + this.tx.used();
  }

  setNoDelay(): this {
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    if (this.paused) {
      this.paused = false;
      this.schedulePump();
    }
    return this;
  }

  /**
   * True while a bulk transfer is in flight: at least MORE_DATA_BYTES published and not read yet
   * (what a full 64 KiB socket read means over TCP). A record or two of live traffic is not: the
   * walreceiver must not put off its fdatasync for those (that would delay every live commit).
   */
  get moreDataLikely(): boolean {
    return !this._destroyed && this.rx.unreadBytes() >= MORE_DATA_BYTES;
  }

  /** Zero-copy end: the bytes before `pos` (a record boundary from recordStart or readPosition) are free again. */
  release(pos: number): void {
    if (!this._destroyed) this.rx.release(pos);
  }
  get readPosition(): number {
    return this.rx.readPosition;
  }

  // ---- writing -------------------------------------------------------------------------------

  /**
   * A view of `pad + dataBytes` bytes inside the outgoing ring, or null when the ring has no room
   * (or other writes are queued). Fill view[pad …] and write() that part: it is published without
   * a copy. The record is 8-aligned, so view.byteOffset ≡ 0 (mod 8).
   */
  allocFrame(dataBytes: number, pad: number): Uint8Array | null {
    if (this._destroyed || this.writeEnded || this.queue.length > 0 || dataBytes > this.tx.maxRecordData) return null;
    const at = this.tx.reserve(dataBytes, pad);
    if (at < 0) return null;
    const view = new Uint8Array(this.tx.sab, at, pad + dataBytes);
    this.frame = { view, pad };
    return view;
  }

  write(b: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this._destroyed || this.writeEnded) {
      if (cb) queueMicrotask(() => cb(Errors.connectionFailure('write after the in-process connection ended')));
      return false;
    }
    const f = this.frame;
    this.frame = null;
    if (f !== null && b.buffer === this.tx.sab && b.byteOffset === f.view.byteOffset + f.pad && b.length <= f.view.length - f.pad) {
      this.tx.commit(b.length);
      if (cb) queueMicrotask(() => cb(null));
      return this.afterWrite();
    }
    if (f !== null) this.tx.cancelReservation();
    if (this.tx.consumerClosed) {
      if (cb) queueMicrotask(() => cb(null)); // the peer reads no more: dropped, as a reset socket would
      return false;
    }
    if (this.queue.length === 0) {
      const rest = this.copyIn(b);
      if (rest === null) {
        if (cb) queueMicrotask(() => cb(null));
        return this.afterWrite();
      }
      b = rest;
    }
    // The ring is full: keep a reference (the writer must not reuse `b` until cb, as with a socket).
    this.queue.push({ b, cb });
    this.queuedBytes += b.length;
    this.armSpace();
    return this.afterWrite();
  }

  /** Copy as much of `b` as fits into records; the rest, or null when all went in. */
  private copyIn(b: Uint8Array): Uint8Array | null {
    const max = this.tx.maxRecordData;
    let off = 0;
    while (off < b.length) {
      const part = b.subarray(off, Math.min(b.length, off + max));
      if (!this.tx.tryWrite(part)) return b.subarray(off);
      off += part.length;
    }
    return null;
  }

  requestDrain(): void {
    if (this._destroyed) return;
    this.needDrain = true;
    this.armSpace();
  }

  private afterWrite(): boolean {
    if (this.writableLength >= this.highWaterBytes) {
      this.needDrain = true;
      this.armSpace();
      return false;
    }
    return true;
  }

  /** Wait for the peer to release room: for the queue, or down to the low-water mark for 'drain'. */
  private armSpace(): void {
    if (this.spaceArmed || this._destroyed) return;
    const tx = this.tx;
    // Wake when the ring is at most half as full as the high-water mark (one wake-up per batch).
    const want = (tx.headPos - this.lowWaterBytes) | 0;
    const p = tx.waitSpace(want);
    if (p === null) {
      queueMicrotask(() => this.onSpace());
      return;
    }
    this.spaceArmed = true;
    void p.then(() => {
      this.spaceArmed = false;
      this.onSpace();
    });
  }

  private onSpace(): void {
    if (this._destroyed) return;
    if (this.tx.consumerClosed) {
      this.dropQueue();
    }
    while (this.queue.length > 0) {
      const q = this.queue[0]!;
      const rest = this.copyIn(q.b);
      if (rest !== null) {
        this.queuedBytes -= q.b.length - rest.length;
        q.b = rest;
        this.armSpace();
        return;
      }
      this.queue.shift();
      this.queuedBytes -= q.b.length;
      if (q.cb) q.cb(null);
    }
    if (this.writeEnded) this.tx.closeProducer();
    if (this.needDrain) {
      if (this.writableLength <= this.lowWaterBytes || this.tx.consumerClosed) {
        this.needDrain = false;
        this.emit('drain');
      } else {
        this.armSpace();
      }
    }
    this.maybeFinish();
  }

  private dropQueue(): void {
    for (const q of this.queue.splice(0)) if (q.cb) q.cb(null);
    this.queuedBytes = 0;
  }

  /** No more writes: the peer reads what was written, then sees the end. */
  end(cb?: () => void): this {
    if (cb) this.once('close', cb);
    if (this._destroyed) return this;
    if (this.writeEnded) {
      this.maybeFinish();
      return this;
    }
    this.writeEnded = true;
    this.frame = null;
    this.tx.cancelReservation();
    if (this.queue.length === 0) this.tx.closeProducer();
    this.maybeFinish();
    return this;
  }

  /** Close both directions at once (queued writes are dropped). */
  destroy(): this {
    if (this._destroyed) return this;
    this._destroyed = true;
    this.writeEnded = true;
    this.dropQueue();
    this.tx.closeProducer();
    this.rx.closeConsumer();
    const peer = this.peer;
    this.peer = null;
    peer?.close();
    if (!this.closeEmitted) {
      this.closeEmitted = true;
      queueMicrotask(() => this.emit('close'));
    }
    return this;
  }

  /** The peer vanished, or the ring holds garbage: 'error', then 'close'. */
  private reset(why: string | WalstreamError): void {
    const err = typeof why === 'string' ? Errors.connectionFailure(why) : why;
    queueMicrotask(() => this.emit('error', err));
    this.destroy();
  }

  private maybeFinish(): void {
    if (this._destroyed) return;
    // Like a socket without allowHalfOpen: both directions ended (and ours flushed) → closed.
    if (this.readEnded && this.writeEnded && this.queue.length === 0) this.destroy();
  }

  // ---- reading -------------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpScheduled || this._destroyed) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.pumping || this._destroyed) return;
    this.pumping = true;
    try {
      const rx = this.rx;
      while (!this.paused && !this._destroyed) {
        let rec;
        try {
          rec = rx.next();
        } catch (e) {
          if (!(e instanceof WalstreamError)) throw e;
          // Damaged framing: the rest of the stream is lost (as with a garbled TCP stream).
          this.paused = true;
          this.emit('error', e);
          return;
        }
        if (rec === null) break;
        if (this.zeroCopy) {
          this.recordStart = rec.start;
          this.emit('data', new Uint8Array(rx.sab, rec.dataOffset, rec.length));
        } else {
          const chunk = Buffer.allocUnsafe(rec.length);
          chunk.set(new Uint8Array(rx.sab, rec.dataOffset, rec.length));
          rx.release(rec.end);
          this.emit('data', chunk);
        }
      }
      if (this.paused || this._destroyed) return;
      if (rx.producerClosed && !rx.hasUnread()) {
        if (!this.readEnded) {
          this.readEnded = true;
          this.emit('end');
          this.end(); // no half-open connections
          this.maybeFinish();
        }
        return;
      }
      this.armRead();
    } finally {
      this.pumping = false;
    }
  }

  private armRead(): void {
    if (this.readArmed || this._destroyed) return;
    const p = this.rx.waitData(this.spin);
    if (p === null) {
      this.schedulePump();
      return;
    }
    this.readArmed = true;
    void p.then(() => {
      this.readArmed = false;
      this.pump();
    });
  }
}
