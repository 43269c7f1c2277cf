// ReplicationServer: the primary's replication listener (PostgreSQL's postmaster role for
// walsenders). Runs in the primary's thread. It owns the listening socket, WalSndCtl, one
// walsender worker per accepted connection (the accepted fd is handed to the worker: accepted with
// pauseOnConnect, this thread never reads, writes or closes it afterwards), the WAL pins
// (min sent of streaming walsenders; the redo point of each running base backup) and the
// base-backup requests walsenders send over their MessagePort (checkpoint + pin + files).
// Stops in two steps called by Primary.close(): stopListening() (no new connections), then,
// after the shutdown checkpoint, shutdownWalSenders(): every walsender streams up to the end of
// WAL, ends with "COPY 0" (or FATAL 57P01 if not streaming) and exits; workers that do not exit
// within the bound are terminated.
// In-process standbys connect through inProcessListener(): a MessagePort on which a standby's
// thread posts {connect, rings, peer}; the connection is served like an accepted socket (same
// limits, WalSndCtl slot, commands, shutdown) by a walsender whose byte pipe is the two rings
// (ring-socket.ts). It is trusted (the same process, like a local socket of the same user) and
// shows client_addr NULL, client_port -1 in replicationStatus(), as PostgreSQL shows a unix socket.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MessageChannel, MessagePort, type TransferListItem, Worker } from 'node:worker_threads';
import type { StageTraceHandle } from '../util/stage-trace.js';
import { Errors, WalstreamError } from '../errors.js';
import { CONTROL_FILE } from '../storage/control.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import type { XLogCtl } from '../wal/xlogctl.js';
import type { HbaRule } from './protocol/hba.js';
import { pgTimestampToDate } from './protocol/messages.js';
import { makeScramVerifier } from './protocol/scram.js';
import type { BackupFile, FromPrimary, ToPrimary, WalSenderConnConfig } from './walsender-messages.js';
import { WalSndCtl, type WalSndSnapshot } from './walsndctl.js';
import type { ReplicationSlots } from './slots.js';
import type { SyncRepQueue } from './syncrep-queue.js';
import { syncStates, type SyncState } from './syncrep.js';
import { WalSndLag } from './lag.js';
import { ByteRing, type RingPairHandle } from './ring.js';
import { closeHandleOnParkedFd } from '../util/fd-park.js';

/** What a standby's thread posts on an in-process listener port to connect. */
export interface InProcessConnectRequest {
  type: 'connect';
  rings: RingPairHandle;
  /** The connection's port (transferred): its 'close' tells either end that the other is gone. */
  peer: MessagePort;
}

/** Authentication of in-process connections: trust (the standby runs in this process). */
const IN_PROCESS_HBA: HbaRule[] = [{ type: 'local', database: 'replication', user: 'all', method: 'trust' }];
/** While accepted handles wait for their fd number to be free again (releaseAccepted), retry this often. */
const ACCEPTED_RELEASE_RETRY_MS = 250;
/** A walsender told to terminate (its slot was invalidated) that has not exited by then is stopped by force. */
const WALSENDER_TERMINATE_TIMEOUT_MS = 5_000;

/** What the server needs from the primary it serves. */
export interface ReplicationHost {
  readonly ctl: XLogCtl;
  readonly dataDir: string;
  readonly walDir: string;
  readonly systemIdentifier: bigint;
  readonly flushLsn: Lsn;
  pinWal(fn: () => Lsn | null): () => void;
  checkpoint(): Promise<void>;
  checkpointInfo(): { redoLsn: Lsn; checkpointLsn: Lsn; snapshotName: string; tli: number };
  emit(event: string | symbol, ...args: unknown[]): boolean;
  /** Replication slots shared with the walsenders (issue 4), if any. */
  readonly slots?: ReplicationSlots | null;
  /** Synchronous-commit wait queues the walsenders release (issue 4), if any. */
  readonly syncRep?: SyncRepQueue | null;
}

export interface ReplicationServerOptions {
  host: string;
  /** 0 = an ephemeral port. */
  port: number;
  hba: HbaRule[] | null;
  /** user → password (or a SCRAM verifier `SCRAM-SHA-256$…`); null = no passwords (trust). */
  users: Record<string, string> | null;
  maxWalSenders: number;
  walSenderTimeoutMs: number;
  maxSendBytes: number;
  authenticationTimeoutMs: number;
  maxClientMessageBytes: number;
  walSenderMaxQueuedBytes: number;
  walSenderSpinMicros: number;
  walSenderAsyncDelayMs: number;
  stageTrace?: StageTraceHandle | null;
  /** Connections still authenticating, beyond maxWalSenders, before new ones are dropped unanswered. */
  maxStartupConnections: number;
  /** Idle walsender workers kept started, so a connection does not wait for a thread to boot (~100 ms). */
  walSenderPrestart: number;
}

/** One row of primary.replicationStatus() (PostgreSQL's pg_stat_replication, the part issue 3 needs). */
export interface ReplicationStatusRow {
  pid: number;
  application_name: string;
  /** Null for an in-process standby (as PostgreSQL shows a unix-socket client). */
  client_addr: string | null;
  /** -1 for an in-process standby. */
  client_port: number;
  backend_start: Date;
  state: string;
  sent_lsn: string | null;
  write_lsn: string | null;
  flush_lsn: string | null;
  replay_lsn: string | null;
  /** walstream only (not in pg_stat_replication): what the standby reported received (`R`); null for standbys that report none (PostgreSQL's). */
  receive_lsn: string | null;
  reply_time: Date | null;
  backend_xmin: number | null;
  /** Bytes between the primary's flush position and each position (null when unknown). */
  sent_lag_bytes: number | null;
  write_lag_bytes: number | null;
  flush_lag_bytes: number | null;
  replay_lag_bytes: number | null;
  /** pg_stat_replication.sync_priority / sync_state (PostgreSQL 15's rules, src/replication/syncrep.ts). */
  sync_priority: number;
  sync_state: SyncState;
  /**
   * write_lag / flush_lag / replay_lag in ms: age of the oldest WAL sent but not yet confirmed at
   * that level (0 = caught up; keeps growing for a stuck standby even when the primary is idle;
   * null until the standby reports that position). See src/replication/lag.ts.
   */
  write_lag_ms: number | null;
  flush_lag_ms: number | null;
  replay_lag_ms: number | null;
}

/** What the state-change events carry (events: walsenderConnected, walsenderCaughtUp, syncStateChanged, walsenderDisconnected). */
export interface WalSenderEvent {
  pid: number;
  applicationName: string;
  clientAddr: string;
  state: string;
  syncPriority: number;
  syncState: SyncState;
  /** syncStateChanged: the previous sync_state. */
  previousSyncState?: SyncState;
}

interface WorkerEntry {
  worker: Worker;
  port: MessagePort;
  id: number;
  unpins: (() => void)[];
  /** Closes the fds opened for the running base backup (idempotent; also run at exit). */
  closeBackupFiles: (() => void) | null;
  /** This thread's handle of the socket whose fd the worker serves (null for rings and idle workers). */
  accepted: AcceptedHandle | null;
  exited: Promise<void>;
}

/** The accepting thread's half of a handed-off socket: inert, released once the worker closed the fd. */
interface AcceptedHandle {
  socket: net.Socket;
  fd: number;
}

export class ReplicationServer {
  readonly walsnd: WalSndCtl;
  /** Per-walsender time lag (published by the workers). */
  readonly lag: WalSndLag;
  /** Last state seen per walsender id, for the state-change events. */
  private known = new Map<number, WalSenderEvent>();
  private readonly server: net.Server;
  private readonly workers = new Set<WorkerEntry>();
  /** Pre-started workers waiting for a connection (not in `workers`). */
  private readonly idle: WorkerEntry[] = [];
  private readonly unpinSenders: () => void;
  private readonly hba: HbaRule[];
  private readonly users: Record<string, string> | null;
  private listening = true;
  /** In-process listener ports (inProcessListener), closed when listening stops. */
  private readonly listeners = new Set<MessagePort>();
  private stopping = false;
  private _port = 0;
  /**
   * Accepted handles whose worker has exited (so the fd was closed there) but whose number was in
   * use elsewhere when we tried to release them (src/util/fd-park.ts); retried at every worker exit
   * and every ACCEPTED_RELEASE_RETRY_MS until shutdown.
   */
  private readonly retiring: AcceptedHandle[] = [];
  /** Retries releaseAccepted() while `retiring` is not empty (unref'd: never keeps the process alive). */
  private retireTimer: NodeJS.Timeout | null = null;
  /** Set once every walsender has exited at shutdown: no more timed retries. */
  private retireRetriesOver = false;

  private constructor(private readonly host: ReplicationHost, private readonly opts: ReplicationServerOptions) {
    this.walsnd = WalSndCtl.create(opts.maxWalSenders);
    this.lag = WalSndLag.create(opts.maxWalSenders);
    this.unpinSenders = host.pinWal(() => this.walsnd.minSent());
    const users = opts.users;
    this.users = users === null ? null : Object.fromEntries(Object.entries(users).map(([u, p]) => [u, p.startsWith('SCRAM-SHA-256$') ? p : makeScramVerifier(p)]));
    this.hba = opts.hba ?? [{ type: 'host', database: 'replication', user: 'all', address: 'all', method: users === null ? 'trust' : 'scram-sha-256' }];
    this.server = net.createServer({ pauseOnConnect: true }, (s) => this.onConnection(s));
  }

  static async listen(host: ReplicationHost, opts: ReplicationServerOptions): Promise<ReplicationServer> {
    const rs = new ReplicationServer(host, opts);
    await new Promise<void>((resolve, reject) => {
      rs.server.once('error', reject);
      rs.server.listen(opts.port, opts.host, () => {
        rs.server.off('error', reject);
        resolve();
      });
    });
    rs.server.on('error', (e) => host.emit('error', e));
    rs.refill();
    const a = rs.server.address();
    rs._port = typeof a === 'object' && a !== null ? a.port : opts.port;
    return rs;
  }

  get port(): number {
    return this._port;
  }

  private log(level: string, message: string): void {
    this.host.emit('log', { level, message });
  }

  private onConnection(socket: net.Socket): void {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (!this.listening || this.workers.size >= this.opts.maxWalSenders + this.opts.maxStartupConnections || typeof fd !== 'number' || fd < 0) {
      socket.destroy();
      return;
    }
    // From here on the fd belongs to the worker: this thread must not read, write or close it. Its
    // own handle stays with the worker's entry until the worker exits (releaseAccepted()).
    const entry = this.hand({ ...this.connConfig(), fd, remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 }, []);
    entry.accepted = { socket, fd };
  }

  /**
   * Handles of handed-off sockets this thread still holds: one per live TCP walsender, plus those
   * waiting to be released (normally none). Bounded by the open descriptors, not by the number of
   * connections ever accepted.
   */
  get acceptedHandlesHeld(): number {
    let n = this.retiring.length;
    for (const e of this.workers) if (e.accepted !== null) n++;
    return n;
  }

  /**
   * Release the handles of sockets whose workers have exited. The worker closed the descriptor,
   * so the number may already be another file's: a handle is closed only while its number is a
   * placeholder opened here (closeHandleOnParkedFd); the others wait for the next attempt (the
   * next worker exit, or the retry timer this arms).
   */
  private releaseAccepted(): void {
    for (let i = this.retiring.length - 1; i >= 0; i--) {
      const a = this.retiring[i]!;
      if (closeHandleOnParkedFd(a.fd, () => a.socket.destroy())) this.retiring.splice(i, 1);
    }
    // A number is usually busy only for a moment (a thread booting reads its modules, a segment
    // is being opened): retry soon rather than only at the next walsender exit.
    if (this.retiring.length > 0 && this.retireTimer === null && !this.retireRetriesOver) {
      this.retireTimer = setInterval(() => this.releaseAccepted(), ACCEPTED_RELEASE_RETRY_MS).unref();
    } else if (this.retiring.length === 0 && this.retireTimer !== null) {
      clearInterval(this.retireTimer);
      this.retireTimer = null;
    }
  }

  /**
   * A port for standbys in this process: each {type:'connect'} posted on it (InProcessConnectRequest)
   * is a new connection served over its rings. The port does not keep this thread alive; it is
   * closed when the server stops listening (the standby side then sees its 'close').
   */
  inProcessListener(): MessagePort {
    if (!this.listening) throw Errors.closed('replication server');
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (m: unknown) => this.onInProcessConnect(m));
    port1.on('close', () => this.listeners.delete(port1));
    port1.unref();
    this.listeners.add(port1);
    return port2;
  }

  private onInProcessConnect(m: unknown): void {
    const req = m as Partial<InProcessConnectRequest> | null;
    if (req === null || typeof req !== 'object' || req.type !== 'connect' || !(req.peer instanceof MessagePort)) return;
    const peer = req.peer;
    let toClient: ByteRing;
    let toServer: ByteRing;
    try {
      toClient = new ByteRing(req.rings!.toClient);
      toServer = new ByteRing(req.rings!.toServer);
    } catch {
      peer.close();
      return;
    }
    if (!this.listening || this.workers.size >= this.opts.maxWalSenders + this.opts.maxStartupConnections) {
      // Refused like a socket closed at once: the client reads the end of the stream.
      toClient.closeProducer();
      toServer.closeConsumer();
      peer.close();
      return;
    }
    const rings: RingPairHandle = { toClient: toClient.handle, toServer: toServer.handle };
    this.hand({ ...this.connConfig(), fd: -1, ring: { rings, peer }, remoteAddress: '', remotePort: -1, hba: IN_PROCESS_HBA, users: null }, [peer]);
  }

  /** Everything of a connection's config but the connection itself. */
  private connConfig(): Omit<WalSenderConnConfig, 'fd' | 'remoteAddress' | 'remotePort'> {
    return {
      kind: 'walsender',
      backendStartMs: Date.now(),
      xlog: this.host.ctl.handle,
      walsnd: this.walsnd.handle,
      systemIdentifier: this.host.systemIdentifier.toString(),
      walDir: this.host.walDir,
      hba: this.hba,
      users: this.users,
      maxSendBytes: this.opts.maxSendBytes,
      walSenderTimeoutMs: this.opts.walSenderTimeoutMs,
      authenticationTimeoutMs: this.opts.authenticationTimeoutMs,
      maxClientMessageBytes: this.opts.maxClientMessageBytes,
      maxQueuedBytes: this.opts.walSenderMaxQueuedBytes,
      walSenderSpinMicros: this.opts.walSenderSpinMicros,
      walSenderAsyncDelayMs: this.opts.walSenderAsyncDelayMs,
      stageTrace: this.opts.stageTrace ?? null,
      slots: this.host.slots?.handle ?? null,
      syncRep: this.host.syncRep?.handle ?? null,
      lag: this.lag.handle,
    };
  }

  /** Give a connection to a pre-started walsender, or start one for it. */
  private hand(cfg: WalSenderConnConfig, transfer: TransferListItem[]): WorkerEntry {
    let entry = this.idle.shift();
    if (entry) {
      this.workers.add(entry);
      entry.port.postMessage({ type: 'connection', cfg }, transfer);
    } else {
      entry = this.spawn(cfg, transfer);
      this.workers.add(entry);
    }
    this.refill();
    return entry;
  }

  /** Start a walsender worker, with a connection or idle (pre-started). */
  private spawn(cfg: WalSenderConnConfig | null, transfer: TransferListItem[] = []): WorkerEntry {
    const { port1, port2 } = new MessageChannel();
    const workerData = cfg === null ? { kind: 'walsender', idle: true, port: port2 } : { ...cfg, port: port2 };
    const worker = new Worker(new URL('./walsender.js', import.meta.url), { workerData, transferList: [port2, ...transfer], name: 'walsender' });
    let resolveExit!: () => void;
    const entry: WorkerEntry = { worker, port: port1, id: 0, unpins: [], closeBackupFiles: null, accepted: null, exited: new Promise<void>((r) => (resolveExit = r)) };
    port1.on('message', (m: ToPrimary) => this.onWorkerMessage(entry, m));
    worker.on('error', (e) => this.log('warning', `walsender worker failed: ${e.stack ?? e.message}`));
    worker.on('exit', () => {
      this.workers.delete(entry);
      const i = this.idle.indexOf(entry);
      if (i >= 0) this.idle.splice(i, 1);
      if (entry.id !== 0) this.walsnd.releaseById(entry.id);
      // A worker that died without cleaning up: release its slots, drop its temporary ones.
      if (entry.id !== 0) this.host.slots?.releaseSession(entry.id);
      for (const u of entry.unpins) u();
      entry.unpins.length = 0;
      if (entry.id !== 0) this.notifyStateChange();
      // The worker's thread is gone, and with it its socket and the descriptor.
      if (entry.accepted !== null) this.retiring.push(entry.accepted);
      entry.accepted = null;
      this.releaseAccepted();
      port1.close();
      resolveExit();
    });
    return entry;
  }

  /** Keep `walSenderPrestart` idle workers ready while listening. */
  private refill(): void {
    while (this.listening && this.idle.length < this.opts.walSenderPrestart) this.idle.push(this.spawn(null));
  }

  private onWorkerMessage(entry: WorkerEntry, m: ToPrimary): void {
    switch (m.type) {
      case 'slot':
        entry.id = m.id;
        this.notifyStateChange();
        return;
      case 'stateChanged':
        this.notifyStateChange();
        return;
      case 'log':
        this.log(m.level, m.message);
        return;
      case 'backupDone':
        entry.closeBackupFiles?.();
        entry.closeBackupFiles = null;
        return;
      case 'backupStart':
        void this.startBackup(entry).then(
          (r) => this.reply(entry, r),
          (e: unknown) => {
            const err = e instanceof WalstreamError ? e : Errors.internal((e as Error).message ?? String(e));
            this.reply(entry, { type: 'backupFailed', sqlstate: err.sqlstate, code: err.code, message: err.message });
          },
        );
        return;
    }
  }

  private reply(entry: WorkerEntry, m: FromPrimary): void {
    try {
      entry.port.postMessage(m);
    } catch {
      /* worker gone */
    }
  }

  /**
   * BASE_BACKUP's start on the primary's side: a checkpoint, then (synchronously, so no other
   * checkpoint can interleave) pin WAL from its redo point for as long as the walsender lives,
   * read the control and version files and open the checkpoint snapshot for the worker.
   */
  private async startBackup(entry: WorkerEntry): Promise<FromPrimary> {
    if (this.stopping) throw Errors.adminShutdown();
    await this.host.checkpoint();
    if (this.stopping) throw Errors.adminShutdown();
    const info = this.host.checkpointInfo();
    const redo = info.redoLsn;
    const dataDir = this.host.dataDir;
    const files: BackupFile[] = [];
    const add = (name: string, data: Buffer, mtimeMs: number) => files.push({ name, data, size: data.length, mtimeSec: Math.floor(mtimeMs / 1000) });
    const st = (f: string) => fs.statSync(path.join(dataDir, f));
    add('WALSTREAM_VERSION', fs.readFileSync(path.join(dataDir, 'WALSTREAM_VERSION')), st('WALSTREAM_VERSION').mtimeMs);
    add(CONTROL_FILE, fs.readFileSync(path.join(dataDir, CONTROL_FILE)), st(CONTROL_FILE).mtimeMs);
    const snapRel = `checkpoints/${info.snapshotName}`;
    const fd = fs.openSync(path.join(dataDir, snapRel), 'r');
    const sst = fs.fstatSync(fd);
    files.push({ name: snapRel, fd, size: sst.size, mtimeSec: Math.floor(sst.mtimeMs / 1000) });
    if (!this.workers.has(entry)) {
      fs.closeSync(fd);
      throw Errors.connectionFailure('walsender exited');
    }
    entry.unpins.push(this.host.pinWal(() => redo));
    // The fd stays this thread's: the walsender reads it and says `backupDone`; this thread closes it.
    entry.closeBackupFiles?.();
    let open = true;
    const close = () => {
      if (open) fs.closeSync(fd);
      open = false;
    };
    entry.closeBackupFiles = close;
    entry.unpins.push(close);
    this.log('info', `base backup starts at redo ${lsnToString(redo)} (snapshot ${info.snapshotName})`);
    return { type: 'backupStarted', redoLsn: redo, tli: info.tli, files };
  }

  status(): ReplicationStatusRow[] {
    const flush = this.host.flushLsn;
    const lsn = (v: number) => (v === 0 ? null : lsnToString(v));
    const lag = (v: number) => (v === 0 ? null : Math.max(0, flush - v));
    const senders = this.walsnd.all();
    const sync = syncStates(this.host.syncRep?.config() ?? null, senders);
    return senders.map((s: WalSndSnapshot, k) => {
      const lagMs = this.lag.lagMs(s.slot);
      return {
        pid: s.id,
        application_name: s.applicationName,
        client_addr: s.clientAddr === '' ? null : s.clientAddr,
        client_port: s.clientPort,
        backend_start: new Date(s.backendStartMs),
        state: s.stateName,
        sent_lsn: lsn(s.sent),
        write_lsn: lsn(s.write),
        flush_lsn: lsn(s.flush),
        replay_lsn: lsn(s.apply),
        receive_lsn: lsn(s.receive),
        reply_time: s.replyTime === 0 ? null : pgTimestampToDate(s.replyTime),
        backend_xmin: s.xmin === 0 ? null : s.xmin,
        sent_lag_bytes: lag(s.sent),
        write_lag_bytes: lag(s.write),
        flush_lag_bytes: lag(s.flush),
        replay_lag_bytes: lag(s.apply),
        sync_priority: sync[k]!.syncPriority,
        sync_state: sync[k]!.syncState,
        write_lag_ms: s.write === 0 ? null : lagMs.write,
        flush_lag_ms: s.flush === 0 ? null : lagMs.flush,
        replay_lag_ms: s.apply === 0 ? null : lagMs.apply,
      };
    });
  }

  /**
   * Re-derive every walsender's state and sync state and emit what changed (the seeds' NOTIFY
   * wish): `walsenderConnected`, `walsenderCaughtUp` (catchup → streaming), `syncStateChanged`,
   * `walsenderDisconnected`, each with a WalSenderEvent. Called on worker messages, worker exit and
   * synchronous_standby_names changes — never on a timer.
   */
  notifyStateChange(): void {
    const senders = this.walsnd.all();
    const sync = syncStates(this.host.syncRep?.config() ?? null, senders);
    const now = new Map<number, WalSenderEvent>();
    senders.forEach((s, k) => {
      now.set(s.id, { pid: s.id, applicationName: s.applicationName, clientAddr: s.clientAddr, state: s.stateName, syncPriority: sync[k]!.syncPriority, syncState: sync[k]!.syncState });
    });
    for (const [id, cur] of now) {
      const prev = this.known.get(id);
      if (!prev) this.host.emit('walsenderConnected', cur);
      if (cur.state === 'streaming' && prev?.state !== 'streaming' && prev?.state !== 'stopping') this.host.emit('walsenderCaughtUp', cur);
      if (prev && prev.syncState !== cur.syncState) this.host.emit('syncStateChanged', { ...cur, previousSyncState: prev.syncState });
    }
    for (const [id, prev] of this.known) if (!now.has(id)) this.host.emit('walsenderDisconnected', prev);
    this.known = now;
  }

  /**
   * Terminate the walsender with this id (PostgreSQL signals the process holding a slot it
   * invalidates). Its exit releases its WalSndCtl slot and replication slots. False if none.
   */
  async terminateWalSender(id: number): Promise<boolean> {
    for (const e of this.workers) {
      if (e.id === id) {
        this.log('info', `terminating walsender ${id} to release its replication slot`);
        // Like SIGTERM to a walsender: the client gets FATAL 57P01 and the walsender exits; one
        // that does not within WALSENDER_TERMINATE_TIMEOUT_MS is stopped by force.
        this.reply(e, { type: 'terminate' });
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), WALSENDER_TERMINATE_TIMEOUT_MS)));
        const res = await Promise.race([e.exited.then(() => 'done' as const), timedOut]);
        clearTimeout(timer);
        if (res === 'timeout') await e.worker.terminate();
        return true;
      }
    }
    return false;
  }

  /** Number of walsender workers alive (including connections still authenticating). */
  get workerCount(): number {
    return this.workers.size;
  }

  /** Stop accepting connections. Handed-off sockets are the workers' and are not touched. */
  stopListening(): void {
    if (!this.listening) return;
    this.listening = false;
    this.server.close();
    for (const l of this.listeners) l.close();
    this.listeners.clear();
    for (const e of this.idle.splice(0)) {
      this.reply(e, { type: 'stop' });
      void e.exited; // exits once its port is closed
    }
  }

  /**
   * Ask every walsender to finish (after the shutdown checkpoint is flushed) and wait for them to
   * exit, at most `timeoutMs`; stragglers are terminated.
   */
  async shutdownWalSenders(timeoutMs: number): Promise<void> {
    this.stopListening();
    this.stopping = true;
    const all = [...this.workers];
    for (const e of all) this.reply(e, { type: 'stop' });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const res = await Promise.race([Promise.all(all.map((e) => e.exited)).then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (res === 'timeout') {
      for (const e of this.workers) {
        this.log('warning', `walsender ${e.id} did not stop within ${timeoutMs} ms: terminating it`);
        await e.worker.terminate();
      }
    }
    this.unpinSenders();
    // Every walsender has exited: one last release; handles whose number is still another file's
    // stay (inert, bounded by the descriptors in use) and are no longer retried.
    this.retireRetriesOver = true;
    this.releaseAccepted();
    if (this.retireTimer !== null) clearInterval(this.retireTimer);
    this.retireTimer = null;
  }
}
