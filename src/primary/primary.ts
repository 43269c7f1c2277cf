// Primary: the read-write walstream server in this process.
// Runs on the thread that calls Primary.open (the "backend" thread): it owns transactions, WAL
// insertion, the store's writer side and checkpoints. It starts the walwriter worker (writes and
// fdatasyncs WAL, group commit). Stops with close(): no new transactions, wait for every
// inserted record to be flushed, shutdown checkpoint, control file marked "shut down".
// Guarantee: a transaction whose promise resolved at synchronousCommit 'local'/'on' is in WAL on
// disk and survives kill -9; recovery replays WAL from the last checkpoint's redo point to the
// end of valid WAL and never applies a torn or unverified record.
// Data directory initialisation and crash recovery: recovery.ts; the transaction handle:
// transaction.ts.

import fs from 'node:fs';
import path from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { Errors } from '../errors.js';
import { acquirePidFile, releasePidFile } from '../storage/datadir.js';
import { type ScanOptions, SharedStore } from '../storage/store.js';
export type { ScanOptions };
import { DbState, type ControlData, writeControl } from '../storage/control.js';
import { FIRST_NORMAL_XID, MAX_RECORD_BYTES, nowPgMicros, XLOG_BLCKSZ } from '../wal/consts.js';
import { WalInserter } from '../wal/insert.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { TxnRecordBuilder } from '../wal/record.js';
import { buildEndOfRecoveryRecord } from '../wal/end-of-recovery.js';
import { assert } from '../util/assert.js';
import { StageTrace } from '../util/stage-trace.js';
import { WalFileWriter } from '../wal/wal-file-writer.js';
import {
  XC_BYTES_WRITTEN, XC_FLUSHED, XC_FSYNC_COUNT, XC_WRITE_COUNT,
  XC_WRITTEN, XLogCtl,
} from '../wal/xlogctl.js';
import { FlushWaiter } from './flush-waiter.js';
import { WalWriterProcess } from './walwriter-process.js';
import { createCheckpoint } from './checkpointer.js';
import { assertCanListen } from '../replication/listen-probe.js';
import { ReaderControl, type ReaderHandle } from '../standby/reader-handle.js';
import { ReplicationServer, type ReplicationStatusRow } from '../replication/server.js';
import { type PromotionListener, replicationServerOptions } from './promotion-listener.js';
import type { WalSourceHandle } from '../replication/wal-source.js';
import { ReplicationSlots, type ReplicationSlotRow, type SlotData, type WalRetention } from '../replication/slots.js';
import { SyncRepQueue, SyncWaiter, syncNotConfirmedError } from '../replication/syncrep-queue.js';
import { waitModeOf } from '../replication/syncrep.js';
import { type PrimaryOptions, type ResolvedPrimaryOptions, resolvePrimaryOptions, type SynchronousCommit } from './options.js';
import { initDataDir, readControlOrRefuse, recover, type RecoveryInfo, removeInitialisedDataDir } from './recovery.js';
import { checkKey, checkTable, Transaction } from './transaction.js';
import { cleanupAfterPromotion, type EndOfLog, promoteStep } from './promotion.js';
import type { CommitResult, PrimaryStats, TransactionOptions } from './primary-types.js';
import { emitSyncWaitEvent, type PrimaryEvents } from './primary-events.js';
import { TypedEventEmitter } from '../util/typed-events.js';
import type { Registry } from 'prom-client';
import { metricsForPrimary } from '../replication/metrics.js';

export { Transaction };
export type { RecoveryInfo };
export type { CommitResult, PrimaryStats, TransactionOptions };
export type { PrimaryEvents };

export class Primary extends TypedEventEmitter<PrimaryEvents> {
  readonly dataDir: string;
  readonly walDir: string;
  readonly options: ResolvedPrimaryOptions;
  readonly store: SharedStore;
  readonly ctl: XLogCtl;
  readonly recovery: RecoveryInfo;
  private readonly inserter: WalInserter;
  private readonly flushWaiter: FlushWaiter;
  /** This thread's WAL writer for lone commits (committerFlush), closed after the walwriter stops. */
  private readonly commitWriter: WalFileWriter | null;
  private readonly walwriter: WalWriterProcess;
  private control: ControlData;
  private nextXid: number;
  private closed = false;
  private closing: Promise<void> | null = null;
  private checkpointRunning: Promise<void> | null = null;
  private checkpointTimer: NodeJS.Timeout | null = null;
  private commits = 0;
  private checkpoints = 0;
  /** The WAL record builder transactions write into (null while one is using it). */
  private txBuilder: TxnRecordBuilder | null = new TxnRecordBuilder();
  private walWriterError: Error | null = null;
  private readonly startInsertLsn: Lsn;
  /** Callbacks that pin WAL (walsenders, slots): recycling never removes WAL at or after the minimum. */
  private readonly walPins = new Set<() => Lsn | null>();
  /** The replication listener and its walsenders (when `port` is set). */
  private replServer: ReplicationServer | null = null;
  /** Physical replication slots (pg_replslot/), shared with the walsenders. */
  readonly slots: ReplicationSlots;
  /** synchronous_standby_names and the commits waiting for standbys, shared with the walsenders. */
  readonly syncRep: SyncRepQueue;
  private readonly syncWaiter: SyncWaiter;

  private constructor(args: {
    options: ResolvedPrimaryOptions; store: SharedStore; ctl: XLogCtl; control: ControlData; recovery: RecoveryInfo;
    insertPos: Lsn; prevRecord: Lsn; nextXid: number;
    /** A promotion: commits are flushed on this thread until the walwriter's thread runs. */
    promoted?: boolean;
  }) {
    super();
    this.options = args.options;
    this.dataDir = args.options.dataDir;
    this.walDir = path.join(this.dataDir, 'pg_wal');
    this.store = args.store;
    this.ctl = args.ctl;
    this.control = args.control;
    this.recovery = args.recovery;
    this.nextXid = args.nextXid;
    this.startInsertLsn = args.insertPos;
    // Slots first: a damaged pg_replslot/ refuses to open before any thread starts.
    this.slots = ReplicationSlots.open({ dataDir: this.dataDir, maxReplicationSlots: args.options.maxReplicationSlots, redoLsn: args.control.redoLsn });
    this.walPins.add(() => this.slotCheckpoint());
    this.syncRep = SyncRepQueue.create({ maxSyncWaiters: args.options.maxSyncWaiters });
    this.syncRep.setConfig(args.options.synchronousStandbyNames);
    this.syncWaiter = new SyncWaiter(this.syncRep, {
      syncTimeoutMs: args.options.syncTimeoutMs,
      policy: args.options.syncTimeoutPolicy,
      onEvent: (e) => emitSyncWaitEvent(this, e),
    });
    // Kick the walwriter once wal_writer_flush_after bytes are waiting (PostgreSQL's walwriter rule).
    this.inserter = new WalInserter(this.ctl, args.insertPos, args.prevRecord, Math.max(64 * 1024, args.options.walWriterFlushAfterBytes));
    this.commitWriter = args.options.committerFlush || args.promoted === true ? new WalFileWriter(this.ctl, this.walDir, false, args.options.stageTrace ? new StageTrace(args.options.stageTrace) : null) : null;
    this.flushWaiter = new FlushWaiter(this.ctl, this.commitWriter, args.options.committerFlush);
    this.walwriter = new WalWriterProcess(this.ctl, this.walDir, args.options, (e, crashed) => {
      this.walWriterError = e;
      if (crashed) this.flushWaiter.rejectAll(e);
      else this.flushWaiter.drain();
      this.emit('error', e);
    });
    if (args.promoted === true) {
      this.flushWaiter.walWriterStarting = true;
      void this.walwriter.online.then(() => (this.flushWaiter.walWriterStarting = false));
    }
  }

  /** Open (or initialise) a data directory, run crash recovery, start the walwriter. */
  static async open(opts: PrimaryOptions): Promise<Primary> {
    const options = resolvePrimaryOptions(opts);
    const dataDir = path.resolve(options.dataDir);
    options.dataDir = dataDir;
    let control = readControlOrRefuse(dataDir);
    // The replication port first: a port in use is an error before the directory is touched.
    if (options.port !== null) await assertCanListen('port', options.host, options.port);
    const existed = fs.existsSync(dataDir);
    const initialised = control === null;
    if (control === null) control = await initDataDir(dataDir, options);
    acquirePidFile(dataDir);
    try {
      const store = SharedStore.create({ maxStoreBytes: options.maxStoreBytes, maxValueBytes: options.maxValueBytes });
      const r = await recover(dataDir, control, store);
      // A crash between a promotion's control file write and its `.partial` rename: finish it.
      cleanupAfterPromotion(path.join(dataDir, 'pg_wal'), control.tli, control.segSize);
      const ctl = XLogCtl.create(options.walBuffersBytes, control.segSize, control.sysid, control.tli, r.insertPos);
      const p = new Primary({ options, store, ctl, control, recovery: r.info, insertPos: r.insertPos, prevRecord: r.prevRecord, nextXid: r.nextXid });
      // In production from here: a crash from now on needs recovery.
      p.control = { ...control, state: DbState.InProduction, timeMs: Date.now() };
      writeControl(dataDir, p.control);
      if (!r.info.wasCleanShutdown || r.info.recordsReplayed > 1) await p.checkpoint();
      p.scheduleCheckpoints();
      if (options.port !== null) {
        try {
          await p.listen();
        } catch (e) {
          await p.close();
          // Taken after the probe: leave no directory this call initialised behind.
          if (initialised) removeInitialisedDataDir(dataDir, existed);
          throw e;
        }
      }
      return p;
    } catch (e) {
      releasePidFile(dataDir);
      throw e;
    }
  }

  /** Serve replication on options.port (the listener and its walsenders); `hold`: serve no connection before releaseConnections(). */
  private async listen(hold = false): Promise<void> {
    this.replServer = await ReplicationServer.listen(this, replicationServerOptions(this.options, hold));
  }

  /**
   * The end of a promotion (src/primary/promotion.ts, steps 4-7): a Primary over the promoted
   * standby's store and data directory, inserting on timeline `control.tli` from EndOfLog. Its
   * walwriter and replication listener start at once (their threads boot while this thread works;
   * the listener holds every connection until the switch). END_OF_RECOVERY is written and
   * fdatasynced on this thread, then the control file says "in production" on the new TLI — the
   * promotion's one atomic switch, from which commits are accepted — then the old timeline's last
   * segment is renamed `.partial`, and the end-of-recovery checkpoint is only requested: it runs
   * in the background, as PostgreSQL's RequestCheckpoint(CHECKPOINT_FORCE) without WAIT
   * (xlog.c, PerformRecoveryXLogAction). Until it is done, a crash recovers from the standby's last
   * restartpoint through END_OF_RECOVERY onto the new timeline (recovery.ts follows the history).
   * The pid file stays (same process); close() releases it.
   */
  static async fromPromotion(a: {
    options: PrimaryOptions; store: SharedStore; control: ControlData; prevTli: number; end: EndOfLog; recovery: RecoveryInfo;
    /** The listener Standby.promote started early (for options.port), adopted here. */
    listener?: PromotionListener | null;
  }): Promise<Primary> {
    const options = resolvePrimaryOptions(a.options);
    options.dataDir = path.resolve(options.dataDir);
    const c = a.control;
    assert(c.tli > a.prevTli && c.state !== DbState.InProduction, 'promotion: control must still be in recovery, on a new timeline');
    const ctl = XLogCtl.create(options.walBuffersBytes, c.segSize, c.sysid, c.tli, a.end.endOfLog);
    const p = new Primary({ options, store: a.store, ctl, control: c, recovery: a.recovery, insertPos: a.end.endOfLog, prevRecord: a.end.lastRecord, nextXid: a.end.nextXid, promoted: true });
    const early = a.listener ?? null;
    const listening = early !== null ? early.adopt(p).then((rs) => void (p.replServer = rs)) : options.port !== null ? p.listen(true) : null;
    listening?.catch(() => undefined); // awaited below; a failure before then must not be unhandled
    let switched = false;
    try {
      const rec = buildEndOfRecoveryRecord(p.inserter.prevRecord, { endTimeUs: nowPgMicros(), thisTli: c.tli, prevTli: a.prevTli });
      const { end } = p.inserter.insert(rec, rec.length);
      // On this thread (the walwriter's may still be booting), or the walwriter's if it holds the lock.
      if (!p.flushWaiter.flushHere(end)) await p.flushWaiter.waitFor(end);
      promoteStep('end-of-recovery');
      // THE switch: in production on the new timeline, still pointing at the last restartpoint.
      p.control = { ...c, state: DbState.InProduction, minRecoveryPoint: 0, timeMs: Date.now() };
      writeControl(p.dataDir, p.control);
      switched = true;
      promoteStep('control');
      cleanupAfterPromotion(p.walDir, c.tli, c.segSize);
      promoteStep('partial');
      // The end-of-recovery checkpoint, requested: commits are accepted while it runs.
      void p.checkpoint().then(() => promoteStep('checkpoint'), (e: unknown) => p.emit('error', e as Error));
      p.scheduleCheckpoints();
      if (listening !== null) {
        await listening;
        p.replServer!.releaseConnections();
      }
      return p;
    } catch (e) {
      // Before the switch the directory is still a standby's: stop without writing the control file.
      if (switched) await p.close().catch(() => undefined);
      else {
        await listening?.then(() => p.replServer!.shutdownWalSenders(0), () => undefined);
        await p.stopWalWriter();
      }
      throw e;
    }
  }

  /** Stop the walwriter (and this thread's writer) without a checkpoint. */
  private async stopWalWriter(): Promise<void> {
    this.closed = true;
    await this.walwriter.stop();
    this.commitWriter?.close();
    this.flushWaiter.rejectAll(Errors.closed('primary'));
  }

  private checkOpen(): void {
    if (this.closed) throw Errors.closed('primary');
    if (this.walWriterError) throw this.walWriterError;
  }

  /**
   * Run `fn` to collect puts and deletes, then commit them atomically. Resolves to the commit's
   * end LSN (PostgreSQL's XactLastCommitEnd): once a standby has replayed up to it, the commit
   * is visible there. With synchronousCommit 'off' it resolves before the WAL flush.
   */
  transaction(fn: (tx: Transaction) => void, opts: TransactionOptions = {}): Promise<Lsn> {
    let level: SynchronousCommit;
    let end: Lsn;
    try {
      level = opts.synchronousCommit ?? this.options.synchronousCommit;
      if (waitModeOf(level) !== null && this.syncRep.standbysDefined) return this.transactionWithSyncRep(fn, opts);
      // Fast path (no synchronous standby to wait for): one promise, no extra async frames.
      end = this.insertTransaction(fn);
    } catch (e) {
      return Promise.reject(e);
    }
    if (level === 'off' || end < 0) return Promise.resolve(end < 0 ? this.inserter.insertPos : end);
    return this.flushWaiter.waitFor(end).then(() => end);
  }

  private async transactionWithSyncRep(fn: (tx: Transaction) => void, opts: TransactionOptions): Promise<Lsn> {
    const r = await this.commit(fn, opts);
    // A wait that ended without confirmation (fail policy, shutdown): committed locally, reported as such.
    if (r.sync !== null && (r.sync.outcome === 'timeout' || r.sync.outcome === 'cancelled')) throw syncNotConfirmedError(r.sync, lsnToString(r.lsn));
    return r.lsn;
  }

  /** Collect the transaction's operations and commit them locally; -1 if there were none. */
  private insertTransaction(fn: (tx: Transaction) => void): Lsn {
    this.checkOpen();
    // A transaction started inside another's fn gets a builder of its own.
    const shared = this.txBuilder;
    const b = shared ?? new TxnRecordBuilder(4096);
    this.txBuilder = null;
    b.reset();
    const tx = new Transaction(this.options, b);
    try {
      fn(tx);
      tx.detach();
      if (b.n === 0) return -1;
      return this.commitBuilt(b);
    } finally {
      tx.detach();
      if (shared !== null) this.txBuilder = shared;
    }
  }

  /**
   * transaction() with the synchronous-replication outcome reported instead of thrown: remote
   * levels (remote_receive, remote_write, on, remote_apply) wait, after the local flush, until the
   * synchronous standbys confirm (or syncTimeoutMs ends the wait per syncTimeoutPolicy).
   */
  async commit(fn: (tx: Transaction) => void, opts: TransactionOptions = {}): Promise<CommitResult> {
    const level = opts.synchronousCommit ?? this.options.synchronousCommit;
    const end = this.insertTransaction(fn);
    if (end < 0) return { lsn: this.inserter.insertPos, confirmed: true, sync: null };
    if (level !== 'off') await this.flushWaiter.waitFor(end);
    const mode = waitModeOf(level);
    if (mode === null || !this.syncRep.standbysDefined) return { lsn: end, confirmed: true, sync: null };
    const sync = await this.syncWaiter.wait(end, mode);
    this.emit('syncWait', sync);
    return { lsn: end, confirmed: sync.confirmed, sync };
  }

  /**
   * Apply a built transaction to the store and insert its TXN record. Synchronous: transactions
   * are serialised here. The store applies the very key and value bytes the record holds.
   */
  private commitBuilt(b: TxnRecordBuilder): Lsn {
    const totLen = b.recordBytes();
    if (totLen > MAX_RECORD_BYTES) throw Errors.transactionTooLarge(totLen, MAX_RECORD_BYTES);
    // The store is checked first (it may refuse: store full) so a refused transaction leaves no WAL.
    b.seal();
    this.store.applyBatch(b);
    const xid = this.nextXid;
    this.nextXid = this.nextXid >= 0xffffffff ? FIRST_NORMAL_XID : this.nextXid + 1;
    const rec = b.finish(xid, this.inserter.prevRecord, nowPgMicros());
    const { end } = this.inserter.insert(rec, rec.length);
    this.commits++;
    if (end - this.control.redoLsn > this.options.maxWalSizeBytes && this.checkpointRunning === null) {
      void this.checkpoint().catch((e) => this.emit('error', e));
    }
    return end;
  }

  get(table: string, key: string | Uint8Array): unknown {
    checkTable(table);
    return this.store.get(table, checkKey(key).bytes);
  }

  scan(table: string, opts: ScanOptions = {}): Array<{ key: string | Uint8Array; value: unknown }> {
    checkTable(table);
    return this.store.scan(table, opts);
  }

  /** Wait until everything inserted so far is flushed to disk. */
  async flush(): Promise<Lsn> {
    const lsn = this.inserter.insertPos;
    await this.flushWaiter.waitFor(lsn);
    return lsn;
  }

  /**
   * Ask the walwriter to flush up to `lsn` now, not at wal_writer_delay (an in-process standby's
   * waitForReplay of a synchronousCommit 'off' commit); no wait. False when nothing was asked.
   */
  requestWalFlush(lsn: Lsn): boolean {
    if (this.closed || this.walWriterError !== null || lsn > this.inserter.insertPos) return false;
    return this.ctl.requestFlush(lsn);
  }

  get insertLsn(): Lsn {
    return this.inserter.insertPos;
  }

  private readerControl: ReaderControl | null = null;

  /** A structured-cloneable handle: openReader(handle) in any thread reads this store in place (src/standby/reader-handle.ts). */
  readerHandle(): ReaderHandle {
    if (this.closing !== null) throw Errors.closed('primary');
    this.readerControl ??= ReaderControl.forPrimary(this, this.store.handle, this.ctl.handle.ctl);
    return this.readerControl.handle;
  }

  get flushLsn(): Lsn {
    return this.ctl.load(XC_FLUSHED);
  }

  /** The database system identifier in decimal, as pg_controldata and IDENTIFY_SYSTEM print it (a uint64: a string keeps it exact and JSON-safe). */
  get systemIdentifier(): string {
    return this.control.sysid.toString();
  }

  get timeline(): number {
    return this.control.tli;
  }

  /** The replication port the primary listens on (the actual one when opened with port 0), or null. */
  get port(): number | null {
    return this.replServer?.port ?? null;
  }

  /**
   * A connector for a standby in this process (Standby.open({ primary })): a MessagePort to hand to
   * the standby's threads; each connection over it is a walsender fed through SharedArrayBuffer
   * rings instead of TCP. Needs the replication server (`port`); closed with it.
   */
  inProcessListener(): MessagePort {
    if (this.replServer === null) throw Errors.invalidOption('port', 'an in-process standby needs the primary to serve replication: open it with `port` (0 = any free port)');
    return this.replServer.inProcessListener();
  }

  /** The error that stopped the walwriter (no commit completes after it), or null. */
  get failed(): Error | null {
    return this.walWriterError;
  }

  /** close() was called. */
  get isClosed(): boolean {
    return this.closing !== null;
  }

  /** This primary's prom-client Registry (src/replication/metrics.ts); one per primary, made on first use. */
  metricsRegistry(): Registry {
    return metricsForPrimary(this).registry;
  }

  /** One row per walsender (PostgreSQL's pg_stat_replication columns). */
  replicationStatus(): ReplicationStatusRow[] {
    return this.replServer?.status() ?? [];
  }

  /** Base backups in progress: the serving walsender's pid and the redo point whose WAL each pins. */
  backupsInProgress(): { pid: number; redoLsn: Lsn }[] {
    return this.replServer?.backupsInProgress() ?? [];
  }

  // ---- synchronous replication (src/replication/syncrep*.ts) ----

  /**
   * Change synchronous_standby_names at run time (PostgreSQL: ALTER SYSTEM + reload). A bad value
   * throws PostgreSQL's error (42601 / 22023) and changes nothing. Waiting commits that the new
   * setting already covers are released at once; clearing it releases them all.
   */
  setSynchronousStandbyNames(value: string): void {
    this.syncRep.setConfig(value);
    this.options.synchronousStandbyNames = value;
    if (this.replServer) this.syncRep.releaseWaiters(this.replServer.walsnd.all());
    this.emit('syncConfigChanged', { synchronousStandbyNames: value });
    this.replServer?.notifyStateChange();
  }

  get synchronousStandbyNames(): string {
    return this.syncRep.configText();
  }

  /** Counts of synchronous-commit wait outcomes on this primary (plus `slow`: block-policy waits past syncTimeoutMs). */
  syncWaitCounts(): Record<string, number> {
    return { ...this.syncWaiter.counts };
  }

  // ---- replication slots (src/replication/slots.ts) ----

  private walRetention(): WalRetention {
    const o = this.options;
    return { segSize: this.control.segSize, maxWalSizeBytes: o.maxWalSizeBytes, maxSlotWalKeepSizeBytes: o.maxSlotWalKeepSizeBytes, walKeepSizeBytes: o.walKeepSizeBytes };
  }

  /** The checkpoint's slot step (a WAL pin): write dirty slots, invalidate the ones past max_slot_wal_keep_size, keep the rest. */
  private slotCheckpoint(): Lsn | null {
    const r = this.slots.checkpoint({ redoLsn: this.control.redoLsn, currentLsn: this.ctl.load(XC_FLUSHED), retention: this.walRetention() });
    for (const inv of r.invalidated) {
      this.emit('log', { level: 'warning', message: `invalidating slot "${inv.name}" because its restart_lsn ${lsnToString(inv.restartLsn)} exceeds max_slot_wal_keep_size` });
      this.emit('slotInvalidated', inv);
      if (inv.activePid !== 0) void this.replServer?.terminateWalSender(inv.activePid);
    }
    return r.keepFromLsn;
  }

  /** pg_create_physical_replication_slot(name, immediately_reserve): 42710, 42602, 53400 as PostgreSQL. */
  createReplicationSlot(name: string, opts: { reserveWal?: boolean } = {}): SlotData {
    this.checkOpen();
    return this.slots.create(name, { reserveWal: opts.reserveWal ?? false });
  }

  /** pg_drop_replication_slot(name): 42704 if missing, 55006 if a walsender uses it. */
  dropReplicationSlot(name: string): void {
    this.checkOpen();
    this.slots.dropNow(name, 0);
  }

  /** pg_copy_physical_replication_slot(src, dst): the copy starts at the source's restart_lsn. */
  copyReplicationSlot(src: string, dst: string): SlotData {
    this.checkOpen();
    return this.slots.copy(src, dst);
  }

  /** pg_replication_slots (physical columns, wal_status and safe_wal_size as PostgreSQL 15 computes them). */
  replicationSlots(): ReplicationSlotRow[] {
    return this.slots.rows({ currentLsn: this.ctl.load(XC_WRITTEN), retention: this.walRetention(), walDir: this.walDir });
  }

  /** The latest checkpoint as the control file has it (for BASE_BACKUP). */
  checkpointInfo(): { redoLsn: Lsn; checkpointLsn: Lsn; snapshotName: string; tli: number } {
    const c = this.control;
    return { redoLsn: c.redoLsn, checkpointLsn: c.checkpointLsn, snapshotName: c.snapshotName, tli: c.tli };
  }

  /** Where the walsenders read WAL up to (ReplicationHost): XLogCtl's FLUSHED and wal_buffers. */
  get walSource(): WalSourceHandle {
    return { kind: 'primary', xlog: this.ctl.handle };
  }

  /** Register a WAL pin (a walsender or slot): checkpoints keep WAL from the minimum pinned LSN. */
  pinWal(fn: () => Lsn | null): () => void {
    this.walPins.add(fn);
    return () => this.walPins.delete(fn);
  }

  stats(): PrimaryStats {
    const c = this.ctl;
    return {
      systemIdentifier: this.control.sysid.toString(),
      timeline: this.control.tli,
      walSegmentSize: this.control.segSize,
      insertLsn: this.inserter.insertPos,
      writeLsn: c.load(XC_WRITTEN),
      flushLsn: c.load(XC_FLUSHED),
      commits: this.commits,
      walBytesInserted: this.inserter.insertPos - this.startInsertLsn,
      walWrites: c.load(XC_WRITE_COUNT),
      walFsyncs: c.load(XC_FSYNC_COUNT),
      committerFlushes: this.flushWaiter.selfFlushes,
      walFlushRequests: this.ctl.flushRequests,
      walBytesWritten: c.load(XC_BYTES_WRITTEN),
      ringWaits: this.inserter.waitsForRingSpace,
      ringWaitMissedWakeups: this.inserter.ringSpaceMissedWakeups,
      checkpoints: this.checkpoints,
      lastCheckpointLsn: this.control.checkpointLsn,
      redoLsn: this.control.redoLsn,
      store: this.store.stats(),
    };
  }

  private scheduleCheckpoints(): void {
    if (this.options.checkpointTimeoutMs === 0) return;
    this.checkpointTimer = setInterval(() => {
      if (this.checkpointRunning === null && this.inserter.insertPos > this.control.redoLsn + XLOG_BLCKSZ) {
        void this.checkpoint().catch((e) => this.emit('error', e));
      }
    }, this.options.checkpointTimeoutMs);
    this.checkpointTimer.unref();
  }

  /**
   * Checkpoint: redo point = next insert position; write a (fuzzy) snapshot of the store, log a
   * checkpoint record, flush it, then point the control file at it and remove WAL before the redo
   * point that nothing pins.
   */
  checkpoint(): Promise<void> {
    if (this.checkpointRunning) return this.checkpointRunning;
    this.checkpointRunning = this.doCheckpoint(false).finally(() => {
      this.checkpointRunning = null;
    });
    return this.checkpointRunning;
  }

  private async doCheckpoint(shutdown: boolean): Promise<void> {
    const { event } = await createCheckpoint({
      dataDir: this.dataDir, walDir: this.walDir, store: this.store, inserter: this.inserter, flushWaiter: this.flushWaiter,
      control: this.control, nextXid: this.nextXid, walPins: this.walPins,
      minWalSizeBytes: this.options.minWalSizeBytes, maxWalSizeBytes: this.options.maxWalSizeBytes, writtenLsn: () => this.ctl.load(XC_WRITTEN),
      controlWritten: (control) => {
        this.control = control;
        this.checkpoints++;
      },
    }, shutdown);
    this.emit('checkpoint', event);
  }

  /** Shut down: flush, shutdown checkpoint, stop the walwriter, release the data directory. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      if (this.checkpointTimer) clearInterval(this.checkpointTimer);
      this.replServer?.stopListening();
      if (this.checkpointRunning) await this.checkpointRunning.catch(() => undefined);
      this.closed = true;
      try {
        if (!this.walWriterError) await this.doCheckpoint(true);
      } finally {
        // Walsenders send everything up to the shutdown checkpoint, then "COPY 0" (PostgreSQL's order).
        if (this.replServer) {
          const t = this.options.walSenderTimeoutMs;
          await this.replServer.shutdownWalSenders(t > 0 ? t : 10_000);
        }
        // Commits still waiting for standbys: committed locally, not confirmed (PostgreSQL's
        // "canceling the wait for synchronous replication … due to administrator command").
        this.syncWaiter.close('shutdown');
        await this.stopWalWriter();
        releasePidFile(this.dataDir);
        this.emit('close');
      }
    })();
    return this.closing;
  }
}
