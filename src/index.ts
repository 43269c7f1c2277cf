// walstream's public entry point (`import { Primary, Standby } from 'walstream'`).

import './util/no-native.js'; // first: before anything loads msgpackr

export { Primary, Transaction } from './primary/primary.js';
export type { TransactionOptions, RecoveryInfo, PrimaryStats, ScanOptions } from './primary/primary.js';
export type { PrimaryEvents, CheckpointEvent, LogEvent, WalSenderEvent } from './primary/primary-events.js';
export type { PrimaryOptions, SynchronousCommit } from './primary/options.js';
export { Standby } from './standby/standby.js';
export type { WalReceiverStatus, RestartpointInfo, ReplayPauseState } from './standby/standby.js';
export type { StandbyEvents, WalReceiverConnectedEvent, WalReceiverDisconnectedEvent } from './standby/standby-events.js';
export { startMonitoringServer, DEFAULT_METRICS_PORT } from './cli/http-endpoint.js';
export type { MetricsServer, MonitoringOptions } from './cli/http-endpoint.js';
export type { HealthBounds, HealthReason, HealthReport } from './replication/health.js';
export { profileTrace } from './profile/trace.js';
export type { HopResult, LagPoint, LiveProfileOptions, LiveProfileResult } from './profile/live.js';
export type { OfflineProfileResult } from './profile/offline.js';
export type { KindCost } from './profile/record-kind.js';
export type { StandbyOptions } from './standby/options.js';
export type { CascadeOptions, CascadeServer } from './standby/cascade.js';
export type { ReplicationStatusRow } from './replication/server.js';
export type { ReplicationSlotRow } from './replication/slots.js';
export { ReaderPool } from './storage/reader-pool.js';
export { openReader, SharedReader } from './standby/open-reader.js';
export type { ReaderHandle, ReaderRole } from './standby/reader-handle.js';
export { Errors, WalstreamError } from './errors.js';
export { type Lsn, lsnToString, parseLsn } from './wal/lsn.js';
