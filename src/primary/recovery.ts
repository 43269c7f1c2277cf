// The primary's data directory: refusing what is not one, initialising a new one (like initdb:
// bootstrap checkpoint in segment 1, empty snapshot, control file), and crash recovery (PostgreSQL's
// StartupXLOG for a primary, src/backend/access/transam/xlog.c): load the checkpoint snapshot,
// replay WAL from its redo point to the end of valid WAL, stop on the reader's typed
// EndOfWalReason, and zero the rest of that segment. Runs once, on the thread that calls
// Primary.open, before any worker starts; nothing is written before every check has passed.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { CONTROL_FILE, type ControlData, DbState, makeSystemIdentifier, readControl, writeControl } from '../storage/control.js';
import { readSnapshot, writeSnapshot } from '../storage/snapshot.js';
import { SharedStore } from '../storage/store.js';
import { assert } from '../util/assert.js';
import { fdatasyncSync } from '../util/fsync.js';
import { FIRST_NORMAL_XID, nowPgMicros, WS_CHECKPOINT_SHUTDOWN, XLOG_BLCKSZ } from '../wal/consts.js';
import { WalInserter } from '../wal/insert.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { type EndOfWalReason, FileSegmentSource, isZeroedEnd, XLogReader } from '../wal/reader.js';
import { buildCheckpointRecord } from '../wal/record.js';
import { redoRecord } from '../wal/replay.js';
import { ensureSegment, fsyncDir, removeTempSegments } from '../wal/segfile.js';
import { segmentFileName as segFileName, segNo } from '../wal/segment.js';
import { readTimeLineHistory } from '../wal/timeline.js';
import { XLogCtl } from '../wal/xlogctl.js';
import type { ResolvedPrimaryOptions } from './options.js';

export const VERSION_FILE = 'WALSTREAM_VERSION';
/** Checkpoint snapshots, under the data directory. */
export const CKPT_DIR = 'checkpoints';

export interface RecoveryInfo {
  /** Where replay started (the checkpoint's redo point) and where valid WAL ended. */
  redoLsn: Lsn;
  endLsn: Lsn;
  recordsReplayed: number;
  /** Why replay stopped, for people: PostgreSQL's wording ("invalid record length at …: wanted 24, got 0" is the clean end). */
  endReason: string;
  /** Why replay stopped, to switch on ('zero-length' / 'zero-page': the clean end; null: no end was read). */
  endReasonCode: EndOfWalReason | null;
  /** True when the end was not clean zeroes: a torn or corrupted tail was found and ignored. */
  tornTail: boolean;
  wasCleanShutdown: boolean;
}

export function readControlOrRefuse(dataDir: string): ControlData | null {
  let entries: string[];
  try {
    entries = fs.readdirSync(dataDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw Errors.notADataDir(dataDir, 'it is not a directory');
    throw e;
  }
  const control = readControl(dataDir);
  if (control === null) {
    if (entries.length === 0) return null;
    throw Errors.notADataDir(dataDir, `it is not empty and has no ${CONTROL_FILE}`);
  }
  if (!fs.existsSync(path.join(dataDir, 'pg_wal'))) throw Errors.notADataDir(dataDir, 'pg_wal is missing');
  return control;
}

/**
 * Undo initDataDir (Primary.open could not listen after all): remove the directory when it did
 * not exist before, else its contents (it was empty: initDataDir accepts nothing else).
 */
export function removeInitialisedDataDir(dataDir: string, existedBefore: boolean): void {
  if (!existedBefore) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    return;
  }
  for (const e of fs.readdirSync(dataDir)) fs.rmSync(path.join(dataDir, e), { recursive: true, force: true });
}

export async function initDataDir(dataDir: string, options: ResolvedPrimaryOptions): Promise<ControlData> {
  fs.mkdirSync(path.join(dataDir, 'pg_wal'), { recursive: true });
  fs.mkdirSync(path.join(dataDir, CKPT_DIR), { recursive: true });
  fs.writeFileSync(path.join(dataDir, VERSION_FILE), '15\n');
  const segSize = options.walSegmentSize;
  const sysid = makeSystemIdentifier();
  const tli = 1;
  // WAL starts at segment 1 (LSN 0 is InvalidXLogRecPtr), like initdb.
  const start = segSize;
  ensureSegment(path.join(dataDir, 'pg_wal'), tli, 1, segSize);
  // Bootstrap checkpoint record written directly into the first segment.
  const redo = start + 40;
  const snapshotName = `${redo.toString(16).toUpperCase().padStart(16, '0')}.snap`;
  const empty = SharedStore.create({ initialBytes: 1 << 20, maxStoreBytes: 1 << 22 });
  await writeSnapshot(empty, path.join(dataDir, CKPT_DIR, snapshotName), new Uint8Array(0));
  const rec = buildCheckpointRecord(0, WS_CHECKPOINT_SHUTDOWN, { redo, nextXid: FIRST_NORMAL_XID, tli, timeUs: nowPgMicros(), snapshotName });
  const ctl = XLogCtl.create(4 * XLOG_BLCKSZ, segSize, sysid, tli, start);
  const ins = new WalInserter(ctl, start, 0);
  const { start: ckLsn, end } = ins.insert(rec, rec.length);
  assert(ckLsn === redo, 'bootstrap checkpoint placement');
  const fd = fs.openSync(path.join(dataDir, 'pg_wal', segFileName(tli, 1, segSize)), 'r+');
  try {
    fs.writeSync(fd, ctl.ring, ctl.ringOffset(start), XLOG_BLCKSZ, 0);
    fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  assert(end < start + XLOG_BLCKSZ, 'bootstrap record fits one page');
  const control: ControlData = {
    sysid, segSize, state: DbState.ShutDown, tli, checkpointLsn: ckLsn, redoLsn: redo, nextXid: FIRST_NORMAL_XID,
    timeMs: Date.now(), snapshotName, minRecoveryPoint: 0,
  };
  writeControl(dataDir, control);
  fsyncDir(dataDir);
  return control;
}



// ---- crash recovery -------------------------------------------------------------------------

export interface RecoveryResult {
  info: RecoveryInfo;
  insertPos: Lsn;
  prevRecord: Lsn;
  nextXid: number;
}

/**
 * Load the checkpoint snapshot, replay WAL from its redo point to the end of valid WAL, verify
 * the checkpoint record itself, and zero whatever follows the end in that segment so no stale
 * byte can ever be read as WAL. Nothing is written before every check has passed.
 */
export async function recover(dataDir: string, control: ControlData, store: SharedStore): Promise<RecoveryResult> {
  const walDir = path.join(dataDir, 'pg_wal');
  const snapPath = path.join(dataDir, CKPT_DIR, control.snapshotName);
  if (!fs.existsSync(snapPath)) throw Errors.checkpointCorrupt(snapPath, 'checkpoint snapshot file is missing');
  await readSnapshot(snapPath, store);
  // Timeline history: a promotion's switch (control file in production on the new timeline)
  // comes before its end-of-recovery checkpoint, so the redo point may still be on the parent
  // timeline; each segment is read from the timeline that covers it (PostgreSQL's expectedTLEs).
  const history = readTimeLineHistory(walDir, control.tli);
  const src = new FileSegmentSource(walDir, history, control.segSize);
  const reader = new XLogReader(src, { segSize: control.segSize, sysid: control.sysid }, control.redoLsn, null);
  if (history.length > 1) reader.setHistory(history);
  let replayed = 0;
  let sawCheckpoint = false;
  let nextXid = control.nextXid;
  let lastXid = -1;
  let endReason = '';
  let endCode: EndOfWalReason | null = null;
  try {
    for (;;) {
      const r = reader.readRecord();
      if (r.kind !== 'record') {
        if (r.kind === 'end') {
          if (r.reason === 'sysid-mismatch') throw Errors.walSystemIdMismatch(walDir, r.walSysid!, control.sysid);
          endReason = r.message;
          endCode = r.reason;
        }
        break;
      }
      const rec = r.record;
      if (rec.start === control.checkpointLsn) sawCheckpoint = true;
      const out = redoRecord(store, rec);
      if (out.kind === 'txn') lastXid = out.xid;
      else if (out.kind === 'switch') reader.skipToNextSegment();
      replayed++;
    }
  } finally {
    src.close();
  }
  if (!sawCheckpoint) {
    throw Errors.checkpointCorrupt(path.join(dataDir, CONTROL_FILE), `could not locate a valid checkpoint record at ${lsnToString(control.checkpointLsn)} (${endReason})`);
  }
  if (lastXid >= 0) nextXid = lastXid + 1 > 0xffffffff ? FIRST_NORMAL_XID : Math.max(nextXid, lastXid + 1);
  const endLsn = reader.nextLsn;
  zeroTail(walDir, control, endLsn);
  // RemoveTempXlogFiles: segments half-made by a walwriter that crashed (the pid file says no
  // other process uses this directory).
  removeTempSegments(walDir);
  return {
    info: {
      redoLsn: control.redoLsn,
      endLsn,
      recordsReplayed: replayed,
      endReason,
      endReasonCode: endCode,
      tornTail: endCode !== null && !isZeroedEnd(endCode),
      wasCleanShutdown: control.state === DbState.ShutDown,
    },
    insertPos: endLsn,
    prevRecord: reader.prevLsn,
    nextXid,
  };
}

/** Zero the current segment from the end of valid WAL to its end (torn bytes must not survive). */
function zeroTail(walDir: string, control: ControlData, endLsn: Lsn): void {
  const seg = segNo(endLsn, control.segSize);
  ensureSegment(walDir, control.tli, seg, control.segSize);
  const file = path.join(walDir, segFileName(control.tli, seg, control.segSize));
  const off = endLsn % control.segSize;
  if (off === 0) return;
  const fd = fs.openSync(file, 'r+');
  try {
    const zero = Buffer.alloc(1024 * 1024);
    for (let p = off; p < control.segSize; p += zero.length) fs.writeSync(fd, zero, 0, Math.min(zero.length, control.segSize - p), p);
    fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
