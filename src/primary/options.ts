// Primary options: validated once at construction with precise errors (piscina style). Names
// follow PostgreSQL's settings where one exists; every limit carries its unit.

import { type StageTraceHandle, stageTraceOption } from '../util/stage-trace.js';
import { Errors } from '../errors.js';
import { DEFAULT_WAL_SEGMENT_SIZE, XLOG_BLCKSZ, validSegmentSize } from '../wal/consts.js';
import type { HbaRule } from '../replication/protocol/hba.js';
import { parseSynchronousStandbyNames } from '../replication/syncrep.js';
import { SYNC_WAIT_POLICIES, type SyncWaitPolicy } from '../replication/syncrep-queue.js';
import { boolOption, intOption } from '../util/option-checks.js';

export type SynchronousCommit = 'off' | 'local' | 'on' | 'remote_write' | 'remote_apply' | 'remote_receive';
export const SYNC_LEVELS: readonly SynchronousCommit[] = ['off', 'local', 'remote_receive', 'remote_write', 'on', 'remote_apply'];

export interface PrimaryOptions {
  dataDir: string;
  /** Segment size at initialisation (power of two, 1 MiB..1 GiB). Ignored for an existing directory. */
  walSegmentSize?: number;
  /** wal_buffers: bytes of the shared WAL page ring. */
  walBuffersBytes?: number;
  synchronousCommit?: SynchronousCommit;
  /** commit_delay (µs) and commit_siblings, as in PostgreSQL. */
  commitDelayUs?: number;
  commitSiblings?: number;
  /** wal_writer_delay (ms) and wal_writer_flush_after (bytes). */
  walWriterDelayMs?: number;
  walWriterFlushAfterBytes?: number;
  /** checkpoint_timeout (ms, 0 = never on a timer) and max_wal_size (bytes of WAL since the last redo). */
  checkpointTimeoutMs?: number;
  maxWalSizeBytes?: number;
  maxTransactionBytes?: number;
  maxValueBytes?: number;
  maxStoreBytes?: number;
  /**
   * min_wal_size: at a checkpoint, segments no longer needed are recycled (renamed to future
   * segment names, their blocks kept allocated, as PostgreSQL does) while fewer than
   * max(minWalSizeBytes, maxWalSizeBytes) of future segments exist; beyond that they are removed.
   * Default 80 MiB.
   */
  minWalSizeBytes?: number;
  /** Spin iterations before the walwriter sleeps on its latch. */
  walWriterSpinIterations?: number;
  /**
   * Latency mode for a thread that does little but commit: a lone commit (no concurrency seen for
   * 100 ms) writes and fdatasyncs its own WAL on the calling thread when the walwriter is not
   * writing (PostgreSQL's backend XLogFlush), instead of waking the walwriter and waiting to be
   * woken — two thread wake-ups less per commit. The calling thread's event loop is blocked for
   * that fdatasync, including its outliers (tens of ms when the disk is busy), so a service whose
   * main thread also serves requests should leave it off. Default false.
   */
  committerFlush?: boolean;

  // ---- replication (walsenders; src/replication/) ----
  /** Listen for replication connections on this TCP port (0 = ephemeral; see primary.port). Absent = no listener. */
  port?: number;
  /** Listen address. Default '127.0.0.1'. */
  host?: string;
  /** pg_hba-style rules, first match wins. Default: `host replication all all` with scram-sha-256 when `users` is set, else trust. */
  hba?: HbaRule[];
  /** Replication roles: name → password (or a SCRAM verifier). */
  users?: Record<string, string>;
  /** max_wal_senders: concurrent walsenders; one more is refused with FATAL 53300. */
  maxWalSenders?: number;
  /** wal_sender_timeout (ms, 0 = none): keepalive at half of it, disconnect after all of it. */
  walSenderTimeoutMs?: number;
  /**
   * Largest XLogData payload in bytes. Default 1 MiB (PostgreSQL's MAX_SEND_SIZE is 128 KiB):
   * catching up, a receiver then handles 8× fewer messages (pg_receivewal does one write() per
   * message: +13 % MB/s measured here); live messages are small either way. Every client reads
   * messages of any size (libpq grows its buffer); ours up to its maxMessageBytes.
   */
  maxSendBytes?: number;
  /** authentication_timeout (ms): a connection must have authenticated by then. */
  authenticationTimeoutMs?: number;
  /** Largest message a replication client may send, in bytes (queries, status updates). */
  maxClientMessageBytes?: number;
  /** Bytes a walsender lets queue in its socket before it waits for 'drain'. */
  walSenderMaxQueuedBytes?: number;
  /**
   * After a standby's reply released the last commit waiting for synchronous replication, the
   * walsender watches for the next flush this long (µs) before sleeping: a lone committer's next
   * commit then goes out without a thread wake-up. 0 = never spin. Default 300.
   */
  walSenderSpinMicros?: number;
  /**
   * While commits wait for synchronous standbys, a walsender whose standby is not one of them
   * (potential or async) sends new WAL at most this often (ms), in batches, instead of at every
   * flush: on a small machine its work then stays out of the synchronous commit's way (measured
   * here, 2 standbys FIRST 1, 1 committer at `on`: p50 0.56 → 0.47 ms; in latency mode 0.51 →
   * 0.40). Such a standby is at most this much further behind. 0 = send at every flush (as
   * PostgreSQL). Default 2.
   */
  walSenderAsyncDelayMs?: number;
  /**
   * Record when each flush and each XLogData sent happened (src/util/stage-trace.ts), for per-hop
   * latency figures; off (null) by default. The standbys of the same process take the same handle.
   */
  stageTrace?: StageTraceHandle | null;

  // ---- synchronous replication and slots (src/replication/syncrep*.ts, slots.ts) ----
  /** synchronous_standby_names (PostgreSQL 15 syntax: `FIRST k (a, b)`, `ANY k (…)`, `a, b`, `*`); '' = none. */
  synchronousStandbyNames?: string;
  /** Bound on a commit's wait for synchronous standbys, in ms; null = wait forever (PostgreSQL). */
  syncTimeoutMs?: number | null;
  /** What a commit does when syncTimeoutMs passes: keep waiting (block), fail with WS_SYNC_NOT_CONFIRMED, or degrade to local commits. */
  syncTimeoutPolicy?: SyncWaitPolicy;
  /** Commits that can wait for standbys at once in shared memory (more wait in a local list). */
  maxSyncWaiters?: number;
  /** max_replication_slots. */
  maxReplicationSlots?: number;
  /** max_slot_wal_keep_size in bytes; -1 = unlimited (PostgreSQL's default). */
  maxSlotWalKeepSizeBytes?: number;
  /** wal_keep_size in bytes: WAL kept for standbys without slots. */
  walKeepSizeBytes?: number;
}

export type ResolvedPrimaryOptions = Required<Omit<PrimaryOptions, 'port' | 'hba' | 'users' | 'stageTrace'>> & {
  stageTrace: StageTraceHandle | null;
  port: number | null;
  hba: HbaRule[] | null;
  users: Record<string, string> | null;
};


export function resolvePrimaryOptions(o: PrimaryOptions): ResolvedPrimaryOptions {
  if (o === null || typeof o !== 'object') throw Errors.invalidOption('options', 'must be an object');
  if (typeof o.dataDir !== 'string' || o.dataDir.length === 0) throw Errors.invalidOption('dataDir', 'must be a non-empty path');
  const segSize = o.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
  if (!validSegmentSize(segSize)) throw Errors.invalidOption('walSegmentSize', `must be a power of two from 1 MiB to 1 GiB, got ${segSize}`);
  const walBuffersBytes = intOption('walBuffersBytes', o.walBuffersBytes ?? 16 * 1024 * 1024, 4 * XLOG_BLCKSZ, 1 << 30);
  if (walBuffersBytes % XLOG_BLCKSZ !== 0) throw Errors.invalidOption('walBuffersBytes', `must be a multiple of ${XLOG_BLCKSZ}`);
  const sc = o.synchronousCommit ?? 'on';
  if (!SYNC_LEVELS.includes(sc)) throw Errors.invalidOption('synchronousCommit', `must be one of ${SYNC_LEVELS.join(', ')}`);
  return {
    dataDir: o.dataDir,
    walSegmentSize: segSize,
    walBuffersBytes,
    synchronousCommit: sc,
    commitDelayUs: intOption('commitDelayUs', o.commitDelayUs ?? 0, 0, 100_000),
    commitSiblings: intOption('commitSiblings', o.commitSiblings ?? 5, 0, 1000),
    walWriterDelayMs: intOption('walWriterDelayMs', o.walWriterDelayMs ?? 200, 1, 10_000),
    walWriterFlushAfterBytes: intOption('walWriterFlushAfterBytes', o.walWriterFlushAfterBytes ?? 1024 * 1024, 0, 1 << 30),
    checkpointTimeoutMs: intOption('checkpointTimeoutMs', o.checkpointTimeoutMs ?? 300_000, 0, 86_400_000),
    maxWalSizeBytes: intOption('maxWalSizeBytes', o.maxWalSizeBytes ?? 1024 * 1024 * 1024, 2 * segSize, Number.MAX_SAFE_INTEGER),
    maxTransactionBytes: intOption('maxTransactionBytes', o.maxTransactionBytes ?? 64 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxValueBytes: intOption('maxValueBytes', o.maxValueBytes ?? 16 * 1024 * 1024, 1, 256 * 1024 * 1024),
    maxStoreBytes: intOption('maxStoreBytes', o.maxStoreBytes ?? 1024 * 1024 * 1024, 1 << 20, Number.MAX_SAFE_INTEGER),
    walWriterSpinIterations: intOption('walWriterSpinIterations', o.walWriterSpinIterations ?? 2000, 0, 10_000_000),
    committerFlush: boolOption('committerFlush', o.committerFlush ?? false),
    minWalSizeBytes: intOption('minWalSizeBytes', o.minWalSizeBytes ?? 80 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
    ...resolveReplicationOptions(o),
    ...resolveSyncRepOptions(o),
  };
}

function resolveSyncRepOptions(o: PrimaryOptions) {
  const names = o.synchronousStandbyNames ?? '';
  if (typeof names !== 'string') throw Errors.invalidOption('synchronousStandbyNames', 'must be a string');
  parseSynchronousStandbyNames(names); // PostgreSQL's error (42601/22023) for a bad value
  const syncTimeoutMs = o.syncTimeoutMs === undefined || o.syncTimeoutMs === null ? null : intOption('syncTimeoutMs', o.syncTimeoutMs, 0, 86_400_000);
  const policy = o.syncTimeoutPolicy ?? 'block';
  if (!SYNC_WAIT_POLICIES.includes(policy)) throw Errors.invalidOption('syncTimeoutPolicy', `must be one of ${SYNC_WAIT_POLICIES.join(', ')}`);
  return {
    synchronousStandbyNames: names,
    syncTimeoutMs,
    syncTimeoutPolicy: policy,
    maxSyncWaiters: intOption('maxSyncWaiters', o.maxSyncWaiters ?? 4096, 1, 1 << 20),
    maxReplicationSlots: intOption('maxReplicationSlots', o.maxReplicationSlots ?? 10, 0, 10_000),
    maxSlotWalKeepSizeBytes: intOption('maxSlotWalKeepSizeBytes', o.maxSlotWalKeepSizeBytes ?? -1, -1, Number.MAX_SAFE_INTEGER),
    walKeepSizeBytes: intOption('walKeepSizeBytes', o.walKeepSizeBytes ?? 0, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** The replication listener's options (a primary's, or a standby's serving cascading walsenders: src/standby/cascade.ts). */
export type ReplicationListenerOptions = Pick<PrimaryOptions,
  'port' | 'host' | 'hba' | 'users' | 'maxWalSenders' | 'walSenderTimeoutMs' | 'maxSendBytes' | 'authenticationTimeoutMs' | 'maxClientMessageBytes' |
  'walSenderMaxQueuedBytes' | 'walSenderSpinMicros' | 'walSenderAsyncDelayMs' | 'stageTrace'>;

export function resolveReplicationOptions(o: ReplicationListenerOptions) {
  const port = o.port === undefined || o.port === null ? null : intOption('port', o.port, 0, 65535);
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw Errors.invalidOption('host', 'must be a non-empty string');
  if (o.hba !== undefined && !Array.isArray(o.hba)) throw Errors.invalidOption('hba', 'must be an array of rules');
  let users: Record<string, string> | null = null;
  if (o.users !== undefined) {
    if (o.users === null || typeof o.users !== 'object') throw Errors.invalidOption('users', 'must be an object { name: password }');
    for (const [u, p] of Object.entries(o.users)) {
      if (u.length === 0 || typeof p !== 'string' || p.length === 0) throw Errors.invalidOption('users', `user "${u}" needs a non-empty password`);
    }
    users = { ...o.users };
  }
  // Default: 1 MiB, or less if walSenderMaxQueuedBytes was set smaller (it must hold one message).
  const queuedSet = typeof o.walSenderMaxQueuedBytes === 'number' ? o.walSenderMaxQueuedBytes : Infinity;
  const defaultSend = Math.max(XLOG_BLCKSZ, Math.min(1024 * 1024, Math.floor(queuedSet / XLOG_BLCKSZ) * XLOG_BLCKSZ));
  const maxSendBytes = intOption('maxSendBytes', o.maxSendBytes ?? defaultSend, XLOG_BLCKSZ, 16 * 1024 * 1024);
  return {
    port,
    host,
    hba: o.hba ?? null,
    stageTrace: stageTraceOption(o.stageTrace),
    users,
    maxWalSenders: intOption('maxWalSenders', o.maxWalSenders ?? 10, 0, 1000),
    walSenderTimeoutMs: intOption('walSenderTimeoutMs', o.walSenderTimeoutMs ?? 60_000, 0, 86_400_000),
    maxSendBytes,
    authenticationTimeoutMs: intOption('authenticationTimeoutMs', o.authenticationTimeoutMs ?? 60_000, 1, 600_000),
    maxClientMessageBytes: intOption('maxClientMessageBytes', o.maxClientMessageBytes ?? 64 * 1024, 1024, 1 << 30),
    walSenderMaxQueuedBytes: intOption('walSenderMaxQueuedBytes', o.walSenderMaxQueuedBytes ?? 4 * maxSendBytes, maxSendBytes, 1 << 30),
    walSenderSpinMicros: intOption('walSenderSpinMicros', o.walSenderSpinMicros ?? 300, 0, 100_000),
    walSenderAsyncDelayMs: intOption('walSenderAsyncDelayMs', o.walSenderAsyncDelayMs ?? 2, 0, 1000),
  };
}
