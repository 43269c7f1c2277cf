// WalSendLoop: the physical send loop of one walsender (PostgreSQL's XLogSendPhysical with
// WalSndLoop, WalSndKeepaliveIfNecessary, WalSndCheckTimeOut and ProcessStandbyReplyMessage).
// Run by the walsender worker (src/replication/walsender.ts) from START_REPLICATION on. Owns the
// sent position, the FLUSH_SEQ wait, the keepalive/timeout timer, its XLogData buffers and the
// WAL reader (src/replication/wal-read.ts, with its open segment file); synchronous replication is
// a policy object it calls (src/replication/syncrep-sender.ts). Stops: stop() (the client ended
// the copy, an error, shutdown's last reply, the connection closed): timers cleared, segment
// file closed, no wait re-armed.
//
// DEV DOCS — how WAL is read and sent:
//   * The target is the WalSource's flushed position (wal-source.ts: XLogCtl FLUSHED on a
//     primary, WalRcvData FLUSHED on a cascading standby). One XLogData carries at most
//     `maxSendBytes` (1 MiB); when more is pending its end is rounded down to a page boundary,
//     else it ends at FLUSHED.
//   * The bytes come from the wal_buffers ring when it still holds them (validated page by page,
//     see wal-read.ts), else from the segment files (catch-up). wal_buffers is never handed to the
//     socket directly: a queued write could go out after the slot was recycled, and the inserter
//     must never wait for a walsender. They are copied once, into the connection's outgoing ring,
//     which the I/O thread (TCP) or the standby (in-process) reads in place.
//   * The message buffer is 2 + 30 + n bytes and the frame starts at offset 2, so the WAL bytes sit
//     at offset 32: 8-aligned like the ring, which keeps the SharedArrayBuffer copy on V8's fast
//     path. Over an in-process ring the message is built in place in the outgoing ring.
//   * Wake-ups: when caught up, one Atomics.waitAsync on the source's FLUSH_SEQ is armed (see
//     wal-source.ts for why a flush in between is never missed); the socket keeps the event loop alive.
//     Backpressure: sending pauses while the socket holds more than `maxQueuedBytes` and resumes on
//     'drain'. There is no polling and no sleep anywhere (the synchronous-replication policy may
//     put a send off by walSenderAsyncDelayMs, with a timer).
//   * A cascading walsender's timeline can become historic while it streams (its standby followed
//     a promotion upstream): sendLimit() notices it (FLUSHED read before the timeline), caps the
//     target at the switch point and ends the timeline there as a historic START_REPLICATION does
//     (CopyDone, then the next timeline's row: walsender.ts). The caught-up wait wakes on the
//     timeline change too (wal-source.ts).
//   * Timeouts: a keepalive with replyRequested at walSenderTimeoutMs/2 of client silence, and the
//     connection is dropped (no message, as PostgreSQL) after walSenderTimeoutMs.
//   * Invariants, asserted: sent only grows; sent <= FLUSHED; a standby's apply <= flush <= write
//     are checked where WalSndCtl stores them (walsndctl.ts).

import { Errors, WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { StageTrace } from '../util/stage-trace.js';
import { XLOG_BLCKSZ } from '../wal/consts.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import { pgTimestampNow, writeXLogDataFrameHeader, XLOGDATA_FRAME_HEADER_BYTES } from './protocol/messages.js';
import type { ReplicationServerConn, ServerConnEvent } from './protocol/server-conn.js';
import type { ByteSocket } from './ring-socket.js';
import type { ReplicationSlots } from './slots.js';
import type { SyncRepSender } from './syncrep-sender.js';
import { WalSendReader } from './wal-read.js';
import type { WalSource } from './wal-source.js';
import { WalSndState, type WalSndCtl, type WalSndStateValue } from './walsndctl.js';
import type { WalSndLag } from './lag.js';

/**
 * WAL bytes sent in one event-loop turn before yielding (setImmediate), so replies, timers and
 * the stop request are served during a long catch-up even when the kernel takes every write at once.
 */
const MAX_SEND_BYTES_PER_TURN = 8 * 1024 * 1024;
/** Padding before the frame so the WAL payload lands 8-aligned (2 + 30 = 32). */
export const FRAME_PAD = 8 - (XLOGDATA_FRAME_HEADER_BYTES % 8);
/** XLogData buffers kept beyond those the socket may hold (maxQueuedBytes / maxSendBytes). */
const FRAME_POOL_SPARE = 2;

export type StandbyMessage = Extract<ServerConnEvent, { type: 'copyData' }>['message'];

/** What the send loop needs from its walsender (connection and session state). */
export interface WalSendHost {
  readonly conn: ReplicationServerConn;
  readonly socket: ByteSocket;
  /** WalSndCtl slot (-1 once released) and walsender id. */
  readonly slot: number;
  readonly id: number;
  readonly state: WalSndStateValue;
  readonly stopRequested: boolean;
  /** The replication slot START_REPLICATION acquired (-1: none). */
  readonly replSlot: number;
  setState(s: WalSndStateValue): void;
  notifyStateChanged(): void;
  log(level: 'info' | 'warning', message: string): void;
  /** Close after what is queued went out (COPY 0). */
  endSocket(): void;
  /** Drop the connection now (replication timeout). */
  terminate(): void;
  /** WAL could not be read: ERROR to the client, close. */
  streamingFailed(err: WalstreamError): void;
  /** A historic timeline was sent to its switch point (sendTimeLineValidUpto): CopyDone, then wait for the client's. */
  endOfTimeline(): void;
  /**
   * The timeline `tli` being streamed is no longer the server's (`current`): a cascading standby
   * followed its upstream onto a new timeline. Read `current`'s history: `tli`'s switch point
   * (sendTimeLineValidUpto) and the next timeline, kept for the end of the stream.
   */
  timelineBecameHistoric(tli: number, current: number): { validUpto: Lsn; segTli: (seg: number) => number };
}

export interface WalSendLoopOptions {
  /** Where WAL is readable up to and how to wait for more (a primary's XLogCtl, a standby's WalRcvData). */
  source: WalSource;
  walsnd: WalSndCtl;
  walDir: string;
  slots: ReplicationSlots | null;
  lag: WalSndLag | null;
  trace: StageTrace | null;
  syncRep: SyncRepSender;
  maxSendBytes: number;
  maxQueuedBytes: number;
  walSenderTimeoutMs: number;
}

export class WalSendLoop {
  private readonly host: WalSendHost;
  private readonly o: WalSendLoopOptions;
  private readonly reader: WalSendReader;
  private _streaming = false;
  private sent: Lsn = 0;
  private waitArmed = false;
  /** Bumped when streaming stops: a wait armed before then wakes nobody. */
  private waitGen = 0;
  private waitingDrain = false;
  private yielded = false;
  private lastReceiptMs = 0;
  private waitingForPing = false;
  private timer: NodeJS.Timeout | null = null;
  private stopPingSent = false;
  /** True once the standby reported a flush position in this START_REPLICATION (its priority then counts). */
  private flushReported = false;
  // XLogData buffers, reused once the socket has handed them to the kernel (fresh 1 MiB buffers
  // would each cost an mmap, page faults and kernel zeroing).
  private readonly framePool: Buffer[] = [];
  private readonly framePoolMax: number;
  private frameInFlight: Buffer | null = null;
  /** sendTimeLineValidUpto: the switch point of a historic timeline being sent (Infinity: the current one). */
  private validUpto = Infinity;
  private timelineEnded = false;
  /** The timeline being streamed (sendTimeLine). */
  private tli = 0;

  constructor(host: WalSendHost, o: WalSendLoopOptions) {
    this.host = host;
    this.o = o;
    this.reader = new WalSendReader(o.source, o.walDir);
    this.framePoolMax = Math.ceil(o.maxQueuedBytes / o.maxSendBytes) + FRAME_POOL_SPARE;
    o.syncRep.attach(this);
  }

  get streaming(): boolean {
    return this._streaming;
  }
  get sentLsn(): Lsn {
    return this.sent;
  }
  get walSndState(): WalSndStateValue {
    return this.host.state;
  }
  get walSndSlot(): number {
    return this.host.slot;
  }

  /** Start streaming at `start` (START_REPLICATION accepted, CopyBothResponse sent). */
  start(start: Lsn, tli: number, historic: { validUpto: Lsn; segTli: (seg: number) => number } | null = null): void {
    assert(!this._streaming, 'START_REPLICATION while streaming');
    assert(historic === null || start < historic.validUpto, 'a historic timeline starts before its switch point');
    assert(tli > 0, 'streaming needs a timeline');
    this.tli = tli;
    this.validUpto = historic?.validUpto ?? Infinity;
    this.timelineEnded = false;
    this.reader.setTimeline(historic?.segTli ?? null);
    assert(start <= this.o.source.flushed(), `streaming start ${lsnToString(start)} is past FLUSHED`);
    this.o.lag?.begin(this.host.slot);
    this.flushReported = false;
    this.sent = start;
    this._streaming = true;
    this.stopPingSent = false;
    this.lastReceiptMs = performance.now();
    this.waitingForPing = false;
    this.armTimer();
    this.sendPending();
  }

  /** The segment file START_REPLICATION at `start` reads first (for the check that it still exists). */
  startSegmentFile(start: Lsn, historic: { segTli: (seg: number) => number } | null): string {
    this.reader.setTimeline(historic?.segTli ?? null);
    return this.reader.segmentFileAt(start);
  }

  /**
   * Where WAL may be sent up to: the flushed position, capped at the switch point of a historic
   * timeline. The current timeline becomes historic here when the server's timeline moved on
   * (XLogSendPhysical's becameHistoric on a cascading walsender): FLUSHED is read before the
   * timeline (wal-source.ts DEV DOCS), so a FLUSHED read with the same timeline is WAL of it.
   */
  private sendLimit(): Lsn {
    const { flushed, tli } = this.o.source.flushedOn();
    if (this.validUpto === Infinity && tli !== this.tli) {
      assert(tli > this.tli, `timeline went back from ${this.tli} to ${tli}`);
      const h = this.host.timelineBecameHistoric(this.tli, tli);
      // The walreceiver followed only because its flush was not past the switch point, and we
      // never sent past its flush.
      assert(this.sent <= h.validUpto, `sent ${lsnToString(this.sent)} past the switch point ${lsnToString(h.validUpto)} of timeline ${this.tli}`);
      this.validUpto = h.validUpto;
      this.reader.setTimeline(h.segTli);
      this.host.log('info', `timeline ${this.tli} became historic: streaming it up to ${lsnToString(h.validUpto)}, then timeline ${tli}`);
    }
    return Math.min(flushed, this.validUpto);
  }

  /** End of streaming (idempotent): no timer, no wait, no open segment file. */
  stop(): void {
    if (!this._streaming) return;
    this._streaming = false;
    this.waitGen++;
    this.waitArmed = false;
    this.o.source.release();
    this.reader.close();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.o.syncRep.cancel();
  }

  /** The connection ended: like stop(), and the reader's file is closed even if not streaming. */
  close(): void {
    this.stop();
    this.reader.close();
  }

  /** The client sent something: it is alive (resets the replication timeout). */
  noteReceipt(): void {
    if (!this._streaming) return;
    this.lastReceiptMs = performance.now();
    this.waitingForPing = false;
  }

  /** Socket 'drain': resume a send that paused on a full socket. */
  onDrain(): void {
    if (!this.waitingDrain) return;
    this.waitingDrain = false;
    this.sendPending();
  }

  /** The stop request (shutdown): send to the end of WAL, then ask for the final reply. */
  onStopRequested(): void {
    this.host.setState(WalSndState.STOPPING);
    this.sendPending();
  }

  /**
   * If `b` is the XLogData buffer being sent, the callback that returns it to the pool once the
   * socket is done with it (call it from the write callback); else null.
   */
  takeFrame(b: Uint8Array): (() => void) | null {
    const raw = this.frameInFlight;
    if (raw === null || b.buffer !== raw.buffer) return null;
    this.frameInFlight = null;
    let back = false;
    return () => {
      if (back) return;
      back = true;
      if (this.framePool.length < this.framePoolMax) this.framePool.push(raw);
    };
  }

  /** Send everything flushed, as far as the socket takes it; then wait for more (no polling). */
  sendPending(): void {
    try {
      this.trySend();
    } catch (e) {
      // WAL that cannot be read (segment removed, short file): ERROR to the client, then close.
      const err = e instanceof WalstreamError ? e : Errors.internal((e as Error).message ?? String(e));
      this.host.log('warning', `streaming failed at ${lsnToString(this.sent)}: ${err.message}`);
      this.host.streamingFailed(err);
    }
  }

  private trySend(): void {
    const host = this.host;
    if (!this._streaming || this.waitingDrain || this.yielded || this.timelineEnded || host.conn.state !== 'copyBoth') return;
    const sock = host.socket;
    const syncRep = this.o.syncRep;
    syncRep.beforeSend();
    let flushed = this.sendLimit();
    if (this.sent < flushed && syncRep.deferSend()) return;
    if (this.sent < flushed) {
      const turnEnd = this.sent + MAX_SEND_BYTES_PER_TURN;
      // Each message goes to the kernel as soon as it is built (no cork): the receiver starts on
      // it while the next one is read. Stop when the socket holds maxQueuedBytes; 'drain' resumes.
      while (this.sent < flushed && sock.writableLength < this.o.maxQueuedBytes) {
        if (this.sent >= turnEnd) {
          this.yielded = true;
          setImmediate(() => {
            this.yielded = false;
            this.sendPending();
          });
          return;
        }
        const end = this.sendOne(flushed);
        if (!(end > this.sent && end <= flushed)) assert(false, `XLogData end ${lsnToString(end)} outside (${lsnToString(this.sent)}, ${lsnToString(flushed)}]`);
        this.sent = end;
        this.o.walsnd.setSent(host.slot, end);
        this.o.lag?.sent(host.slot, end);
        flushed = this.sendLimit();
      }
      if (!this._streaming) return;
      if (this.sent < flushed) {
        // Socket full: resume on 'drain'.
        this.waitingDrain = true;
        return;
      }
    }
    // A historic timeline sent to its switch point: CopyDone (XLogSendPhysical's end of timeline).
    if (this.sent >= this.validUpto) {
      this.timelineEnded = true;
      host.endOfTimeline();
      return;
    }
    // Caught up with the flush position.
    if (host.state === WalSndState.CATCHUP) host.setState(WalSndState.STREAMING);
    if (host.stopRequested) {
      host.setState(WalSndState.STOPPING);
      if (!this.stopPingSent) {
        this.stopPingSent = true;
        host.conn.sendKeepalive(this.sent, true);
      }
      return; // the reply that covers `sent` ends the stream (onStandbyMessage)
    }
    this.armWait();
  }

  /** Arm one wait for the flush position to move past `sent` (WalSource: no flush is missed). */
  private armWait(): void {
    if (this.waitArmed || !this._streaming) return;
    // (The current timeline's stream also wakes when the timeline moves on: it became historic.)
    const w = this.o.source.waitForFlushPast(this.sent, this.validUpto === Infinity ? this.tli : 0);
    if (w === null) {
      queueMicrotask(() => this.sendPending());
      return;
    }
    this.waitArmed = true;
    const gen = this.waitGen;
    void w.then(() => {
      if (gen !== this.waitGen) return; // streaming stopped meanwhile (a new START_REPLICATION arms its own)
      this.waitArmed = false;
      this.sendPending();
    });
  }

  /** Build and send one XLogData from `this.sent`; returns its end. */
  private sendOne(flushed: Lsn): Lsn {
    const start = this.sent;
    const max = this.o.maxSendBytes;
    let end: Lsn;
    if (flushed - start > max) {
      end = start + max;
      end -= end % XLOG_BLCKSZ;
      assert(end > start, 'XLogData must make progress');
    } else {
      end = flushed;
    }
    const n = end - start;
    const size = FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + max;
    // In-process standby: build the message in place in the ring (published by the write, no copy).
    const inRing = this.host.socket.allocFrame?.(XLOGDATA_FRAME_HEADER_BYTES + n, FRAME_PAD) ?? null;
    const raw = inRing ?? this.framePool.pop() ?? Buffer.allocUnsafeSlow(size);
    const frame = raw.subarray(FRAME_PAD, FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + n);
    this.reader.read(raw, FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES, start, end);
    writeXLogDataFrameHeader(frame, 0, { dataStart: start, walEnd: flushed, sendTime: pgTimestampNow() }, n);
    this.frameInFlight = inRing === null ? (raw as Buffer) : null;
    this.o.trace?.record('sent', end); // (before the standby can have it)
    this.host.conn.sendXLogDataFrame(frame);
    this.frameInFlight = null;
    return end;
  }

  /** A standby message in COPY BOTH: `r` (status update), `R` (walstream: received), `F` (walstream: flush request), `h` (hot standby feedback). */
  onStandbyMessage(m: StandbyMessage): void {
    const host = this.host;
    const slot = host.slot;
    if (slot < 0) return;
    const { walsnd, slots } = this.o;
    if (m.kind === 'r') {
      const got = walsnd.reportReply(slot, { write: m.write, flush: m.flush, apply: m.apply, replyTime: m.clientTime });
      this.o.lag?.replied(slot, got.write, got.flush, got.apply);
      if (!this.flushReported && got.flush !== 0) {
        this.flushReported = true;
        host.notifyStateChanged(); // sync_priority counts from the first flush report
      }
      // PhysicalConfirmReceivedLocation: the slot's restart_lsn follows the standby's flush.
      if (host.replSlot >= 0 && slots && m.flush !== 0) slots.confirmFlush(host.replSlot, host.id, got.flush);
      // SyncRepReleaseWaiters: a synchronous standby's reply releases the commits it covers.
      this.o.syncRep.onReply();
      if (m.replyRequested && this._streaming && !this.timelineEnded && host.conn.state === 'copyBoth') host.conn.sendKeepalive(this.sent, false);
      if (host.stopRequested && this.stopPingSent) {
        const replicated = m.flush !== 0 ? m.flush : m.write;
        if (replicated >= this.sent) {
          // Everything up to the shutdown checkpoint is confirmed: COPY 0, close, no CopyDone.
          host.conn.sendCommandComplete('COPY 0');
          host.endSocket();
        }
      }
    } else if (m.kind === 'R') {
      walsnd.reportReceived(slot, m.received);
      this.o.syncRep.onReceived();
    } else if (m.kind === 'F') {
      this.o.source.requestFlush(m.lsn);
    } else {
      walsnd.reportFeedback(slot, { xmin: m.xmin, xminEpoch: m.xminEpoch, catalogXmin: m.catalogXmin, catalogXminEpoch: m.catalogXminEpoch, replyTime: m.clientTime });
      if (host.replSlot >= 0 && slots) slots.setXmin(host.replSlot, host.id, m.xmin, m.catalogXmin);
    }
  }

  /** Keepalive at half the timeout of client silence; drop the connection at the full timeout. */
  private armTimer(): void {
    const timeout = this.o.walSenderTimeoutMs;
    if (timeout <= 0 || !this._streaming) return;
    if (this.timer) clearTimeout(this.timer);
    const now = performance.now();
    const due = this.lastReceiptMs + (this.waitingForPing ? timeout : timeout / 2);
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, due - now));
  }

  private onTimer(): void {
    this.timer = null;
    if (!this._streaming) return;
    const timeout = this.o.walSenderTimeoutMs;
    const silent = performance.now() - this.lastReceiptMs;
    if (silent >= timeout) {
      this.host.log('info', 'terminating walsender process due to replication timeout');
      this.host.terminate();
      return;
    }
    if (silent >= timeout / 2 && !this.waitingForPing && this.host.conn.state === 'copyBoth' && !this.timelineEnded) {
      this.host.conn.sendKeepalive(this.sent, true);
      this.waitingForPing = true;
    }
    this.armTimer();
  }
}
