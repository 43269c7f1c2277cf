// Minimal base backup client: fills an empty standby data directory from the primary over one
// replication connection. Run by Standby.open (main thread) before any worker starts; owns the
// files it extracts (removed again if the backup fails). It stops when the command completes.
//
// Contract (PostgreSQL 15's reply shape; walstream's walsender implements it):
//   → BASE_BACKUP ( LABEL 'walstream', CHECKPOINT 'fast', WAIT 0, MANIFEST 'no', TARGET 'client' )
//   ← result set (recptr, tli) · result set (spcoid, spclocation, size) · CopyOutResponse ·
//     CopyData 'n' "base.tar\0" "\0" · CopyData 'd' chunks of one ustar archive holding
//     backup_label, the directories, WALSTREAM_VERSION, walstream.control,
//     checkpoints/<snapshotName> · CopyDone ·
//     result set (end LSN, tli) · CommandComplete · ReadyForQuery
// The archive is parsed as it streams: every header's checksum, magic, type, name and size are
// checked before a byte of the member is written, members go straight to disk (nothing is
// allocated from a length the server sent), and the total is bounded by maxBaseBackupBytes.
// Afterwards the control file is set to "in archive recovery" with minRecoveryPoint = the backup's
// end LSN: the standby is consistent once it has replayed that far.

import fs from 'node:fs';
import path from 'node:path';
import { Errors, WalstreamError } from '../errors.js';
import { CONTROL_FILE, DbState, readControl, writeControl, type ControlData } from '../storage/control.js';
import { PID_FILE } from '../storage/datadir.js';
import { type Lsn, lsnToString, parseLsn } from '../wal/lsn.js';
import { fsyncDir } from '../wal/segfile.js';
import type { WalRcvConnection } from './transport.js';
import { fsyncSync } from '../util/fsync.js';

export const BASE_BACKUP_COMMAND = "BASE_BACKUP ( LABEL 'walstream', CHECKPOINT 'fast', WAIT 0, MANIFEST 'no', TARGET 'client' )";
export const TAR_BLOCK_BYTES = 512;
/** Largest small metadata member (WALSTREAM_VERSION, walstream.control), in bytes. */
export const MAX_METADATA_MEMBER_BYTES = 4096;

export interface BaseBackupResult {
  startLsn: Lsn;
  startTli: number;
  endLsn: Lsn;
  endTli: number;
  files: string[];
  archiveBytes: number;
  control: ControlData;
}

const bad = (why: string) => Errors.protocolViolationDetail('invalid base backup from the primary', why);

const FILE_RE = /^(WALSTREAM_VERSION|walstream\.control|backup_label|checkpoints\/[0-9A-Za-z][0-9A-Za-z._-]{0,63})$/;
const DIR_RE = /^(checkpoints|pg_replslot|pg_tblspc|pg_wal|pg_wal\/archive_status)\/?$/;

/** Streaming ustar reader that writes regular members under `dir`. */
export class TarExtractor {
  readonly files: string[] = [];
  bytes = 0;
  private readonly hdr = Buffer.alloc(TAR_BLOCK_BYTES);
  private hdrFill = 0;
  private fd = -1;
  private memberName = '';
  private remaining = 0;
  private pad = 0;
  private zeroBlocks = 0;
  private ended = false;

  constructor(private readonly dir: string, private readonly maxBytes: number) {}

  push(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) throw bad(`archive exceeds maxBaseBackupBytes (${this.maxBytes})`);
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        let w = 0;
        while (w < n) w += fs.writeSync(this.fd, chunk, off + w, n - w);
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
      this.zeroBlocks++;
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
    if (!FILE_RE.test(full)) throw bad(`unexpected file "${full}" in archive`);
    if (this.files.includes(full)) throw bad(`file "${full}" appears twice in archive`);
    if (!full.startsWith('checkpoints/') && size > MAX_METADATA_MEMBER_BYTES) throw bad(`file "${full}" of ${size} bytes is too large`);
    if (size > this.maxBytes) throw bad(`file "${full}" of ${size} bytes exceeds maxBaseBackupBytes (${this.maxBytes})`);
    const file = path.join(this.dir, full);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = fs.openSync(file, 'wx');
    this.memberName = full;
    this.remaining = size;
    this.pad = (TAR_BLOCK_BYTES - (size % TAR_BLOCK_BYTES)) % TAR_BLOCK_BYTES;
    if (size === 0) this.finishMember();
  }

  private finishMember(): void {
    fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
    this.files.push(this.memberName);
  }

  /** The stream is over: no member may be cut short. */
  finish(): void {
    if (this.remaining > 0 || this.hdrFill > 0 || this.pad > 0) throw bad('archive ends in the middle of a member');
  }

  abort(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
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
 * Run BASE_BACKUP on `conn` and extract it into `dataDir` (which must be empty or missing, but
 * for the caller's pid file). On failure everything extracted is removed again.
 */
export async function runBaseBackup(conn: WalRcvConnection, dataDir: string, maxBytes: number): Promise<BaseBackupResult> {
  fs.mkdirSync(dataDir, { recursive: true });
  const present = () => fs.readdirSync(dataDir).filter((n) => n !== PID_FILE);
  if (present().length !== 0) throw Errors.notADataDir(dataDir, 'base backup needs an empty directory');
  const tar = new TarExtractor(dataDir, maxBytes);
  let archives = 0;
  let failure: WalstreamError | null = null;
  try {
    const result = await conn.baseBackup(BASE_BACKUP_COMMAND, (payload) => {
      if (failure !== null) return;
      try {
        const kind = payload.length > 0 ? String.fromCharCode(payload[0]!) : '';
        if (kind === 'n') {
          archives++;
          if (archives > 1) throw bad('more than one archive (tablespaces are not supported)');
        } else if (kind === 'd') {
          if (archives !== 1) throw bad('archive data before the archive header');
          tar.push(payload.subarray(1));
        } else if (kind === 'p') {
          // progress report: nothing to do
        } else {
          throw bad(`unexpected COPY message kind "${kind}"`);
        }
      } catch (e) {
        failure = e instanceof WalstreamError ? e : Errors.internal((e as Error).message);
      }
    });
    if (failure !== null) throw failure;
    tar.finish();
    if (result.resultSets.length < 3) throw bad(`expected 3 result sets, got ${result.resultSets.length}`);
    const start = lsnTliRow(result.resultSets[0], 'start position');
    const end = lsnTliRow(result.resultSets[result.resultSets.length - 1], 'end position');
    if (end.lsn < start.lsn) throw bad(`end position ${lsnToString(end.lsn)} is before start ${lsnToString(start.lsn)}`);
    for (const need of ['WALSTREAM_VERSION', CONTROL_FILE]) if (!tar.files.includes(need)) throw bad(`archive lacks ${need}`);
    const control = readControl(dataDir);
    if (control === null) throw bad(`archive lacks ${CONTROL_FILE}`);
    if (!tar.files.includes(`checkpoints/${control.snapshotName}`)) throw bad(`archive lacks checkpoints/${control.snapshotName}`);
    if (control.redoLsn > end.lsn || control.tli !== start.tli) throw bad('control file does not match the backup positions');
    fs.mkdirSync(path.join(dataDir, 'pg_wal'), { recursive: true });
    fs.mkdirSync(path.join(dataDir, 'checkpoints'), { recursive: true });
    fsyncDir(path.join(dataDir, 'checkpoints'));
    const standbyControl: ControlData = {
      ...control,
      state: DbState.InArchiveRecovery,
      minRecoveryPoint: Math.max(control.minRecoveryPoint, end.lsn),
      timeMs: Date.now(),
    };
    writeControl(dataDir, standbyControl);
    fsyncDir(dataDir);
    return { startLsn: start.lsn, startTli: start.tli, endLsn: end.lsn, endTli: end.tli, files: tar.files, archiveBytes: tar.bytes, control: standbyControl };
  } catch (e) {
    tar.abort();
    for (const n of present()) fs.rmSync(path.join(dataDir, n), { recursive: true, force: true });
    throw e;
  }
}
