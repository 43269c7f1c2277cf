// walstream's public entry point (`import { Primary, Standby } from 'walstream'`).

import './util/no-native.js'; // first: before anything loads msgpackr

export { Primary, Transaction } from './primary/primary.js';
export type { TransactionOptions, RecoveryInfo, PrimaryStats, ScanOptions } from './primary/primary.js';
export type { PrimaryOptions, SynchronousCommit } from './primary/options.js';
export { Standby } from './standby/standby.js';
export { profileTrace } from './profile/trace.js';
export type { HopResult, LagPoint, LiveProfileOptions, LiveProfileResult } from './profile/live.js';
export type { OfflineProfileResult } from './profile/offline.js';
export type { KindCost } from './profile/record-kind.js';
export type { WalReceiverStatus, RestartpointInfo } from './standby/standby.js';
export type { StandbyOptions } from './standby/options.js';
export type { ReplicationStatusRow } from './replication/server.js';
export { ReaderPool } from './storage/reader-pool.js';
export { Errors, WalstreamError } from './errors.js';
export { type Lsn, lsnToString, parseLsn } from './wal/lsn.js';
