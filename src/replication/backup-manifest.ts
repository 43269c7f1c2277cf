// The backup manifest of a base backup, byte for byte as PostgreSQL 15 writes it
// (src/backend/replication/backup_manifest.c, called from basebackup.c), and read back as
// pg_verifybackup reads it (src/bin/pg_verifybackup/parse_manifest.c). Used by the walsender's
// BASE_BACKUP (which checksums each file while it sends it and ends with the manifest, so that
// `pg_basebackup` 15 stores it and `pg_verifybackup` 15 accepts the backup) and by a base-backup
// client that wants to check what it received. Sans-I/O: it owns the manifest text, its running
// SHA-256 and the per-file checksum objects, and touches no file or socket.
//
// Layout (every byte below is covered by the final SHA-256 except the last line):
//   { "PostgreSQL-Backup-Manifest-Version": 1,\n
//   "Files": [\n
//   { "Path": "backup_label", "Size": 225, "Last-Modified": "2026-12-07 19:20:41 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "27356e74" },\n
//   { ... }\n                       (no comma after the last file; "Files": [\n],\n when empty)
//   ],\n
//   "WAL-Ranges": [\n
//   { "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n   (",\n" between ranges)
//   ],\n
//   "Manifest-Checksum": "<64 lowercase hex digits>"}\n
// - A path goes out as "Path" (escape_json of its bytes: \b \f \n \r \t \" \\ escaped, other bytes
//   below 0x20 as \u00XX in lowercase hex, everything else as is) when it is valid UTF-8
//   (pg_verify_mbstr(PG_UTF8)) and force-encode is off; otherwise as "Encoded-Path", the
//   lowercase hex of its bytes.
// - "Last-Modified" is pg_strftime("%Y-%m-%d %H:%M:%S %Z") of pg_gmtime(st_mtime): UTC, whole
//   seconds, the zone spelled "GMT".
// - Checksums (src/common/checksum_helper.c): the lowercase hex of pg_checksum_final's bytes. For
//   CRC-32C that is the finished CRC (FIN_CRC32C) memcpy'd from a uint32 on a little-endian host:
//   its least significant byte first (CRC 0xE3069283 is written "839206e3"). No checksum
//   (NONE) leaves out both "Checksum-Algorithm" and "Checksum".
// - "Manifest-Checksum" is always SHA-256, over every byte before the line that carries it.
//
// Memory: PostgreSQL spills the manifest to a temp file; this builder keeps the text in memory
// (one entry is ~130 bytes plus the path and the checksum's hex, so it grows with the file count),
// up to MAX_MANIFEST_BYTES.

import { createHash, type Hash } from 'node:crypto';
import { WalstreamError } from '../errors.js';
import { CRC32C_INIT, crc32cFinal, crc32cUpdate } from '../wal/crc32c.js';
import { InvalidLsn, type Lsn, lsnToString } from '../wal/lsn.js';
import { MAXPGPATH, type TimeLineHistoryEntry } from '../wal/timeline.js';

/** pg_checksum_type, spelled as pg_checksum_type_name spells it. */
export type ChecksumType = 'NONE' | 'CRC32C' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512';

/** PG_CHECKSUM_MAX_LENGTH, bytes: the longest checksum (SHA-512's). */
export const PG_CHECKSUM_MAX_LENGTH = 64;
/** PG_SHA256_DIGEST_LENGTH, bytes: the manifest checksum. */
export const PG_SHA256_DIGEST_LENGTH = 32;
/** Largest manifest this builder keeps in memory, bytes (PostgreSQL spills to a temp file instead). */
export const MAX_MANIFEST_BYTES = 1024 * 1024 * 1024;

/** Error codes of this module (WalstreamError.code). */
export const BACKUP_MANIFEST_INVALID = 'WS_BACKUP_MANIFEST_INVALID';
export const BACKUP_MANIFEST_MISUSE = 'WS_BACKUP_MANIFEST_MISUSE';
export const BACKUP_MANIFEST_TOO_LARGE = 'WS_BACKUP_MANIFEST_TOO_LARGE';

const CHECKSUM_TYPES: readonly ChecksumType[] = ['NONE', 'CRC32C', 'SHA224', 'SHA256', 'SHA384', 'SHA512'];
const SHA_NAME: Record<ChecksumType, string | null> = { NONE: null, CRC32C: null, SHA224: 'sha224', SHA256: 'sha256', SHA384: 'sha384', SHA512: 'sha512' };

function misuse(message: string): WalstreamError {
  return new WalstreamError(BACKUP_MANIFEST_MISUSE, 'XX000', message);
}

/** pg_checksum_parse_type: a checksum name, case-insensitively ("crc32c", "SHA256", "none", ...); null if unknown. */
export function parseChecksumType(name: string): ChecksumType | null {
  const upper = name.toUpperCase();
  return (CHECKSUM_TYPES as readonly string[]).includes(upper) ? (upper as ChecksumType) : null;
}

/** Length in bytes of a finished checksum of this type (0 for NONE). */
export function checksumLength(type: ChecksumType): number {
  switch (type) {
    case 'NONE': return 0;
    case 'CRC32C': return 4;
    case 'SHA224': return 28;
    case 'SHA256': return 32;
    case 'SHA384': return 48;
    case 'SHA512': return 64;
  }
}

/** pg_checksum_context: one file's running checksum, fed while the file's bytes are sent. */
export interface FileChecksum {
  readonly type: ChecksumType;
  /** pg_checksum_update: feed the next bytes of the file. */
  update(bytes: Uint8Array): void;
  /** pg_checksum_final: the checksum's bytes (empty for NONE). Once only. */
  final(): Buffer;
}

class CrcChecksum implements FileChecksum {
  readonly type = 'CRC32C' as const;
  private crc = CRC32C_INIT;
  private done = false;
  update(bytes: Uint8Array): void {
    if (this.done) throw misuse('checksum already finished');
    this.crc = crc32cUpdate(this.crc, bytes);
  }
  final(): Buffer {
    if (this.done) throw misuse('checksum already finished');
    this.done = true;
    // memcpy of the uint32 pg_crc32c on a little-endian host: least significant byte first.
    const out = Buffer.alloc(4);
    out.writeUInt32LE(crc32cFinal(this.crc), 0);
    return out;
  }
}

class ShaChecksum implements FileChecksum {
  private readonly hash: Hash;
  private done = false;
  constructor(readonly type: ChecksumType, algorithm: string) {
    this.hash = createHash(algorithm);
  }
  update(bytes: Uint8Array): void {
    if (this.done) throw misuse('checksum already finished');
    this.hash.update(bytes);
  }
  final(): Buffer {
    if (this.done) throw misuse('checksum already finished');
    this.done = true;
    return this.hash.digest();
  }
}

class NoChecksum implements FileChecksum {
  readonly type = 'NONE' as const;
  private done = false;
  update(_bytes: Uint8Array): void {
    if (this.done) throw misuse('checksum already finished');
  }
  final(): Buffer {
    if (this.done) throw misuse('checksum already finished');
    this.done = true;
    return Buffer.alloc(0);
  }
}

/** pg_checksum_init: a new running checksum of this type. */
export function createFileChecksum(type: ChecksumType): FileChecksum {
  if (type === 'NONE') return new NoChecksum();
  if (type === 'CRC32C') return new CrcChecksum();
  const sha = SHA_NAME[type];
  if (!sha) throw misuse(`unknown checksum type "${String(type)}"`);
  return new ShaChecksum(type, sha);
}

// ---- text pieces ------------------------------------------------------------------------------

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * pg_verify_mbstr(PG_UTF8, s, len, noError): true when the bytes are valid UTF-8 with no NUL
 * (pg_utf8_islegal: no overlong forms, no surrogates, nothing above U+10FFFF, no truncated
 * sequence), exactly what a fatal WHATWG UTF-8 decoder accepts.
 */
export function isValidUtf8Path(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  try {
    utf8Fatal.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** escape_json (src/backend/utils/adt/json.c) of a byte string, with its quotes. */
function escapeJsonBytes(bytes: Uint8Array): Buffer {
  let n = 2;
  for (const c of bytes) n += c === 0x08 || c === 0x0c || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x22 || c === 0x5c ? 2 : c < 0x20 ? 6 : 1;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  out[o++] = 0x22;
  for (const c of bytes) {
    let esc = -1;
    switch (c) {
      case 0x08: esc = 0x62; break; // \b
      case 0x0c: esc = 0x66; break; // \f
      case 0x0a: esc = 0x6e; break; // \n
      case 0x0d: esc = 0x72; break; // \r
      case 0x09: esc = 0x74; break; // \t
      case 0x22: esc = 0x22; break; // \"
      case 0x5c: esc = 0x5c; break; // \\
    }
    if (esc >= 0) {
      out[o++] = 0x5c;
      out[o++] = esc;
    } else if (c < 0x20) {
      o += out.write(`\\u${c.toString(16).padStart(4, '0')}`, o, 'latin1');
    } else {
      out[o++] = c;
    }
  }
  out[o++] = 0x22;
  return out;
}

const pad2 = (v: number): string => (v < 10 ? '0' : '') + v;

/** "Last-Modified": pg_strftime("%Y-%m-%d %H:%M:%S %Z", pg_gmtime(&mtime)) of whole seconds since the epoch. */
export function formatLastModified(mtimeSeconds: number): string {
  if (!Number.isSafeInteger(mtimeSeconds)) throw misuse(`modification time ${mtimeSeconds} is not a whole number of seconds`);
  const d = new Date(mtimeSeconds * 1000);
  const y = d.getUTCFullYear();
  if (Number.isNaN(y) || y < 0) throw misuse(`modification time ${mtimeSeconds} is out of range`);
  return `${String(y).padStart(4, '0')}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT`;
}

/** Parses formatLastModified's text back into seconds since the epoch; null if it is not that form. */
export function parseLastModified(text: string): number | null {
  const m = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/.exec(text);
  if (!m) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Number.isNaN(ms)) return null;
  const s = ms / 1000;
  return formatLastModified(s) === text ? s : null;
}

/** st_mtime of an fs.Stats (or a Date): whole seconds since the epoch, rounded down as the kernel's tv_sec is. */
export function pgTimeOf(mtime: Date | { mtimeMs: number }): number {
  const ms = mtime instanceof Date ? mtime.getTime() : mtime.mtimeMs;
  return Math.floor(ms / 1000);
}

// ---- the builder -------------------------------------------------------------------------------

export interface BackupManifestOptions {
  /** --manifest-checksums / MANIFEST_CHECKSUMS: the per-file checksum. PostgreSQL's default is CRC32C. */
  checksumType: ChecksumType;
  /** --manifest-force-encode / MANIFEST 'force-encode': every path as "Encoded-Path". */
  forceEncode: boolean;
}

type Phase = 'files' | 'wal' | 'done';

/**
 * backup_manifest_info: the manifest of one base backup, built as the backup is sent —
 * InitializeBackupManifest (constructor), AddFileToBackupManifest (addFile, once per file, in the
 * order the files are sent), AddWALInfoToBackupManifest (addWalRange once per timeline, newest
 * first, or addWalRangesFromHistory), SendBackupManifest (finish: the bytes to send).
 */
export class BackupManifest {
  readonly checksumType: ChecksumType;
  readonly forceEncode: boolean;
  private readonly sha = createHash('sha256');
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private phase: Phase = 'files';
  private files = 0;
  private ranges = 0;

  constructor(opts: BackupManifestOptions) {
    if (!CHECKSUM_TYPES.includes(opts.checksumType)) throw misuse(`unknown checksum type "${String(opts.checksumType)}"`);
    this.checksumType = opts.checksumType;
    this.forceEncode = opts.forceEncode;
    this.append('{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [');
  }

  /** Number of files added so far. */
  get fileCount(): number {
    return this.files;
  }

  /** Size of the manifest text so far, bytes. */
  get byteLength(): number {
    return this.bytes;
  }

  /** A running checksum of this manifest's type, for one file. */
  createFileChecksum(): FileChecksum {
    return createFileChecksum(this.checksumType);
  }

  /**
   * AddFileToBackupManifest: one file, by its path relative to the data directory (a tablespace's
   * file as "pg_tblspc/<oid>/<path>"). `path` as bytes when the name may not be UTF-8 (a string
   * is encoded as UTF-8). `size` in bytes; `mtime` as a Date or whole seconds since the epoch
   * (pgTimeOf(stats)). `checksum` is the file's running checksum, fed with exactly the bytes
   * sent; it is finished here.
   */
  addFile(path: string | Uint8Array, size: number | bigint, mtime: Date | number, checksum: FileChecksum): void {
    if (this.phase !== 'files') throw misuse('cannot add a file to a backup manifest after its WAL ranges');
    if (checksum.type !== this.checksumType) throw misuse(`file checksum is ${checksum.type}, the manifest's is ${this.checksumType}`);
    const pathBytes = typeof path === 'string' ? Buffer.from(path, 'utf8') : path;
    // MAXPGPATH bytes (with the NUL) bound every path basebackup.c hands over.
    if (pathBytes.length === 0 || pathBytes.length >= MAXPGPATH) throw misuse(`path of ${pathBytes.length} bytes: a manifest path has 1 to ${MAXPGPATH - 1} bytes`);
    const sizeText = typeof size === 'bigint' ? (size >= 0n ? size.toString() : null) : Number.isSafeInteger(size) && size >= 0 ? String(size) : null;
    if (sizeText === null) throw misuse(`file size ${String(size)} is not a byte count`);
    const seconds = mtime instanceof Date ? pgTimeOf(mtime) : mtime;
    const lastModified = formatLastModified(seconds);

    const parts: Buffer[] = [];
    parts.push(Buffer.from(this.files === 0 ? '\n' : ',\n', 'latin1'));
    if (!this.forceEncode && isValidUtf8Path(pathBytes)) {
      parts.push(Buffer.from('{ "Path": ', 'latin1'), escapeJsonBytes(pathBytes), Buffer.from(', ', 'latin1'));
    } else {
      parts.push(Buffer.from(`{ "Encoded-Path": "${Buffer.from(pathBytes).toString('hex')}", `, 'latin1'));
    }
    let tail = `"Size": ${sizeText}, "Last-Modified": "${lastModified}"`;
    const sum = checksum.final();
    if (this.checksumType !== 'NONE') {
      tail += `, "Checksum-Algorithm": "${this.checksumType}", "Checksum": "${sum.toString('hex')}"`;
    }
    tail += ' }';
    parts.push(Buffer.from(tail, 'latin1'));
    this.appendBytes(Buffer.concat(parts));
    this.files++;
  }

  /**
   * One entry of "WAL-Ranges": the WAL on timeline `tli` from `startLsn` to `endLsn` that
   * restoring the backup replays. Called once per timeline of the backup, newest timeline first
   * (as AddWALInfoToBackupManifest walks the history); the first call ends the file list.
   */
  addWalRange(tli: number, startLsn: Lsn, endLsn: Lsn): void {
    if (this.phase === 'done') throw misuse('backup manifest already finished');
    if (!Number.isInteger(tli) || tli < 1 || tli > 0xffff_ffff) throw misuse(`invalid timeline ${tli}`);
    if (this.phase === 'files') {
      this.append('\n],\n"WAL-Ranges": [\n');
      this.phase = 'wal';
    }
    this.append(`${this.ranges === 0 ? '' : ',\n'}{ "Timeline": ${tli}, "Start-LSN": "${lsnToString(startLsn)}", "End-LSN": "${lsnToString(endLsn)}" }`);
    this.ranges++;
  }

  /**
   * AddWALInfoToBackupManifest's walk (PostgreSQL 15.6 and later): the ranges of a backup that
   * started at `startLsn` on `startTli` and ended at `endLsn` on `endTli`, from `endTli`'s history
   * (newest first, as readTimeLineHistory returns it): timelines that ended before the backup
   * started are skipped; the start timeline's range begins at `startLsn`, a newer timeline's where
   * it began; each range ends where the next newer one began (the newest at `endLsn`). Errors with
   * PostgreSQL's texts when the history does not lead from the end timeline back to the start
   * timeline.
   */
  addWalRangesFromHistory(history: readonly TimeLineHistoryEntry[], startLsn: Lsn, startTli: number, endLsn: Lsn, endTli: number): void {
    let first = true;
    let found = false;
    let end = endLsn;
    for (const entry of history) {
      if (entry.end !== InvalidLsn && entry.end < startLsn) continue;
      if (first && entry.tli !== endTli) throw misuse(`expected end timeline ${endTli} but found timeline ${entry.tli}`);
      // The start timeline's WAL is needed from the backup's start, a newer one's from where it began.
      let begin: Lsn;
      if (entry.tli === startTli) begin = startLsn;
      else {
        begin = entry.begin;
        if (begin === InvalidLsn) throw misuse(`expected start timeline ${startTli} but found timeline ${entry.tli}`);
      }
      this.addWalRange(entry.tli, begin, end);
      if (entry.tli === startTli) {
        found = true;
        break;
      }
      end = entry.begin;
      first = false;
    }
    if (!found) throw misuse(`start timeline ${startTli} not found in history of timeline ${endTli}`);
  }

  /** SendBackupManifest: ends the WAL ranges, appends "Manifest-Checksum" and returns the whole manifest. */
  finish(): Buffer {
    if (this.phase === 'files') throw misuse('a backup manifest needs its WAL ranges before it is finished');
    if (this.phase === 'done') throw misuse('backup manifest already finished');
    this.append('\n],\n');
    const digest = this.sha.digest('hex');
    this.phase = 'done';
    this.appendBytes(Buffer.from(`"Manifest-Checksum": "${digest}"}\n`, 'latin1'), false);
    const out = Buffer.concat(this.chunks, this.bytes);
    this.chunks.length = 0;
    return out;
  }

  private append(text: string): void {
    this.appendBytes(Buffer.from(text, 'latin1'));
  }

  /** AppendStringToManifest: the SHA-256 covers everything up to the manifest checksum. */
  private appendBytes(b: Buffer, checksummed = true): void {
    if (this.bytes + b.length > MAX_MANIFEST_BYTES) {
      throw new WalstreamError(BACKUP_MANIFEST_TOO_LARGE, '54000', `backup manifest exceeds ${MAX_MANIFEST_BYTES} bytes`);
    }
    if (checksummed) this.sha.update(b);
    this.chunks.push(b);
    this.bytes += b.length;
  }
}

// ---- reading a manifest (parse_manifest.c) --------------------------------------------------------

export interface ManifestFile {
  /** The path's bytes ("Path" as UTF-8, or "Encoded-Path" decoded). */
  path: Buffer;
  /** Whether the manifest carried the path as "Encoded-Path". */
  encoded: boolean;
  size: number;
  /** "Last-Modified" as written (pg_verifybackup does not check it). */
  lastModified: string;
  checksumType: ChecksumType;
  /** Checksum bytes (empty without a checksum). */
  checksum: Buffer;
}

export interface ManifestWalRange {
  tli: number;
  startLsn: Lsn;
  endLsn: Lsn;
}

export interface ParsedBackupManifest {
  files: ManifestFile[];
  walRanges: ManifestWalRange[];
  /** The "Manifest-Checksum" bytes (SHA-256), already checked. */
  manifestChecksum: Buffer;
}

function invalid(message: string): WalstreamError {
  return new WalstreamError(BACKUP_MANIFEST_INVALID, 'XX001', message);
}

function parseFailure(msg: string): WalstreamError {
  return invalid(`could not parse backup manifest: ${msg}`);
}

/** hexdecode_string: lowercase or uppercase hex, two digits per byte; null if it is not. */
function hexDecode(text: string): Buffer | null {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  return Buffer.from(text, 'hex');
}

/** parse_xlogrecptr: sscanf "%X/%X". */
function parseXLogRecPtr(text: string): Lsn | null {
  const m = /^\s*(?:0[xX])?([0-9a-fA-F]{1,8})\/\s*(?:0[xX])?([0-9a-fA-F]{1,8})/.exec(text);
  if (!m) return null;
  return parseInt(m[1]!, 16) * 0x1_0000_0000 + parseInt(m[2]!, 16);
}

/** strtoul(s, &ep, 10) with *ep required to be the end. */
function parseUnsigned(text: string): number | null {
  const m = /^\s*\+?(\d+)$/.exec(text);
  if (!m) return null;
  const v = Number(m[1]);
  return Number.isSafeInteger(v) ? v : null;
}

/**
 * Reads a version-1 backup manifest as pg_verifybackup 15 does (json_parse_manifest): the JSON
 * structure, each file's and WAL range's fields, then the manifest checksum (SHA-256 of everything
 * up to and including the newline before the last line). Throws with pg_verifybackup's texts
 * ("could not parse backup manifest: ...", "manifest checksum mismatch", ...).
 */
export function parseBackupManifest(bytes: Uint8Array): ParsedBackupManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(utf8Fatal.decode(bytes));
  } catch {
    throw parseFailure('parsing failed');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw parseFailure('unexpected scalar');
  const top = doc as Record<string, unknown>;
  const keys = Object.keys(top);
  if (keys[0] !== 'PostgreSQL-Backup-Manifest-Version') throw parseFailure('expected version indicator');
  const version = top['PostgreSQL-Backup-Manifest-Version'];
  if (version !== 1 && version !== '1') throw parseFailure('unexpected manifest version');
  for (const k of keys) {
    if (!['PostgreSQL-Backup-Manifest-Version', 'Files', 'WAL-Ranges', 'Manifest-Checksum'].includes(k)) throw parseFailure('unrecognized top-level field');
  }
  const files: ManifestFile[] = [];
  const walRanges: ManifestWalRange[] = [];
  const filesValue = top['Files'];
  if (filesValue !== undefined) {
    if (!Array.isArray(filesValue)) throw parseFailure('unexpected scalar');
    for (const f of filesValue) files.push(parseFileEntry(f));
  }
  const rangesValue = top['WAL-Ranges'];
  if (rangesValue !== undefined) {
    if (!Array.isArray(rangesValue)) throw parseFailure('unexpected scalar');
    for (const r of rangesValue) walRanges.push(parseWalRangeEntry(r));
  }
  // The checksum ends the object: a field after it, or an object without it, is PostgreSQL's parse error.
  const at = keys.indexOf('Manifest-Checksum');
  if (at < 0) throw parseFailure('unexpected object end');
  if (at !== keys.length - 1) throw parseFailure('unexpected object field');
  const manifestChecksum = verifyManifestChecksum(bytes, top['Manifest-Checksum']);
  return { files, walRanges, manifestChecksum };
}

function scalarText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw parseFailure(v !== null && typeof v === 'object' ? (Array.isArray(v) ? 'unexpected array start' : 'unexpected object start') : 'unexpected scalar');
}

function parseFileEntry(f: unknown): ManifestFile {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) throw parseFailure('unexpected scalar');
  const o = f as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['Path', 'Encoded-Path', 'Size', 'Last-Modified', 'Checksum-Algorithm', 'Checksum'].includes(k)) throw parseFailure('unexpected file field');
  }
  const get = (k: string): string | undefined => (o[k] === undefined ? undefined : scalarText(o[k]));
  const pathText = get('Path');
  const encodedText = get('Encoded-Path');
  const sizeText = get('Size');
  const lastModified = get('Last-Modified') ?? '';
  const algorithm = get('Checksum-Algorithm');
  const checksumText = get('Checksum');
  if (pathText === undefined && encodedText === undefined) throw parseFailure('missing path name');
  if (pathText !== undefined && encodedText !== undefined) throw parseFailure('both path name and encoded path name');
  if (sizeText === undefined) throw parseFailure('missing size');
  if (algorithm === undefined && checksumText !== undefined) throw parseFailure('checksum without algorithm');
  let path: Buffer;
  if (encodedText !== undefined) {
    const p = hexDecode(encodedText);
    if (!p) throw parseFailure('could not decode file name');
    path = p;
  } else {
    path = Buffer.from(pathText!, 'utf8');
  }
  const size = parseUnsigned(sizeText);
  if (size === null) throw parseFailure('file size is not an integer');
  let checksumType: ChecksumType = 'NONE';
  if (algorithm !== undefined) {
    const t = parseChecksumType(algorithm);
    if (t === null) throw invalid(`unrecognized checksum algorithm: "${algorithm}"`);
    checksumType = t;
  }
  let checksum: Buffer = Buffer.alloc(0);
  if (checksumText !== undefined && checksumText.length > 0) {
    const c = hexDecode(checksumText);
    if (!c) throw invalid(`invalid checksum for file "${path.toString('latin1')}": "${checksumText}"`);
    checksum = c;
  }
  return { path, encoded: encodedText !== undefined, size, lastModified, checksumType, checksum };
}

function parseWalRangeEntry(r: unknown): ManifestWalRange {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw parseFailure('unexpected scalar');
  const o = r as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['Timeline', 'Start-LSN', 'End-LSN'].includes(k)) throw parseFailure('unexpected WAL range field');
  }
  const get = (k: string): string | undefined => (o[k] === undefined ? undefined : scalarText(o[k]));
  const tliText = get('Timeline');
  const startText = get('Start-LSN');
  const endText = get('End-LSN');
  if (tliText === undefined) throw parseFailure('missing timeline');
  if (startText === undefined) throw parseFailure('missing start LSN');
  if (endText === undefined) throw parseFailure('missing end LSN');
  const tli = parseUnsigned(tliText);
  if (tli === null || tli > 0xffff_ffff) throw parseFailure('timeline is not an integer');
  const startLsn = parseXLogRecPtr(startText);
  if (startLsn === null) throw parseFailure('could not parse start LSN');
  const endLsn = parseXLogRecPtr(endText);
  if (endLsn === null) throw parseFailure('could not parse end LSN');
  return { tli, startLsn, endLsn };
}

/** verify_manifest_checksum: SHA-256 of the bytes up to and including the penultimate newline. */
function verifyManifestChecksum(bytes: Uint8Array, value: unknown): Buffer {
  let count = 0;
  let ultimate = 0;
  let penultimate = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      count++;
      penultimate = ultimate;
      ultimate = i;
    }
  }
  if (count < 2) throw parseFailure('expected at least 2 lines');
  if (ultimate !== bytes.length - 1) throw parseFailure('last line not newline-terminated');
  const actual = createHash('sha256').update(bytes.subarray(0, penultimate + 1)).digest();
  if (value === undefined) throw invalid('manifest has no checksum');
  const text = scalarText(value);
  const expected = text.length === PG_SHA256_DIGEST_LENGTH * 2 ? hexDecode(text) : null;
  if (!expected) throw invalid(`invalid manifest checksum: "${text}"`);
  if (!actual.equals(expected)) throw invalid('manifest checksum mismatch');
  return expected;
}
