// Base backup client: fills an empty standby data directory from the primary over one replication
// connection with the BASE_BACKUP pg_basebackup 15 sends, and checks it as pg_verifybackup does
// while it arrives. Run by Standby.open (main thread) before any worker starts, and by
// `walstream basebackup` (takeBaseBackup); owns the files it extracts (removed again if the backup
// fails). It stops when the command completes.
//
// Contract (PostgreSQL 15's reply shape; walstream's walsender implements it):
//   → BASE_BACKUP ( LABEL 'walstream', PROGRESS, CHECKPOINT 'fast', WAIT 0, WAL, MANIFEST 'yes',
//                   MANIFEST_CHECKSUMS 'CRC32C', [MAX_RATE kB/s,] TARGET 'client' )
//   ← result set (recptr, tli) · result set (spcoid, spclocation, size in kB) · CopyOutResponse ·
//     'n' "base.tar" · 'd' chunks of one ustar archive holding backup_label, the directories,
//     WALSTREAM_VERSION, walstream.control, checkpoints/<snapshotName>, and with WAL the segments
//     pg_wal/<redo's segment> .. <end's segment> (+ the timeline's history file) · 'p' progress ·
//     'm' + 'd' the backup manifest · CopyDone · result set (end LSN, tli) · CommandComplete
// With WAL the segments replay needs to become consistent come inside the archive, so no
// checkpoint on the primary can remove them between the backup and streaming.
//
// Checking (pg_verifybackup's): every tar header (checksum, magic, type, name, size) before a byte
// of the member is written; members go straight to disk (nothing is allocated from a length the
// server sent), the total bounded by maxBaseBackupBytes. Every file but pg_wal's gets a CRC-32C
// while it is written; then the manifest is parsed (parseBackupManifest: its own SHA-256 too) and
// every file must be in it with its size and checksum, every manifest file must have arrived, the
// WAL range must be the backup's and its segments present. A failure names the file.
//
// Nothing half-written looks like a standby: the archive is extracted into STAGING_DIR inside the
// data directory; only after the checks are its entries renamed into place, and the control file
// ("in archive recovery", minRecoveryPoint = the backup's end LSN) is written last. A directory
// left by a crash holds files but no control file, which Standby.open refuses; a new base backup
// (walstream basebackup) removes a leftover STAGING_DIR first.

import fs from 'node:fs';
import path from 'node:path';
import { Errors, WalstreamError } from '../errors.js';
import { createFileChecksum, type FileChecksum, parseBackupManifest } from '../replication/backup-manifest.js';
import { CONTROL_FILE, DbState, readControl, writeControl, type ControlData } from '../storage/control.js';
import { acquirePidFile, PID_FILE, releasePidFile } from '../storage/datadir.js';
import { type Lsn, lsnToString, parseLsn } from '../wal/lsn.js';
import { fsyncDir } from '../wal/segfile.js';
import { segmentFileName, segNo } from '../wal/segment.js';
import { fsync, writeAllSynced } from '../util/fsync.js';
import { BaseBackupProgressTracker, type BaseBackupProgressListener } from './bootstrap-progress.js';
import { resolveStandbyOptions, type PrimaryConninfo } from './options.js';
import { TcpTransport, type WalRcvConnection } from './transport.js';
import { MAX_RATE_LOWER, MAX_RATE_UPPER } from '../replication/protocol/command-options.js';

export const TAR_BLOCK_BYTES = 512;
/** Largest small metadata member (WALSTREAM_VERSION, walstream.control, backup_label, a history file), in bytes. */
export const MAX_METADATA_MEMBER_BYTES = 4096;
/** Largest WAL segment member (the largest wal_segment_size), in bytes. */
export const MAX_WAL_MEMBER_BYTES = 1024 * 1024 * 1024;
/** Largest backup manifest accepted, in bytes (a walstream manifest lists four files). */
export const MAX_MANIFEST_RECEIVE_BYTES = 16 * 1024 * 1024;
/** Where the archive is extracted until it has been checked, inside the data directory. */
export const STAGING_DIR = 'basebackup.incomplete';
/** The manifest, kept in the data directory as pg_basebackup keeps it. */
export const BACKUP_MANIFEST_FILE = 'backup_manifest';
/** MAX_RATE bounds, kB/s (the server's, as PostgreSQL's basebackup.c checks them). */
export { MAX_RATE_LOWER as MAX_RATE_MIN_KBPS, MAX_RATE_UPPER as MAX_RATE_MAX_KBPS };
/** The per-file checksum asked for (PostgreSQL's default). */
const CHECKSUM_TYPE = 'CRC32C' as const;

/** Error code of a backup that fails verification (WalstreamError.code). */
export const BASE_BACKUP_INVALID = 'WS_BASE_BACKUP_INVALID';

export interface BaseBackupClientOptions {
  /** Largest archive accepted, bytes. */
  maxBytes: number;
  /** Progress events (bootstrap-progress.ts). */
  onProgress?: BaseBackupProgressListener | null;
  /** MAX_RATE, kB/s (MAX_RATE_MIN_KBPS..MAX_RATE_MAX_KBPS); 0 = unthrottled (default). */
  maxRateKBps?: number;
  /** CHECKPOINT 'fast' (default) or 'spread'. */
  checkpoint?: 'fast' | 'spread';
  /** 'fetch' (default): WAL in the archive; 'none': the standby streams it from the redo point. */
  wal?: 'fetch' | 'none';
  /** Test only: flip one byte of what arrives, before it is checked (absent: no cost). */
  testHooks?: BaseBackupTestHooks;
}

export interface BaseBackupTestHooks {
  /** Flip the first byte of this archive member's contents. */
  corruptFile?: string;
  /** Flip one byte inside the manifest's file list. */
  corruptManifest?: boolean;
}

export interface BaseBackupResult {
  startLsn: Lsn;
  startTli: number;
  endLsn: Lsn;
  endTli: number;
  files: string[];
  archiveBytes: number;
  /** The archive size the primary announced (PROGRESS), bytes; it leaves out WAL. */
  announcedBytes: number;
  /** Files checked against the manifest (size and CRC-32C). */
  filesVerified: number;
  control: ControlData;
}

/** BASE_BACKUP's options, as pg_basebackup 15 sends them. */
export function baseBackupCommand(o: { maxRateKBps?: number; checkpoint?: 'fast' | 'spread'; wal?: 'fetch' | 'none' } = {}): string {
  const opts = ["LABEL 'walstream'", 'PROGRESS', `CHECKPOINT '${o.checkpoint ?? 'fast'}'`, 'WAIT 0'];
  if ((o.wal ?? 'fetch') === 'fetch') opts.push('WAL');
  opts.push("MANIFEST 'yes'", `MANIFEST_CHECKSUMS '${CHECKSUM_TYPE}'`);
  if (o.maxRateKBps) opts.push(`MAX_RATE ${o.maxRateKBps}`);
  opts.push("TARGET 'client'");
  return `BASE_BACKUP ( ${opts.join(', ')} )`;
}

const bad = (why: string) => Errors.protocolViolationDetail('invalid base backup from the primary', why);
const invalid = (why: string) => new WalstreamError(BASE_BACKUP_INVALID, 'XX001', `base backup failed verification: ${why}`);

const WAL_FILE_RE = /^pg_wal\/([0-9A-F]{24}|[0-9A-F]{8}\.history)$/;
const FILE_RE = /^(WALSTREAM_VERSION|walstream\.control|backup_label|checkpoints\/[0-9A-Za-z][0-9A-Za-z._-]{0,63})$/;
const DIR_RE = /^(checkpoints|pg_replslot|pg_tblspc|pg_wal|pg_wal\/archive_status)\/?$/;

/** What arrived of one file: its size and (files the manifest lists) its CRC-32C. */
interface ReceivedFile {
  size: number;
  checksum: Buffer | null;
}

/** Streaming ustar reader that writes regular members under `dir`, checksumming those outside pg_wal. */
export class TarExtractor {
  readonly files: string[] = [];
  readonly received = new Map<string, ReceivedFile>();
  bytes = 0;
  /** Called with each header's member name and size, once the header is checked. */
  onMember: ((name: string, size: number) => void) | null = null;
  private readonly hdr = Buffer.alloc(TAR_BLOCK_BYTES);
  private hdrFill = 0;
  private fd = -1;
  private memberName = '';
  private memberSize = 0;
  private checksum: FileChecksum | null = null;
  private flipNext = false;
  private remaining = 0;
  private pad = 0;
  private ended = false;
  /** fsyncs of finished members still running (each settles to its error or null; never rejects). */
  private syncing: Promise<Error | null>[] = [];

  constructor(private readonly dir: string, private readonly maxBytes: number, private readonly corruptFile: string | null = null) {}

  push(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) throw bad(`archive exceeds maxBaseBackupBytes (${this.maxBytes})`);
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        let part = chunk.subarray(off, off + n);
        if (this.flipNext) {
          part = Buffer.from(part);
          part[0] = part[0]! ^ 0xff;
          this.flipNext = false;
        }
        this.checksum?.update(part);
        let w = 0;
        while (w < n) w += fs.writeSync(this.fd, part, w, n - w);
        this.remaining -= n;
        off += n;
        if (this.remaining === 0) this.finishMember();
        continue;
      }
      if (this.pad > 0) {
        const n = Math.min(this.pad, chunk.length - off);
        this.pad -= n;
        off += n;
        continue;
      }
      const n = Math.min(TAR_BLOCK_BYTES - this.hdrFill, chunk.length - off);
      this.hdr.set(chunk.subarray(off, off + n), this.hdrFill);
      this.hdrFill += n;
      off += n;
      if (this.hdrFill === TAR_BLOCK_BYTES) {
        this.hdrFill = 0;
        this.onHeader();
      }
    }
  }

  private onHeader(): void {
    const h = this.hdr;
    if (h.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    if (this.ended) throw bad('data after the end-of-archive marker');
    const stored = octal(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < TAR_BLOCK_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== stored) throw bad(`tar header checksum mismatch (stored ${stored}, computed ${sum})`);
    const magic = h.toString('latin1', 257, 263);
    if (magic !== 'ustar\0' && magic !== 'ustar ') throw bad('tar header has no ustar magic');
    const name = cstr(h, 0, 100);
    const prefix = cstr(h, 345, 155);
    const full = prefix ? `${prefix}/${name}` : name;
    const type = String.fromCharCode(h[156]!);
    const size = octal(h, 124, 12, 'size');
    if (type === '5') {
      if (!DIR_RE.test(full) || size !== 0) throw bad(`unexpected directory "${full}" in archive`);
      fs.mkdirSync(path.join(this.dir, full), { recursive: true });
      return;
    }
    if (type !== '0' && type !== '\0') throw bad(`unexpected member type "${type}" for "${full}"`);
    const wal = WAL_FILE_RE.test(full);
    if (!wal && !FILE_RE.test(full)) throw bad(`unexpected file "${full}" in archive`);
    if (this.received.has(full)) throw bad(`file "${full}" appears twice in archive`);
    const limit = full.startsWith('checkpoints/') ? Infinity : wal && !full.endsWith('.history') ? MAX_WAL_MEMBER_BYTES : MAX_METADATA_MEMBER_BYTES;
    if (size > limit) throw bad(`file "${full}" of ${size} bytes is too large (at most ${limit} bytes)`);
    if (size > this.maxBytes) throw bad(`file "${full}" of ${size} bytes exceeds maxBaseBackupBytes (${this.maxBytes})`);
    const file = path.join(this.dir, full);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = fs.openSync(file, 'wx', 0o600);
    this.memberName = full;
    this.memberSize = size;
    this.checksum = wal ? null : createFileChecksum(CHECKSUM_TYPE);
    this.flipNext = this.corruptFile === full && size > 0;
    this.remaining = size;
    this.pad = (TAR_BLOCK_BYTES - (size % TAR_BLOCK_BYTES)) % TAR_BLOCK_BYTES;
    this.onMember?.(full, size);
    if (size === 0) this.finishMember();
  }

  private finishMember(): void {
    // fsync on the threadpool while the archive goes on arriving (pg_basebackup syncs at the end);
    // synced() waits for all of them before anything is moved into place.
    const fd = this.fd;
    const closed = (e: Error | null): Error | null => {
      try {
        fs.closeSync(fd);
      } catch (c) {
        return e ?? (c as Error);
      }
      return e;
    };
    this.syncing.push(fsync(fd).then(() => closed(null), (e: Error) => closed(e)));
    this.fd = -1;
    this.files.push(this.memberName);
    this.received.set(this.memberName, { size: this.memberSize, checksum: this.checksum?.final() ?? null });
    this.checksum = null;
  }

  /** The stream is over: no member may be cut short, the end-of-archive marker must have come. */
  finish(): void {
    if (this.remaining > 0 || this.hdrFill > 0 || this.pad > 0) throw bad('archive ends in the middle of a member');
    if (!this.ended) throw bad('archive has no end-of-archive marker');
  }

  /** Every finished member is on disk (its fsync done, its descriptor closed); rejects if an fsync failed. */
  async synced(): Promise<void> {
    const all = this.syncing;
    this.syncing = [];
    const failed = (await Promise.all(all)).find((e) => e !== null);
    if (failed) throw Errors.internal(`could not fsync a file of the base backup: ${failed.message}`);
  }

  /** After a failure: close the open member; the fsyncs in flight close theirs when done. */
  async abort(): Promise<void> {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    await Promise.all(this.syncing.splice(0));
  }
}

function cstr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** A tar numeric field: octal digits, optionally space/NUL padded; anything else is refused. */
function octal(b: Buffer, off: number, len: number, what: string): number {
  const t = b.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,12}$/.test(t)) throw bad(`tar header field ${what} is not an octal number`);
  const v = parseInt(t, 8);
  if (!Number.isSafeInteger(v)) throw bad(`tar header field ${what} is out of range`);
  return v;
}

function lsnTliRow(rs: { rows: (string | null)[][] } | undefined, what: string): { lsn: Lsn; tli: number } {
  const row = rs?.rows[0];
  if (rs === undefined || rs.rows.length !== 1 || row === undefined || row.length < 2 || row[0] == null || row[1] == null || !/^\d{1,10}$/.test(row[1])) {
    throw bad(`malformed ${what} result set`);
  }
  return { lsn: parseLsn(row[0]), tli: Number(row[1]) };
}

/**
 * pg_verifybackup's checks of what arrived against the manifest: the manifest's own checksum
 * (parseBackupManifest), every file present with its size and checksum, no file that the manifest
 * does not list, the WAL range the backup's, and its segments present.
 */
export function verifyAgainstManifest(manifestBytes: Uint8Array, received: ReadonlyMap<string, ReceivedFile>, b: { tli: number; startLsn: Lsn; endLsn: Lsn; segSize: number; walIncluded: boolean }): number {
  let manifest;
  try {
    manifest = parseBackupManifest(manifestBytes);
  } catch (e) {
    throw invalid(`backup_manifest: ${(e as Error).message}`);
  }
  const listed = new Set<string>();
  for (const f of manifest.files) {
    const name = f.path.toString('utf8');
    listed.add(name);
    const got = received.get(name);
    if (got === undefined || WAL_FILE_RE.test(name)) throw invalid(`"${name}" is present in the manifest but not on disk`);
    if (got.size !== f.size) throw invalid(`"${name}" has size ${got.size} on disk but size ${f.size} in the manifest`);
    if (f.checksumType !== CHECKSUM_TYPE) throw invalid(`"${name}" has checksum algorithm ${f.checksumType} in the manifest, ${CHECKSUM_TYPE} was asked for`);
    if (got.checksum === null || !got.checksum.equals(f.checksum)) throw invalid(`checksum mismatch for file "${name}"`);
  }
  for (const name of received.keys()) {
    if (!WAL_FILE_RE.test(name) && !listed.has(name)) throw invalid(`"${name}" is present on disk but not in the manifest`);
  }
  const r = manifest.walRanges;
  if (r.length !== 1 || r[0]!.tli !== b.tli || r[0]!.startLsn !== b.startLsn || r[0]!.endLsn !== b.endLsn) {
    throw invalid(`backup_manifest's WAL ranges are not timeline ${b.tli} from ${lsnToString(b.startLsn)} to ${lsnToString(b.endLsn)}`);
  }
  if (b.walIncluded) {
    for (let seg = segNo(b.startLsn, b.segSize); seg <= segNo(Math.max(b.startLsn, b.endLsn - 1), b.segSize); seg++) {
      const name = `pg_wal/${segmentFileName(b.tli, seg, b.segSize)}`;
      const got = received.get(name);
      if (got === undefined) throw invalid(`WAL file "${name}" needed from ${lsnToString(b.startLsn)} to ${lsnToString(b.endLsn)} is missing`);
      if (got.size !== b.segSize) throw invalid(`WAL file "${name}" has size ${got.size}, the segment size is ${b.segSize}`);
    }
  }
  return manifest.files.length;
}

/** A leftover staging directory, and nothing else but the pid file: the directory may take a base backup. */
function prepareEmptyDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const present = fs.readdirSync(dataDir).filter((n) => n !== PID_FILE);
  if (present.some((n) => n !== STAGING_DIR)) throw Errors.notADataDir(dataDir, 'base backup needs an empty directory');
  fs.rmSync(path.join(dataDir, STAGING_DIR), { recursive: true, force: true });
}

/**
 * Run BASE_BACKUP on `conn`, check it, and move it into `dataDir` (which must be empty or missing,
 * but for the caller's pid file). On failure everything extracted is removed again.
 */
export async function runBaseBackup(conn: WalRcvConnection, dataDir: string, opts: BaseBackupClientOptions): Promise<BaseBackupResult> {
  prepareEmptyDataDir(dataDir);
  const stage = path.join(dataDir, STAGING_DIR);
  fs.mkdirSync(stage, { mode: 0o700 });
  fsyncDir(dataDir);
  const hooks = opts.testHooks;
  const tar = new TarExtractor(stage, opts.maxBytes, hooks?.corruptFile ?? null);
  const progress = new BaseBackupProgressTracker(opts.onProgress ?? null);
  const walIncluded = (opts.wal ?? 'fetch') === 'fetch';
  // The running total (see bootstrap-progress.ts): once the snapshot's header is in, the rest of
  // the archive is its size, its padding, one WAL segment (its size from the control file) and the trailer.
  let segSize = 0;
  tar.onMember = (name, size) => {
    if (name === CONTROL_FILE) return;
    if (name.startsWith('checkpoints/')) {
      const control = readControl(stage);
      if (control !== null) segSize = control.segSize;
      const rest = size + ((TAR_BLOCK_BYTES - (size % TAR_BLOCK_BYTES)) % TAR_BLOCK_BYTES) + (walIncluded && segSize > 0 ? TAR_BLOCK_BYTES + segSize : 0) + 2 * TAR_BLOCK_BYTES;
      progress.raiseTotal(tar.bytes + rest);
    }
  };
  let archives = 0;
  let inManifest = false;
  const manifestChunks: Buffer[] = [];
  let manifestBytes = 0;
  let failure: WalstreamError | null = null;
  try {
    // The kind of the payload whose parts are arriving (a large 'd' comes in parts, written as they come).
    let kind = '';
    const result = await conn.baseBackup(baseBackupCommand(opts), (payload, headerSets, part) => {
      if (failure !== null) return;
      try {
        if (part === null || part.first) kind = payload.length > 0 ? String.fromCharCode(payload[0]!) : '';
        if (part !== null && kind !== 'd') throw bad(`COPY message "${kind}" of unexpected size`);
        const data = part === null || part.first ? payload.subarray(1) : payload;
        if (kind === 'n') {
          archives++;
          if (archives > 1) throw bad('more than one archive (tablespaces are not supported)');
          // PROGRESS: the tablespace row's size (kB) was announced before the archive.
          const announcedKb = headerSets[1]?.rows[0]?.[2];
          if (announcedKb != null && /^\d{1,15}$/.test(announcedKb)) progress.announce(Number(announcedKb) * 1024);
          if (inManifest) throw bad('archive after the manifest');
        } else if (kind === 'd') {
          if (inManifest) {
            manifestBytes += data.length;
            if (manifestBytes > MAX_MANIFEST_RECEIVE_BYTES) throw bad(`backup manifest exceeds ${MAX_MANIFEST_RECEIVE_BYTES} bytes`);
            manifestChunks.push(Buffer.from(data));
          } else {
            if (archives !== 1) throw bad('archive data before the archive header');
            tar.push(data);
            progress.add(data.length);
          }
        } else if (kind === 'p') {
          // The primary's count of what it sent: the client counts what it received instead.
        } else if (kind === 'm') {
          if (inManifest || archives !== 1) throw bad('unexpected manifest header');
          inManifest = true;
        } else {
          throw bad(`unexpected COPY message kind "${kind}"`);
        }
      } catch (e) {
        failure = e instanceof WalstreamError ? e : Errors.internal((e as Error).message);
      }
    });
    if (failure !== null) throw failure;
    tar.finish();
    await tar.synced();
    if (result.resultSets.length < 3) throw bad(`expected 3 result sets, got ${result.resultSets.length}`);
    const start = lsnTliRow(result.resultSets[0], 'start position');
    const end = lsnTliRow(result.resultSets[result.resultSets.length - 1], 'end position');
    const sizeKb = result.resultSets[1]?.rows[0]?.[2];
    const announcedBytes = sizeKb != null && /^\d{1,15}$/.test(sizeKb) ? Number(sizeKb) * 1024 : 0;
    if (end.lsn < start.lsn) throw bad(`end position ${lsnToString(end.lsn)} is before start ${lsnToString(start.lsn)}`);
    for (const need of ['WALSTREAM_VERSION', CONTROL_FILE]) if (!tar.received.has(need)) throw bad(`archive lacks ${need}`);
    const control = readControl(stage);
    if (control === null) throw bad(`archive lacks ${CONTROL_FILE}`);
    if (!tar.received.has(`checkpoints/${control.snapshotName}`)) throw bad(`archive lacks checkpoints/${control.snapshotName}`);
    if (control.redoLsn > end.lsn || control.tli !== start.tli) throw bad('control file does not match the backup positions');
    if (!inManifest) throw invalid('the primary sent no backup manifest');
    let manifest = Buffer.concat(manifestChunks, manifestBytes);
    if (hooks?.corruptManifest) {
      manifest = Buffer.from(manifest);
      const at = manifest.indexOf('backup_label');
      if (at >= 0) manifest[at] = manifest[at]! ^ 0x01;
    }
    const filesVerified = verifyAgainstManifest(manifest, tar.received, { tli: start.tli, startLsn: start.lsn, endLsn: end.lsn, segSize: control.segSize, walIncluded });
    progress.finish();

    // Checked: into place, the control file last.
    writeFileSynced(path.join(stage, BACKUP_MANIFEST_FILE), manifest);
    fs.mkdirSync(path.join(stage, 'pg_wal'), { recursive: true });
    fs.mkdirSync(path.join(stage, 'checkpoints'), { recursive: true });
    fsyncDir(path.join(stage, 'pg_wal'));
    fsyncDir(path.join(stage, 'checkpoints'));
    fsyncDir(stage);
    for (const n of fs.readdirSync(stage)) if (n !== CONTROL_FILE) fs.renameSync(path.join(stage, n), path.join(dataDir, n));
    fsyncDir(dataDir);
    const standbyControl: ControlData = {
      ...control,
      state: DbState.InArchiveRecovery,
      minRecoveryPoint: Math.max(control.minRecoveryPoint, end.lsn),
      timeMs: Date.now(),
    };
    writeControl(dataDir, standbyControl);
    fs.rmSync(stage, { recursive: true, force: true });
    fsyncDir(dataDir);
    return {
      startLsn: start.lsn, startTli: start.tli, endLsn: end.lsn, endTli: end.tli, files: tar.files, archiveBytes: tar.bytes, announcedBytes, filesVerified, control: standbyControl,
    };
  } catch (e) {
    await tar.abort();
    for (const n of fs.readdirSync(dataDir)) if (n !== PID_FILE) fs.rmSync(path.join(dataDir, n), { recursive: true, force: true });
    throw e;
  }
}

function writeFileSynced(file: string, data: Uint8Array): void {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    writeAllSynced(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}

export interface TakeBaseBackupOptions extends Omit<BaseBackupClientOptions, 'maxBytes'> {
  /** The primary, as Standby.open's primaryConninfo (libpq key=value text or an object). */
  primaryConninfo: PrimaryConninfo | string;
  dataDir: string;
  /** Largest archive accepted, bytes (default: Standby.open's maxBaseBackupBytes). */
  maxBytes?: number;
  connectTimeoutMs?: number;
}

/**
 * A base backup into `dataDir` without a Standby (what `walstream basebackup` runs): connects over
 * TCP, takes the data directory's pid file for the duration, and leaves a directory that
 * `Standby.open({ dataDir, primaryConninfo })` starts from.
 */
export async function takeBaseBackup(o: TakeBaseBackupOptions): Promise<BaseBackupResult> {
  const resolved = resolveStandbyOptions({
    dataDir: o.dataDir, primaryConninfo: o.primaryConninfo,
    ...(o.maxBytes !== undefined ? { maxBaseBackupBytes: o.maxBytes } : {}),
    ...(o.connectTimeoutMs !== undefined ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
  });
  if (o.maxRateKBps !== undefined && o.maxRateKBps !== 0 && !(Number.isInteger(o.maxRateKBps) && o.maxRateKBps >= MAX_RATE_LOWER && o.maxRateKBps <= MAX_RATE_UPPER)) {
    throw Errors.invalidOption('maxRateKBps', `must be 0 or an integer from ${MAX_RATE_LOWER} to ${MAX_RATE_UPPER} (kB/s), got ${String(o.maxRateKBps)}`);
  }
  const dataDir = path.resolve(o.dataDir);
  prepareEmptyDataDir(dataDir);
  acquirePidFile(dataDir);
  try {
    const transport = new TcpTransport(resolved.primaryConninfo, {
      connectTimeoutMs: resolved.connectTimeoutMs,
      commandTimeoutMs: resolved.connectTimeoutMs,
      maxMessageBytes: resolved.maxMessageBytes,
      maxBufferedBytes: resolved.walReceiverMaxBufferedBytes,
    });
    const conn = await transport.connect();
    try {
      return await runBaseBackup(conn, dataDir, { ...o, maxBytes: resolved.maxBaseBackupBytes });
    } finally {
      conn.disconnect();
    }
  } finally {
    releasePidFile(dataDir);
  }
}
