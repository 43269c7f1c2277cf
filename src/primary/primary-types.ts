// The shapes of what Primary's API takes and reports: transaction options, a commit's result
// (what the synchronous standbys confirmed) and stats(). Types only; src/primary/primary.ts
// re-exports them.

import type { SyncWaitResult } from '../replication/syncrep-queue.js';
import type { Lsn } from '../wal/lsn.js';
import type { SynchronousCommit } from './options.js';

export interface TransactionOptions {
  synchronousCommit?: SynchronousCommit;
}

/** What primary.commit() reports: where the commit ended and what the synchronous standbys confirmed. */
export interface CommitResult {
  lsn: Lsn;
  /**
   * False when the commit is durable locally but its wait for synchronous standbys ended without
   * their confirmation (syncTimeoutMs with policy fail or degrade, or shutdown). Never a rollback.
   */
  confirmed: boolean;
  /** The synchronous-replication wait, or null when the level did not wait for standbys. */
  sync: SyncWaitResult | null;
}


/** What primary.stats() reports. LSNs are `Lsn` numbers (lsnToString prints PostgreSQL's X/X). */
export interface PrimaryStats {
  systemIdentifier: string;
  timeline: number;
  walSegmentSize: number;
  insertLsn: Lsn;
  writeLsn: Lsn;
  flushLsn: Lsn;
  commits: number;
  walBytesInserted: number;
  walWrites: number;
  walFsyncs: number;
  /** Flushes a lone commit did on its own thread (committerFlush); the rest of walFsyncs were the walwriter's. */
  committerFlushes: number;
  /**
   * Flushes standbys' waitForReplay asked the walwriter for (WAL of synchronousCommit 'off'
   * commits, otherwise flushed at wal_writer_delay): an in-process standby's directly, a walstream
   * standby's over the wire (StandbyFlushRequest `F` to its walsender). Only requests that found
   * WAL to flush count.
   */
  walFlushRequests: number;
  walBytesWritten: number;
  ringWaits: number;
  /** Of those, waits whose safety timeout expired although the walwriter had written (lost wake-ups; 0 unless a bug). */
  ringWaitMissedWakeups: number;
  checkpoints: number;
  lastCheckpointLsn: Lsn;
  redoLsn: Lsn;
  store: { bytesUsed: number; bytesReserved: number; entries: number; tables: number };
}
