// One row of primary.replicationStatus() and of a cascading standby's: the columns of PostgreSQL
// 15's pg_stat_replication walstream has (src/backend/catalog/system_views.sql), plus its own
// (receive_lsn, the lag in bytes). Built by ReplicationServer (server.ts). Types only.

import type { Lsn } from '../wal/lsn.js';
import type { SyncState } from './syncrep.js';

/** One row of primary.replicationStatus() (the columns of PostgreSQL's pg_stat_replication walstream has, plus walstream's own). */
export interface ReplicationStatusRow {
  pid: number;
  application_name: string;
  /** Null for an in-process standby (as PostgreSQL shows a unix-socket client). */
  client_addr: string | null;
  /** -1 for an in-process standby. */
  client_port: number;
  backend_start: Date;
  state: string;
  /** Positions as `Lsn` numbers (lsnToString prints PostgreSQL's X/X); null while not yet reported, as the view shows NULL. */
  sent_lsn: Lsn | null;
  write_lsn: Lsn | null;
  flush_lsn: Lsn | null;
  replay_lsn: Lsn | null;
  /** walstream only (not in pg_stat_replication): what the standby reported received (`R`); null for standbys that report none (PostgreSQL's). */
  receive_lsn: Lsn | null;
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
