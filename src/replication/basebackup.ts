// BaseBackupSender: BASE_BACKUP on a walsender, as PostgreSQL 15 serves it (basebackup.c with the
// bbsink chain of basebackup_copy.c, basebackup_progress.c, basebackup_throttle.c and
// basebackup_gzip.c; the sink is basebackup-sink.ts). Reply sequence:
//   result set (recptr, tli) of the start · result set (spcoid, spclocation, size) of the one
//   tablespace (NULL, NULL, size in kB with PROGRESS, else NULL) · CopyOutResponse ·
//   'n' base.tar[.gz] · 'd' archive · 'p' progress · ['m' + 'd' manifest] · CopyDone ·
//   result set (recptr, tli) of the end · CommandComplete BASE_BACKUP
// The archive is one ustar stream (tar.ts) holding, in order: backup_label (PostgreSQL's text),
// the directories (checkpoints/, pg_replslot/ and pg_tblspc/ (empty; pg_basebackup's sync walks pg_tblspc), pg_wal/, pg_wal/archive_status/; 0700), the version file, the
// control file and the checkpoint snapshot (0600), then with WAL the segments from the redo
// point's to the end position's (pg_wal/<name>, whole segments) and the timeline's history file.
// With MANIFEST the backup manifest (backup-manifest.ts) lists every file but pg_wal's, with the
// WAL range redo → end. Run by the walsender worker that got the command; the primary's thread
// does the checkpoint, pins WAL from its redo point and opens the files (ReplicationServer
// startBackup), answering the worker's `backupStart` port message. Owns the pending answer and the
// backup-running flag. Stops: when the stream is sent, or with an error (the connection closed,
// shutdown, an unsupported option); either way `backupDone` releases the pin and the files.

import fs from 'node:fs';
import path from 'node:path';
import { Errors, WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import { historyFileName, segmentFileName, segNo } from '../wal/segment.js';
import { BackupManifest, type FileChecksum } from './backup-manifest.js';
import { BackupCopySink } from './basebackup-sink.js';
import type { BaseBackupOptions } from './protocol/commands.js';
import { ReplicationColumns } from './protocol/messages.js';
import type { ReplicationServerConn } from './protocol/server-conn.js';
import type { ByteSocket } from './ring-socket.js';
import { tarEntryBytes, tarHeader, tarPadding, tarTrailer } from './tar.js';
import type { BackupFile, FromPrimary, ToPrimary } from './walsender-messages.js';
import { WalSndState, type WalSndStateValue } from './walsndctl.js';

/** The tar stream's end: two zero blocks of 512 bytes. */
const TAR_TRAILER_BYTES = 2 * 512;
/** BACKUP_LABEL_FILE */
export const BACKUP_LABEL_FILE = 'backup_label';
/** Directories of a walstream data directory, sent as tar directory entries (PostgreSQL sends pg_wal/ and pg_wal/archive_status/ empty). */
const BACKUP_DIRECTORIES = ['checkpoints', 'pg_replslot', 'pg_tblspc', 'pg_wal', 'pg_wal/archive_status'] as const;
/** pg_dir_create_mode / pg_file_create_mode of a data directory. */
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/** What a base backup needs from its walsender. */
export interface BaseBackupHost {
  readonly conn: ReplicationServerConn;
  readonly socket: ByteSocket;
  /** Bytes queued in the socket before the stream waits for 'drain'. */
  readonly maxQueuedBytes: number;
  readonly stopRequested: boolean;
  /** The primary's pg_wal, and its segment size (for WAL). */
  readonly walDir: string;
  readonly segSize: number;
  /** A cascading standby serves this backup: backup_label says "BACKUP FROM: standby". */
  readonly fromStandby: boolean;
  flushedLsn(): Lsn;
  post(m: ToPrimary): void;
  setState(s: WalSndStateValue): void;
  /** After the command ended (either way): answer a shutdown that came meanwhile. */
  afterBackup(): void;
}

/** One member of the archive: a directory, or a file with its contents given or read from an fd or a path. */
interface Member {
  name: string;
  dir: boolean;
  size: number;
  mtimeSec: number;
  data?: Uint8Array;
  fd?: number;
  /** A WAL file read by this thread (pg_wal), zero-padded to `size`. */
  walPath?: string;
  /** Listed in the backup manifest (pg_wal's files are not). */
  inManifest: boolean;
}

/** The backup_label PostgreSQL writes (do_pg_backup_start), START TIME in UTC. */
export function backupLabelText(a: { redoLsn: Lsn; checkpointLsn: Lsn; tli: number; segSize: number; startTime: Date; label: string; fromStandby?: boolean }): string {
  const d = a.startTime;
  const p2 = (v: number) => String(v).padStart(2, '0');
  const when = `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} UTC`;
  return (
    `START WAL LOCATION: ${lsnToString(a.redoLsn)} (file ${segmentFileName(a.tli, segNo(a.redoLsn, a.segSize), a.segSize)})\n` +
    `CHECKPOINT LOCATION: ${lsnToString(a.checkpointLsn)}\n` +
    'BACKUP METHOD: streamed\n' +
    `BACKUP FROM: ${a.fromStandby === true ? 'standby' : 'primary'}\n` +
    `START TIME: ${when}\n` +
    `LABEL: ${a.label}\n` +
    `START TIMELINE: ${a.tli}\n`
  );
}

/** The options this walsender cannot serve, with PostgreSQL's errors where it has them. */
function checkSupported(o: BaseBackupOptions): void {
  if (o.target !== null && o.target !== 'client') throw Errors.featureNotSupported(`backup target "${o.target}" is not supported by walstream`);
  if (o.compression === 'lz4' || o.compression === 'zstd') throw Errors.featureNotSupported(`${o.compression} compression is not supported by this build`);
}

/** The gzip level of a COMPRESSION_DETAIL ("5" or "level=5"); null = the default. */
function gzipLevel(detail: string | null): number | null {
  if (detail === null) return null;
  const m = /(?:^|,)\s*(?:level=)?\s*([+-]?\d+)\s*(?:,|$)/.exec(detail);
  if (!m) return null;
  const v = Number(m[1]);
  return v === -1 ? null : v;
}

/**
 * dst.length bytes of a member's file from `pos` into `dst` (which may be ring memory: every byte
 * is written). A snapshot never changes size; a WAL segment still being prepared is zero-padded
 * (its WAL up to the backup's end is written).
 */
function readChunk(fd: number, dst: Uint8Array, pos: number, m: Member): void {
  let got = 0;
  while (got < dst.length) {
    const r = fs.readSync(fd, dst, got, dst.length - got, pos + got);
    if (r === 0) break;
    got += r;
  }
  if (got === dst.length) return;
  if (m.walPath === undefined) throw Errors.internal(`checkpoint snapshot "${m.name}" changed size during the backup`);
  dst.fill(0, got);
}

export class BaseBackupSender {
  private _running = false;
  private pendingReply: ((m: FromPrimary) => void) | null = null;

  constructor(private readonly host: BaseBackupHost) {}

  get running(): boolean {
    return this._running;
  }

  /** The primary's answer to `backupStart`; false if no backup waits for one. */
  onPrimaryReply(m: FromPrimary): boolean {
    const r = this.pendingReply;
    if (r === null) return false;
    this.pendingReply = null;
    r(m);
    return true;
  }

  /** Send the backup; resolves after CommandComplete (ReadyForQuery included), rejects on failure. */
  async run(o: BaseBackupOptions): Promise<void> {
    const host = this.host;
    const conn = host.conn;
    checkSupported(o);
    if (host.stopRequested) throw Errors.adminShutdown();
    this._running = true;
    host.setState(WalSndState.BACKUP);
    let started = false;
    const sink = new BackupCopySink(host, {
      maxRateKBps: o.maxRateKBps,
      compression: o.compression === 'gzip' ? 'gzip' : 'none',
      gzipLevel: o.compression === 'gzip' ? gzipLevel(o.compressionDetail) : null,
      progress: o.progress,
    });
    try {
      const reply = await new Promise<FromPrimary>((resolve) => {
        this.pendingReply = resolve;
        host.post({ type: 'backupStart', fast: o.fastCheckpoint });
      });
      if (reply.type === 'backupFailed') throw new WalstreamError(reply.code, reply.sqlstate, reply.message);
      assert(reply.type === 'backupStarted', 'unexpected reply to backupStart');
      started = true;
      if (conn.closed) return;
      const startTime = new Date();
      const startSec = Math.floor(startTime.getTime() / 1000);
      const label = Buffer.from(backupLabelText({ redoLsn: reply.redoLsn, checkpointLsn: reply.checkpointLsn, tli: reply.tli, segSize: host.segSize, startTime, label: o.label, fromStandby: host.fromStandby }), 'utf8');
      const members: Member[] = [
        { name: BACKUP_LABEL_FILE, dir: false, size: label.length, mtimeSec: startSec, data: label, inManifest: true },
        ...BACKUP_DIRECTORIES.map((name) => ({ name, dir: true, size: 0, mtimeSec: startSec, inManifest: false })),
        ...reply.files.map((f: BackupFile) => ({ name: f.name, dir: false, size: f.size, mtimeSec: f.mtimeSec, data: f.data, fd: f.fd, inManifest: true })),
      ];
      let tarBytes = TAR_TRAILER_BYTES;
      for (const m of members) tarBytes += m.dir ? tarEntryBytes(0) : tarEntryBytes(m.size);
      const manifest = o.manifest === 'no' ? null : new BackupManifest({ checksumType: o.manifestChecksums, forceEncode: o.manifest === 'force-encode' });

      conn.sendResultSet(ReplicationColumns.baseBackupXlogRecPtr, [[lsnToString(reply.redoLsn), String(reply.tli)]], 'SELECT');
      conn.sendResultSet(ReplicationColumns.baseBackupTablespaces, [[null, null, o.progress ? String(Math.floor(tarBytes / 1024)) : null]], 'SELECT');
      conn.enterCopyOut();
      sink.beginArchive(sink.archiveName('base.tar'));
      for (const m of members) await this.sendMember(sink, m, manifest);
      // do_pg_backup_stop: the end is what is flushed now (past the checkpoint, so the snapshot is
      // covered). On a standby the snapshot is its last restartpoint's, fuzzy up to that
      // restartpoint's minRecoveryPoint (sent with it): the end is at least that.
      const endLsn = Math.max(host.flushedLsn(), reply.minRecoveryPoint ?? 0);
      if (o.includeWal) {
        for (const m of this.walMembers(reply.redoLsn, endLsn, reply.tli)) await this.sendMember(sink, m, null);
      }
      await sink.archiveContents(tarTrailer());
      await sink.endArchive();
      if (manifest !== null) {
        manifest.addWalRange(reply.tli, reply.redoLsn, endLsn);
        await sink.manifest(manifest.finish());
      }
      if (conn.closed) return;
      conn.endCopyOut();
      conn.sendResultSet(ReplicationColumns.baseBackupXlogRecPtr, [[lsnToString(endLsn), String(reply.tli)]], 'SELECT');
      conn.sendCommandComplete('BASE_BACKUP');
      host.setState(WalSndState.STARTUP);
      conn.sendReadyForQuery();
    } finally {
      sink.close();
      // Releases the backup's WAL pin and closes its files, after success, error or disconnection.
      if (started) host.post({ type: 'backupDone' });
      this._running = false;
      host.afterBackup();
    }
  }

  /** pg_wal/<segment> from the redo point's segment through the one holding the end (XLByteToPrevSeg), then the timeline's history file. */
  private walMembers(startLsn: Lsn, endLsn: Lsn, tli: number): Member[] {
    const { walDir, segSize } = this.host;
    const out: Member[] = [];
    const first = segNo(startLsn, segSize);
    const last = segNo(Math.max(startLsn, endLsn - 1), segSize);
    for (let seg = first; seg <= last; seg++) {
      const name = segmentFileName(tli, seg, segSize);
      const file = path.join(walDir, name);
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch {
        // PostgreSQL: "could not find WAL file" when a segment of the backup is gone.
        throw Errors.undefinedFile(`could not find WAL file "${name}"`);
      }
      out.push({ name: `pg_wal/${name}`, dir: false, size: segSize, mtimeSec: Math.floor(st.mtimeMs / 1000), walPath: file, inManifest: false });
    }
    if (tli > 1) {
      const name = historyFileName(tli);
      const file = path.join(walDir, name);
      if (fs.existsSync(file)) {
        const data = fs.readFileSync(file);
        out.push({ name: `pg_wal/${name}`, dir: false, size: data.length, mtimeSec: Math.floor(fs.statSync(file).mtimeMs / 1000), data, inManifest: false });
      }
    }
    return out;
  }

  /** One tar member: header, contents (given, pread from the primary's fd, or read from pg_wal), padding; its manifest entry. */
  private async sendMember(sink: BackupCopySink, m: Member, manifest: BackupManifest | null): Promise<void> {
    await sink.archiveContents(tarHeader({ name: m.name, size: m.dir ? 0 : m.size, mtimeSec: m.mtimeSec, type: m.dir ? '5' : '0', mode: m.dir ? DIR_MODE : FILE_MODE }));
    if (m.dir) return;
    const checksum: FileChecksum | null = manifest !== null && m.inManifest ? manifest.createFileChecksum() : null;
    if (m.data) {
      checksum?.update(m.data);
      await sink.archiveContents(m.data);
    } else {
      const fd = m.fd ?? fs.openSync(m.walPath!, 'r');
      try {
        // Read straight into the outgoing CopyData record, checksummed where it lies (basebackup-sink.ts).
        for (let pos = 0; pos < m.size; ) {
          const at = pos;
          const n = Math.min(sink.chunkBytes, m.size - pos);
          await sink.archiveFill(n, (dst) => {
            readChunk(fd, dst, at, m);
            checksum?.update(dst);
          });
          pos += n;
        }
      } finally {
        if (m.fd === undefined) fs.closeSync(fd);
      }
    }
    await sink.archiveContents(tarPadding(m.size));
    if (checksum !== null) manifest!.addFile(m.name, m.size, m.mtimeSec, checksum);
  }
}
