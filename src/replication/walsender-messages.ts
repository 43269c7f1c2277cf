// What passes between the primary's thread (ReplicationServer, src/replication/server.ts) and a
// walsender worker (src/replication/walsender.ts): the worker's start configuration (structured-
// cloneable, given as workerData or in a {type:'connection'} message to a pre-started worker) and
// the messages on the MessagePort between them. Types only: nothing here runs or stops.

import type { MessagePort } from 'node:worker_threads';
import type { StageTraceHandle } from '../util/stage-trace.js';
import type { Lsn } from '../wal/lsn.js';
import type { HbaRule } from './protocol/hba.js';
import type { RingPairHandle } from './ring.js';
import type { WalSndCtlHandle } from './walsndctl.js';
import type { ReplicationSlotsHandle } from './slots.js';
import type { SyncRepQueueHandle } from './syncrep-queue.js';
import type { WalSndLagHandle } from './lag.js';
import type { WalSourceHandle } from './wal-source.js';

/** Everything a walsender worker gets at start (structured-cloneable). */
export interface WalSenderConfig {
  kind: 'walsender';
  /**
   * The connection: its two rings and its MessagePort (transferred; its 'close' is the peer's
   * reset). The other end is the replication I/O thread (a TCP client, tcp-bridge.ts) or an
   * in-process standby's walreceiver.
   */
  ring: { rings: RingPairHandle; peer: MessagePort };
  /** pg_hba connection type: 'host' for TCP, 'local' for an in-process standby. */
  connType: 'host' | 'local';
  remoteAddress: string;
  remotePort: number;
  backendStartMs: number;
  /** Where WAL is readable up to: the primary's XLogCtl, or a cascading standby's WalRcvData (wal-source.ts). */
  source: WalSourceHandle;
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
  /** After a reply released the last waiting commit: watch for the next flush this long before sleeping (µs; 0: never spin). */
  walSenderSpinMicros: number;
  /** Not a synchronous standby while commits wait for those: send at most this often (ms; 0: at every flush). */
  walSenderAsyncDelayMs: number;
  /** Per-hop latency tracing (src/util/stage-trace.ts): `sent` after each XLogData; null: off. */
  stageTrace: StageTraceHandle | null;
  /** Replication slots: absent = no slot table (slot commands then fail as with max_replication_slots = 0). */
  slots?: ReplicationSlotsHandle | null;
  /** Synchronous-commit wait queues: replies release waiting commits (SyncRepReleaseWaiters). */
  syncRep?: SyncRepQueueHandle | null;
  /** Time-lag words this walsender publishes (src/replication/lag.ts). */
  lag?: WalSndLagHandle | null;
  port: MessagePort;
}

/** A connection for a pre-started walsender worker (everything but its port). */
export type WalSenderConnConfig = Omit<WalSenderConfig, 'port'>;

/** Messages from a walsender to the primary's thread. */
export type ToPrimary =
  | { type: 'slot'; id: number; slot: number }
  /** State, or the standby's first flush report, changed: the primary re-derives sync states and emits events. */
  | { type: 'stateChanged' }
  | { type: 'backupStart'; fast: boolean }
  /** The backup ended (sent, failed or cut off): the primary releases its WAL pin and closes the fds it opened (an fd is closed by the thread that opened it). */
  | { type: 'backupDone' }
  | { type: 'log'; level: 'info' | 'warning'; message: string };

/** Messages from the primary's thread to a walsender. */
export type FromPrimary =
  | { type: 'stop' }
  /** pg_terminate_backend: FATAL 57P01 to the client and close, now (the primary invalidated this walsender's slot). */
  | { type: 'terminate' }
  | { type: 'backupStarted'; redoLsn: Lsn; checkpointLsn: Lsn; tli: number; files: BackupFile[]; minRecoveryPoint?: Lsn }
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
