// walsender: one worker thread per replication connection (PostgreSQL forks one process per
// connection). Started by ReplicationServer (src/replication/server.ts) in the primary's thread,
// which hands over the accepted socket's fd; this thread owns that socket, one
// ReplicationServerConn (startup, authentication, command parsing, COPY sub-protocols), its
// WalSndCtl slot, and an open segment file while catching up.
// An in-process standby (Standby.open({ primary })) is served the same way over a RingSocket
// (ring-socket.ts: two SharedArrayBuffer rings and a MessagePort instead of the fd); the protocol,
// WalSndCtl, limits and shutdown are the same, only the byte pipe differs, and XLogData is built
// in place in the outgoing ring (allocFrame), so its WAL bytes are copied once.
// Stops: when the socket closes (client went away, Terminate, FATAL, replication timeout), or
// when the primary asks it to stop (port message 'stop', at shutdown): a streaming walsender
// first sends every flushed byte (the shutdown checkpoint included), asks for a reply, waits for
// the reply to cover it, sends CommandComplete "COPY 0" and closes; any other walsender gets
// FATAL 57P01. Then it releases its slot and closes its port; the thread ends with no handles left.
//
// DEV DOCS — how WAL is read and sent (PostgreSQL's XLogSendPhysical):
//   * The target is XLogCtl FLUSHED. One XLogData carries at most `maxSendBytes` (1 MiB); when
//     more is pending its end is rounded down to a page boundary, else it ends at FLUSHED.
//   * The bytes come from the wal_buffers ring when RING_VALID_FROM <= the start: they are copied
//     out into the message buffer, then RING_VALID_FROM is checked again — the inserter advances it
//     *before* it re-zeroes a slot, so if it still is <= start no page of the range was recycled
//     during the copy (seqlock). Otherwise, or when further behind, they are read from the segment
//     files (catch-up). The ring is never handed to the socket directly: a queued write could go
//     out after the slot was recycled, and the inserter must never wait for a walsender.
//   * The message buffer is 2 + 30 + n bytes and the frame starts at offset 2, so the WAL bytes sit
//     at offset 32: 8-aligned like the ring, which keeps the SharedArrayBuffer copy on V8's fast path.
//   * Wake-ups: when caught up, one Atomics.waitAsync on FLUSH_SEQ is armed (sequence read before
//     FLUSHED, so a flush in between is never missed); the socket keeps the event loop alive.
//     Backpressure: sending pauses while the socket holds more than `maxQueuedBytes` and resumes on
//     'drain'. There is no polling and no sleep anywhere. One deliberate delay: while commits wait
//     for synchronous standbys, a walsender whose standby is not one of them sends at most every
//     walSenderAsyncDelayMs (a timer), so its work stays out of the synchronous commit's way.
//   * Timeouts: a keepalive with replyRequested at walSenderTimeoutMs/2 of client silence, and the
//     connection is dropped (no message, as PostgreSQL) after walSenderTimeoutMs.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isMainThread, type MessagePort, workerData } from 'node:worker_threads';
import { Errors, WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import { StageTrace, type StageTraceHandle } from '../util/stage-trace.js';
import { XLOG_BLCKSZ } from '../wal/consts.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import { historyFileName, segmentFileName, segNo } from '../wal/segment.js';
import { XC_FLUSHED, XC_FLUSH_SEQ, XC_INSERTED_UPTO, XC_RING_VALID_FROM, XLogCtl, type XLogCtlHandle } from '../wal/xlogctl.js';
import type { ReplicationCommand } from './protocol/commands.js';
import type { HbaRule } from './protocol/hba.js';
import { ReplicationColumns, writeXLogDataFrameHeader, XLOGDATA_FRAME_HEADER_BYTES, pgTimestampNow } from './protocol/messages.js';
import { ReplicationServerConn, type ServerConnEvent } from './protocol/server-conn.js';
import type { RingPairHandle } from './ring.js';
import { type ByteSocket, RingSocket } from './ring-socket.js';
import { tarEntryBytes, tarHeader, tarPadding, tarTrailer } from './tar.js';
import { WalSndCtl, WalSndState, type WalSndCtlHandle, type WalSndStateValue } from './walsndctl.js';
import { ReplicationSlots, type ReplicationSlotsHandle } from './slots.js';
import { SyncRepQueue, type SyncRepQueueHandle } from './syncrep-queue.js';
import { WalSndLag, type WalSndLagHandle } from './lag.js';

/** Everything a walsender worker gets at start (structured-cloneable). */
export interface WalSenderConfig {
  kind: 'walsender';
  /** The accepted socket's fd (-1 when `ring` is set). */
  fd: number;
  /** An in-process connection instead of a socket: its rings and its MessagePort (transferred). */
  ring?: { rings: RingPairHandle; peer: MessagePort } | null;
  remoteAddress: string;
  remotePort: number;
  backendStartMs: number;
  xlog: XLogCtlHandle;
  walsnd: WalSndCtlHandle;
  systemIdentifier: string;
  walDir: string;
  hba: HbaRule[];
  /** user → SCRAM verifier (or null: any user may log in where hba says trust). */
  users: Record<string, string> | null;
  maxSendBytes: number;
  walSenderTimeoutMs: number;
  authenticationTimeoutMs: number;
  maxClientMessageBytes: number;
  /** Bytes queued in the socket before sending pauses until 'drain'. */
  maxQueuedBytes: number;
  /** After a reply released the last waiting commit: watch for the next flush this long before sleeping (0: never spin). */
  walSenderSpinMicros: number;
  /** Not a synchronous standby while commits wait for those: send at most this often (ms; 0: at every flush). */
  walSenderAsyncDelayMs: number;
  /** Per-hop latency tracing (src/util/stage-trace.ts): `sent` after each XLogData; null: off. */
  stageTrace: StageTraceHandle | null;
  /** Replication slots (issue 4): absent = no slot table (slot commands then fail as with max_replication_slots = 0). */
  slots?: ReplicationSlotsHandle | null;
  /** Synchronous-commit wait queues: replies release waiting commits (SyncRepReleaseWaiters). */
  syncRep?: SyncRepQueueHandle | null;
  /** Time-lag words this walsender publishes (src/replication/lag.ts). */
  lag?: WalSndLagHandle | null;
  port: MessagePort;
}

/** Messages between a walsender and the primary's thread. */
export type ToPrimary =
  | { type: 'slot'; id: number; slot: number }
  /** State, or the standby's first flush report, changed: the primary re-derives sync states and emits events. */
  | { type: 'stateChanged' }
  | { type: 'backupStart'; fast: boolean }
  /** The backup's files are read: the primary closes the fds it opened (an fd is closed by the thread that opened it). */
  | { type: 'backupDone' }
  | { type: 'log'; level: 'info' | 'warning'; message: string };
export type FromPrimary =
  | { type: 'stop' }
  /** pg_terminate_backend: FATAL 57P01 to the client and close, now (the primary invalidated this walsender's slot). */
  | { type: 'terminate' }
  | { type: 'backupStarted'; redoLsn: Lsn; tli: number; files: BackupFile[] }
  | { type: 'backupFailed'; sqlstate: string; code: string; message: string };
export interface BackupFile {
  name: string;
  /**
   * File contents, or an fd opened by the primary's thread: this worker only reads it (pread) and
   * sends `backupDone` when finished; the primary closes it (Node tracks fds per thread, and an fd
   * closed by another thread than its opener is reported, and would be closed a second time if
   * the opener was a worker that exits).
   */
  data?: Uint8Array;
  fd?: number;
  size: number;
  mtimeSec: number;
}

/**
 * WAL bytes sent in one event-loop turn before yielding (setImmediate), so replies, timers and
 * the stop request are served during a long catch-up even when the kernel takes every write at once.
 */
/** After a final message (an ErrorResponse, CommandComplete), how long the client has to read it before the socket is destroyed. */
const END_SOCKET_TIMEOUT_MS = 2_000;
const MAX_SEND_BYTES_PER_TURN = 8 * 1024 * 1024;
/** walSenderAsyncDelayMs: how long a cached "our standby is (not) synchronous" is trusted. */
const AM_SYNC_RECHECK_MS = 10;
/** walSenderAsyncDelayMs applies while commits waited for synchronous standbys within this many ms. */
const SYNC_WAIT_RECENT_MS = 100;
/** Bytes per CopyData of a base backup (PostgreSQL's TAR_SEND_SIZE is 32 kB). */
const BACKUP_CHUNK_BYTES = 64 * 1024;
/** Padding before the frame so the WAL payload lands 8-aligned (2 + 30 = 32). */
const FRAME_PAD = 8 - (XLOGDATA_FRAME_HEADER_BYTES % 8);

function segSizeText(bytes: number): string {
  const GB = 1024 * 1024 * 1024;
  return bytes % GB === 0 ? `${bytes / GB}GB` : `${bytes / (1024 * 1024)}MB`;
}
function msText(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 60_000 === 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export class WalSender {
  private readonly cfg: WalSenderConfig;
  private readonly ctl: XLogCtl;
  private readonly walsnd: WalSndCtl;
  private readonly socket: ByteSocket;
  private readonly conn: ReplicationServerConn;
  private readonly port: MessagePort;
  private readonly segSize: number;
  private slot = -1;
  private id = 0;
  private closed = false;
  // streaming
  private streaming = false;
  private sent: Lsn = 0;
  private state: WalSndStateValue = WalSndState.STARTUP;
  private waitArmed = false;
  private waitingDrain = false;
  private yielded = false;
  private lastReceiptMs = 0;
  private waitingForPing = false;
  private timer: NodeJS.Timeout | null = null;
  private authTimer: NodeJS.Timeout | null = null;
  // shutdown
  private stopRequested = false;
  private stopPingSent = false;
  private backupRunning = false;
  private backupReply: ((m: FromPrimary) => void) | null = null;
  // open segment file for catch-up reads
  private segFd = -1;
  private segFdNo = -1;
  // replication slots and synchronous replication (src/replication/slots.ts, syncrep-queue.ts)
  private readonly slots: ReplicationSlots | null;
  private readonly syncRep: SyncRepQueue | null;
  private readonly trace: StageTrace | null;
  /** Index of the slot START_REPLICATION SLOT acquired, -1 = none. */
  private replSlot = -1;
  private readonly lag: WalSndLag | null;
  /** True once the standby reported a flush position in this START_REPLICATION (its priority then counts). */
  private flushReported = false;
  // Message buffers, reused once the socket has handed them to the kernel (fresh 1 MiB buffers
  // would each cost an mmap, page faults and kernel zeroing).
  private readonly framePool: Buffer[] = [];
  private framePoolMax = 0;
  private frameInFlight: Buffer | null = null;

  constructor(cfg: WalSenderConfig) {
    const ring = cfg.ring ?? null;
    const sock: ByteSocket = ring !== null
      ? new RingSocket({ side: 'server', rings: ring.rings, peer: ring.peer, zeroCopy: false, maxFrameBytes: FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + cfg.maxSendBytes })
      : new net.Socket({ fd: cfg.fd, readable: true, writable: true });
    // An in-process standby's ring is the send buffer: sending pauses at its high-water mark.
    this.cfg = sock instanceof RingSocket ? { ...cfg, maxQueuedBytes: sock.highWaterBytes } : cfg;
    this.socket = sock;
    this.ctl = new XLogCtl(cfg.xlog);
    this.walsnd = new WalSndCtl(cfg.walsnd);
    this.slots = cfg.slots ? new ReplicationSlots(cfg.slots) : null;
    this.syncRep = cfg.syncRep ? new SyncRepQueue(cfg.syncRep) : null;
    this.trace = cfg.stageTrace ? new StageTrace(cfg.stageTrace) : null;
    this.lag = cfg.lag ? new WalSndLag(cfg.lag) : null;
    this.segSize = this.ctl.segSize;
    this.port = cfg.port;
    this.socket.setNoDelay(true);
    const users = cfg.users;
    this.conn = new ReplicationServerConn({
      send: (b) => this.write(b),
      onEvent: (ev) => this.onEvent(ev),
      hba: cfg.hba,
      lookupUser: (u) => {
        if (users === null) return { password: null, replication: true };
        const v = users[u];
        return v === undefined ? undefined : { password: v, replication: true };
      },
      remoteAddress: cfg.remoteAddress,
      connType: ring !== null ? 'local' : 'host',
      maxMessageBytes: cfg.maxClientMessageBytes,
      maxPendingInputBytes: cfg.maxClientMessageBytes + 64 * 1024,
      pauseInputAtBytes: cfg.maxClientMessageBytes,
    });
    this.port.on('message', (m: FromPrimary) => this.onPrimaryMessage(m));
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('end', () => this.conn.end());
    this.socket.on('error', (e: Error) => {
      this.log('info', `socket error: ${e.message}`);
      // A damaged in-process ring is bad input (the reply direction still works): FATAL, close.
      if (e instanceof WalstreamError && !this.socket.destroyed && !this.conn.closed) {
        this.conn.sendFatal(e);
        this.endSocket();
      }
    });
    this.socket.on('close', () => this.cleanup());
    this.socket.on('drain', () => {
      if (this.waitingDrain) {
        this.waitingDrain = false;
        this.sendPending();
      }
    });
    if (cfg.authenticationTimeoutMs > 0) {
      this.authTimer = setTimeout(() => {
        if (this.conn.state === 'startup' || this.conn.state === 'auth') {
          this.log('info', 'authentication timeout');
          this.terminate();
        }
      }, cfg.authenticationTimeoutMs);
    }
  }

  // -------------------------------------------------------------------------------------------
  // I/O plumbing

  private write(b: Uint8Array): void {
    if (this.socket.destroyed) return;
    const raw = this.frameInFlight;
    if (raw !== null && b.buffer === raw.buffer) {
      this.frameInFlight = null;
      let back = false;
      const giveBack = () => {
        if (back) return;
        back = true;
        if (this.framePool.length < this.framePoolMax) this.framePool.push(raw);
      };
      this.socket.write(b, giveBack);
      // Nothing left in Node's queue: the kernel took it all synchronously, so the buffer can be
      // reused at once (like PostgreSQL's one send buffer, it stays hot in the CPU cache).
      if (this.socket.writableLength === 0) giveBack();
      return;
    }
    this.socket.write(b);
  }

  private postToPrimary(m: ToPrimary): void {
    try {
      this.port.postMessage(m);
    } catch {
      /* port closed */
    }
  }

  private log(level: 'info' | 'warning', message: string): void {
    if (this.closed) return;
    try {
      this.port.postMessage({ type: 'log', level, message: `walsender ${this.id || '-'} (${this.cfg.remoteAddress}:${this.cfg.remotePort}): ${message}` } satisfies ToPrimary);
    } catch {
      /* port closed */
    }
  }

  private onData(chunk: Buffer): void {
    if (this.streaming) {
      this.lastReceiptMs = performance.now();
      this.waitingForPing = false;
    }
    this.conn.feed(chunk);
    if (!this.conn.closed && !this.conn.wantsInput && !this.socket.isPaused()) this.socket.pause();
  }

  private resumeInput(): void {
    if (!this.conn.closed && this.conn.wantsInput && this.socket.isPaused()) this.socket.resume();
  }

  /** Close after what was written (FATAL, COPY 0) has gone out. */
  /** Close after what is queued (a last ErrorResponse) was sent, or after `drainTimeoutMs` at most. */
  private endSocket(drainTimeoutMs = END_SOCKET_TIMEOUT_MS): void {
    this.conn.close();
    this.stopStreamingState();
    if (!this.socket.destroyed) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), drainTimeoutMs).unref();
    }
  }

  /** Drop the connection at once (replication timeout, unknown message kind). */
  private terminate(): void {
    this.conn.close();
    this.stopStreamingState();
    this.socket.destroy();
  }

  private cleanup(): void {
    if (this.closed) return;
    if (process.env.WALSTREAM_DEBUG_CPU === '1') {
      const f = fs.readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ');
      this.log('info', `thread cpu user ${Number(f[11]) / 100} s sys ${Number(f[12]) / 100} s`);
    }
    this.closed = true;
    this.streaming = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.authTimer) clearTimeout(this.authTimer);
    this.closeSegment();
    // ReplicationSlotCleanup: release the slot in use, drop this session's temporary slots.
    if (this.slots && this.id !== 0) this.slots.releaseSession(this.id);
    this.replSlot = -1;
    if (this.slot >= 0) this.walsnd.release(this.slot, this.id);
    this.port.close();
  }

  // -------------------------------------------------------------------------------------------
  // Connection events

  private onEvent(ev: ServerConnEvent): void {
    switch (ev.type) {
      case 'startup': {
        // InitProcess: a walsender needs a free slot before it authenticates (FATAL 53300).
        try {
          const { slot, id } = this.walsnd.claim({
            applicationName: ev.applicationName,
            clientAddr: this.cfg.remoteAddress,
            clientPort: this.cfg.remotePort,
            backendStartMs: this.cfg.backendStartMs,
          });
          this.slot = slot;
          this.id = id;
          this.port.postMessage({ type: 'slot', id, slot } satisfies ToPrimary);
        } catch (e) {
          if (!(e instanceof WalstreamError)) throw e;
          this.conn.sendFatal(e);
          this.endSocket();
        }
        return;
      }
      case 'authenticated':
        if (this.authTimer) clearTimeout(this.authTimer);
        this.authTimer = null;
        if (this.stopRequested) {
          this.conn.sendFatal(Errors.adminShutdown());
          this.endSocket();
        }
        return;
      case 'command':
        this.onCommand(ev.command);
        return;
      case 'copyData':
        this.onCopyData(ev.message);
        return;
      case 'copyDone':
        // The client ended streaming (§4.4a): our CopyDone went out; finish the command.
        this.stopStreamingState();
        this.conn.sendCommandComplete('START_STREAMING');
        this.conn.sendCommandComplete('START_REPLICATION');
        this.conn.sendReadyForQuery();
        if (this.stopRequested) this.stopIdle();
        return;
      case 'streamAborted':
        this.log('info', `streaming aborted: ${ev.error.message}`);
        this.endSocket();
        return;
      case 'cancel':
      case 'terminate':
        this.endSocket();
        return;
      case 'error':
        this.log('info', `connection error: ${ev.error.message}`);
        if (ev.sentToClient) this.endSocket();
        else this.terminate();
        return;
    }
  }

  private onPrimaryMessage(m: FromPrimary): void {
    if (m.type === 'terminate') {
      // The session is over at once: replication slot and WalSndCtl slot released (the row leaves
      // pg_stat_replication). The FATAL goes out behind the WAL already queued; a client that does
      // not read it within walSenderTimeoutMs is cut off.
      this.log('info', 'terminating walsender process due to administrator command');
      this.stopStreamingState();
      if (this.slot >= 0) {
        this.walsnd.release(this.slot, this.id);
        this.slot = -1;
        this.notifyStateChanged();
      }
      if (!this.conn.closed) this.conn.sendFatal(Errors.adminShutdown());
      this.endSocket(this.cfg.walSenderTimeoutMs > 0 ? this.cfg.walSenderTimeoutMs : END_SOCKET_TIMEOUT_MS);
      return;
    }
    if (m.type === 'stop') {
      this.stopRequested = true;
      if (this.streaming) {
        this.setState(WalSndState.STOPPING);
        this.sendPending();
      } else if (!this.backupRunning) {
        this.stopIdle();
      }
      return;
    }
    const r = this.backupReply;
    this.backupReply = null;
    if (r) r(m);
  }

  /** Shutdown of a walsender that is not streaming: FATAL 57P01, close. */
  private stopIdle(): void {
    if (this.conn.closed) return;
    this.conn.sendFatal(Errors.adminShutdown());
    this.endSocket();
  }

  private setState(s: WalSndStateValue): void {
    if (this.state === s || this.slot < 0) return;
    this.state = s;
    this.walsnd.setState(this.slot, s);
    this.notifyStateChanged();
  }

  /** Tell the primary that what pg_stat_replication derives from this walsender may have changed. */
  private notifyStateChanged(): void {
    if (this.closed) return;
    try {
      this.port.postMessage({ type: 'stateChanged' } satisfies ToPrimary);
    } catch {
      /* port closed */
    }
  }

  // -------------------------------------------------------------------------------------------
  // Commands

  private onCommand(cmd: ReplicationCommand): void {
    const conn = this.conn;
    try {
      switch (cmd.kind) {
        case 'IDENTIFY_SYSTEM':
          conn.sendResultSet(ReplicationColumns.identifySystem, [[this.cfg.systemIdentifier, String(this.ctl.tli), lsnToString(this.ctl.load(XC_FLUSHED)), null]], 'IDENTIFY_SYSTEM');
          break;
        case 'SHOW': {
          const v = this.showVariable(cmd.name);
          conn.sendResultSet(ReplicationColumns.show(v.name), [[v.value]], 'SHOW');
          break;
        }
        case 'TIMELINE_HISTORY': {
          const name = historyFileName(cmd.timeline);
          let content: Buffer;
          try {
            content = fs.readFileSync(path.join(this.cfg.walDir, name));
          } catch {
            conn.sendRowDescription(ReplicationColumns.timelineHistory);
            throw Errors.undefinedFile(`could not open file "pg_wal/${name}": No such file or directory`);
          }
          conn.sendResultSet(ReplicationColumns.timelineHistory, [[name, content]], 'TIMELINE_HISTORY');
          break;
        }
        case 'START_REPLICATION':
          if (cmd.replicationKind !== 'physical') throw Errors.featureNotSupported('logical replication is not supported by walstream');
          this.startReplication(cmd.slotName, cmd.startLsn, cmd.timeline);
          return; // answers itself
        case 'BASE_BACKUP':
          void this.baseBackup(cmd.backup).catch((e) => this.commandFailed(e));
          return;
        case 'READ_REPLICATION_SLOT':
          // Unknown slot (or no slot table): one all-NULL row, as PostgreSQL answers.
          conn.sendResultSet(ReplicationColumns.readReplicationSlot, [this.slots ? this.slots.readRow(cmd.slotName, this.ctl.tli) : [null, null, null]], 'READ_REPLICATION_SLOT');
          break;
        case 'CREATE_REPLICATION_SLOT': {
          if (cmd.replicationKind !== 'physical') throw Errors.featureNotSupported('logical replication is not supported by walstream');
          const slots = this.requireSlots();
          slots.create(cmd.slotName, { reserveWal: cmd.reserveWal, temporary: cmd.temporary, pid: this.id });
          // consistent_point is 0/0 for a physical slot, even with RESERVE_WAL (PostgreSQL 15).
          conn.sendResultSet(ReplicationColumns.createReplicationSlot, [[cmd.slotName, '0/0', null, null]], 'CREATE_REPLICATION_SLOT');
          break;
        }
        case 'DROP_REPLICATION_SLOT': {
          const slots = this.requireSlots();
          void slots.drop(cmd.slotName, { pid: this.id, wait: cmd.wait }).then(() => {
            if (this.conn.closed) return;
            conn.sendCommandComplete('DROP_REPLICATION_SLOT');
            conn.sendReadyForQuery();
            this.resumeInput();
          }, (e) => this.commandFailed(e));
          return; // answers when the drop is done (WAIT may sleep)
        }
      }
      conn.sendReadyForQuery();
    } catch (e) {
      this.commandFailed(e);
    }
  }

  /** The slot table, or PostgreSQL's error when there is none (max_replication_slots = 0). */
  private requireSlots(): ReplicationSlots {
    if (this.slots === null) throw Errors.objectNotInPrerequisiteState('replication slots can only be used if max_replication_slots > 0');
    return this.slots;
  }

  private commandFailed(e: unknown): void {
    if (!this.streaming) this.releaseReplSlot();
    if (!(e instanceof WalstreamError)) {
      this.log('warning', `internal error: ${(e as Error).stack ?? String(e)}`);
      e = Errors.internal((e as Error).message ?? String(e));
    }
    if (this.conn.closed) return;
    this.conn.sendError(e as WalstreamError);
    this.conn.sendReadyForQuery();
    this.resumeInput();
  }

  private showVariable(name: string): { name: string; value: string } {
    const vars: Record<string, string> = {
      wal_segment_size: segSizeText(this.segSize),
      data_directory_mode: '0700',
      wal_block_size: String(XLOG_BLCKSZ),
      block_size: '8192',
      server_version: '15.0',
      server_version_num: '150000',
      integer_datetimes: 'on',
      server_encoding: 'SQL_ASCII',
      max_wal_senders: String(this.walsnd.maxWalSenders),
      wal_sender_timeout: msText(this.cfg.walSenderTimeoutMs),
      timezone: 'UTC',
    };
    const v = vars[name.toLowerCase()];
    if (v === undefined) throw Errors.undefinedParameter(name);
    return { name: name.toLowerCase() === 'timezone' ? 'TimeZone' : name.toLowerCase(), value: v };
  }

  // -------------------------------------------------------------------------------------------
  // START_REPLICATION and streaming

  private startReplication(slotName: string | null, start: Lsn, timeline: number | null): void {
    const conn = this.conn;
    // ReplicationSlotAcquire: 42704 missing, 55006 active elsewhere, 55000 invalidated — all before CopyBothResponse.
    if (slotName !== null) {
      if (this.slots === null) throw Errors.undefinedObject(`replication slot "${slotName}" does not exist`);
      if (this.replSlot >= 0) this.slots.release(this.replSlot, this.id);
      this.replSlot = this.slots.acquire(slotName, this.id);
    }
    const tli = timeline ?? this.ctl.tli;
    if (tli !== this.ctl.tli) throw Errors.internal(`requested timeline ${tli} is not in this server's history`);
    if (this.stopRequested) throw Errors.adminShutdown();
    conn.enterCopyBoth();
    if (conn.state !== 'copyBoth') {
      this.releaseReplSlot();
      return; // the client's pipelined input ended the copy already
    }
    const flush = this.ctl.load(XC_FLUSHED);
    if (start > flush) {
      this.releaseReplSlot();
      conn.sendError(Errors.internal(`requested starting point ${lsnToString(start)} is ahead of the WAL flush position of this server ${lsnToString(flush)}`));
      conn.sendReadyForQuery();
      return;
    }
    // Publish the start first (it pins WAL), then make sure the segment is still there.
    this.walsnd.startStreaming(this.slot, start, WalSndState.CATCHUP);
    this.state = WalSndState.CATCHUP;
    this.lag?.begin(this.slot);
    this.flushReported = false;
    this.notifyStateChanged();
    if (start < flush && !fs.existsSync(path.join(this.cfg.walDir, segmentFileName(this.ctl.tli, segNo(start, this.segSize), this.segSize)))) {
      this.stopStreamingState();
      conn.sendError(Errors.walSegmentRemoved(segmentFileName(this.ctl.tli, segNo(start, this.segSize), this.segSize)));
      conn.sendReadyForQuery();
      return;
    }
    this.sent = start;
    this.streaming = true;
    this.stopPingSent = false;
    this.lastReceiptMs = performance.now();
    this.waitingForPing = false;
    if (this.stopRequested) this.setState(WalSndState.STOPPING);
    this.armTimer();
    this.sendPending();
  }

  /** End of START_REPLICATION (or its failure): the slot is released (a temporary one stays with the session). */
  private releaseReplSlot(): void {
    if (this.replSlot >= 0 && this.slots && !this.closed) this.slots.release(this.replSlot, this.id);
    this.replSlot = -1;
  }

  private stopStreamingState(): void {
    this.releaseReplSlot();
    if (!this.streaming) return;
    this.streaming = false;
    this.closeSegment();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    if (this.slot >= 0 && !this.closed) this.setState(WalSndState.STARTUP);
  }

  /** Send everything flushed, as far as the socket takes it; then wait for more (no polling). */
  private sendPending(): void {
    try {
      this.trySend();
    } catch (e) {
      // WAL that cannot be read (segment removed, short file): ERROR to the client, then close.
      const err = e instanceof WalstreamError ? e : Errors.internal((e as Error).message ?? String(e));
      this.log('warning', `streaming failed at ${lsnToString(this.sent)}: ${err.message}`);
      this.stopStreamingState();
      if (this.conn.state === 'copyBoth') this.conn.sendError(err);
      this.endSocket();
    }
  }

  private trySend(): void {
    if (!this.streaming || this.waitingDrain || this.yielded || this.conn.state !== 'copyBoth') return;
    const sock = this.socket;
    this.adviseReceivedReport();
    let flushed = this.ctl.load(XC_FLUSHED);
    if (this.sent < flushed && this.deferForSyncStandbys()) return;
    if (this.sent < flushed) {
      const turnEnd = this.sent + MAX_SEND_BYTES_PER_TURN;
      // Each message goes to the kernel as soon as it is built (no cork): the receiver starts on
      // it while the next one is read. Stop when the socket holds maxQueuedBytes; 'drain' resumes.
      while (this.sent < flushed && sock.writableLength < this.cfg.maxQueuedBytes) {
        if (this.sent >= turnEnd) {
          this.yielded = true;
          setImmediate(() => {
            this.yielded = false;
            this.sendPending();
          });
          return;
        }
        const end = this.sendOne(flushed);
        this.sent = end;
        this.walsnd.setSent(this.slot, end);
        this.lag?.sent(this.slot, end);
        flushed = this.ctl.load(XC_FLUSHED);
      }
      if (!this.streaming) return;
      if (this.sent < flushed) {
        // Socket full: resume on 'drain'.
        this.waitingDrain = true;
        return;
      }
    }
    // Caught up with the flush position.
    if (this.state === WalSndState.CATCHUP) this.setState(WalSndState.STREAMING);
    if (this.stopRequested) {
      this.setState(WalSndState.STOPPING);
      if (!this.stopPingSent) {
        this.stopPingSent = true;
        this.conn.sendKeepalive(this.sent, true);
      }
      return; // the reply that covers `sent` ends the stream (onCopyData)
    }
    this.armWait();
  }

  /** What the client was last told by `walstream.received_report` (the startup exchange said on). */
  private receivedReportOn = true;

  /**
   * `R` and prompt apply reports serve only commits that wait for synchronous standbys: a
   * walstream walreceiver is asked for them while synchronous_standby_names names any standby, and
   * told to stop when it names none (each is one more message per flush, in each direction). Sent
   * before the WAL that follows, so the standby knows before it receives what a commit waits for.
   */
  private adviseReceivedReport(): void {
    if (!this.conn.receivedReportAgreed) return;
    const want = this.syncRep !== null && this.syncRep.standbysDefined;
    if (want === this.receivedReportOn) return;
    this.receivedReportOn = want;
    this.conn.sendReceivedReportMode(want);
  }

  /** walSenderAsyncDelayMs: the send that was put off, and whether our standby is a synchronous one (cached). */
  private deferTimer: NodeJS.Timeout | null = null;
  private deferDue = false;
  private amSync = true;
  private amSyncCheckedAt = -Infinity;
  private syncWaitSeenAt = -Infinity;

  /**
   * A walsender whose standby is not synchronous, while commits wait for the synchronous ones,
   * sends at most every walSenderAsyncDelayMs (batching), leaving the CPU to the synchronous
   * path; true if this send is put off (a timer resumes it). Whether our standby is synchronous is
   * re-read from WalSndCtl at most every AM_SYNC_RECHECK_MS (a potential standby that takes over
   * is deferred at most that long).
   */
  private deferForSyncStandbys(): boolean {
    const ms = this.cfg.walSenderAsyncDelayMs;
    if (ms <= 0 || this.deferDue) return false;
    const q = this.syncRep;
    if (q === null || !q.standbysDefined || this.state !== WalSndState.STREAMING) return false;
    const now = performance.now();
    // Commits wait for synchronous standbys now, or did lately (a lone committer is between its
    // local flush and its queue entry when this thread wakes for that flush).
    if (q.queued > 0) this.syncWaitSeenAt = now;
    else if (now - this.syncWaitSeenAt > SYNC_WAIT_RECENT_MS) return false;
    if (now - this.amSyncCheckedAt > AM_SYNC_RECHECK_MS) {
      this.amSync = q.isSyncStandby(this.walsnd.all(), this.slot);
      this.amSyncCheckedAt = now;
    }
    if (this.amSync) return false;
    if (this.deferTimer === null) {
      this.deferTimer = setTimeout(() => {
        this.deferTimer = null;
        this.deferDue = true;
        this.sendPending();
        this.deferDue = false;
      }, ms);
    }
    return true;
  }

  /**
   * This reply released the last waiting commit (a lone committer, or a few): its next commit
   * usually follows within a flush time. Watch FLUSHED for up to walSenderSpinMicros instead of
   * sleeping, so that WAL goes out without the ~60 µs of waking this thread (limits-here.md),
   * once per commit on the synchronous path. Under concurrency (commits still queued) nothing
   * spins: the FLUSH_SEQ wait wakes us, and the CPU goes to the committers.
   */
  private spinForNextFlush(): void {
    const budgetMs = this.cfg.walSenderSpinMicros / 1000;
    if (budgetMs <= 0 || !this.streaming || this.syncRep === null || this.syncRep.queued > 0) return;
    const ctl = this.ctl;
    const deadline = performance.now() + budgetMs;
    for (let i = 0; ; i++) {
      if (ctl.load(XC_FLUSHED) > this.sent) {
        this.sendPending();
        return;
      }
      // Nothing inserted yet and half the budget gone: the committer is not coming back soon.
      if ((i & 63) === 63) {
        const now = performance.now();
        if (now >= deadline) return;
        if (ctl.load(XC_INSERTED_UPTO) <= this.sent && now >= deadline - budgetMs / 2) return;
      }
    }
  }

  /** Arm one FLUSH_SEQ wait. The sequence is read before FLUSHED so no flush is missed. */
  private armWait(): void {
    if (this.waitArmed || !this.streaming) return;
    const i32 = this.ctl.i32;
    const seq = Atomics.load(i32, XC_FLUSH_SEQ);
    if (this.ctl.load(XC_FLUSHED) > this.sent) {
      queueMicrotask(() => this.sendPending());
      return;
    }
    const r = Atomics.waitAsync(i32, XC_FLUSH_SEQ, seq);
    if (!r.async) {
      queueMicrotask(() => this.sendPending());
      return;
    }
    this.waitArmed = true;
    void r.value.then(() => {
      this.waitArmed = false;
      this.sendPending();
    });
  }

  /** Build and send one XLogData from `this.sent`; returns its end. */
  private sendOne(flushed: Lsn): Lsn {
    const start = this.sent;
    const max = this.cfg.maxSendBytes;
    let end: Lsn;
    if (flushed - start > max) {
      end = start + max;
      end -= end % XLOG_BLCKSZ;
      assert(end > start, 'XLogData must make progress');
    } else {
      end = flushed;
    }
    const n = end - start;
    const size = FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + this.cfg.maxSendBytes;
    if (this.framePoolMax === 0) this.framePoolMax = Math.ceil(this.cfg.maxQueuedBytes / this.cfg.maxSendBytes) + 2;
    // In-process standby: build the message in place in the ring (published by the write, no copy).
    const inRing = this.socket.allocFrame?.(XLOGDATA_FRAME_HEADER_BYTES + n, FRAME_PAD) ?? null;
    const raw = inRing ?? this.framePool.pop() ?? Buffer.allocUnsafeSlow(size);
    const frame = raw.subarray(FRAME_PAD, FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + n);
    this.readWal(raw, FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES, start, end);
    writeXLogDataFrameHeader(frame, 0, { dataStart: start, walEnd: flushed, sendTime: pgTimestampNow() }, n);
    this.frameInFlight = inRing === null ? (raw as Buffer) : null;
    this.trace?.record('sent', end); // (before the standby can have it)
    this.conn.sendXLogDataFrame(frame);
    this.frameInFlight = null;
    return end;
  }

  /** Copy WAL [from, to) into buf[off…]: from the ring if it still holds it, else from the segment files. */
  private readWal(buf: Uint8Array, off: number, from: Lsn, to: Lsn): void {
    const ctl = this.ctl;
    if (ctl.load(XC_RING_VALID_FROM) <= from) {
      const ring = ctl.ring;
      let p = from;
      let o = off;
      while (p < to) {
        const ro = ctl.ringOffset(p);
        const k = Math.min(to - p, ring.length - ro);
        buf.set(ring.subarray(ro, ro + k), o);
        p += k;
        o += k;
      }
      // Seqlock check: a slot in the range recycled during the copy moved RING_VALID_FROM past `from`.
      if (ctl.load(XC_RING_VALID_FROM) <= from) return;
    }
    this.readSegments(buf, off, from, to);
  }

  private readSegments(buf: Uint8Array, off: number, from: Lsn, to: Lsn): void {
    let p = from;
    let o = off;
    while (p < to) {
      const seg = segNo(p, this.segSize);
      const fd = this.openSegment(seg);
      const segEnd = (seg + 1) * this.segSize;
      const k = Math.min(to, segEnd) - p;
      let done = 0;
      while (done < k) {
        const r = fs.readSync(fd, buf, o + done, k - done, (p % this.segSize) + done);
        if (r === 0) throw Errors.walCorrupt(lsnToString(p + done), `segment file ${segmentFileName(this.ctl.tli, seg, this.segSize)} is too short`);
        done += r;
      }
      p += k;
      o += k;
    }
  }

  private openSegment(seg: number): number {
    if (this.segFdNo === seg) return this.segFd;
    this.closeSegment();
    const name = segmentFileName(this.ctl.tli, seg, this.segSize);
    try {
      this.segFd = fs.openSync(path.join(this.cfg.walDir, name), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw Errors.walSegmentRemoved(name);
      throw e;
    }
    this.segFdNo = seg;
    return this.segFd;
  }

  private closeSegment(): void {
    if (this.segFd >= 0) fs.closeSync(this.segFd);
    this.segFd = -1;
    this.segFdNo = -1;
  }

  private onCopyData(m: Extract<ServerConnEvent, { type: 'copyData' }>['message']): void {
    if (this.slot < 0) return;
    if (m.kind === 'r') {
      const got = this.walsnd.reportReply(this.slot, { write: m.write, flush: m.flush, apply: m.apply, replyTime: m.clientTime });
      this.lag?.replied(this.slot, got.write, got.flush, got.apply);
      if (!this.flushReported && got.flush !== 0) {
        this.flushReported = true;
        this.notifyStateChanged(); // sync_priority counts from the first flush report
      }
      // PhysicalConfirmReceivedLocation: the slot's restart_lsn follows the standby's flush.
      if (this.replSlot >= 0 && this.slots && m.flush !== 0) this.slots.confirmFlush(this.replSlot, this.id, got.flush);
      // SyncRepReleaseWaiters: a synchronous standby's reply releases the commits it covers.
      if (this.syncRep && this.syncRep.standbysDefined) {
        const released = this.syncRep.releaseWaiters(this.walsnd.all(), this.slot);
        if (released > 0) this.spinForNextFlush();
      }
      if (m.replyRequested && this.streaming && this.conn.state === 'copyBoth') this.conn.sendKeepalive(this.sent, false);
      if (this.stopRequested && this.stopPingSent) {
        const replicated = m.flush !== 0 ? m.flush : m.write;
        if (replicated >= this.sent) {
          // §4.4(c): everything up to the shutdown checkpoint is confirmed: COPY 0, close, no CopyDone.
          this.conn.sendCommandComplete('COPY 0');
          this.endSocket();
        }
      }
    } else if (m.kind === 'R') {
      // walstream's received position (remote_receive): releases waiters before the standby's write.
      this.walsnd.reportReceived(this.slot, m.received);
      if (this.syncRep && this.syncRep.standbysDefined) this.syncRep.releaseWaiters(this.walsnd.all(), this.slot);
    } else {
      this.walsnd.reportFeedback(this.slot, { xmin: m.xmin, xminEpoch: m.xminEpoch, catalogXmin: m.catalogXmin, catalogXminEpoch: m.catalogXminEpoch, replyTime: m.clientTime });
      if (this.replSlot >= 0 && this.slots) this.slots.setXmin(this.replSlot, this.id, m.xmin, m.catalogXmin);
    }
  }

  /** Keepalive at half the timeout of client silence; drop the connection at the full timeout. */
  private armTimer(): void {
    const timeout = this.cfg.walSenderTimeoutMs;
    if (timeout <= 0 || !this.streaming) return;
    if (this.timer) clearTimeout(this.timer);
    const now = performance.now();
    const due = this.lastReceiptMs + (this.waitingForPing ? timeout : timeout / 2);
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, due - now));
  }

  private onTimer(): void {
    this.timer = null;
    if (!this.streaming || this.closed) return;
    const timeout = this.cfg.walSenderTimeoutMs;
    const silent = performance.now() - this.lastReceiptMs;
    if (silent >= timeout) {
      this.log('info', 'terminating walsender process due to replication timeout');
      this.terminate();
      return;
    }
    if (silent >= timeout / 2 && !this.waitingForPing && this.conn.state === 'copyBoth') {
      this.conn.sendKeepalive(this.sent, true);
      this.waitingForPing = true;
    }
    this.armTimer();
  }

  // -------------------------------------------------------------------------------------------
  // BASE_BACKUP (minimal: control file, version file, checkpoint snapshot)

  private async baseBackup(o: import('./protocol/commands.js').BaseBackupOptions): Promise<void> {
    const conn = this.conn;
    if (o.target !== null && o.target !== 'client') throw Errors.featureNotSupported(`backup target "${o.target}" is not supported by walstream`);
    if (o.compression !== 'none') throw Errors.featureNotSupported('compressed base backups are not supported by walstream');
    if (o.manifest !== 'no') throw Errors.featureNotSupported('backup manifests are not supported by walstream');
    if (o.includeWal) throw Errors.featureNotSupported('BASE_BACKUP WAL is not supported by walstream: stream WAL with START_REPLICATION');
    if (this.stopRequested) throw Errors.adminShutdown();
    this.backupRunning = true;
    this.setState(WalSndState.BACKUP);
    let files: BackupFile[] = [];
    try {
      const reply = await new Promise<FromPrimary>((resolve) => {
        this.backupReply = resolve;
        this.port.postMessage({ type: 'backupStart', fast: o.fastCheckpoint } satisfies ToPrimary);
      });
      if (reply.type === 'backupFailed') throw new WalstreamError(reply.code, reply.sqlstate, reply.message);
      assert(reply.type === 'backupStarted', 'unexpected reply to backupStart');
      files = reply.files;
      if (this.conn.closed) return;
      let tarBytes = 2 * 512;
      for (const f of files) tarBytes += tarEntryBytes(f.size);
      conn.sendResultSet(ReplicationColumns.baseBackupXlogRecPtr, [[lsnToString(reply.redoLsn), String(reply.tli)]], 'SELECT');
      conn.sendResultSet(ReplicationColumns.baseBackupTablespaces, [[null, null, String(Math.ceil(tarBytes / 1024))]], 'SELECT');
      conn.enterCopyOut();
      conn.sendCopyData(Buffer.from('nbase.tar\0\0', 'latin1'));
      for (const f of files) {
        await this.sendBackupBytes(tarHeader({ name: f.name, size: f.size, mtimeSec: f.mtimeSec }));
        if (f.data) await this.sendBackupBytes(f.data);
        else {
          assert(f.fd !== undefined, 'backup file without data or fd');
          const fd = f.fd;
          let pos = 0;
          while (pos < f.size) {
            const chunk = Buffer.allocUnsafe(Math.min(BACKUP_CHUNK_BYTES, f.size - pos));
            const r = fs.readSync(fd, chunk, 0, chunk.length, pos);
            if (r !== chunk.length) throw Errors.internal(`checkpoint snapshot "${f.name}" changed size during the backup`);
            pos += r;
            await this.sendBackupBytes(chunk);
          }
        }
        await this.sendBackupBytes(tarPadding(f.size));
      }
      await this.sendBackupBytes(tarTrailer());
      if (this.conn.closed) return;
      conn.endCopyOut();
      conn.sendResultSet(ReplicationColumns.baseBackupXlogRecPtr, [[lsnToString(this.ctl.load(XC_FLUSHED)), String(reply.tli)]], 'SELECT');
      conn.sendCommandComplete('BASE_BACKUP');
      this.setState(WalSndState.STARTUP);
      conn.sendReadyForQuery();
      this.resumeInput();
    } finally {
      if (files.some((f) => f.fd !== undefined)) this.postToPrimary({ type: 'backupDone' });
      this.backupRunning = false;
      if (this.stopRequested) this.stopIdle();
    }
  }

  private async sendBackupBytes(b: Uint8Array): Promise<void> {
    for (let p = 0; p < b.length; p += BACKUP_CHUNK_BYTES) {
      if (this.conn.closed || this.conn.state !== 'copyOut') throw Errors.connectionFailure('base backup connection closed');
      const part = b.subarray(p, Math.min(b.length, p + BACKUP_CHUNK_BYTES));
      const payload = Buffer.allocUnsafe(1 + part.length);
      payload[0] = 0x64; // 'd'
      payload.set(part, 1);
      this.conn.sendCopyData(payload);
      if (this.socket.writableLength >= this.cfg.maxQueuedBytes) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.on('drain', done);
          this.socket.on('close', done);
        });
      }
    }
  }
}

/** A connection for a pre-started walsender worker (everything but its port). */
export type WalSenderConnConfig = Omit<WalSenderConfig, 'port'>;

// Worker entry. Started with a connection (workerData has `fd`), or pre-started idle: then the
// first port message {type:'connection', cfg} brings the connection ({type:'stop'} ends it).
if (!isMainThread && (workerData as { kind?: string } | null)?.kind === 'walsender') {
  const wd = workerData as WalSenderConfig | { kind: 'walsender'; idle: true; port: MessagePort };
  if ('idle' in wd) {
    wd.port.once('message', (m: { type: 'connection'; cfg: WalSenderConnConfig } | { type: 'stop' }) => {
      if (m.type === 'connection') new WalSender({ ...m.cfg, port: wd.port });
      else wd.port.close();
    });
  } else {
    new WalSender(wd);
  }
}
