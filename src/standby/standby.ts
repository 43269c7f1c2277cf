// Standby: a walstream hot standby (or, in 'wal-only' mode, a WAL archiver like pg_receivewal)
// in this process. Runs on the thread that calls Standby.open (main thread). It owns the data
// directory (pid file, control file, restartpoints: PostgreSQL's checkpointer role), the shared
// store (replica mode), WalRcvData, and three kinds of threads: the startup worker (replay), the
// walreceiver worker (network + pg_wal) and the ReaderPool's piscina readers. Stops with close():
// the walreceiver ends the stream (CopyDone, Terminate), the startup worker stops between
// records, the pool is destroyed, and the control file says "shut down in recovery".
//
// Opening (the directory and the store: standby-datadir.ts): the startup worker replays the local
// WAL and reports where it ends, the walreceiver starts streaming at that segment's start, and
// open() resolves once replay has passed the control file's minRecoveryPoint (a consistent state;
// PostgreSQL's "ready to accept read-only connections").
//
// Reads (hot standby): get/scan/readConsistent on this thread and `pool` (ReaderPool) on reader
// threads read the shared store in place under its read latch, so each read sees whole
// transactions only. waitForReplay(lsn) resolves once replay has passed lsn (Atomics.waitAsync on
// REPLAY_SEQ, no polling): read-your-writes for LSNs returned by primary.transaction().
//
// Restart safety: a restartpoint (restartpoint.ts) at replayed checkpoint records, at most every
// checkpointTimeoutMs or after maxWalSizeBytes of WAL, one at a time.
//
// Promotion (promote(); standby-promote.ts, src/primary/promotion.ts): the workers stop, the rest of
// pg_wal is replayed, and a Primary on a new timeline takes over the directory and this store; this object
// then keeps only its readers (get/scan/pool), and close() closes just those.

import path from 'node:path';
import { type MessagePort, Worker } from 'node:worker_threads';
import { errorFromInfo, Errors, WalstreamError } from '../errors.js';
import { releasePidFile } from '../storage/datadir.js';
import { type ControlData, DbState, DB_STATE_NAMES, readControl, writeControl } from '../storage/control.js';
import { ReaderPool } from '../storage/reader-pool.js';
import { type ScanEntry, type ScanOptions, SharedStore, type StoreReadView } from '../storage/store.js';
import { checkLsn, type Lsn } from '../wal/lsn.js';
import { receiveWalResumeLsn } from '../wal/segfile.js';
import { receiveTimelineAt, recordReplayTimeline } from './timeline-follow.js';
import type { RejoinInfo } from './rejoin.js';
import { watchPromoteSignal } from './promote-signal.js';
import type { BaseBackupResult } from './basebackup-client.js';
import { displayConninfo, type PrimaryConninfo, resolveConninfo, type ResolvedStandbyOptions, type StandbyMode, type StandbyOptions } from './options.js';
import type { StartupConfig, StartupMessage } from './startup.js';
import { prepareStandbyDataDir } from './standby-datadir.js';
import { createRestartpoint, type ReplayedCheckpoint } from './restartpoint.js';
import { CascadeServer, type CascadeStandby } from './cascade.js';
import type { ReplicationStatusRow } from '../replication/server.js';
import { ReplayWaiters } from './replay-waiters.js';
import { ReaderControl, type ReaderHandle } from './reader-handle.js';
import { WalRcvData } from './walrcvdata.js';
import { type WalReceiverStatus, walReceiverStatusRow } from './wal-receiver-status.js';
import type { WalReceiverCommand, WalReceiverConfig, WalReceiverMessage } from './walreceiver.js';
import type { Primary } from '../primary/primary.js';
import type { PrimaryOptions } from '../primary/options.js';
import type { ReplayResume } from '../primary/promotion.js';
import { becomePrimary, startPromotionListener } from './standby-promote.js';
import { TypedEventEmitter } from '../util/typed-events.js';
import { type RestartpointInfo, type StandbyEvents, WalReceiverEvents } from './standby-events.js';
import type { Registry } from 'prom-client';
import { standbyMetrics } from './standby-metrics.js';
import type { ReplayPauseState } from './walrcvdata.js';
import type { LiveProfileOptions, LiveProfileResult } from '../profile/live.js';

/** Standby.promote's options: the new Primary's (its data directory is the standby's). */
export type PromoteOptions = Omit<PrimaryOptions, 'dataDir'>;

export type { WalReceiverStatus, RestartpointInfo, StandbyEvents, ReplayPauseState };

/** How long close() waits for a worker to stop by itself before terminating it. */
export const WORKER_STOP_TIMEOUT_MS = 10_000;

export class Standby extends TypedEventEmitter<StandbyEvents> {
  readonly dataDir: string;
  readonly walDir: string;
  readonly options: ResolvedStandbyOptions;
  readonly mode: StandbyMode;
  /** The replicated store (replica mode), read in place by every reader. */
  readonly store: SharedStore | null;
  /** Piscina reader threads over the store (replica mode with readerThreads > 0). */
  readonly pool: ReaderPool | null;
  readonly walrcv: WalRcvData;
  /** Set when the data directory was filled by a base backup during this open(). */
  baseBackup: BaseBackupResult | null = null;
  /** Set when open() checked the directory against the upstream's timeline (src/standby/rejoin.ts): an old primary's, or rebuildIfDiverged. */
  rejoin: RejoinInfo | null = null;
  private control: ControlData | null;
  private startup: Worker | null = null;
  private walreceiver: Worker | null = null;
  private failure: WalstreamError | null = null;
  private closing: Promise<void> | null = null;
  /** Read-your-writes waits (waitForReplay). */
  private readonly replayWaiters: ReplayWaiters;
  private restartpointRunning: Promise<void> | null = null;
  private lastRestartpointAt = performance.now();
  private restartpoints = 0;
  private readonly exited = new Map<Worker, Promise<void>>();
  /** Per worker: its last message ('stopped', 'failed': its files are closed) or its exit; a promotion goes on from there. */
  private readonly done = new Map<Worker, Promise<void>>();
  /** Where the startup worker stopped (set by its 'stopped' message): a promotion resumes there. */
  private startupStopped: ReplayResume | null = null;
  private promoting: Promise<Primary> | null = null;
  /** Stops watching for promoteTriggerFile (null: not watching). */
  private stopPromoteWatch: (() => void) | null = null;
  /** The Primary this standby became (promote()): it owns the directory and store from then on. */
  private promotedTo: Primary | null = null;
  /** The walreceiver's connect / disconnect / state events, and its connection count. */
  readonly receiverEvents: WalReceiverEvents;
  /** Cascading walsenders (options `port`, src/standby/cascade.ts), or null. */
  private cascade: CascadeServer | null = null;
  /** The newest checkpoint record replayed (a base backup of this standby may restart from it). */
  private lastCheckpointReplayed: ReplayedCheckpoint | null = null;

  private constructor(args: { options: ResolvedStandbyOptions; control: ControlData | null; store: SharedStore | null; walrcv: WalRcvData }) {
    super();
    this.options = args.options;
    this.dataDir = args.options.dataDir;
    this.walDir = path.join(this.dataDir, 'pg_wal');
    this.mode = args.options.mode;
    this.control = args.control;
    this.store = args.store;
    this.walrcv = args.walrcv;
    this.replayWaiters = new ReplayWaiters(args.walrcv);
    this.receiverEvents = new WalReceiverEvents(this, args.walrcv);
    this.pool = args.store !== null && args.options.readerThreads > 0 ? new ReaderPool(args.store.handle, { threads: args.options.readerThreads }) : null;
    // 'error' events without a listener would throw: failures are also reported through open(),
    // waitForReplay() and `failed`.
    this.on('error', () => undefined);
  }

  /** Open a standby data directory (base backup if empty), start replay and streaming. */
  static async open(opts: StandbyOptions): Promise<Standby> {
    const { options, control, store, baseBackup, rejoin } = await prepareStandbyDataDir(opts);
    let s: Standby | null = null;
    try {
      const walrcv = WalRcvData.create();
      s = new Standby({ options, control, store, walrcv });
      s.baseBackup = baseBackup;
      s.rejoin = rejoin;
      if (control !== null) walrcv.setTimeline(control.tli);
      if (options.mode === 'replica') await s.startReplica();
      else s.startWalOnly();
      s.watchPromoteTrigger();
      if (options.cascade !== null) s.cascade = await CascadeServer.start(s.cascadeStandby(), options.cascade);
      return s;
    } catch (e) {
      if (s !== null) await s.close().catch(() => undefined);
      else releasePidFile(options.dataDir);
      throw e;
    }
  }

  // ---- workers ------------------------------------------------------------------------------

  private spawn(file: string, data: object, name: string, transferList: MessagePort[] = []): Worker {
    const w = new Worker(new URL(file, import.meta.url), { workerData: data, name, transferList });
    this.exited.set(w, new Promise<void>((resolve) => w.once('exit', () => resolve())));
    const lastMessage = new Promise<void>((resolve) => w.on('message', (m: { type: string }) => (m.type === 'stopped' || m.type === 'failed') && resolve()));
    this.done.set(w, Promise.race([lastMessage, this.exited.get(w)!]));
    w.on('error', (e) => this.fail(e instanceof WalstreamError ? e : Errors.internal(`${name} crashed: ${e.message}`)));
    return w;
  }

  private async startReplica(): Promise<void> {
    const c = this.control!;
    const cfg: StartupConfig = {
      store: this.store!.handle, walrcv: this.walrcv.handle, walDir: this.walDir, segSize: c.segSize, sysid: c.sysid, tli: c.tli, redoLsn: c.redoLsn, stageTrace: this.options.stageTrace,
    };
    const localEnd = new Promise<Lsn>((resolve, reject) => {
      const startup = this.spawn('./startup.js', { startup: cfg }, 'startup');
      this.startup = startup;
      startup.on('message', (m: StartupMessage) => {
        switch (m.type) {
          case 'localEnd':
            this.emit('localEnd', { lsn: m.lsn, records: m.records, reason: m.reason, reasonCode: m.reasonCode });
            resolve(m.lsn);
            break;
          case 'checkpoint':
            this.onCheckpointReplayed(m);
            break;
          case 'timeline':
            this.onReplayTimeline(m);
            break;
          case 'failed':
            reject(errorFromInfo(m.error));
            this.fail(errorFromInfo(m.error));
            break;
          case 'stopped':
            this.startupStopped = { next: m.replay, prev: m.prev, lastXid: m.lastXid };
            break;
        }
      });
      startup.once('exit', () => reject(this.failure ?? Errors.closed('startup worker')));
    });
    const end = await localEnd;
    // (Streaming resumes on the timeline of our end of WAL, as RequestXLogStreaming asks for it.)
    this.startWalReceiver(end, receiveTimelineAt(this.walDir, c.tli, end));
    await this.waitForReplay(c.minRecoveryPoint, Infinity);
    this.emit('consistent', { lsn: this.walrcv.replay });
  }

  private startWalOnly(): void {
    const c = this.control;
    const start = c === null ? null : receiveWalResumeLsn(this.walDir, c.segSize, c.tli);
    if (start !== null) this.walrcv.initPositions(start, 0);
    this.startWalReceiver(start);
  }

  private startWalReceiver(startLsn: Lsn | null, tli = this.control?.tli ?? 0): void {
    const o = this.options;
    const c = this.control;
    const cfg: WalReceiverConfig = {
      walrcv: this.walrcv.handle,
      conninfo: o.primaryConninfo,
      // In-process: a listener port of the primary's, for this worker's (re)connections.
      inProcess: o.inProcess?.inProcessListener() ?? null,
      ringBytes: o.walReceiverRingBytes,
      mode: o.mode,
      dataDir: this.dataDir,
      slotName: o.primarySlotName,
      sysid: c === null ? null : c.sysid.toString(),
      tli,
      segSize: c?.segSize ?? 0,
      startLsn,
      statusIntervalMs: o.walReceiverStatusIntervalMs,
      timeoutMs: o.walReceiverTimeoutMs,
      retryIntervalMs: o.walRetrieveRetryIntervalMs,
      flushAfterBytes: o.walReceiverFlushAfterBytes,
      walInitZero: o.walInitZero,
      directIo: o.walReceiverDirectIo,
      stageTrace: o.stageTrace,
      maxBufferedBytes: o.walReceiverMaxBufferedBytes,
      connectTimeoutMs: o.connectTimeoutMs,
      maxMessageBytes: o.maxMessageBytes,
    };
    const w = this.spawn('./walreceiver.js', { walreceiver: cfg }, 'walreceiver', cfg.inProcess !== null ? [cfg.inProcess] : []);
    this.walreceiver = w;
    w.on('message', (m: WalReceiverMessage) => {
      this.receiverEvents.onMessage(m);
      switch (m.type) {
        case 'identified':
          this.control = readControl(this.dataDir);
          this.emit('identified', m);
          break;
        case 'streaming':
          this.emit('streaming', { start: m.start, tli: m.tli });
          break;
        case 'timeline':
          this.onTimelineFollowed(m);
          break;
        case 'warning':
          this.emit('warning', Errors.remote(m.sqlstate, m.message));
          break;
        case 'failed':
          this.fail(errorFromInfo(m.error));
          break;
        case 'stopped':
          break;
      }
    });
  }

  // ---- following a timeline switch ----------------------------------------------------------

  /**
   * The walreceiver followed the upstream onto a new timeline (its history file is in pg_wal; in
   * wal-only mode the control file names the new timeline): 'timeline' { tli, prevTli, switchpoint }.
   */
  private onTimelineFollowed(m: { tli: number; prevTli: number; switchpoint: Lsn }): void {
    if (this.mode === 'wal-only') this.control = readControl(this.dataDir);
    this.emit('timeline', { tli: m.tli, prevTli: m.prevTli, switchpoint: m.switchpoint });
  }

  /**
   * Replay moved onto a newer timeline (startup's rescanLatestTimeLine): the control file records
   * it (minRecoveryPointTLI), so a restart replays along that timeline's history.
   */
  private onReplayTimeline(m: StartupMessage & { type: 'timeline' }): void {
    const c = this.control;
    if (c === null || m.tli <= c.tli) return;
    this.control = recordReplayTimeline(this.dataDir, c, m.tli);
    this.emit('replayTimeline', { tli: m.tli, prevTli: m.prevTli, switchpoint: m.switchpoint });
  }

  // ---- re-pointing ----------------------------------------------------------------------------

  /**
   * Stream from another upstream without a restart (PostgreSQL 15 re-reads primary_conninfo on
   * reload): the walreceiver ends its stream, connects to `conninfo`, checks the system identifier
   * and the upstream's timeline history (fetching the history files it lacks; a standby whose
   * flushed WAL goes past the upstream's fork point refuses to stream and warns, naming both
   * positions), and streams from where its flush ended, following timeline switches.
   */
  setPrimaryConninfo(conninfo: PrimaryConninfo | string): void {
    if (this.options.inProcess !== null) throw Errors.featureNotSupported('a standby of an in-process primary cannot be re-pointed');
    const resolved = resolveConninfo(conninfo);
    this.options.primaryConninfo = resolved;
    const cmd: WalReceiverCommand = { type: 'conninfo', conninfo: resolved };
    this.walreceiver?.postMessage(cmd);
  }

  /** A worker failed for good: reject waiters, report. The standby keeps serving reads. */
  private fail(e: WalstreamError): void {
    if (this.failure !== null) return;
    this.failure = e;
    this.replayWaiters.rejectAll(e);
    this.emit('error', e);
  }

  /** The error that stopped streaming or replay, if any. */
  get failed(): WalstreamError | null {
    return this.failure;
  }

  // ---- positions and waits ------------------------------------------------------------------

  get replayLsn(): Lsn {
    return this.walrcv.replay;
  }

  get flushLsn(): Lsn {
    return this.walrcv.flushed;
  }

  get writeLsn(): Lsn {
    return this.walrcv.written;
  }

  /** The database system identifier in decimal, as pg_controldata prints it (null before the control file exists). */
  get systemIdentifier(): string | null {
    return this.control?.sysid.toString() ?? null;
  }

  get timeline(): number {
    return this.control?.tli ?? 0;
  }

  /**
   * Resolve (with the replay position) once replay has passed `lsn` (what transaction() returned,
   * or any LSN of a status row; parseLsn converts PostgreSQL's `X/X` text); reject after timeoutMs
   * (Infinity: no timeout), or if replay stops for good.
   */
  async waitForReplay(lsn: Lsn, timeoutMs = 30_000): Promise<Lsn> {
    if (this.mode !== 'replica') throw Errors.invalidOption('mode', 'waitForReplay needs a replica (wal-only mode does not replay)');
    checkLsn('lsn', lsn);
    if (!(timeoutMs >= 0)) throw Errors.invalidOption('timeoutMs', `must be >= 0, got ${String(timeoutMs)}`);
    const r = this.walrcv.replay;
    if (r >= lsn) return r;
    if (this.failure !== null) throw this.failure;
    if (this.closing !== null) throw Errors.closed('standby');
    // A synchronousCommit 'off' commit may not be flushed yet, and walsenders send flushed WAL
    // only: the primary is asked to flush it now instead of at wal_writer_delay — a primary in
    // this process directly, one over the wire through the walreceiver (StandbyFlushRequest `F`,
    // walstream primaries only: PostgreSQL's walwriter flushes within its wal_writer_delay).
    if (this.options.inProcess !== null) this.options.inProcess.requestWalFlush?.(lsn);
    else if (lsn > this.walrcv.flushed && this.walreceiver !== null) this.walreceiver.postMessage({ type: 'flushRequest', lsn } satisfies WalReceiverCommand);
    return this.replayWaiters.wait(lsn, timeoutMs);
  }

  // ---- reads (hot standby) ------------------------------------------------------------------

  private readStore(): SharedStore {
    if (this.store === null) throw Errors.featureNotSupported('a wal-only standby has no store to read');
    return this.store;
  }

  get(table: string, key: string | Uint8Array): unknown {
    return this.readStore().get(table, key);
  }

  scan(table: string, opts?: ScanOptions): ScanEntry[] {
    return this.readStore().scan(table, opts);
  }

  /** Several reads under one read latch: one transaction-consistent state. */
  readConsistent<T>(fn: (view: StoreReadView) => T): T {
    return this.readStore().readConsistent(fn);
  }

  private readerControl: ReaderControl | null = null;

  /** A structured-cloneable handle: openReader(handle) in any thread reads this store in place (reader-handle.ts). */
  readerHandle(): ReaderHandle {
    if (this.closing !== null) throw Errors.closed('standby');
    this.readerControl ??= ReaderControl.forStandby(this, this.readStore().handle, this.walrcv.handle.buffer, { failure: this.failure, promoted: this.promotedTo !== null });
    return this.readerControl.handle;
  }

  // ---- status -------------------------------------------------------------------------------

  receiverStatus(): WalReceiverStatus {
    return walReceiverStatusRow(this.walrcv.snapshot(), {
      pid: this.walreceiver?.threadId ?? null,
      replica: this.mode === 'replica',
      slotName: this.options.primarySlotName,
      conninfo: displayConninfo(this.options.primaryConninfo),
    });
  }

  /** This standby's prom-client Registry (src/standby/standby-metrics.ts); one per standby, made on first use. */
  metricsRegistry(): Registry {
    return standbyMetrics(this).registry;
  }

  /** pg_wal_replay_pause() (replay stops at the next record boundary; streaming goes on), pg_wal_replay_resume(), pg_get_wal_replay_pause_state(). */
  pauseReplay(): void {
    if (this.mode !== 'replica') throw Errors.featureNotSupported('a wal-only standby does not replay');
    this.walrcv.requestReplayPause();
  }
  resumeReplay(): void {
    this.walrcv.resumeReplay();
  }
  get replayPauseState(): ReplayPauseState {
    return this.walrcv.replayPauseState;
  }

  /** Control file state (LSNs as `Lsn` numbers; 0 before the control file exists), restartpoints made. */
  stats(): { state: string; redoLsn: Lsn; minRecoveryPoint: Lsn; restartpoints: number } {
    const c = this.control;
    const state = c ? (DB_STATE_NAMES[c.state] ?? String(c.state)) : 'uninitialised';
    return { state, redoLsn: c?.redoLsn ?? 0, minRecoveryPoint: c?.minRecoveryPoint ?? 0, restartpoints: this.restartpoints };
  }

  /**
   * Profile WAL apply latency over `seconds` of real traffic: each hop from the primary's flush to
   * visible here, redo cost per record kind and size band, lag over time (src/profile/live.ts).
   * Needs the standby opened with `stageTrace: profileTrace()`.
   */
  async profile(opts: LiveProfileOptions = {}): Promise<LiveProfileResult> {
    const { profileStandby } = await import('../profile/live.js');
    return profileStandby(this, opts);
  }

  // ---- restartpoints ------------------------------------------------------------------------

  private onCheckpointReplayed(m: StartupMessage & { type: 'checkpoint' }): void {
    this.lastCheckpointReplayed = { lsn: m.lsn, end: m.end, redo: m.redo, nextXid: m.nextXid };
    const c = this.control;
    if (c === null || this.closing !== null || this.restartpointRunning !== null || m.redo <= c.redoLsn) return;
    const due =
      performance.now() - this.lastRestartpointAt >= this.options.checkpointTimeoutMs ||
      m.redo - c.redoLsn >= this.options.maxWalSizeBytes;
    if (due) this.startRestartpoint(m);
  }

  private startRestartpoint(m: ReplayedCheckpoint): void {
    this.restartpointRunning = this.restartpoint(m)
      .then((info) => {
        this.emit('restartpoint', info);
      })
      .catch((e: unknown) => {
        this.emit('warning', e instanceof WalstreamError ? e : Errors.internal(`restartpoint failed: ${(e as Error).message}`));
      })
      .finally(() => {
        this.restartpointRunning = null;
      });
  }

  private async restartpoint(m: ReplayedCheckpoint): Promise<RestartpointInfo> {
    const { info } = await createRestartpoint({
      dataDir: this.dataDir, walDir: this.walDir, store: this.store!, control: () => this.control!, flushed: () => this.walrcv.flushed, written: () => this.walrcv.written,
      keepFrom: (redo) => this.cascade?.keepFrom(redo) ?? redo, minWalSizeBytes: this.options.minWalSizeBytes, maxWalSizeBytes: this.options.maxWalSizeBytes,
      controlWritten: (control) => {
        this.control = control;
        this.restartpoints++;
        this.lastRestartpointAt = performance.now();
      },
    }, m);
    return info;
  }

  // ---- serving replication (options `port`: cascading walsenders, src/standby/cascade.ts) ------

  private cascadeStandby(): CascadeStandby {
    const restartpointForBackup = async (): Promise<void> => {
      // A base backup starts at a restartpoint: at the newest replayed checkpoint record if it is newer.
      if (this.restartpointRunning) await this.restartpointRunning;
      const m = this.lastCheckpointReplayed;
      if (m !== null && this.control !== null && m.redo > this.control.redoLsn && this.closing === null && this.restartpointRunning === null) this.startRestartpoint(m);
      if (this.restartpointRunning) await this.restartpointRunning;
    };
    const { dataDir, walDir, walrcv } = this;
    return { dataDir, walDir, walrcv, maxWalSizeBytes: this.options.maxWalSizeBytes, control: () => this.control!, restartpointForBackup, emit: (e, ...args) => (this.emit as (event: string, ...a: unknown[]) => boolean)(e, ...args) };
  }

  /** What this standby serves (port, downstream walsenders, slots, base backups); null without `port`. */
  get replication(): CascadeServer | null { return this.cascade; }

  /** pg_stat_replication here (the primary's shape): the downstream walsenders, all `async`. */
  replicationStatus(): ReplicationStatusRow[] {
    return this.cascade?.status() ?? [];
  }

  // ---- promotion (src/primary/promotion.ts) ---------------------------------------------------

  /**
   * pg_promote(): stop the walreceiver, let startup stop, replay the rest of pg_wal, and switch to
   * a new timeline; resolves to the Primary now running over this data directory and this very
   * store (reads through `get`/`scan`/`pool` go on, and see its commits). `port`: serve
   * replication (0 = any free port; omitted: no listener). Other options are the Primary's.
   */
  promote(opts: PromoteOptions = {}): Promise<Primary> {
    if (this.mode !== 'replica') return Promise.reject(Errors.promoteNotPossible('a wal-only standby has no store to promote'));
    if (this.promoting !== null) return this.promoting;
    if (this.closing !== null) return Promise.reject(Errors.closed('standby'));
    this.stopPromoteWatch?.();
    this.stopPromoteWatch = null;
    this.promoting = this.runPromotion(opts);
    return this.promoting;
  }

  private async runPromotion(opts: PromoteOptions): Promise<Primary> {
    const options: PrimaryOptions = { maxStoreBytes: this.options.maxStoreBytes, maxValueBytes: this.options.maxValueBytes, ...opts, dataDir: this.dataDir };
    const listener = startPromotionListener(options, this.walDir); // first: its threads boot meanwhile
    try {
      this.emit('promoting');
      this.cascade?.stopListening();
      if (this.restartpointRunning) await this.restartpointRunning;
      // Stop streaming and replay; startup reports where it stopped.
      this.walrcv.requestStop();
      await Promise.all([this.walreceiver, this.startup].map((w) => (w === null ? undefined : this.done.get(w))));
      this.walrcv.resumeReplay(); // promotion ends a replay pause (as PostgreSQL's does)
      // Downstreams get what was flushed, then "COPY 0"; they reconnect to the new primary's port.
      await this.cascade?.close();
      const resume = this.startupStopped;
      if (resume === null) throw Errors.promoteNotPossible(`the startup process stopped without reporting its position${this.failure ? `: ${this.failure.message}` : ''}`);
      const control = this.control!;
      const { primary, tli, switchpoint } = await becomePrimary({ dataDir: this.dataDir, walDir: this.walDir, control, store: this.store!, resume, options, listener });
      this.promotedTo = primary;
      this.control = { ...control, tli, state: DbState.InProduction };
      this.emit('promoted', { tli, switchpoint });
      return primary;
    } catch (e) {
      await listener?.abort();
      throw e;
    }
  }

  /**
   * promoteTriggerFile (promote_trigger_file): promote once the file (or the promote signal file)
   * appears, with promoteOptions; a failure is reported as 'error' and the standby keeps running.
   */
  private watchPromoteTrigger(): void {
    const file = this.options.promoteTriggerFile;
    if (file === null) return;
    this.stopPromoteWatch = watchPromoteSignal(this.dataDir, file, () => {
      this.stopPromoteWatch = null;
      if (this.closing !== null) return;
      this.promote(this.options.promoteOptions).catch((e: unknown) => {
        this.emit('error', e instanceof WalstreamError ? e : Errors.promoteNotPossible((e as Error).message));
      });
    });
  }

  /** The Primary this standby was promoted to, or null. */
  get promoted(): Primary | null {
    return this.promotedTo;
  }

  // ---- shutdown -----------------------------------------------------------------------------

  /** Stop streaming and replay, close the reader pool, release the data directory. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.stopPromoteWatch?.();
    this.stopPromoteWatch = null;
    this.closing = (async () => {
      if (this.promoting !== null) await this.promoting.catch(() => undefined);
      if (this.promotedTo !== null) {
        // The primary owns the data directory now: only the readers are this standby's.
        if (this.pool) await this.pool.close();
        this.replayWaiters.rejectAll(Errors.closed('standby'));
        this.emit('close');
        return;
      }
      this.cascade?.stopListening();
      if (this.restartpointRunning) await this.restartpointRunning;
      this.walrcv.requestStop();
      const stopWorker = async (w: Worker | null) => {
        if (w === null) return;
        const exited = this.exited.get(w)!;
        const t = setTimeout(() => void w.terminate(), WORKER_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(t);
      };
      await Promise.all([stopWorker(this.walreceiver), stopWorker(this.startup)]);
      // Nothing more is flushed: downstreams get everything up to here, then "COPY 0".
      await this.cascade?.close();
      if (this.pool) await this.pool.close();
      this.replayWaiters.rejectAll(Errors.closed('standby'));
      const c = this.mode === 'replica' ? this.control : readControl(this.dataDir);
      if (c !== null && c.snapshotName !== '') {
        this.control = { ...c, state: DbState.ShutDownInRecovery, timeMs: Date.now() };
        writeControl(this.dataDir, this.control);
      }
      releasePidFile(this.dataDir);
      this.emit('close');
    })();
    return this.closing;
  }
}
