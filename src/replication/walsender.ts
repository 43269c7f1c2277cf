// walsender: one worker thread per replication connection (PostgreSQL forks one process per
// connection; this is walsender.c's connection and command half). Started by ReplicationServer
// (src/replication/server.ts) in the thread of a primary or of a standby serving cascading
// replication (its WalSource says which, wal-source.ts), which hands over the connection's two
// SharedArrayBuffer rings and MessagePort; this thread owns its end of them (a RingSocket,
// ring-socket.ts), one ReplicationServerConn (startup, authentication, command parsing, COPY
// sub-protocols), its WalSndCtl slot and the replication slot it acquired. The other roles are
// modules it drives: the send loop (walsend.ts, XLogSendPhysical), its WAL reads (wal-read.ts), the
// sync-rep policy (syncrep-sender.ts), BASE_BACKUP (basebackup.ts); messages: walsender-messages.ts.
// The other end of the rings is the replication I/O thread for a TCP client (tcp-bridge.ts: it
// owns the socket and writes to it straight from the ring) or an in-process standby's
// walreceiver (Standby.open({ primary })): the protocol, WalSndCtl, limits and shutdown are the
// same. XLogData is built in place in the outgoing ring (allocFrame), so its WAL bytes are copied
// once, from wal_buffers or the segment file, on their way to the kernel or the standby.
// Stops: when the socket closes (client went away, Terminate, FATAL, replication timeout), or
// when the primary asks it to stop (port message 'stop', at shutdown): a streaming walsender
// first sends every flushed byte (the shutdown checkpoint included), asks for a reply, waits for
// the reply to cover it, sends CommandComplete "COPY 0" and closes; any other walsender gets
// FATAL 57P01. Then it releases its slot and closes its port; the thread ends with no handles left.

import fs from 'node:fs';
import path from 'node:path';
import { isMainThread, type MessagePort, workerData } from 'node:worker_threads';
import { Errors, WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import { StageTrace } from '../util/stage-trace.js';
import { XLOG_BLCKSZ } from '../wal/consts.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import { historyFileName, segNo } from '../wal/segment.js';
import { readTimeLineHistory, TIMELINE_NOT_IN_HISTORY, tliSwitchPoint } from '../wal/timeline.js';
import type { ReplicationCommand } from './protocol/commands.js';
import { ReplicationColumns, XLOGDATA_FRAME_HEADER_BYTES } from './protocol/messages.js';
import { ReplicationServerConn, type ServerConnEvent } from './protocol/server-conn.js';
import { type ByteSocket, RingSocket } from './ring-socket.js';
import { WalSndCtl, WalSndState, type WalSndStateValue } from './walsndctl.js';
import { ReplicationSlots } from './slots.js';
import { SyncRepQueue } from './syncrep-queue.js';
import { WalSndLag } from './lag.js';
import { BaseBackupSender } from './basebackup.js';
import { SyncRepSender } from './syncrep-sender.js';
import { openWalSource, type WalSource } from './wal-source.js';
import { FRAME_PAD, WalSendLoop, type WalSendHost } from './walsend.js';
import type { FromPrimary, ToPrimary, WalSenderConfig, WalSenderConnConfig } from './walsender-messages.js';

export type { BackupFile, FromPrimary, ToPrimary, WalSenderConfig, WalSenderConnConfig } from './walsender-messages.js';

/** After a final message (an ErrorResponse, CommandComplete), how long the client has to read it before the socket is destroyed. */
const END_SOCKET_TIMEOUT_MS = 2_000;
/** Input buffered beyond one maximal client message before the connection is refused (bytes). */
const PENDING_INPUT_SLACK_BYTES = 64 * 1024;

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

export class WalSender implements WalSendHost {
  private readonly cfg: WalSenderConfig;
  /** Where WAL is readable up to, and the current timeline (a primary's XLogCtl or a standby's WalRcvData). */
  private readonly source: WalSource;
  private readonly walsnd: WalSndCtl;
  readonly socket: ByteSocket;
  readonly conn: ReplicationServerConn;
  private readonly port: MessagePort;
  private readonly segSize: number;
  private readonly stream: WalSendLoop;
  private readonly backup: BaseBackupSender;
  private _slot = -1;
  private _id = 0;
  private closed = false;
  private _state: WalSndStateValue = WalSndState.STARTUP;
  private authTimer: NodeJS.Timeout | null = null;
  private _stopRequested = false;
  private readonly slots: ReplicationSlots | null;
  /** Index of the slot START_REPLICATION SLOT acquired, -1 = none. */
  private _replSlot = -1;
  /** The historic timeline START_REPLICATION is sending (null: the current one). */
  private historicEnd: { tli: number; validUpto: Lsn; nextTli: number } | null = null;

  constructor(cfg: WalSenderConfig) {
    const sock = new RingSocket({ side: 'server', rings: cfg.ring.rings, peer: cfg.ring.peer, zeroCopy: false, maxFrameBytes: FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + cfg.maxSendBytes });
    // The outgoing ring is the whole send buffer (over TCP the I/O thread releases a record once
    // the kernel took it): sending pauses at its high-water mark.
    this.cfg = { ...cfg, maxQueuedBytes: sock.highWaterBytes };
    this.socket = sock;
    this.source = openWalSource(cfg.source);
    this.walsnd = new WalSndCtl(cfg.walsnd);
    this.slots = cfg.slots ? new ReplicationSlots(cfg.slots) : null;
    this.segSize = this.source.segSize;
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
      connType: cfg.connType,
      maxMessageBytes: cfg.maxClientMessageBytes,
      maxPendingInputBytes: cfg.maxClientMessageBytes + PENDING_INPUT_SLACK_BYTES,
      pauseInputAtBytes: cfg.maxClientMessageBytes,
    });
    const syncRep = new SyncRepSender({
      source: this.source,
      walsnd: this.walsnd,
      queue: cfg.syncRep ? new SyncRepQueue(cfg.syncRep) : null,
      conn: this.conn,
      asyncDelayMs: cfg.walSenderAsyncDelayMs,
      spinMicros: cfg.walSenderSpinMicros,
    });
    this.stream = new WalSendLoop(this, {
      source: this.source,
      walsnd: this.walsnd,
      walDir: cfg.walDir,
      slots: this.slots,
      lag: cfg.lag ? new WalSndLag(cfg.lag) : null,
      trace: cfg.stageTrace ? new StageTrace(cfg.stageTrace) : null,
      syncRep,
      maxSendBytes: cfg.maxSendBytes,
      maxQueuedBytes: this.cfg.maxQueuedBytes,
      walSenderTimeoutMs: cfg.walSenderTimeoutMs,
    });
    const self = this;
    this.backup = new BaseBackupSender({
      conn: this.conn,
      socket: this.socket,
      maxQueuedBytes: this.cfg.maxQueuedBytes,
      walDir: cfg.walDir,
      segSize: this.segSize,
      get stopRequested() {
        return self._stopRequested;
      },
      fromStandby: this.source.cascading,
      flushedLsn: () => this.source.flushed(),
      post: (m) => this.postToPrimary(m),
      setState: (s) => this.setState(s),
      afterBackup: () => {
        if (this._stopRequested) this.stopIdle();
      },
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
    this.socket.on('drain', () => this.stream.onDrain());
    if (cfg.authenticationTimeoutMs > 0) {
      this.authTimer = setTimeout(() => {
        if (this.conn.state === 'startup' || this.conn.state === 'auth') {
          this.log('info', 'authentication timeout');
          this.terminate();
        }
      }, cfg.authenticationTimeoutMs);
    }
  }

  // ---- WalSendHost ----------------------------------------------------------------------------

  get slot(): number {
    return this._slot;
  }
  get id(): number {
    return this._id;
  }
  get state(): WalSndStateValue {
    return this._state;
  }
  get stopRequested(): boolean {
    return this._stopRequested;
  }
  get replSlot(): number {
    return this._replSlot;
  }

  setState(s: WalSndStateValue): void {
    if (this._state === s || this._slot < 0) return;
    this._state = s;
    this.walsnd.setState(this._slot, s);
    this.notifyStateChanged();
  }

  /** Tell the primary that what pg_stat_replication derives from this walsender may have changed. */
  notifyStateChanged(): void {
    if (this.closed) return;
    this.postToPrimary({ type: 'stateChanged' });
  }

  log(level: 'info' | 'warning', message: string): void {
    if (this.closed) return;
    this.postToPrimary({ type: 'log', level, message: `walsender ${this._id || '-'} (${this.cfg.remoteAddress}:${this.cfg.remotePort}): ${message}` });
  }

  /** Close after what is queued (a last ErrorResponse, COPY 0) was sent, or after `drainTimeoutMs` at most. */
  endSocket(drainTimeoutMs = END_SOCKET_TIMEOUT_MS): void {
    this.conn.close();
    this.stopStreamingState();
    if (!this.socket.destroyed) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), drainTimeoutMs).unref();
    }
  }

  /** Drop the connection at once (replication timeout, unknown message kind). */
  terminate(): void {
    this.conn.close();
    this.stopStreamingState();
    this.socket.destroy();
  }

  streamingFailed(err: WalstreamError): void {
    this.stopStreamingState();
    if (this.conn.state === 'copyBoth') this.conn.sendError(err);
    this.endSocket();
  }

  // ---- I/O plumbing ---------------------------------------------------------------------------

  private write(b: Uint8Array): void {
    if (this.socket.destroyed) return;
    const giveBack = this.stream.takeFrame(b);
    if (giveBack !== null) {
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

  private onData(chunk: Buffer): void {
    this.stream.noteReceipt();
    this.conn.feed(chunk);
    if (!this.conn.closed && !this.conn.wantsInput && !this.socket.isPaused()) this.socket.pause();
  }

  private resumeInput(): void {
    if (!this.conn.closed && this.conn.wantsInput && this.socket.isPaused()) this.socket.resume();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.close(); // a running command (BASE_BACKUP) stops at its next send
    this.stream.close();
    if (this.authTimer) clearTimeout(this.authTimer);
    // ReplicationSlotCleanup: release the slot in use, drop this session's temporary slots.
    if (this.slots && this._id !== 0) this.slots.releaseSession(this._id);
    this._replSlot = -1;
    if (this._slot >= 0) this.walsnd.release(this._slot, this._id);
    this.port.close();
  }

  // ---- connection events ----------------------------------------------------------------------

  private onEvent(ev: ServerConnEvent): void {
    switch (ev.type) {
      case 'startup':
        this.onStartup(ev.applicationName);
        return;
      case 'authenticated':
        if (this.authTimer) clearTimeout(this.authTimer);
        this.authTimer = null;
        if (this._stopRequested) {
          this.conn.sendFatal(Errors.adminShutdown());
          this.endSocket();
        }
        return;
      case 'command':
        this.onCommand(ev.command);
        return;
      case 'copyData':
        this.stream.onStandbyMessage(ev.message);
        return;
      case 'copyDone':
        // The client ended streaming: our CopyDone went out; finish the command.
        this.stopStreamingState();
        if (this.historicEnd !== null) this.finishHistoric();
        else {
          this.conn.sendCommandComplete('START_STREAMING');
          this.conn.sendCommandComplete('START_REPLICATION');
          this.conn.sendReadyForQuery();
        }
        if (this._stopRequested) this.stopIdle();
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

  /** InitProcess: a walsender needs a free WalSndCtl slot before it authenticates (FATAL 53300). */
  private onStartup(applicationName: string): void {
    try {
      const { slot, id } = this.walsnd.claim({
        applicationName,
        clientAddr: this.cfg.remoteAddress,
        clientPort: this.cfg.remotePort,
        backendStartMs: this.cfg.backendStartMs,
      });
      this._slot = slot;
      this._id = id;
      this.postToPrimary({ type: 'slot', id, slot });
    } catch (e) {
      if (!(e instanceof WalstreamError)) throw e;
      this.conn.sendFatal(e);
      this.endSocket();
    }
  }

  private onPrimaryMessage(m: FromPrimary): void {
    switch (m.type) {
      case 'terminate':
        this.onTerminate();
        return;
      case 'stop':
        this._stopRequested = true;
        if (this.stream.streaming) this.stream.onStopRequested();
        else if (!this.backup.running) this.stopIdle();
        return;
      default:
        this.backup.onPrimaryReply(m);
    }
  }

  /**
   * The session is over at once: replication slot and WalSndCtl slot released (the row leaves
   * pg_stat_replication). The FATAL goes out behind the WAL already queued; a client that does
   * not read it within walSenderTimeoutMs is cut off.
   */
  private onTerminate(): void {
    this.log('info', 'terminating walsender process due to administrator command');
    this.stopStreamingState();
    if (this._slot >= 0) {
      this.walsnd.release(this._slot, this._id);
      this._slot = -1;
      this.notifyStateChanged();
    }
    if (!this.conn.closed) this.conn.sendFatal(Errors.adminShutdown());
    this.endSocket(this.cfg.walSenderTimeoutMs > 0 ? this.cfg.walSenderTimeoutMs : END_SOCKET_TIMEOUT_MS);
  }

  /** Shutdown of a walsender that is not streaming: FATAL 57P01, close. */
  private stopIdle(): void {
    if (this.conn.closed) return;
    this.conn.sendFatal(Errors.adminShutdown());
    this.endSocket();
  }

  // ---- commands -------------------------------------------------------------------------------

  private onCommand(cmd: ReplicationCommand): void {
    const conn = this.conn;
    try {
      switch (cmd.kind) {
        case 'IDENTIFY_SYSTEM':
          conn.sendResultSet(ReplicationColumns.identifySystem, [[this.cfg.systemIdentifier, String(this.source.timeline()), lsnToString(this.source.flushed()), null]], 'IDENTIFY_SYSTEM');
          break;
        case 'SHOW': {
          const v = this.showVariable(cmd.name);
          conn.sendResultSet(ReplicationColumns.show(v.name), [[v.value]], 'SHOW');
          break;
        }
        case 'TIMELINE_HISTORY':
          this.onTimelineHistory(cmd.timeline);
          break;
        case 'START_REPLICATION':
          if (cmd.replicationKind !== 'physical') throw Errors.featureNotSupported('logical replication is not supported by walstream');
          this.onStartReplication(cmd.slotName, cmd.startLsn, cmd.timeline);
          return; // answers itself
        case 'BASE_BACKUP':
          void this.backup.run(cmd.backup).then(() => this.resumeInput(), (e) => this.commandFailed(e));
          return;
        case 'READ_REPLICATION_SLOT':
          // Unknown slot (or no slot table): one all-NULL row, as PostgreSQL answers.
          conn.sendResultSet(ReplicationColumns.readReplicationSlot, [this.slots ? this.slots.readRow(cmd.slotName, this.source.timeline()) : [null, null, null]], 'READ_REPLICATION_SLOT');
          break;
        case 'CREATE_REPLICATION_SLOT': {
          if (cmd.replicationKind !== 'physical') throw Errors.featureNotSupported('logical replication is not supported by walstream');
          const slots = this.requireSlots();
          slots.create(cmd.slotName, { reserveWal: cmd.reserveWal, temporary: cmd.temporary, pid: this._id });
          // consistent_point is 0/0 for a physical slot, even with RESERVE_WAL (PostgreSQL 15).
          conn.sendResultSet(ReplicationColumns.createReplicationSlot, [[cmd.slotName, '0/0', null, null]], 'CREATE_REPLICATION_SLOT');
          break;
        }
        case 'DROP_REPLICATION_SLOT': {
          const slots = this.requireSlots();
          void slots.drop(cmd.slotName, { pid: this._id, wait: cmd.wait }).then(() => {
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
    if (!this.stream.streaming) this.releaseReplSlot();
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

  private onTimelineHistory(timeline: number): void {
    const name = historyFileName(timeline);
    let content: Buffer;
    try {
      content = fs.readFileSync(path.join(this.cfg.walDir, name));
    } catch {
      this.conn.sendRowDescription(ReplicationColumns.timelineHistory);
      throw Errors.undefinedFile(`could not open file "pg_wal/${name}": No such file or directory`);
    }
    this.conn.sendResultSet(ReplicationColumns.timelineHistory, [[name, content]], 'TIMELINE_HISTORY');
  }

  private onStartReplication(slotName: string | null, start: Lsn, timeline: number | null): void {
    const conn = this.conn;
    // ReplicationSlotAcquire: 42704 missing, 55006 active elsewhere, 55000 invalidated — all before CopyBothResponse.
    if (slotName !== null) {
      if (this.slots === null) throw Errors.undefinedObject(`replication slot "${slotName}" does not exist`);
      if (this._replSlot >= 0) this.slots.release(this._replSlot, this._id);
      this._replSlot = this.slots.acquire(slotName, this._id);
    }
    const current = this.source.timeline();
    const tli = timeline ?? current;
    const historic = tli === current ? null : this.historicTimeline(tli, start, current);
    this.historicEnd = historic;
    if (historic !== null && start === historic.validUpto) {
      // Nothing to stream: straight to the next timeline's row (PostgreSQL skips COPY BOTH).
      this.releaseReplSlot();
      this.finishHistoric();
      return;
    }
    if (this._stopRequested) throw Errors.adminShutdown();
    conn.enterCopyBoth();
    if (conn.state !== 'copyBoth') {
      this.releaseReplSlot();
      return; // the client's pipelined input ended the copy already
    }
    const flush = this.source.flushed();
    if (start > flush) {
      this.releaseReplSlot();
      conn.sendError(Errors.internal(`requested starting point ${lsnToString(start)} is ahead of the WAL flush position of this server ${lsnToString(flush)}`));
      conn.sendReadyForQuery();
      return;
    }
    // Publish the start first (it pins WAL), then make sure the segment is still there.
    this.walsnd.startStreaming(this._slot, start, WalSndState.CATCHUP);
    this._state = WalSndState.CATCHUP;
    this.notifyStateChanged();
    const segName = this.stream.startSegmentFile(start, historic);
    if (start < flush && !fs.existsSync(path.join(this.cfg.walDir, segName))) {
      this.stopStreamingState();
      conn.sendError(Errors.walSegmentRemoved(segName));
      conn.sendReadyForQuery();
      return;
    }
    if (this._stopRequested) this.setState(WalSndState.STOPPING);
    this.stream.start(start, tli, historic);
  }

  /**
   * StartReplication on a timeline other than the current one: where it forked (tliSwitchPoint on
   * the current timeline's history) and which timeline's file holds each segment
   * (WalSndSegmentOpen: the switch point's segment is read from the next timeline's file).
   */
  private historicTimeline(tli: number, start: Lsn, current: number): { tli: number; validUpto: Lsn; nextTli: number; segTli: (seg: number) => number } {
    let sp: { switchpoint: Lsn; nextTli: number };
    try {
      sp = tliSwitchPoint(tli, readTimeLineHistory(this.cfg.walDir, current));
    } catch (e) {
      if (e instanceof WalstreamError && e.code === TIMELINE_NOT_IN_HISTORY) throw Errors.timelineNotInHistory(tli);
      throw e;
    }
    if (start > sp.switchpoint) throw Errors.startPointNotInHistory(lsnToString(start), tli, lsnToString(sp.switchpoint));
    const endSeg = segNo(sp.switchpoint, this.segSize);
    return { tli, validUpto: sp.switchpoint, nextTli: sp.nextTli, segTli: (seg) => (seg === endSeg ? sp.nextTli : tli) };
  }

  /** WalSendHost: the streamed timeline became historic (see WalSendLoop.sendLimit); its end is sent as a historic START_REPLICATION's. */
  timelineBecameHistoric(tli: number, current: number): { validUpto: Lsn; segTli: (seg: number) => number } {
    assert(this.historicEnd === null, 'a historic timeline cannot become historic');
    return (this.historicEnd = this.historicTimeline(tli, 0, current));
  }

  /** WalSndLoop's end for a historic timeline: CopyDone; the client's CopyDone brings finishHistoric(). */
  endOfTimeline(): void {
    this.conn.sendCopyDone();
  }

  /** After a historic timeline: the next timeline's row (next_tli int8, next_tli_startpos text), START_STREAMING, START_REPLICATION. */
  private finishHistoric(): void {
    const h = this.historicEnd!;
    this.historicEnd = null;
    this.conn.sendRowDescription(ReplicationColumns.startReplicationNextTli);
    this.conn.sendDataRow([String(h.nextTli), lsnToString(h.validUpto)]);
    this.conn.sendCommandComplete('START_STREAMING');
    this.conn.sendCommandComplete('START_REPLICATION');
    this.conn.sendReadyForQuery();
  }

  /** End of START_REPLICATION (or its failure): the slot is released (a temporary one stays with the session). */
  private releaseReplSlot(): void {
    if (this._replSlot >= 0 && this.slots && !this.closed) this.slots.release(this._replSlot, this._id);
    this._replSlot = -1;
  }

  private stopStreamingState(): void {
    this.releaseReplSlot();
    if (!this.stream.streaming) return;
    this.stream.stop();
    if (this._slot >= 0 && !this.closed) this.setState(WalSndState.STARTUP);
  }
}

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
