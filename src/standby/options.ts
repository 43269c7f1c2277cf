// Standby options: validated once in Standby.open with precise errors (like src/primary/options.ts).
// Names follow PostgreSQL's settings where one exists (wal_receiver_status_interval,
// wal_receiver_timeout, wal_retrieve_retry_interval, primary_conninfo, primary_slot_name); every
// limit carries its unit. Also parses libpq-style conninfo strings ('host=… port=… user=…').

import os from 'node:os';
import path from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { type StageTraceHandle, stageTraceOption } from '../util/stage-trace.js';
import { Errors } from '../errors.js';
import { validateSlotName } from '../replication/protocol/commands.js';
import { boolOption, intOption } from '../util/option-checks.js';
import { type Env, isUnixSocketHost, libpqTarget, type WarningSink } from './libpq-env.js';
import type { BaseBackupProgressListener } from './bootstrap-progress.js';
import type { PrimaryOptions } from '../primary/options.js';
import type { Lsn } from '../wal/lsn.js';
import { CASCADE_OPTION_NAMES, type CascadeOptions, resolveCascadeOptions, type ResolvedCascadeOptions } from './cascade.js';

export type StandbyMode = 'replica' | 'wal-only';

export interface PrimaryConninfo {
  host: string;
  port: number;
  user: string;
  password?: string | null;
  /**
   * libpq's passfile: the password file to look the password up in again at each connection
   * attempt (as libpq reads it at each connect; `password`, if set, is what it held when the
   * conninfo was parsed, and stays in use when the file no longer has a matching line). Set by a
   * conninfo string without a password and without PGPASSWORD. Default null.
   */
  passfile?: string | null;
  /** Reported to the primary (pg_stat_replication.application_name). Default 'walreceiver'. */
  applicationName?: string;
}

/** What a standby needs of a primary in its own process (walstream's Primary has it). */
export interface InProcessPrimary {
  inProcessListener(): MessagePort;
  /** Ask for WAL up to lsn to be flushed now (waitForReplay of an unflushed synchronousCommit 'off' commit); see Primary.requestWalFlush. */
  requestWalFlush?(lsn: Lsn): boolean;
}

/** A primary in this process: streaming goes through SharedArrayBuffer rings, not TCP (no authentication). */
export interface InProcessConninfo {
  inProcess: InProcessPrimary;
  /** Startup-message user (default: the OS user). */
  user?: string;
  /** pg_stat_replication.application_name (synchronous_standby_names matches it). Default 'walreceiver'. */
  applicationName?: string;
}

/** `port` and the other CascadeOptions: this standby serves replication (cascading walsenders, src/standby/cascade.ts). */
export interface StandbyOptions extends CascadeOptions {
  dataDir: string;
  /**
   * An object, a libpq key/value string (`host=127.0.0.1 port=5432 user=rep password=x
   * application_name=s1`), or `{ inProcess: primary }` for a primary in this process.
   */
  primaryConninfo?: PrimaryConninfo | InProcessConninfo | string;
  /** Shorthand for primaryConninfo: { inProcess: primary } (a primary opened in this process with `port`). */
  primary?: InProcessPrimary;
  /** In-process standby: capacity of the primary → standby ring, in bytes (a power of two, 64 KiB – 1 GiB). */
  walReceiverRingBytes?: number;
  /** 'replica' (default): stream, replay and serve reads. 'wal-only': keep WAL without replaying it (pg_receivewal). */
  mode?: StandbyMode;
  /** primary_slot_name: stream through this physical replication slot (START_REPLICATION SLOT "s"). */
  primarySlotName?: string | null;
  /** wal_receiver_status_interval (ms): periodic `r` status updates; 0 disables the periodic ones. */
  walReceiverStatusIntervalMs?: number;
  /** wal_receiver_timeout (ms): ask for a reply after half of it, give up after all of it; 0 disables. */
  walReceiverTimeoutMs?: number;
  /** wal_retrieve_retry_interval (ms): wait between connection attempts while the primary is away. */
  walRetrieveRetryIntervalMs?: number;
  /** fdatasync at the latest after this many received bytes, even while more data is buffered. */
  walReceiverFlushAfterBytes?: number;
  /** Received but unprocessed bytes above which the socket is paused (back-pressure). */
  walReceiverMaxBufferedBytes?: number;
  /** wal_init_zero: write new segment files full of zeros (default true); false writes only their last byte (sparse). */
  walInitZero?: boolean;
  /**
   * While catching up (more than two segments behind the primary), write WAL with O_DIRECT from
   * page-aligned buffers instead of through the page cache (default true; where the file system
   * refuses O_DIRECT, WAL is written buffered and a warning is emitted). Live streaming is always
   * buffered.
   */
  walReceiverDirectIo?: boolean;
  /**
   * Record when WAL was received, flushed and replayed here (src/util/stage-trace.ts), for per-hop
   * latency figures with a primary in the same process that has the same handle; off by default.
   */
  stageTrace?: StageTraceHandle | null;
  /** connect_timeout (ms) of one connection attempt, up to ReadyForQuery. */
  connectTimeoutMs?: number;
  /** Piscina reader threads for hot-standby reads (standby.pool); 0 = no pool. */
  readerThreads?: number;
  /** checkpoint_timeout for restartpoints (ms): a replayed checkpoint record starts one when this long has passed since the last (0 = at every one). */
  checkpointTimeoutMs?: number;
  /** max_wal_size for restartpoints: a replayed checkpoint record starts one when this much WAL was replayed since the last redo point. */
  maxWalSizeBytes?: number;
  /**
   * min_wal_size: at a restartpoint, segments no longer needed are recycled (renamed to future
   * segment names, their blocks kept allocated) while fewer than max(minWalSizeBytes,
   * maxWalSizeBytes) of future segments exist; beyond that they are removed. Default 80 MiB.
   */
  minWalSizeBytes?: number;
  /** Largest base backup accepted from the primary, in bytes (archive members are streamed to disk, never buffered whole). */
  maxBaseBackupBytes?: number;
  maxStoreBytes?: number;
  maxValueBytes?: number;
  /** Largest server message accepted (length word), in bytes. */
  maxMessageBytes?: number;
  /** Progress of the base backup an empty data directory gets (bootstrap-progress.ts); not called otherwise. */
  onBaseBackupProgress?: BaseBackupProgressListener;
  /**
   * Rejoining after a failover (src/standby/rejoin.ts): a directory whose WAL goes past the point
   * where the upstream's timeline forked off its own (an old primary that committed past the fork,
   * a standby ahead of the promoted one) is refused by default (WS_REJOIN_DIVERGED); with true it
   * is moved aside to `<dataDir>.diverged-<time>` and rebuilt from a base backup of the upstream
   * (PostgreSQL would need pg_rewind or a new base backup). Default false. The check (always made
   * for a primary's directory, and for any directory with this option) needs the upstream: open()
   * fails with the connection error, changing nothing, while it cannot be reached.
   */
  rebuildIfDiverged?: boolean;
  /**
   * promote_trigger_file (PostgreSQL 15): when this file appears, the standby (replica mode)
   * removes it and promotes itself with `promoteOptions`, as promote() would; the promote signal
   * file `<dataDir>/promote` (walstream promote, pg_ctl promote) counts too. Checked on SIGUSR1
   * and every PROMOTE_POLL_MS (1 s). Default: none (only promote() promotes).
   */
  promoteTriggerFile?: string | null;
  /** The new primary's options when promoteTriggerFile fires (its `port` to serve replication, ...). */
  promoteOptions?: Omit<PrimaryOptions, 'dataDir'>;
}

export interface ResolvedStandbyOptions {
  dataDir: string;
  /** For an in-process primary: host IN_PROCESS_HOST, port 0 (only user and applicationName are used). */
  primaryConninfo: Required<PrimaryConninfo>;
  /** The primary in this process, or null (TCP). */
  inProcess: InProcessPrimary | null;
  walReceiverRingBytes: number;
  mode: StandbyMode;
  primarySlotName: string | null;
  walReceiverStatusIntervalMs: number;
  walReceiverTimeoutMs: number;
  walRetrieveRetryIntervalMs: number;
  walReceiverFlushAfterBytes: number;
  walReceiverMaxBufferedBytes: number;
  walInitZero: boolean;
  walReceiverDirectIo: boolean;
  stageTrace: StageTraceHandle | null;
  connectTimeoutMs: number;
  readerThreads: number;
  checkpointTimeoutMs: number;
  maxWalSizeBytes: number;
  minWalSizeBytes: number;
  maxBaseBackupBytes: number;
  maxStoreBytes: number;
  maxValueBytes: number;
  maxMessageBytes: number;
  rebuildIfDiverged: boolean;
  /** Absolute path, or null. */
  promoteTriggerFile: string | null;
  promoteOptions: Omit<PrimaryOptions, 'dataDir'>;
  /** Serving replication (cascade.ts): null without `port`. */
  cascade: ResolvedCascadeOptions | null;
}

const INT32_MAX = 2_147_483_647;


const KNOWN_OPTIONS = new Set([
  'dataDir', 'primaryConninfo', 'primary', 'walReceiverRingBytes', 'mode', 'primarySlotName', 'walReceiverStatusIntervalMs', 'walReceiverTimeoutMs',
  'walRetrieveRetryIntervalMs', 'walReceiverFlushAfterBytes', 'walReceiverMaxBufferedBytes', 'walInitZero', 'walReceiverDirectIo', 'stageTrace', 'connectTimeoutMs',
  'readerThreads', 'checkpointTimeoutMs', 'maxWalSizeBytes', 'minWalSizeBytes', 'maxBaseBackupBytes', 'maxStoreBytes', 'maxValueBytes',
  'maxMessageBytes', 'onBaseBackupProgress', 'rebuildIfDiverged', 'promoteTriggerFile', 'promoteOptions', ...CASCADE_OPTION_NAMES,
]);

export function resolveStandbyOptions(o: StandbyOptions): ResolvedStandbyOptions {
  if (o === null || typeof o !== 'object') throw Errors.invalidOption('options', 'must be an object');
  for (const k of Object.keys(o)) if (!KNOWN_OPTIONS.has(k)) throw Errors.invalidOption(k, 'unknown option');
  if (typeof o.dataDir !== 'string' || o.dataDir.length === 0) throw Errors.invalidOption('dataDir', 'must be a non-empty path');
  if (o.onBaseBackupProgress !== undefined && typeof o.onBaseBackupProgress !== 'function') throw Errors.invalidOption('onBaseBackupProgress', 'must be a function');
  const mode = o.mode ?? 'replica';
  if (mode !== 'replica' && mode !== 'wal-only') throw Errors.invalidOption('mode', `must be 'replica' or 'wal-only', got ${String(mode)}`);
  const slot = o.primarySlotName ?? null;
  if (slot !== null) {
    if (typeof slot !== 'string') throw Errors.invalidOption('primarySlotName', 'must be a string');
    try {
      validateSlotName(slot);
    } catch (e) {
      throw Errors.invalidOption('primarySlotName', (e as Error).message);
    }
  }
  let inProcess: InProcessPrimary | null = null;
  let conninfo: PrimaryConninfo | InProcessConninfo | string | undefined = o.primaryConninfo;
  if (o.primary !== undefined) {
    if (conninfo !== undefined) throw Errors.invalidOption('primary', 'give either primary or primaryConninfo, not both');
    conninfo = { inProcess: o.primary };
  }
  if (conninfo === undefined) throw Errors.invalidOption('primaryConninfo', 'is required (or primary, for a primary in this process)');
  let resolvedConninfo: Required<PrimaryConninfo>;
  if (typeof conninfo === 'object' && conninfo !== null && 'inProcess' in conninfo) {
    inProcess = conninfo.inProcess;
    if (inProcess === null || typeof inProcess !== 'object' || typeof inProcess.inProcessListener !== 'function') {
      throw Errors.invalidOption('primaryConninfo', 'inProcess must be a Primary opened in this process');
    }
    resolvedConninfo = resolveInProcessConninfo(conninfo);
  } else {
    resolvedConninfo = resolveConninfo(conninfo);
  }
  const ringBytes = intOption('walReceiverRingBytes', o.walReceiverRingBytes ?? 8 * 1024 * 1024, 64 * 1024, 1 << 30);
  if ((ringBytes & (ringBytes - 1)) !== 0) throw Errors.invalidOption('walReceiverRingBytes', `must be a power of two, got ${ringBytes}`);
  return {
    dataDir: o.dataDir,
    primaryConninfo: resolvedConninfo,
    inProcess,
    walReceiverRingBytes: ringBytes,
    mode,
    primarySlotName: slot,
    walReceiverStatusIntervalMs: intOption('walReceiverStatusIntervalMs', o.walReceiverStatusIntervalMs ?? 10_000, 0, INT32_MAX),
    walReceiverTimeoutMs: intOption('walReceiverTimeoutMs', o.walReceiverTimeoutMs ?? 60_000, 0, INT32_MAX),
    walRetrieveRetryIntervalMs: intOption('walRetrieveRetryIntervalMs', o.walRetrieveRetryIntervalMs ?? 5_000, 1, INT32_MAX),
    walReceiverFlushAfterBytes: intOption('walReceiverFlushAfterBytes', o.walReceiverFlushAfterBytes ?? 4 * 1024 * 1024, 8192, 1 << 30),
    walReceiverMaxBufferedBytes: intOption('walReceiverMaxBufferedBytes', o.walReceiverMaxBufferedBytes ?? 32 * 1024 * 1024, 1 << 20, 1 << 30),
    walInitZero: boolOption('walInitZero', o.walInitZero ?? true),
    walReceiverDirectIo: boolOption('walReceiverDirectIo', o.walReceiverDirectIo ?? true),
    stageTrace: stageTraceOption(o.stageTrace),
    connectTimeoutMs: intOption('connectTimeoutMs', o.connectTimeoutMs ?? 10_000, 1, INT32_MAX),
    readerThreads: intOption('readerThreads', o.readerThreads ?? 2, 0, 64),
    checkpointTimeoutMs: intOption('checkpointTimeoutMs', o.checkpointTimeoutMs ?? 300_000, 0, 86_400_000),
    maxWalSizeBytes: intOption('maxWalSizeBytes', o.maxWalSizeBytes ?? 1024 * 1024 * 1024, 1 << 20, Number.MAX_SAFE_INTEGER),
    minWalSizeBytes: intOption('minWalSizeBytes', o.minWalSizeBytes ?? 80 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
    maxBaseBackupBytes: intOption('maxBaseBackupBytes', o.maxBaseBackupBytes ?? 64 * 1024 * 1024 * 1024, 1 << 20, Number.MAX_SAFE_INTEGER),
    maxStoreBytes: intOption('maxStoreBytes', o.maxStoreBytes ?? 1024 * 1024 * 1024, 1 << 20, Number.MAX_SAFE_INTEGER),
    maxValueBytes: intOption('maxValueBytes', o.maxValueBytes ?? 16 * 1024 * 1024, 1, 256 * 1024 * 1024),
    maxMessageBytes: intOption('maxMessageBytes', o.maxMessageBytes ?? 64 * 1024 * 1024, 1 << 16, 1 << 30),
    rebuildIfDiverged: boolOption('rebuildIfDiverged', o.rebuildIfDiverged ?? false),
    promoteTriggerFile: triggerFileOption(o.promoteTriggerFile, mode),
    promoteOptions: promoteOptionsOption(o.promoteOptions),
    cascade: resolveCascadeOptions(o, mode),
  };
}

/** A conninfo string or object checked and completed with defaults (setPrimaryConninfo, SIGHUP). */
export function resolveConninfo(c: PrimaryConninfo | string): Required<PrimaryConninfo> {
  const obj = typeof c === 'string' ? parseConninfo(c) : c;
  if (obj === null || typeof obj !== 'object') throw Errors.invalidOption('primaryConninfo', 'must be an object or a conninfo string');
  for (const k of Object.keys(obj)) {
    if (!['host', 'port', 'user', 'password', 'passfile', 'applicationName'].includes(k)) throw Errors.invalidOption('primaryConninfo', `unknown field "${k}"`);
  }
  if (typeof obj.host !== 'string' || obj.host.length === 0) throw Errors.invalidOption('primaryConninfo', 'host must be a non-empty string');
  const port = obj.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw Errors.invalidOption('primaryConninfo', `port must be an integer from 1 to 65535, got ${String(port)}`);
  }
  if (typeof obj.user !== 'string' || obj.user.length === 0) throw Errors.invalidOption('primaryConninfo', 'user must be a non-empty string');
  const password = obj.password ?? null;
  if (password !== null && typeof password !== 'string') throw Errors.invalidOption('primaryConninfo', 'password must be a string');
  const passfile = obj.passfile ?? null;
  if (passfile !== null && (typeof passfile !== 'string' || passfile.length === 0)) throw Errors.invalidOption('primaryConninfo', 'passfile must be a non-empty path');
  const applicationName = obj.applicationName ?? 'walreceiver';
  if (typeof applicationName !== 'string' || applicationName.length > 63 || /[^\x20-\x7e]/.test(applicationName)) {
    throw Errors.invalidOption('primaryConninfo', 'applicationName must be at most 63 printable ASCII characters');
  }
  return { host: obj.host, port, user: obj.user, password, passfile, applicationName };
}

/** sender_host of an in-process connection (pg_stat_wal_receiver). */
export const IN_PROCESS_HOST = '[in-process]';

function resolveInProcessConninfo(c: InProcessConninfo): Required<PrimaryConninfo> {
  for (const k of Object.keys(c)) {
    if (!['inProcess', 'user', 'applicationName'].includes(k)) throw Errors.invalidOption('primaryConninfo', `field "${k}" does not apply to an in-process primary`);
  }
  const user = c.user ?? os.userInfo().username;
  if (typeof user !== 'string' || user.length === 0) throw Errors.invalidOption('primaryConninfo', 'user must be a non-empty string');
  const applicationName = c.applicationName ?? 'walreceiver';
  if (typeof applicationName !== 'string' || applicationName.length > 63 || /[^\x20-\x7e]/.test(applicationName)) {
    throw Errors.invalidOption('primaryConninfo', 'applicationName must be at most 63 printable ASCII characters');
  }
  return { host: IN_PROCESS_HOST, port: 0, user, password: null, passfile: null, applicationName };
}

/** Keywords of libpq's conninfo that we accept (others are refused like libpq: `invalid connection option "x"`). */
const CONNINFO_KEYS = new Set(['host', 'hostaddr', 'port', 'user', 'password', 'passfile', 'application_name', 'dbname', 'sslmode', 'connect_timeout', 'replication']);

const conninfoError = (why: string) => Errors.invalidOption('primaryConninfo', why);

/** A conninfo string's pairs, checked: no URI, known keywords, no TLS required, a port number if one is given. */
function conninfoPairs(text: string): Map<string, string> {
  if (typeof text !== 'string') throw conninfoError('must be a string');
  if (/^postgres(ql)?:\/\//.test(text.trim())) throw conninfoError('URI connection strings are not supported; use key=value pairs');
  const kv = splitConninfo(text, conninfoError);
  for (const key of kv.keys()) {
    if (!CONNINFO_KEYS.has(key)) throw conninfoError(`invalid connection option "${key}"`);
  }
  const sslmode = kv.get('sslmode');
  if (sslmode !== undefined && !['disable', 'allow', 'prefer'].includes(sslmode)) {
    throw conninfoError(`sslmode "${sslmode}" needs TLS, which walstream does not support`);
  }
  const port = kv.get('port');
  if (port !== undefined && port !== '') checkPortText(port);
  return kv;
}

function checkPortText(portText: string): void {
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw conninfoError(`invalid port number: "${portText}"`);
}

/**
 * Check a conninfo string's syntax and keywords without completing it (nothing read from the
 * environment or the password file): what the command line checks while parsing its options.
 */
export function checkConninfoSyntax(text: string): void {
  conninfoPairs(text);
}

/**
 * Parse a libpq key/value conninfo string: `key=value` separated by spaces; values may be single
 * quoted with `\'` and `\\` escapes. Completed as libpq completes it (src/standby/libpq-env.ts):
 * PGHOST, PGHOSTADDR, PGPORT, PGUSER, PGAPPNAME for absent keywords, then port 5432 and the OS
 * user; the password from the string, else PGPASSWORD, else the password file (passfile,
 * PGPASSFILE, ~/.pgpass).
 */
export function parseConninfo(text: string, env: Env = process.env, warn?: WarningSink): PrimaryConninfo {
  const t = libpqTarget(conninfoPairs(text), env, warn);
  if (isUnixSocketHost(t.host)) throw conninfoError(`host "${t.host}" is a Unix-domain socket; walstream connects over TCP only`);
  checkPortText(t.port);
  const out: PrimaryConninfo = { host: t.host, port: Number(t.port), user: t.user };
  if (t.password !== null) out.password = t.password;
  if (t.passfile !== null) out.passfile = t.passfile;
  if (t.applicationName !== null) out.applicationName = t.applicationName;
  return out;
}

/**
 * libpq's conninfo_parse tokenizer: `key=value` pairs separated by white space (isspace); a value
 * is single-quoted or bare, with backslash escapes in both. Keywords are not checked here: each
 * caller accepts its own set. `fail` builds the error for a malformed string.
 */
export function splitConninfo(text: string, fail: (why: string) => Error): Map<string, string> {
  const kv = new Map<string, string>();
  let i = 0;
  const n = text.length;
  const isSpace = (ch: string) => ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
  while (i < n) {
    while (i < n && isSpace(text[i]!)) i++;
    if (i >= n) break;
    let key = '';
    while (i < n && text[i] !== '=' && !isSpace(text[i]!)) key += text[i++];
    while (i < n && isSpace(text[i]!)) i++;
    if (text[i] !== '=') throw fail(`missing "=" after "${key}" in connection info string`);
    i++;
    while (i < n && isSpace(text[i]!)) i++;
    let value = '';
    if (text[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const ch = text[i++]!;
        if (ch === '\\' && i < n) value += text[i++];
        else if (ch === "'") {
          closed = true;
          break;
        } else value += ch;
      }
      if (!closed) throw fail('unterminated quoted string in connection info string');
    } else {
      while (i < n && !isSpace(text[i]!)) {
        const ch = text[i++]!;
        if (ch === '\\' && i < n) value += text[i++];
        else value += ch;
      }
    }
    kv.set(key, value);
  }
  return kv;
}

/** pg_stat_wal_receiver.conninfo: the connection string with the password obfuscated. */
export function displayConninfo(c: Required<PrimaryConninfo>): string {
  const q = (v: string) => (/^[^\s'\\]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`);
  if (c.host === IN_PROCESS_HOST && c.port === 0) return `user=${q(c.user)} dbname=replication in_process=true application_name=${q(c.applicationName)}`;
  const parts = [`user=${q(c.user)}`];
  if (c.password !== null) parts.push('password=********');
  parts.push('dbname=replication', `host=${q(c.host)}`, `port=${c.port}`, `application_name=${q(c.applicationName)}`);
  return parts.join(' ');
}

function triggerFileOption(v: unknown, mode: StandbyMode): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length === 0) throw Errors.invalidOption('promoteTriggerFile', 'must be a non-empty path (or null)');
  if (mode !== 'replica') throw Errors.invalidOption('promoteTriggerFile', "needs mode 'replica' (a wal-only standby cannot be promoted)");
  return path.resolve(v);
}

function promoteOptionsOption(v: unknown): Omit<PrimaryOptions, 'dataDir'> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw Errors.invalidOption('promoteOptions', "must be an object of the new primary's options");
  if ('dataDir' in v) throw Errors.invalidOption('promoteOptions', "must not set dataDir (the promoted primary keeps the standby's)");
  return v as Omit<PrimaryOptions, 'dataDir'>;
}
