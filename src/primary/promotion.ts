// Promotion of a standby onto a new timeline (PostgreSQL's StartupXLOG after recovery ends:
// XLogInitNewTimeline, CleanupAfterArchiveRecovery, CreateEndOfRecoveryRecord, in
// src/backend/access/transam/xlog.c). Runs on the standby's main thread once Standby.promote has
// stopped the walreceiver and the startup worker; it owns nothing after it returns (the Primary it
// opens owns the data directory, the store and the WAL from then on).
//
// Order, and why a crash at any step is harmless:
//   1. finishRecovery: replay what startup left (from its next record to the end of valid WAL in
//      pg_wal) into the store → EndOfLog, the last record's start (xl_prev), the next xid.
//   2. newTLI = max(control TLI, findNewestTimeLine) + 1; `0000000N.history` written and fsynced.
//   3. the new timeline's first segment: the old segment's bytes up to EndOfLog (the rest sparse).
//   4. (Primary.fromPromotion; its walwriter and listener threads boot meanwhile, the listener
//      holding connections) END_OF_RECOVERY on the new timeline, fdatasynced on this thread.
//   5. the control file "in production" on the new TLI, still pointing at the standby's last
//      restartpoint — THE switch: before it, the directory is still a standby on the old timeline
//      (steps 2-4 wrote only files of a timeline no one uses, and a second promotion takes a TLI
//      above any history file written); after it, Primary.open recovers on the new timeline,
//      from that restartpoint's redo point through END_OF_RECOVERY (recovery.ts reads each
//      segment from the timeline of the history that covers it). Commits are accepted from here.
//   6. cleanupAfterPromotion: the old timeline's switch segment renamed `.partial` (repeated by
//      Primary.open when a crash came first). PostgreSQL 15 does this only with archiving on;
//      walstream always does.
//   7. the end-of-recovery checkpoint, requested and run in the background while commits go on
//      (PostgreSQL's PerformRecoveryXLogAction + RequestCheckpoint(CHECKPOINT_FORCE) without
//      CHECKPOINT_WAIT); a crash before it is done recovers as after step 5.
// WALSTREAM_TEST_PROMOTE_CRASH_AT=<step> kills the process (SIGKILL) at that step (tests only).

import { Errors } from '../errors.js';
import type { ControlData } from '../storage/control.js';
import type { SharedStore } from '../storage/store.js';
import { assert } from '../util/assert.js';
import { FIRST_NORMAL_XID } from '../wal/consts.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { FileSegmentSource, XLogReader } from '../wal/reader.js';
import { redoRecord } from '../wal/replay.js';
import { copySegmentPrefix, ensureSegment, renameToPartial } from '../wal/segfile.js';
import { segNo } from '../wal/segment.js';
import { findNewestTimeLine, readTimeLineHistory, REASON_NO_RECOVERY_TARGET, writeTimeLineHistory } from '../wal/timeline.js';

export const PROMOTE_CRASH_ENV = 'WALSTREAM_TEST_PROMOTE_CRASH_AT';
/** The steps a test can crash at, in order. */
export const PROMOTE_STEPS = ['stopped', 'replayed', 'history', 'segment', 'end-of-recovery', 'control', 'partial', 'checkpoint'] as const;
export type PromoteStep = (typeof PROMOTE_STEPS)[number];
const crashAt = process.env[PROMOTE_CRASH_ENV] ?? '';

/** Test-only crash point: SIGKILL this process at `step` when the environment names it. */
export function promoteStep(step: PromoteStep): void {
  if (crashAt !== '' && crashAt === step) process.kill(process.pid, 'SIGKILL');
}

/** Where startup stopped: the next record to read, the last one read (-1: none), the last xid replayed (-1: none). */
export interface ReplayResume {
  next: Lsn;
  prev: Lsn;
  lastXid: number;
}

export interface EndOfLog {
  /** End of the last valid record: the switch point. */
  endOfLog: Lsn;
  /** Start of the last valid record (the new timeline's first xl_prev). */
  lastRecord: Lsn;
  nextXid: number;
  /** Records replayed here (after startup stopped). */
  records: number;
}

/** Step 1: replay the rest of pg_wal on the old timeline into the store. */
export function finishRecovery(walDir: string, control: ControlData, store: SharedStore, resume: ReplayResume): EndOfLog {
  // (A standby that followed a timeline switch: older segments are its parents' files.)
  const history = readTimeLineHistory(walDir, control.tli);
  const src = new FileSegmentSource(walDir, history, control.segSize);
  const reader = new XLogReader(src, { segSize: control.segSize, sysid: control.sysid }, resume.next, resume.prev >= 0 ? resume.prev : null);
  reader.setHistory(history);
  let lastXid = resume.lastXid;
  let records = 0;
  try {
    for (;;) {
      const r = reader.readRecord();
      if (r.kind !== 'record') {
        if (r.kind === 'end' && r.reason === 'sysid-mismatch') throw Errors.walSystemIdMismatch(walDir, r.walSysid!, control.sysid);
        break;
      }
      const out = redoRecord(store, r.record);
      if (out.kind === 'txn') lastXid = out.xid;
      else if (out.kind === 'switch') reader.skipToNextSegment();
      records++;
    }
  } finally {
    src.close();
  }
  const endOfLog = reader.nextLsn;
  const lastRecord = reader.prevLsn;
  if (lastRecord < 0) throw Errors.promoteNotPossible(`no valid WAL record was replayed before ${lsnToString(endOfLog)}`);
  assert(endOfLog >= resume.next, 'EndOfLog precedes the replay position');
  let nextXid = control.nextXid;
  if (lastXid >= 0) nextXid = lastXid + 1 > 0xffffffff ? FIRST_NORMAL_XID : Math.max(nextXid, lastXid + 1);
  return { endOfLog, lastRecord, nextXid, records };
}

/** Steps 2 and 3: the history file (before any WAL of the new timeline), then its first segment. Returns the new TLI. */
export function initNewTimeline(walDir: string, control: ControlData, endOfLog: Lsn): number {
  const oldTli = control.tli;
  const newTli = Math.max(oldTli, findNewestTimeLine(walDir, oldTli)) + 1;
  assert(newTli > oldTli, 'timeline IDs increase');
  writeTimeLineHistory(walDir, newTli, oldTli, endOfLog, REASON_NO_RECOVERY_TARGET);
  promoteStep('history');
  const seg = segNo(endOfLog, control.segSize);
  const off = endOfLog % control.segSize;
  if (off !== 0) copySegmentPrefix(walDir, oldTli, newTli, seg, control.segSize, off);
  else ensureSegment(walDir, newTli, seg, control.segSize);
  promoteStep('segment');
  return newTli;
}

/**
 * Step 5 (CleanupAfterArchiveRecovery): on timeline `tli` > 1, the parent's segment holding the
 * switch point (when the switch was inside it) becomes `.partial`. Idempotent; true if renamed.
 */
export function cleanupAfterPromotion(walDir: string, tli: number, segSize: number): boolean {
  if (tli <= 1) return false;
  const history = readTimeLineHistory(walDir, tli);
  const parent = history[1];
  if (parent === undefined || parent.end % segSize === 0) return false;
  return renameToPartial(walDir, parent.tli, segNo(parent.end, segSize), segSize);
}
