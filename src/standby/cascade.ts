// CascadeServer: a standby serving replication (PostgreSQL 15's cascading replication: walsenders
// on a hot standby, walsender.c with am_cascading_walsender). Runs on the Standby's thread; owned
// by the Standby that opens it with `port`. It owns the replication listener (ReplicationServer,
// src/replication/server.ts, with its I/O thread and walsender workers, exactly as on a primary),
// the standby's physical replication slots (pg_replslot/) and the WAL pins of its walsenders, its
// slots and its running base backups. Downstreams connect over TCP, or from this process through
// the listener's rings (it is an InProcessPrimary: Standby.open({ primary: s1.replication })). Stops with close(): no new connections, then every
// walsender sends what the standby flushed, ends with "COPY 0" and exits (Standby.close calls
// it after its walreceiver and startup workers stopped, so that is everything).
//
// What differs from a primary's listener, and why (PostgreSQL's rules):
//   * WAL is readable up to the standby's flushed position (WalRcvData FLUSHED: written and
//     fdatasynced by the walreceiver, GetStandbyFlushRecPtr), from the standby's pg_wal segment
//     files, on the standby's timeline (WalRcvData TIMELINE): the WalSource seam,
//     src/replication/wal-source.ts. The send loop is the primary's.
//   * No synchronous replication: synchronous_standby_names has no effect on a standby, so every
//     downstream is `async` here, and none is ever a synchronous standby of the top primary: the
//     standby's walreceiver reports its own write/flush/apply upstream, never its downstreams'.
//   * BASE_BACKUP writes no checkpoint: it starts from the last restartpoint (one is made first if
//     a newer checkpoint record was replayed, as RequestCheckpoint on a standby does), its
//     backup_label says "BACKUP FROM: standby", and it ends at the flushed position, at least the
//     restartpoint's minRecoveryPoint (the snapshot is fuzzy up to it).
//   * Retention: a restartpoint keeps the WAL from the minimum of its redo point, every streaming
//     walsender's sent position, every slot's restart_lsn (and wal_keep_size) and every running
//     base backup's redo point (keepFrom()).
//   * Replica mode only: a wal-only standby keeps its current segment as `.partial` (as
//     pg_receivewal) and has no checkpoint to back up from; `port` is refused there.

import type { MessagePort } from 'node:worker_threads';
import { Errors } from '../errors.js';
import { type ControlData } from '../storage/control.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { ReplicationServer, type ReplicationHost, type ReplicationStatusRow } from '../replication/server.js';
import { ReplicationSlots, type ReplicationSlotRow, type WalRetention } from '../replication/slots.js';
import { parseSynchronousStandbyNames } from '../replication/syncrep.js';
import type { WalSourceHandle } from '../replication/wal-source.js';
import { type PrimaryOptions, resolveReplicationOptions } from '../primary/options.js';
import { intOption } from '../util/option-checks.js';
import type { InProcessPrimary } from './options.js';
import type { WalRcvData } from './walrcvdata.js';
import type { StandbyEvents } from './standby-events.js';

/** Longest a standby's close() waits for its cascading walsenders to finish before terminating them (ms), when wal_sender_timeout is 0. */
const CASCADE_SHUTDOWN_TIMEOUT_MS = 10_000;
/** Idle walsender workers kept started on a standby (each is a thread; fewer than a primary keeps). */
const CASCADE_WALSENDER_PRESTART = 1;
/** Connections still authenticating beyond maxWalSenders before new ones are dropped unanswered. */
const CASCADE_MIN_STARTUP_CONNECTIONS = 4;

/**
 * Standby.open's options for serving replication: the primary's, with its names and meanings
 * (src/primary/options.ts). On a standby: without `port` there is no listener;
 * synchronousStandbyNames is accepted (and checked) but has no effect, as in PostgreSQL.
 */
export type CascadeOptions = Pick<PrimaryOptions,
  'port' | 'host' | 'hba' | 'users' | 'maxWalSenders' | 'walSenderTimeoutMs' | 'maxSendBytes' | 'authenticationTimeoutMs'
  | 'maxClientMessageBytes' | 'walSenderMaxQueuedBytes' | 'maxReplicationSlots' | 'maxSlotWalKeepSizeBytes' | 'walKeepSizeBytes'
  | 'synchronousStandbyNames'>;

export const CASCADE_OPTION_NAMES = [
  'port', 'host', 'hba', 'users', 'maxWalSenders', 'walSenderTimeoutMs', 'maxSendBytes', 'authenticationTimeoutMs', 'maxClientMessageBytes',
  'walSenderMaxQueuedBytes', 'maxReplicationSlots', 'maxSlotWalKeepSizeBytes', 'walKeepSizeBytes', 'synchronousStandbyNames',
] as const;

export type ResolvedCascadeOptions = Omit<ReturnType<typeof resolveReplicationOptions>, 'port'> & {
  port: number;
  maxReplicationSlots: number;
  maxSlotWalKeepSizeBytes: number;
  walKeepSizeBytes: number;
  synchronousStandbyNames: string;
};

/** The serving options of Standby.open, checked once; null when `port` is absent (no listener). */
export function resolveCascadeOptions(o: CascadeOptions, mode: 'replica' | 'wal-only'): ResolvedCascadeOptions | null {
  const r = resolveReplicationOptions({ ...o, stageTrace: null });
  const names = o.synchronousStandbyNames ?? '';
  if (typeof names !== 'string') throw Errors.invalidOption('synchronousStandbyNames', 'must be a string');
  parseSynchronousStandbyNames(names); // checked as PostgreSQL checks it, then ignored on a standby
  const extra = {
    maxReplicationSlots: intOption('maxReplicationSlots', o.maxReplicationSlots ?? 10, 0, 10_000),
    maxSlotWalKeepSizeBytes: intOption('maxSlotWalKeepSizeBytes', o.maxSlotWalKeepSizeBytes ?? -1, -1, Number.MAX_SAFE_INTEGER),
    walKeepSizeBytes: intOption('walKeepSizeBytes', o.walKeepSizeBytes ?? 0, 0, Number.MAX_SAFE_INTEGER),
    synchronousStandbyNames: names,
  };
  if (r.port === null) {
    for (const k of CASCADE_OPTION_NAMES) {
      if (k !== 'port' && o[k] !== undefined) throw Errors.invalidOption(k, 'serves replication only with `port` (the standby then runs walsenders)');
    }
    return null;
  }
  if (mode === 'wal-only') throw Errors.invalidOption('port', "a wal-only standby does not serve replication (its current segment is a .partial file, as pg_receivewal's); serve from a replica");
  return { ...r, port: r.port, ...extra };
}

/** What the cascade server needs of its Standby. */
export interface CascadeStandby {
  readonly dataDir: string;
  readonly walDir: string;
  readonly walrcv: WalRcvData;
  /** max_wal_size of its restartpoints (safe_wal_size of its slots). */
  readonly maxWalSizeBytes: number;
  /** The standby's control file as it is now (its last restartpoint). */
  control(): ControlData;
  /** BASE_BACKUP's start: a restartpoint at the newest replayed checkpoint record if it is newer than the last one; waits for a running one. */
  restartpointForBackup(): Promise<void>;
  emit<K extends keyof CascadeEvents>(event: K, ...args: CascadeEvents[K]): boolean;
}

/** The events the cascade server raises on its Standby (the primary's events of the same names). */
export type CascadeEvents = Pick<StandbyEvents, 'log' | 'walsenderConnected' | 'walsenderStateChanged' | 'walsenderCaughtUp' | 'syncStateChanged' | 'walsenderDisconnected' | 'slotInvalidated' | 'error'>;

export class CascadeServer implements ReplicationHost, InProcessPrimary {
  readonly slots: ReplicationSlots | null;
  readonly syncRep = null;
  readonly walSource: WalSourceHandle;
  private server: ReplicationServer | null = null;
  /** WAL pins: walsenders (min sent), running base backups (their redo points). */
  private readonly pins = new Set<() => Lsn | null>();
  private closing: Promise<void> | null = null;

  private constructor(private readonly sb: CascadeStandby, private readonly o: ResolvedCascadeOptions) {
    const c = sb.control();
    this.walSource = { kind: 'standby', walrcv: sb.walrcv.handle, segSize: c.segSize };
    this.slots = o.maxReplicationSlots > 0 ? ReplicationSlots.open({ dataDir: sb.dataDir, maxReplicationSlots: o.maxReplicationSlots, redoLsn: c.redoLsn }) : null;
  }

  /** Listen on `o.port` for cascading walsenders. */
  static async start(sb: CascadeStandby, o: ResolvedCascadeOptions): Promise<CascadeServer> {
    const cs = new CascadeServer(sb, o);
    cs.server = await ReplicationServer.listen(cs, {
      host: o.host,
      port: o.port,
      hba: o.hba,
      users: o.users,
      maxWalSenders: o.maxWalSenders,
      walSenderTimeoutMs: o.walSenderTimeoutMs,
      maxSendBytes: o.maxSendBytes,
      authenticationTimeoutMs: o.authenticationTimeoutMs,
      maxClientMessageBytes: o.maxClientMessageBytes,
      walSenderMaxQueuedBytes: o.walSenderMaxQueuedBytes,
      walSenderSpinMicros: 0, // no synchronous standbys here: nothing to spin for
      walSenderAsyncDelayMs: 0,
      stageTrace: null,
      maxStartupConnections: Math.max(CASCADE_MIN_STARTUP_CONNECTIONS, o.maxWalSenders),
      walSenderPrestart: Math.min(CASCADE_WALSENDER_PRESTART, o.maxWalSenders),
    });
    sb.emit('log', { level: 'info', message: `serving cascading replication on ${o.host}:${cs.server.port}` });
    return cs;
  }

  // ---- ReplicationHost ------------------------------------------------------------------------

  get dataDir(): string {
    return this.sb.dataDir;
  }
  get walDir(): string {
    return this.sb.walDir;
  }
  get systemIdentifier(): string {
    return this.sb.control().sysid.toString();
  }
  get flushLsn(): Lsn {
    return this.sb.walrcv.flushed;
  }
  pinWal(fn: () => Lsn | null): () => void {
    this.pins.add(fn);
    return () => this.pins.delete(fn);
  }
  checkpoint(): Promise<void> {
    return this.sb.restartpointForBackup();
  }
  checkpointInfo(): { redoLsn: Lsn; checkpointLsn: Lsn; snapshotName: string; tli: number; minRecoveryPoint: Lsn } {
    const c = this.sb.control();
    return { redoLsn: c.redoLsn, checkpointLsn: c.checkpointLsn, snapshotName: c.snapshotName, tli: c.tli, minRecoveryPoint: c.minRecoveryPoint };
  }
  emit<K extends keyof CascadeEvents>(event: K, ...args: CascadeEvents[K]): boolean {
    return this.sb.emit(event, ...args);
  }

  // ---- the standby's side ---------------------------------------------------------------------

  /** The replication port (the ephemeral one when `port` was 0). */
  get port(): number {
    return this.server?.port ?? 0;
  }

  private retention(): WalRetention {
    const o = this.o;
    return { segSize: this.sb.control().segSize, maxWalSizeBytes: this.sb.maxWalSizeBytes, maxSlotWalKeepSizeBytes: o.maxSlotWalKeepSizeBytes, walKeepSizeBytes: o.walKeepSizeBytes };
  }

  /**
   * A restartpoint at `redo` is about to remove WAL: where to keep it from (KeepLogSeg on a
   * standby): the minimum of `redo`, the walsenders' sent positions, the running backups' redo
   * points and the slots' restart_lsn (slots past max_slot_wal_keep_size are invalidated and
   * their walsenders terminated, as on a primary).
   */
  keepFrom(redo: Lsn): Lsn {
    let keep = redo;
    if (this.slots !== null) {
      const r = this.slots.checkpoint({ redoLsn: redo, currentLsn: this.sb.walrcv.flushed, retention: this.retention() });
      for (const inv of r.invalidated) {
        this.emit('log', { level: 'warning', message: `invalidating slot "${inv.name}" because its restart_lsn ${lsnToString(inv.restartLsn)} exceeds max_slot_wal_keep_size` });
        this.emit('slotInvalidated', inv);
        if (inv.activePid !== 0) void this.server?.terminateWalSender(inv.activePid);
      }
      if (r.keepFromLsn !== null && r.keepFromLsn > 0 && r.keepFromLsn < keep) keep = r.keepFromLsn;
    }
    for (const pin of this.pins) {
      const p = pin();
      if (p !== null && p > 0 && p < keep) keep = p;
    }
    return keep;
  }

  /**
   * A port for standbys in this process streaming from this one through SharedArrayBuffer rings
   * instead of TCP: `Standby.open({ primary: s1.replication })` (InProcessPrimary).
   */
  inProcessListener(): MessagePort {
    if (this.server === null) throw Errors.closed('replication server');
    return this.server.inProcessListener();
  }

  /** pg_stat_replication of this standby: its downstream walsenders (all `async`). */
  status(): ReplicationStatusRow[] {
    return this.server?.status() ?? [];
  }

  backupsInProgress(): { pid: number; redoLsn: Lsn }[] {
    return this.server?.backupsInProgress() ?? [];
  }

  /** pg_replication_slots of this standby. */
  replicationSlots(): ReplicationSlotRow[] {
    return this.slots?.rows({ currentLsn: this.sb.walrcv.flushed, retention: this.retention(), walDir: this.sb.walDir }) ?? [];
  }

  /** Stop accepting connections (Standby.close and promote call it first). */
  stopListening(): void {
    this.server?.stopListening();
  }

  /**
   * Every walsender sends what the standby flushed, "COPY 0", exits; then the I/O thread. Call
   * after the walreceiver stopped (nothing more will be flushed). Slots are written (they persist).
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const server = this.server;
      if (server === null) return;
      const t = this.o.walSenderTimeoutMs;
      await server.shutdownWalSenders(t > 0 ? t : CASCADE_SHUTDOWN_TIMEOUT_MS);
      this.slots?.saveDirty();
    })();
    return this.closing;
  }
}
