// Timeline history files (PostgreSQL's pg_wal/0000000N.history), for promotion onto a new
// timeline, walsenders answering TIMELINE_HISTORY, walreceivers following a timeline switch and
// `walstream controldata`. Owns the file format: parsing exactly as
// src/backend/access/transam/timeline.c readTimeLineHistory does (fgets lines of at most
// MAXPGPATH - 1 bytes, comments and blank lines skipped, sscanf "%u\t%X/%X", the remainder of a
// line ignored, the same FATAL texts and hints), the bytes writeTimeLineHistory appends, the
// lookups tliInHistory / tliOfPointInHistory / tliSwitchPoint, findNewestTimeLine, and durable
// creation of a history file (temp file, fsync, link to the final name, fsync the directory; every
// flush through src/util/fsync.ts). The reason texts are xlogrecovery.c getRecoveryStopReason's;
// the names are xlog_internal.h's TLHistoryFileName / IsTLHistoryFileName.
//
// A history is a list of TimeLineHistoryEntry, newest first, as readTimeLineHistory builds it:
// the target timeline's own "tip" entry (end = InvalidLsn: still open) first, then each ancestor,
// whose `end` is the switch point where its child began. InvalidLsn (0) as `begin` means "from
// the start of WAL", as `end` "not switched off".

import fs from 'node:fs';
import path from 'node:path';
import { WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import { writeFileDurably } from '../util/fsync.js';
import { InvalidLsn, type Lsn, lsnToString } from './lsn.js';
import { historyFileName } from './segment.js';

/** PostgreSQL's MAXPGPATH, bytes: readTimeLineHistory's fgets buffer (a line is read in pieces of at most MAXPGPATH - 1 bytes). */
export const MAXPGPATH = 1024;

/** Largest timeline ID, as TimeLineID (uint32). */
export const MAX_TIMELINE_ID = 0xffff_ffff;

/** One timeline of a history (access/timeline.h TimeLineHistoryEntry): WAL in [begin, end) belongs to `tli`. */
export interface TimeLineHistoryEntry {
  tli: number;
  /** Switch point where this timeline began; InvalidLsn for the first timeline of the history. */
  begin: Lsn;
  /** Switch point where the next timeline began; InvalidLsn for the newest ("tip") timeline. */
  end: Lsn;
}

/** Error codes of this module (WalstreamError.code). */
export const TIMELINE_HISTORY_INVALID = 'WS_TIMELINE_HISTORY_INVALID';
export const TIMELINE_NOT_IN_HISTORY = 'WS_TIMELINE_NOT_IN_HISTORY';

// ---- names ------------------------------------------------------------------------------------

/** TLHistoryFileName: `0000000N.history` (8 upper-case hex digits). */
export function TLHistoryFileName(tli: number): string {
  assertTli(tli);
  return historyFileName(tli);
}

/** TLHistoryFilePath: the history file's path inside `walDir` (PostgreSQL's is `pg_wal/<name>`). */
export function TLHistoryFilePath(walDir: string, tli: number): string {
  return path.join(walDir, TLHistoryFileName(tli));
}

/** IsTLHistoryFileName: 8 characters of [0-9A-F], then `.history`, nothing else. */
export function IsTLHistoryFileName(name: string): boolean {
  return /^[0-9A-F]{8}\.history$/.test(name);
}

/** The timeline ID a history file name stands for, or null if `name` is not one. */
export function parseTLHistoryFileName(name: string): number | null {
  return IsTLHistoryFileName(name) ? parseInt(name.slice(0, 8), 16) : null;
}

// ---- reason texts (xlogrecovery.c getRecoveryStopReason) --------------------------------------

/** Why recovery ended, as the reason column of the new timeline's history line. */
export type RecoveryStop =
  | { target: 'none' }
  | { target: 'immediate' }
  | { target: 'xid'; after: boolean; xid: number }
  | { target: 'time'; after: boolean; time: string }
  | { target: 'lsn'; after: boolean; lsn: Lsn }
  | { target: 'name'; name: string };

/** The reason a promotion without a recovery target writes (`pg_ctl promote`). */
export const REASON_NO_RECOVERY_TARGET = 'no recovery target specified';

/**
 * getRecoveryStopReason's text, byte for byte: the time and LSN forms end with a newline in
 * PostgreSQL 15 ("%s %s\n", "%s LSN %X/%X\n"), which leaves a blank line in the history file.
 * `time` is the timestamptz_to_str text of the stop time.
 */
export function recoveryStopReason(stop: RecoveryStop): string {
  switch (stop.target) {
    case 'xid':
      return `${stop.after ? 'after' : 'before'} transaction ${stop.xid >>> 0}`;
    case 'time':
      return `${stop.after ? 'after' : 'before'} ${stop.time}\n`;
    case 'lsn':
      return `${stop.after ? 'after' : 'before'} LSN ${lsnToString(stop.lsn)}\n`;
    case 'name':
      return `at restore point "${stop.name}"`;
    case 'immediate':
      return 'reached consistency';
    case 'none':
      return REASON_NO_RECOVERY_TARGET;
  }
}

// ---- parsing (readTimeLineHistory) -----------------------------------------------------------

function historyError(code: string, message: string, hint: string): WalstreamError {
  return new WalstreamError(code, 'XX000', message, { hint });
}

/** C isspace in the C locale. */
function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** The pieces fgets(buf, MAXPGPATH) returns, each cut at its first NUL (what the C string holds). */
function* fgetsLines(bytes: Uint8Array): Generator<Uint8Array> {
  let p = 0;
  while (p < bytes.length) {
    let q = p;
    const stop = Math.min(bytes.length, p + MAXPGPATH - 1);
    while (q < stop) {
      if (bytes[q++] === 0x0a) break;
    }
    const piece = bytes.subarray(p, q);
    const nul = piece.indexOf(0);
    yield nul < 0 ? piece : piece.subarray(0, nul);
    p = q;
  }
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * glibc scanf's %u / %X conversion at `pos`: leading white space, an optional sign, (for %X) an
 * optional 0x, then digits; strtoul's value (clamped to ULONG_MAX, negated for '-') truncated to
 * the 32-bit unsigned int it is stored in. Returns null on a matching failure. (Checked against
 * glibc's sscanf for signs, overflow, 0x prefixes and white space; see test/timeline.test.ts.)
 */
function scanUnsigned(s: Uint8Array, pos: number, hex: boolean): { value: number; next: number } | null {
  let p = pos;
  while (p < s.length && isCSpace(s[p]!)) p++;
  let neg = false;
  if (p < s.length && (s[p] === 0x2b || s[p] === 0x2d)) neg = s[p++] === 0x2d;
  const digit = (c: number | undefined): number => {
    if (c === undefined) return -1;
    if (c >= 0x30 && c <= 0x39) return c - 0x30;
    if (hex && c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
    if (hex && c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
    return -1;
  };
  if (hex && s[p] === 0x30 && (s[p + 1] === 0x78 || s[p + 1] === 0x58)) {
    p += 2; // glibc takes a bare "0x" as the number 0
  } else if (digit(s[p]) < 0) {
    return null;
  }
  const base = hex ? 16n : 10n;
  let v = 0n;
  while (digit(s[p]) >= 0) {
    v = v * base + BigInt(digit(s[p++]));
    if (v > U64_MAX) v = U64_MAX + 1n; // keeps growing past the clamp without unbounded BigInts
  }
  if (v > U64_MAX) v = U64_MAX;
  else if (neg) v = (1n << 64n) - v;
  return { value: Number(v & 0xffff_ffffn), next: p };
}

/** sscanf(line, "%u\t%X/%X", ...): the number of fields assigned (-1 for EOF before the first) and their values. */
function scanHistoryLine(s: Uint8Array): { nfields: number; tli: number; hi: number; lo: number } {
  const out = { nfields: 0, tli: 0, hi: 0, lo: 0 };
  let p = 0;
  while (p < s.length && isCSpace(s[p]!)) p++;
  if (p >= s.length) return { ...out, nfields: -1 };
  const tli = scanUnsigned(s, p, false);
  if (tli === null) return out;
  out.nfields = 1;
  out.tli = tli.value;
  p = tli.next;
  while (p < s.length && isCSpace(s[p]!)) p++; // '\t' in the format: any white space, or none
  const hi = scanUnsigned(s, p, true);
  if (hi === null) return out;
  out.nfields = 2;
  out.hi = hi.value;
  p = hi.next;
  if (s[p] !== 0x2f) return out;
  const lo = scanUnsigned(s, p + 1, true);
  if (lo === null) return out;
  out.nfields = 3;
  out.lo = lo.value;
  return out;
}

/**
 * Parse the text of `targetTLI`'s history file as readTimeLineHistory does; returns the history,
 * newest first, ending with the tip entry for `targetTLI`. `file` names the file in the one
 * message that names it ("invalid data in history file \"%s\""); PostgreSQL's is
 * `pg_wal/0000000N.history`. Errors carry PostgreSQL's FATAL texts, with the offending line as
 * fgets returned it (its newline included), and its hints.
 */
export function parseTimeLineHistory(content: Uint8Array | string, targetTLI: number, file: string): TimeLineHistoryEntry[] {
  assertTli(targetTLI);
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const result: TimeLineHistoryEntry[] = [];
  let lasttli = 0;
  let prevend: Lsn = InvalidLsn;
  for (const fline of fgetsLines(bytes)) {
    let i = 0;
    while (i < fline.length && isCSpace(fline[i]!)) i++;
    if (i === fline.length || fline[i] === 0x23 /* '#' */) continue;
    const text = Buffer.from(fline.buffer, fline.byteOffset, fline.length).toString('utf8');
    const f = scanHistoryLine(fline);
    if (f.nfields < 1) {
      throw historyError(TIMELINE_HISTORY_INVALID, `syntax error in history file: ${text}`, 'Expected a numeric timeline ID.');
    }
    if (f.nfields !== 3) {
      throw historyError(TIMELINE_HISTORY_INVALID, `syntax error in history file: ${text}`, 'Expected a write-ahead log switchpoint location.');
    }
    if (result.length > 0 && f.tli <= lasttli) {
      throw historyError(TIMELINE_HISTORY_INVALID, `invalid data in history file: ${text}`, 'Timeline IDs must be in increasing sequence.');
    }
    lasttli = f.tli;
    const end = f.hi * 0x1_0000_0000 + f.lo;
    result.unshift({ tli: f.tli, begin: prevend, end });
    prevend = end;
    // The remainder of the line (the reason) is ignored.
  }
  if (result.length > 0 && targetTLI <= lasttli) {
    throw historyError(TIMELINE_HISTORY_INVALID, `invalid data in history file "${file}"`, "Timeline IDs must be less than child timeline's ID.");
  }
  result.unshift({ tli: targetTLI, begin: prevend, end: InvalidLsn });
  return result;
}

/** The history of a timeline with no history file: timeline 1, or one whose file is missing ("assume no parents"). */
export function noParentsHistory(tli: number): TimeLineHistoryEntry[] {
  assertTli(tli);
  return [{ tli, begin: InvalidLsn, end: InvalidLsn }];
}

/**
 * readTimeLineHistory: the history of `targetTLI` from `walDir`. Timeline 1 has no file; a
 * missing file means no parents. Other I/O errors are thrown as they are.
 */
export function readTimeLineHistory(walDir: string, targetTLI: number): TimeLineHistoryEntry[] {
  if (targetTLI === 1) return noParentsHistory(1);
  const file = TLHistoryFilePath(walDir, targetTLI);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return noParentsHistory(targetTLI);
    throw e;
  }
  return parseTimeLineHistory(bytes, targetTLI, file);
}

/** existsTimeLineHistory: is there a history file for `tli` (never for timeline 1)? */
export function existsTimeLineHistory(walDir: string, tli: number): boolean {
  if (tli === 1) return false;
  try {
    fs.accessSync(TLHistoryFilePath(walDir, tli), fs.constants.F_OK);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * findNewestTimeLine: probes startTLI + 1, + 2, ... for history files and returns the last one
 * found before the first gap (startTLI if none). (result + 1) is then not a known timeline, so
 * it is safe to assign to a new one.
 */
export function findNewestTimeLine(walDir: string, startTLI = 1): number {
  assertTli(startTLI);
  let newest = startTLI;
  for (let probe = startTLI + 1; probe <= MAX_TIMELINE_ID && existsTimeLineHistory(walDir, probe); probe++) newest = probe;
  return newest;
}

// ---- lookups ----------------------------------------------------------------------------------

/** tliInHistory: is `tli` one of the history's timelines? */
export function tliInHistory(tli: number, history: readonly TimeLineHistoryEntry[]): boolean {
  return history.some((e) => e.tli === tli);
}

/** tliOfPointInHistory: the timeline that WAL position `ptr` belongs to in `history`. */
export function tliOfPointInHistory(ptr: Lsn, history: readonly TimeLineHistoryEntry[]): number {
  for (const e of history) {
    if ((e.begin === InvalidLsn || e.begin <= ptr) && (e.end === InvalidLsn || ptr < e.end)) return e.tli;
  }
  throw new WalstreamError('WS_TIMELINE_HISTORY_NOT_CONTIGUOUS', 'XX000', 'timeline history was not contiguous');
}

/** Short name for tliOfPointInHistory. */
export const tliOfPoint = tliOfPointInHistory;

/**
 * tliSwitchPoint: where the history branched off `tli` and the timeline it branched to. For the
 * current (tip) timeline, switchpoint is InvalidLsn and nextTli 0. Throws "requested timeline %u
 * is not in this server's history" for a timeline that is not in `history`.
 */
export function tliSwitchPoint(tli: number, history: readonly TimeLineHistoryEntry[]): { switchpoint: Lsn; nextTli: number } {
  let nextTli = 0;
  for (const e of history) {
    if (e.tli === tli) return { switchpoint: e.end, nextTli };
    nextTli = e.tli;
  }
  throw new WalstreamError(TIMELINE_NOT_IN_HISTORY, 'XX000', `requested timeline ${tli >>> 0} is not in this server's history`);
}

// ---- writing (writeTimeLineHistory, writeTimeLineHistoryFile) ---------------------------------

/**
 * The bytes writeTimeLineHistory writes for a new timeline branching off `parentTLI` at
 * `switchpoint`: the parent's history file verbatim (null when it has none, as timeline 1),
 * then "%s%u\t%X/%X\t%s\n" with a leading newline only when there was a parent file ("just in
 * case the parent file failed to end with one").
 *
 * Invariants asserted: the parent's file parses as `parentTLI`'s history (its timeline IDs
 * increase and stay below parentTLI), and the switch point does not go back before the parent's
 * own start.
 */
export function formatTimeLineHistory(parentContent: Uint8Array | null, parentTLI: number, switchpoint: Lsn, reason: string): Buffer {
  assertTli(parentTLI);
  assert(Number.isSafeInteger(switchpoint) && switchpoint >= 0, `formatTimeLineHistory: bad switch point ${switchpoint}`);
  if (parentContent !== null) {
    const parent = parseTimeLineHistory(parentContent, parentTLI, TLHistoryFileName(parentTLI));
    assert(switchpoint >= parent[0]!.begin, `switch point ${lsnToString(switchpoint)} precedes the start of timeline ${parentTLI} at ${lsnToString(parent[0]!.begin)}`);
  }
  const line = Buffer.from(`${parentContent === null ? '' : '\n'}${parentTLI}\t${lsnToString(switchpoint)}\t${reason}\n`, 'utf8');
  return parentContent === null ? line : Buffer.concat([parentContent, line]);
}

/**
 * writeTimeLineHistory: creates `walDir`/TLHistoryFileName(newTLI) from the parent's history file
 * in `walDir` (if any) plus the new line, durably. Returns the bytes written.
 */
export function writeTimeLineHistory(walDir: string, newTLI: number, parentTLI: number, switchpoint: Lsn, reason: string): Buffer {
  assertTli(newTLI);
  assert(newTLI > parentTLI, `new timeline ${newTLI} is not greater than its parent ${parentTLI}`);
  let parent: Buffer | null = null;
  try {
    parent = fs.readFileSync(TLHistoryFilePath(walDir, parentTLI));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const bytes = formatTimeLineHistory(parent, parentTLI, switchpoint, reason);
  writeTimeLineHistoryFile(walDir, newTLI, bytes);
  return bytes;
}

/**
 * writeTimeLineHistoryFile (the walreceiver's: content fetched with TIMELINE_HISTORY): writes
 * `pg_wal/xlogtemp.<pid>`, fsyncs it, links it to its final name (never replacing an existing
 * history file: EEXIST is thrown), removes the temp name and fsyncs the directory.
 */
export function writeTimeLineHistoryFile(walDir: string, tli: number, content: Uint8Array): void {
  writeFileDurably(TLHistoryFilePath(walDir, tli), content, { tmp: path.join(walDir, `xlogtemp.${process.pid}`), replace: false });
}

function assertTli(tli: number): void {
  assert(Number.isInteger(tli) && tli >= 1 && tli <= MAX_TIMELINE_ID, `bad timeline ID ${tli}`);
}
