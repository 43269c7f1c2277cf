// The events a Primary emits, as one typed map (src/util/typed-events.ts): names and payloads are
// checked at compile time. Emitted on the thread that owns the primary; the walsender events come
// from ReplicationServer.notifyStateChange (src/replication/server.ts), the sync-wait events from
// the SyncWaiter (src/replication/syncrep-waiter.ts). README's "Monitoring" section has the table.

import type { WalSenderEvent } from '../replication/server.js';
import type { SlotInvalidation } from '../replication/slots.js';
import type { SyncWaitEvent, SyncWaitResult } from '../replication/syncrep-waiter.js';
import type { Lsn } from '../wal/lsn.js';
import type { TypedEventEmitter } from '../util/typed-events.js';

export type { WalSenderEvent };

/** A checkpoint finished (control file written, old segments recycled or removed). */
export interface CheckpointEvent {
  /** The checkpoint record's start. */
  lsn: Lsn;
  /** Its redo point. */
  redo: Lsn;
  /** The shutdown checkpoint of close(). */
  shutdown: boolean;
  /** A new snapshot was written (false: nothing changed since the last checkpoint, whose snapshot it keeps). */
  snapshotWritten: boolean;
  segmentsRecycled: number;
  segmentsRemoved: number;
}

/** A server log line (walsender failures, slot invalidations, terminations). */
export interface LogEvent {
  level: string;
  message: string;
}

type SyncWaitEventOf<T extends SyncWaitEvent['type']> = Extract<SyncWaitEvent, { type: T }>;

/** Event name → listener arguments. */
export interface PrimaryEvents {
  /** A checkpoint finished. */
  checkpoint: [CheckpointEvent];
  /** A walsender started (its connection passed authentication and asked for replication). */
  walsenderConnected: [WalSenderEvent];
  /** A walsender's state (pg_stat_replication.state) changed; `previousState` is set. */
  walsenderStateChanged: [WalSenderEvent];
  /** A walsender reached the primary's flush position (catchup → streaming). */
  walsenderCaughtUp: [WalSenderEvent];
  /** A walsender's sync_state changed; `previousSyncState` is set. */
  syncStateChanged: [WalSenderEvent];
  /** A walsender ended. */
  walsenderDisconnected: [WalSenderEvent];
  /** synchronous_standby_names was set (setSynchronousStandbyNames). */
  syncConfigChanged: [{ synchronousStandbyNames: string }];
  /** A synchronous-commit wait ended (any outcome). */
  syncWait: [SyncWaitResult];
  syncWaitSlow: [SyncWaitEventOf<'syncWaitSlow'>];
  syncWaitTimeout: [SyncWaitEventOf<'syncWaitTimeout'>];
  syncDegraded: [SyncWaitEventOf<'syncDegraded'>];
  syncRestored: [SyncWaitEventOf<'syncRestored'>];
  syncWaitCancelled: [SyncWaitEventOf<'syncWaitCancelled'>];
  /** A replication slot lost its WAL (max_slot_wal_keep_size). */
  slotInvalidated: [SlotInvalidation];
  log: [LogEvent];
  error: [Error];
  /** close() finished. */
  close: [];
}

/** Emit a SyncWaiter event under its own name (one case per type: each narrows `e` to its payload). */
export function emitSyncWaitEvent(to: TypedEventEmitter<PrimaryEvents>, e: SyncWaitEvent): void {
  switch (e.type) {
    case 'syncWaitSlow': to.emit(e.type, e); break;
    case 'syncWaitTimeout': to.emit(e.type, e); break;
    case 'syncDegraded': to.emit(e.type, e); break;
    case 'syncRestored': to.emit(e.type, e); break;
    case 'syncWaitCancelled': to.emit(e.type, e); break;
  }
}
