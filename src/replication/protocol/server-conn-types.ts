// The contract between ReplicationServerConn (server-conn.ts) and its owner (the walsender,
// src/replication/walsender.ts, or a test): the options it is created with, the events it reports
// and the states it goes through. Types only: nothing here runs or stops.

import type { WalstreamError } from '../../errors.js';
import type { ReplicationCommand } from './commands.js';
import type { CompiledHbaRule, HbaConnType, HbaMethod, HbaRule } from './hba.js';
import type { HotStandbyFeedback, StandbyFlushRequest, StandbyReceivedUpdate, StandbyStatusUpdate } from './messages.js';
import type { RandomBytes } from './scram.js';
import type { UserLookup } from './server-auth.js';

export interface ServerConnOptions {
  /** Receives every outbound byte chunk, in order. */
  send: (bytes: Uint8Array) => void;
  /** Receives events synchronously, from inside feed() or from a send* call that resumes input. */
  onEvent: (ev: ServerConnEvent) => void;
  hba: readonly HbaRule[] | readonly CompiledHbaRule[];
  lookupUser: UserLookup;
  /** Client IP address as the socket reports it. */
  remoteAddress: string;
  /** 'host' for TCP (default), 'local' for a unix socket. */
  connType?: HbaConnType;
  /** Sent in BackendKeyData (PostgreSQL's backend PID). Default: random. */
  processId?: number;
  /** Sent in BackendKeyData. Default: random. */
  secretKey?: number;
  /** `server_version` ParameterStatus; clients check the major version (15). */
  serverVersion?: string;
  /** `TimeZone` ParameterStatus. Default 'UTC'. */
  timeZone?: string;
  /** `in_hot_standby` ParameterStatus (a cascading walsender on a standby). Default false. */
  inHotStandby?: boolean;
  /** Method pretended for roles without a password under an `md5` rule (PostgreSQL's password_encryption). */
  passwordEncryption?: 'scram-sha-256' | 'md5';
  /** Key for made-up SCRAM salts of unknown roles (stable per user for a given key). Default: one per process. */
  mockSaltKey?: Uint8Array;
  /** Randomness for salts, nonces, keys. Default node:crypto. */
  randomBytes?: RandomBytes;
  /** Limit of any client message's length word, in bytes. Default 16 MiB. */
  maxMessageBytes?: number;
  /** Input held while a command runs, in bytes, before the connection is failed. Default maxMessageBytes + 1 MiB. */
  maxPendingInputBytes?: number;
  /** Above this many held input bytes `wantsInput` turns false (the owner should pause reading). Default 1 MiB. */
  pauseInputAtBytes?: number;
}

export type ServerConnEvent =
  | { type: 'startup'; user: string; database: string; applicationName: string; params: ReadonlyMap<string, string> }
  | { type: 'cancel'; processId: number; secretKey: number }
  /** Password checked, role admitted; ParameterStatus/BackendKeyData/ReadyForQuery follow unless the handler calls sendFatal(). */
  | { type: 'authenticated'; user: string; applicationName: string; method: Exclude<HbaMethod, 'reject'> }
  /** A parsed command; answer with send* and finish with sendReadyForQuery(). Notices (if any) were sent already. */
  | { type: 'command'; command: ReplicationCommand; text: string }
  /**
   * Standby replies; `R` (walstream's received position) and `F` (walstream's flush request) only
   * from a client that asked for them (RECEIVED_REPORT_PARAMETER, FLUSH_REQUEST_PARAMETER).
   */
  | { type: 'copyData'; message: ({ kind: 'r' } & StandbyStatusUpdate) | ({ kind: 'h' } & HotStandbyFeedback) | ({ kind: 'R' } & StandbyReceivedUpdate) | ({ kind: 'F' } & StandbyFlushRequest) }
  /** The client sent CopyDone (our CopyDone went back already): finish with CommandCompletes and sendReadyForQuery(). */
  | { type: 'copyDone' }
  /** A malformed reply ended streaming with ERROR + ReadyForQuery (sent already); stop streaming. */
  | { type: 'streamAborted'; error: WalstreamError }
  /** Terminate received (graceful) or input ended: close the socket. */
  | { type: 'terminate'; graceful: boolean }
  /** Fatal: sent as FATAL ErrorResponse when `sentToClient`, else silently; close the socket. */
  | { type: 'error'; error: WalstreamError; sentToClient: boolean };

export type ServerConnState =
  | 'startup'
  | 'auth'
  | 'ready'
  | 'busy'
  | 'copyBoth'
  | 'copyOut'
  | 'closed';
