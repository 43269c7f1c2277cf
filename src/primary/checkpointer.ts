// A primary's checkpoint (PostgreSQL's CreateCheckPoint, xlog.c, and RemoveOldXlogFiles): the redo
// point is the next insert position; a fuzzy snapshot of the store is written and fsynced; a
// CHECKPOINT record is inserted and flushed; the control file points at it; WAL before the redo
// point that nothing pins (walsenders, slots, base backups) is recycled into future segment names
// or removed. A checkpoint with nothing to write (the last checkpoint record is the newest record
// and began at its own redo point, so the store is exactly that checkpoint's snapshot) keeps the
// snapshot file and writes only the record and the control file: PostgreSQL's forced checkpoint of
// an idle server flushes no buffers either (pg_basebackup's CHECKPOINT 'fast' on an idle primary).
// Runs on the primary's thread, called by Primary.checkpoint() and close() (one at a
// time: the Primary serialises them); owns nothing between calls.

import fs from 'node:fs';
import path from 'node:path';
import type { SharedStore } from '../storage/store.js';
import { writeSnapshot } from '../storage/snapshot.js';
import { DbState, type ControlData, writeControl } from '../storage/control.js';
import { nowPgMicros, WS_CHECKPOINT_ONLINE, WS_CHECKPOINT_SHUTDOWN } from '../wal/consts.js';
import type { WalInserter } from '../wal/insert.js';
import type { Lsn } from '../wal/lsn.js';
import { buildCheckpointRecord } from '../wal/record.js';
import { fsyncDir, recycleOldSegments } from '../wal/segfile.js';
import { segNo } from '../wal/segment.js';
import { assert } from '../util/assert.js';
import type { FlushWaiter } from './flush-waiter.js';
import type { CheckpointEvent } from './primary-events.js';
import { CKPT_DIR } from './recovery.js';

/** What one checkpoint reads of its primary. */
export interface CheckpointInput {
  dataDir: string;
  walDir: string;
  store: SharedStore;
  inserter: WalInserter;
  flushWaiter: FlushWaiter;
  /** The control file as it is before the checkpoint. */
  control: ControlData;
  nextXid: number;
  /** WAL pins: recycling never removes WAL at or after the least non-null, positive one. */
  walPins: Iterable<() => Lsn | null>;
  /** min_wal_size and max_wal_size (bytes): how many future segments recycling keeps. */
  minWalSizeBytes: number;
  maxWalSizeBytes: number;
  /** WRITTEN now (the walwriter may be preparing the segment after it: recycling starts past that). */
  writtenLsn: () => Lsn;
  /** The new control file is on disk: called before the pins are read (a slot's pin reads the redo point). */
  controlWritten: (control: ControlData) => void;
}

/** Take a checkpoint; returns the new control file (already written) and the event to emit. */
export async function createCheckpoint(c: CheckpointInput, shutdown: boolean): Promise<{ control: ControlData; event: CheckpointEvent }> {
  const redo = c.inserter.nextRecordLsn();
  assert(redo >= c.control.redoLsn, 'checkpoint: redo point moved backwards');
  const ckptDir = path.join(c.dataDir, CKPT_DIR);
  // The store changes only with a TXN record (applied and inserted in one synchronous step), so
  // when no record follows the last checkpoint's and none came between its redo point and it,
  // its snapshot is the store as it is now, and stays valid from the new redo point on.
  const unchanged = c.control.snapshotName !== '' && c.control.checkpointLsn === c.control.redoLsn && c.inserter.prevRecord === c.control.checkpointLsn;
  const snapshotName = unchanged ? c.control.snapshotName : `${redo.toString(16).toUpperCase().padStart(16, '0')}.snap`;
  if (!unchanged) {
    await writeSnapshot(c.store, path.join(ckptDir, snapshotName), new Uint8Array(0));
    fsyncDir(ckptDir);
  }
  const data = { redo, nextXid: c.nextXid, tli: c.control.tli, timeUs: nowPgMicros(), snapshotName };
  const rec = buildCheckpointRecord(c.inserter.prevRecord, shutdown ? WS_CHECKPOINT_SHUTDOWN : WS_CHECKPOINT_ONLINE, data);
  const { start, end } = c.inserter.insert(rec, rec.length);
  await c.flushWaiter.waitFor(end);
  const prevSnapshot = c.control.snapshotName;
  const control: ControlData = {
    ...c.control,
    state: shutdown ? DbState.ShutDown : DbState.InProduction,
    checkpointLsn: start,
    redoLsn: redo,
    nextXid: c.nextXid,
    timeMs: Date.now(),
    snapshotName,
  };
  writeControl(c.dataDir, control);
  c.controlWritten(control);
  if (prevSnapshot !== snapshotName) fs.rmSync(path.join(ckptDir, prevSnapshot), { force: true });
  let keepFrom = redo;
  for (const pin of c.walPins) {
    const p = pin();
    if (p !== null && p > 0 && p < keepFrom) keepFrom = p;
  }
  // RemoveOldXlogFiles: recycle into future names past the walwriter's segment (it may be
  // creating the next one: link() never replaces, so either file wins), remove the rest.
  const segSize = control.segSize;
  const maxFutureSegments = Math.floor(Math.max(c.minWalSizeBytes, c.maxWalSizeBytes) / segSize);
  const seg = recycleOldSegments(c.walDir, segSize, control.tli, segNo(keepFrom, segSize), segNo(c.writtenLsn(), segSize) + 1, maxFutureSegments);
  return { control, event: { lsn: start, redo, shutdown, snapshotWritten: !unchanged, segmentsRecycled: seg.recycled, segmentsRemoved: seg.removed } };
}
