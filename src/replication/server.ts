// ReplicationServer: the replication listener of a primary, or of a standby serving cascading
// walsenders (src/standby/cascade.ts) (PostgreSQL's postmaster role for walsenders). Runs in the
// thread of the server it belongs to; what it needs of that server is ReplicationHost. It owns
// the replication I/O thread (tcp-bridge.ts: it listens, accepts and owns every TCP socket,
// bridging each to the SharedArrayBuffer rings of one connection), WalSndCtl, one walsender worker
// per connection (served its rings, like an in-process standby; no descriptor is shared between
// threads), the WAL pins (min sent of streaming walsenders; the redo point of each running base
// backup) and the base-backup requests walsenders send over their MessagePort (checkpoint + pin +
// files). Stops in two steps called by Primary.close(): stopListening() (no new connections),
// then, after the shutdown checkpoint, shutdownWalSenders(): every walsender streams up to the end
// of WAL, ends with "COPY 0" (or FATAL 57P01 if not streaming) and exits; workers that do not exit
// within the bound are terminated; then the I/O thread sends what they left and exits.
// In-process standbys connect through inProcessListener() (in-process-connect.ts); the connection
// is served like a TCP one (same limits, WalSndCtl slot, commands, shutdown; the walsender's byte
// pipe is the two rings either way, ring-socket.ts), but the standby's walreceiver is the other
// end of the rings. It is trusted (the same process, like a local socket of the same user) and
// shows client_addr NULL, client_port -1 in replicationStatus(), as PostgreSQL shows a unix socket.

import type { PrimaryEvents } from '../primary/primary-events.js';
import fs from 'node:fs';
import path from 'node:path';
import { MessageChannel, MessagePort, type TransferListItem, Worker } from 'node:worker_threads';
import type { StageTraceHandle } from '../util/stage-trace.js';
import { Errors, WalstreamError } from '../errors.js';
import { CONTROL_FILE } from '../storage/control.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import type { HbaRule } from './protocol/hba.js';
import { pgTimestampToDate, XLOGDATA_FRAME_HEADER_BYTES } from './protocol/messages.js';
import { makeScramVerifier } from './protocol/scram.js';
import type { BackupFile, FromPrimary, ToPrimary, WalSenderConnConfig } from './walsender-messages.js';
import { WalSndCtl, type WalSndSnapshot } from './walsndctl.js';
import type { ReplicationSlots } from './slots.js';
import type { SyncRepQueue } from './syncrep-queue.js';
import { syncStates, type SyncState } from './syncrep.js';
import { WalSndLag } from './lag.js';
import { ByteRing, type RingPairHandle } from './ring.js';
import { type FromTcpBridge, type TcpBridgeConfig, type ToTcpBridge, toClientRingBytesFor, BRIDGE_DRAIN_TIMEOUT_MS } from './tcp-bridge.js';
import { FRAME_PAD } from './walsend.js';
import type { WalSourceHandle } from './wal-source.js';
import type { InProcessConnectRequest } from './in-process-connect.js';
import type { ReplicationStatusRow } from './status-row.js';

export type { ReplicationStatusRow };

/** Authentication of in-process connections: trust (the standby runs in this process). */
const IN_PROCESS_HBA: HbaRule[] = [{ type: 'local', database: 'replication', user: 'all', method: 'trust' }];
/** The I/O thread gets this long beyond its own drain bound to exit at shutdown before it is terminated. */
const TCP_BRIDGE_EXIT_SLACK_MS = 1_000;
/** A walsender told to terminate (its slot was invalidated) that has not exited by then is stopped by force. */
const WALSENDER_TERMINATE_TIMEOUT_MS = 5_000;

/** The primary's events the server emits (src/primary/primary-events.ts). */
type ReplicationHostEvents = Pick<PrimaryEvents, 'log' | 'error' | 'walsenderConnected' | 'walsenderStateChanged' | 'walsenderCaughtUp' | 'syncStateChanged' | 'walsenderDisconnected'>;

/**
 * What the server needs from the node it runs in: a primary (Primary), or a standby serving
 * cascading walsenders (src/standby/cascade.ts).
 */
export interface ReplicationHost {
  /** Where WAL is readable up to, for the walsenders (wal-source.ts). */
  readonly walSource: WalSourceHandle;
  readonly dataDir: string;
  readonly walDir: string;
  /** Decimal, as IDENTIFY_SYSTEM and pg_controldata print it. */
  readonly systemIdentifier: string;
  readonly flushLsn: Lsn;
  pinWal(fn: () => Lsn | null): () => void;
  checkpoint(): Promise<void>;
  /** The checkpoint (restartpoint) a base backup starts from; minRecoveryPoint: a standby's, the least end of a backup of it. */
  checkpointInfo(): { redoLsn: Lsn; checkpointLsn: Lsn; snapshotName: string; tli: number; minRecoveryPoint?: Lsn };
  emit<K extends keyof ReplicationHostEvents & string>(event: K, ...args: ReplicationHostEvents[K]): boolean;
  /** Replication slots shared with the walsenders, if any. */
  readonly slots?: ReplicationSlots | null;
  /** Synchronous-commit wait queues the walsenders release, if any. */
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
  /** Serve no connection until releaseConnections() (a promotion listens before its switch point). */
  holdConnections?: boolean;
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
  /** walsenderStateChanged: the previous state. */
  previousState?: string;
}

interface WorkerEntry {
  worker: Worker;
  port: MessagePort;
  id: number;
  unpins: (() => void)[];
  /** Ends the running base backup: releases its WAL pin, closes its fds (idempotent; also run at exit). */
  closeBackupFiles: (() => void) | null;
  /** The running base backup's redo point (its WAL pin), or null. */
  backupRedoLsn: Lsn | null;
  exited: Promise<void>;
}

export class ReplicationServer {
  readonly walsnd: WalSndCtl;
  /** Per-walsender time lag (published by the workers). */
  readonly lag: WalSndLag;
  /** Last state seen per walsender id, for the state-change events. */
  private known = new Map<number, WalSenderEvent>();
  /** The replication I/O thread (listener and TCP sockets) and its control port. */
  private readonly bridge: Worker;
  private readonly bridgeControl: MessagePort;
  private readonly bridgeExited: Promise<void>;
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
  /** Connections accepted while held (holdConnections), served by releaseConnections(); null: not held. */
  private held: Array<() => void> | null;

  private constructor(private readonly host: ReplicationHost, private readonly opts: ReplicationServerOptions) {
    this.held = opts.holdConnections === true ? [] : null;
    this.walsnd = WalSndCtl.create(opts.maxWalSenders);
    this.lag = WalSndLag.create(opts.maxWalSenders);
    this.unpinSenders = host.pinWal(() => this.walsnd.minSent());
    const users = opts.users;
    this.users = users === null ? null : Object.fromEntries(Object.entries(users).map(([u, p]) => [u, p.startsWith('SCRAM-SHA-256$') ? p : makeScramVerifier(p)]));
    this.hba = opts.hba ?? [{ type: 'host', database: 'replication', user: 'all', address: 'all', method: users === null ? 'trust' : 'scram-sha-256' }];
    const { port1, port2 } = new MessageChannel();
    const cfg: TcpBridgeConfig = {
      kind: 'replication-tcp',
      host: opts.host,
      port: opts.port,
      toClientRingBytes: toClientRingBytesFor(opts.walSenderMaxQueuedBytes, FRAME_PAD + XLOGDATA_FRAME_HEADER_BYTES + opts.maxSendBytes),
      control: port2,
    };
    this.bridgeControl = port1;
    this.bridge = new Worker(new URL('./tcp-bridge.js', import.meta.url), { workerData: cfg, transferList: [port2], name: 'replication-io' });
    this.bridge.on('error', (e) => this.log('warning', `replication I/O thread failed: ${e.stack ?? e.message}`));
    this.bridgeExited = new Promise<void>((r) => this.bridge.once('exit', () => r()));
  }

  static async listen(host: ReplicationHost, opts: ReplicationServerOptions): Promise<ReplicationServer> {
    const rs = new ReplicationServer(host, opts);
    const first = await new Promise<FromTcpBridge | null>((resolve) => {
      rs.bridgeControl.once('message', (m: FromTcpBridge) => resolve(m));
      void rs.bridgeExited.then(() => resolve(null));
    });
    if (first === null || first.type !== 'listening') {
      rs.unpinSenders();
      rs.bridgeControl.close();
      await rs.bridge.terminate();
      const e = new Error(first?.type === 'listenFailed' ? first.message : 'replication I/O thread ended before listening') as NodeJS.ErrnoException;
      if (first?.type === 'listenFailed' && first.code !== undefined) e.code = first.code;
      throw e;
    }
    rs._port = first.port;
    rs.bridgeControl.on('message', (m: FromTcpBridge) => rs.onBridgeMessage(m));
    if (rs.held === null) rs.refill(); // (held: at release, their boot not competing with the promotion's work)
    return rs;
  }

  get port(): number {
    return this._port;
  }

  private log(level: string, message: string): void {
    this.host.emit('log', { level, message });
  }

  private onBridgeMessage(m: FromTcpBridge): void {
    switch (m.type) {
      case 'accepted':
        this.onAccepted(m.rings, m.peer, m.remoteAddress, m.remotePort);
        return;
      case 'serverError':
        this.host.emit('error', new Error(m.message));
        return;
      default:
        return;
    }
  }

  /** A TCP connection the I/O thread accepted: served by a walsender over its rings, or refused. */
  private onAccepted(rings: RingPairHandle, peer: MessagePort, remoteAddress: string, remotePort: number): void {
    if (this.held !== null) return void this.held.push(() => this.onAccepted(rings, peer, remoteAddress, remotePort));
    this.serveRings(rings, peer, { ...this.connConfig(), connType: 'host', remoteAddress, remotePort });
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
    if (this.held !== null) return void this.held.push(() => this.onInProcessConnect(m));
    this.serveRings(req.rings!, req.peer, { ...this.connConfig(), connType: 'local', remoteAddress: '', remotePort: -1, hba: IN_PROCESS_HBA, users: null });
  }

  /** Hand a connection's rings to a walsender, or refuse it like a socket closed at once. */
  private serveRings(handles: RingPairHandle, peer: MessagePort, cfg: Omit<WalSenderConnConfig, 'ring'>): void {
    let toClient: ByteRing;
    let toServer: ByteRing;
    try {
      toClient = new ByteRing(handles.toClient);
      toServer = new ByteRing(handles.toServer);
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
    this.hand({ ...cfg, ring: { rings, peer } }, [peer]);
  }

  /** Everything of a connection's config but the connection itself. */
  private connConfig(): Omit<WalSenderConnConfig, 'ring' | 'connType' | 'remoteAddress' | 'remotePort'> {
    return {
      kind: 'walsender',
      backendStartMs: Date.now(),
      source: this.host.walSource,
      walsnd: this.walsnd.handle,
      systemIdentifier: this.host.systemIdentifier,
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
    const entry: WorkerEntry = { worker, port: port1, id: 0, unpins: [], closeBackupFiles: null, backupRedoLsn: null, exited: new Promise<void>((r) => (resolveExit = r)) };
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
    // The backup's files stay open until it ends (backupDone: sent, failed or the client gone). Its
    // WAL from the redo point stays pinned until the connection ends: pg_basebackup -X stream keeps
    // this connection open until its WAL stream (another connection, starting at this redo point,
    // perhaps on a temporary slot reserved later) has reached the backup's end, and concurrent
    // backups' checkpoints must not recycle that WAL meanwhile.
    entry.unpins.push(this.host.pinWal(() => redo));
    entry.closeBackupFiles?.();
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      fs.closeSync(fd);
      entry.backupRedoLsn = null;
    };
    entry.closeBackupFiles = close;
    entry.backupRedoLsn = redo;
    entry.unpins.push(close);
    this.log('info', `base backup starts at redo ${lsnToString(redo)} (snapshot ${info.snapshotName})`);
    return { type: 'backupStarted', redoLsn: redo, checkpointLsn: info.checkpointLsn, tli: info.tli, files, minRecoveryPoint: info.minRecoveryPoint ?? 0 };
  }

  /** Base backups whose archive is being sent: the walsender serving each and its redo point (whose WAL stays pinned until that connection ends). */
  backupsInProgress(): { pid: number; redoLsn: Lsn }[] {
    const out: { pid: number; redoLsn: Lsn }[] = [];
    for (const e of this.workers) if (e.backupRedoLsn !== null) out.push({ pid: e.id, redoLsn: e.backupRedoLsn });
    return out;
  }

  status(): ReplicationStatusRow[] {
    const flush = this.host.flushLsn;
    const lsn = (v: Lsn): Lsn | null => (v === 0 ? null : v);
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
   * Re-derive every walsender's state and sync state and emit what changed: `walsenderConnected`,
   * `walsenderStateChanged`, `walsenderCaughtUp` (catchup → streaming), `syncStateChanged`, `walsenderDisconnected`, each
   * with a WalSenderEvent. Called on worker messages, worker exit and
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
      if (prev && prev.state !== cur.state) this.host.emit('walsenderStateChanged', { ...cur, previousState: prev.state });
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

  /** Serve the connections held so far, and every later one at once (holdConnections). */
  releaseConnections(): void {
    const held = this.held;
    this.held = null;
    for (const serve of held ?? []) serve();
    this.refill();
  }

  /** Stop accepting connections (open connections go on until their walsenders end them). */
  stopListening(): void {
    if (!this.listening) return;
    this.listening = false;
    this.releaseConnections(); // refused: no longer listening
    this.postBridge({ type: 'stopListening' });
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
    // Every walsender has exited: the I/O thread sends what they left queued, then exits.
    this.postBridge({ type: 'stop' });
    let bridgeTimer: NodeJS.Timeout | undefined;
    const bridgeTimedOut = new Promise<'timeout'>((r) => (bridgeTimer = setTimeout(() => r('timeout'), BRIDGE_DRAIN_TIMEOUT_MS + TCP_BRIDGE_EXIT_SLACK_MS)));
    const bres = await Promise.race([this.bridgeExited.then(() => 'done' as const), bridgeTimedOut]);
    clearTimeout(bridgeTimer);
    if (bres === 'timeout') await this.bridge.terminate();
    this.bridgeControl.close();
  }

  private postBridge(m: ToTcpBridge): void {
    try {
      this.bridgeControl.postMessage(m);
    } catch {
      /* the I/O thread is gone */
    }
  }
}
