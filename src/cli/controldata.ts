// `walstream controldata DIR`: pg_controldata's role for a walstream data directory (a stopped,
// crashed or running primary or standby), as src/bin/pg_controldata/pg_controldata.c does for
// PostgreSQL's global/pg_control (src/include/catalog/pg_control.h). It prints the control file
// (src/storage/control.ts readControl) under pg_controldata's labels where walstream has the same
// field, then what only reading pg_wal tells: the end of valid WAL, found exactly the way crash
// recovery finds it (src/primary/primary.ts recover: XLogReader over FileSegmentSource from the
// checkpoint's REDO location on its timeline, jumping to the next segment after XLOG_SWITCH), and
// the newest timeline with a history file (src/wal/timeline.ts findNewestTimeLine). Read-only: it
// opens nothing for writing and takes no lock, so it may run beside a live node.
// `--json` prints the same labels and values as one JSON object. Bad input (no such directory,
// not a data directory, damaged control file) is one line on stderr and exit status 1.

import fs from 'node:fs';
import path from 'node:path';
import { Errors, WalstreamError } from '../errors.js';
import { CONTROL_FILE, type ControlData, DB_STATE_NAMES, readControl } from '../storage/control.js';
import { RM_XLOG_ID, XLOG_BLCKSZ, XLOG_SWITCH } from '../wal/consts.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { FileSegmentSource, XLogReader } from '../wal/reader.js';
import { segmentFileName, segNo } from '../wal/segment.js';
import { findNewestTimeLine } from '../wal/timeline.js';

/** Column where pg_controldata's values start (its labels are padded to this many characters). */
const VALUE_COLUMN = 38;
/** Byte offset of the format version word in walstream.control (src/storage/control.ts encodeControl). */
const CONTROL_VERSION_OFFSET = 4;

/** Where crash recovery would find the end of valid WAL, and why it ends there. */
export interface EndOfWal {
  /** The end of the last valid record: where a recovered primary inserts next. */
  endLsn: Lsn;
  /** Start of that last valid record. */
  lastRecord: Lsn;
  /** The reader's reason for stopping (e.g. "invalid record length at 0/1000A0: wanted 24, got 0"). */
  reason: string;
  /** Records read from the REDO location to the end. */
  records: number;
  /** Whether the latest checkpoint's own record was among them (crash recovery refuses to start without it). */
  checkpointFound: boolean;
}

/**
 * The end of valid WAL in `walDir` for this control file, read-only: the same reader, source,
 * start and XLOG_SWITCH handling as crash recovery's replay loop (src/primary/primary.ts
 * recover), without applying anything.
 */
export function findEndOfWal(walDir: string, control: ControlData): EndOfWal {
  const src = new FileSegmentSource(walDir, control.tli, control.segSize);
  const reader = new XLogReader(src, { segSize: control.segSize, sysid: control.sysid }, control.redoLsn, null);
  let records = 0;
  let checkpointFound = false;
  let reason = '';
  try {
    for (;;) {
      const r = reader.readRecord();
      if (r.kind !== 'record') {
        reason = r.kind === 'end' ? r.message : `WAL ends at ${lsnToString(r.lsn)}`;
        break;
      }
      records++;
      if (r.record.start === control.checkpointLsn) checkpointFound = true;
      if (r.record.header.rmid === RM_XLOG_ID && (r.record.header.info & 0xf0) === XLOG_SWITCH) reader.skipToNextSegment();
    }
  } finally {
    src.close();
  }
  return { endLsn: reader.nextLsn, lastRecord: reader.prevLsn, reason, records, checkpointFound };
}

/** One line of the report: pg_controldata's label (or walstream's own) and its value. */
export type ControlDataField = [label: string, value: string | number];

/** C's strftime "%c" in the C locale, local time: "Mon Dec  7 19:08:14 2026". */
function ctimeText(ms: number): string {
  const d = new Date(ms);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`;
}

/** pg_controldata.c dbState: the cluster state's text. */
function dbState(state: number): string {
  return DB_STATE_NAMES[state] ?? 'unrecognized status code';
}

/**
 * The report for `dataDir`, in print order. Throws a WalstreamError naming the problem for a
 * missing directory, a directory that is not a walstream data directory, or a damaged control file.
 */
export function controlDataReport(dataDir: string): ControlDataField[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(dataDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw Errors.notADataDir(dataDir, 'no such file or directory');
    throw e;
  }
  if (!st.isDirectory()) throw Errors.notADataDir(dataDir, 'it is not a directory');
  const control = readControl(dataDir);
  if (control === null) {
    const pg = fs.existsSync(path.join(dataDir, 'global', 'pg_control'));
    throw Errors.notADataDir(dataDir, pg ? 'it is a PostgreSQL data directory (read it with pg_controldata)' : `it has no ${CONTROL_FILE}`);
  }
  const walDir = path.join(dataDir, 'pg_wal');
  if (!fs.existsSync(walDir)) throw Errors.notADataDir(dataDir, 'pg_wal is missing');
  const version = fs.readFileSync(path.join(dataDir, CONTROL_FILE)).readUInt32LE(CONTROL_VERSION_OFFSET);
  const end = findEndOfWal(walDir, control);
  return [
    ['pg_control version number', version],
    ['Database system identifier', control.sysid.toString()],
    ['Database cluster state', dbState(control.state)],
    ['pg_control last modified', ctimeText(control.timeMs)],
    ['Latest checkpoint location', lsnToString(control.checkpointLsn)],
    ["Latest checkpoint's REDO location", lsnToString(control.redoLsn)],
    ["Latest checkpoint's REDO WAL file", segmentFileName(control.tli, segNo(control.redoLsn, control.segSize), control.segSize)],
    ["Latest checkpoint's TimeLineID", control.tli],
    ["Latest checkpoint's NextXID", control.nextXid],
    ['Checkpoint snapshot file', control.snapshotName],
    ['Minimum recovery ending location', lsnToString(control.minRecoveryPoint)],
    ['WAL block size', XLOG_BLCKSZ],
    ['Bytes per WAL segment', control.segSize],
    ['Latest checkpoint record found', end.checkpointFound ? 'yes' : 'no'],
    ['Records from REDO to end of WAL', end.records],
    ['Last valid WAL record location', lsnToString(end.lastRecord < 0 ? 0 : end.lastRecord)],
    ['End of valid WAL location', lsnToString(end.endLsn)],
    ["End of valid WAL's WAL file", segmentFileName(control.tli, segNo(end.endLsn, control.segSize), control.segSize)],
    ['End of valid WAL reason', end.reason],
    ['Newest timeline (history files)', findNewestTimeLine(walDir, control.tli)],
  ];
}

/** pg_controldata's layout: "label:" padded to VALUE_COLUMN, then the value. */
export function formatControlData(fields: readonly ControlDataField[]): string {
  return fields.map(([label, value]) => `${`${label}:`.padEnd(VALUE_COLUMN)}${value}\n`).join('');
}

/** The same fields as one JSON object (label → value). */
export function controlDataJson(fields: readonly ControlDataField[]): string {
  return JSON.stringify(Object.fromEntries(fields), null, 2) + '\n';
}

export interface ControlDataCliOptions {
  json?: boolean;
}

/** The command: prints the report on stdout; on bad input one line on stderr. Returns the exit status. */
export function runControlData(dataDir: string, o: ControlDataCliOptions, out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): number {
  let fields: ControlDataField[];
  try {
    fields = controlDataReport(dataDir);
  } catch (e) {
    const detail = e instanceof WalstreamError && e.detail ? `: ${e.detail}` : '';
    const text = e instanceof Error ? `${e.message}${detail}` : String(e);
    err(`walstream controldata: ${text.replace(/\s*\n\s*/g, ' ').trim()}\n`);
    return 1;
  }
  out(o.json ? controlDataJson(fields) : formatControlData(fields));
  return 0;
}
