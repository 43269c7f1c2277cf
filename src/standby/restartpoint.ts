// A standby's restartpoint (PostgreSQL's CreateRestartPoint, xlog.c): at a checkpoint record the
// startup thread replayed, the store's snapshot is written and fsynced, the control file points at
// that checkpoint (still "in archive recovery", minRecoveryPoint raised to what is flushed), and
// WAL before the redo point that no downstream needs is recycled into future names or removed.
// Runs on the standby's thread, one at a time (Standby serialises them); owns nothing between calls.
//
// Restart safety: the snapshot is fuzzy (written while replay goes on) and the control file's
// minRecoveryPoint is the flushed WAL position, an upper bound of what the snapshot can contain.
// After a crash, replay from the redo point repairs the snapshot (redo carries whole values) and
// the standby is consistent again once it passes minRecoveryPoint: no gap, and nothing applied
// twice changes the result.

import fs from 'node:fs';
import path from 'node:path';
import { writeSnapshot } from '../storage/snapshot.js';
import { type ControlData, DbState, writeControl } from '../storage/control.js';
import type { SharedStore } from '../storage/store.js';
import type { Lsn } from '../wal/lsn.js';
import { fsyncDir, recycleOldSegments } from '../wal/segfile.js';
import { segNo } from '../wal/segment.js';
import { CKPT_DIR } from '../primary/recovery.js';
import type { RestartpointInfo } from './standby-events.js';

/** The replayed checkpoint record a restartpoint is made at. */
export interface ReplayedCheckpoint {
  lsn: Lsn;
  end: Lsn;
  redo: Lsn;
  nextXid: number;
}

export interface RestartpointInput {
  dataDir: string;
  walDir: string;
  store: SharedStore;
  /** The control file now (read after the snapshot: replay may have moved it to a newer timeline). */
  control: () => ControlData;
  /** The walreceiver's flushed and written positions now. */
  flushed: () => Lsn;
  written: () => Lsn;
  /** The least LSN downstreams still need, given the redo point (cascading walsenders, slots, base backups). */
  keepFrom: (redo: Lsn) => Lsn;
  minWalSizeBytes: number;
  maxWalSizeBytes: number;
  /** The new control file is on disk: called before old WAL is judged (downstreams' pins may read it). */
  controlWritten: (control: ControlData) => void;
}

export function snapshotNameFor(redo: Lsn): string {
  return `${redo.toString(16).toUpperCase().padStart(16, '0')}.snap`;
}

/** Make a restartpoint at `m`; returns the new control file (already written) and what it did. */
export async function createRestartpoint(c: RestartpointInput, m: ReplayedCheckpoint): Promise<{ control: ControlData; info: RestartpointInfo }> {
  const snapshotName = snapshotNameFor(m.redo);
  const ckptDir = path.join(c.dataDir, CKPT_DIR);
  await writeSnapshot(c.store, path.join(ckptDir, snapshotName), new Uint8Array(0));
  fsyncDir(ckptDir);
  const prev = c.control();
  // Everything the snapshot can hold was applied, hence flushed, before this read.
  const minRecoveryPoint = Math.max(c.flushed(), m.end, prev.minRecoveryPoint);
  const control: ControlData = {
    ...prev, state: DbState.InArchiveRecovery, checkpointLsn: m.lsn, redoLsn: m.redo, nextXid: m.nextXid, timeMs: Date.now(), snapshotName, minRecoveryPoint,
  };
  writeControl(c.dataDir, control);
  c.controlWritten(control);
  if (prev.snapshotName !== snapshotName) fs.rmSync(path.join(ckptDir, prev.snapshotName), { force: true });
  // Segments of every timeline (and `.partial` ones) before the redo point go, history files stay
  // (RemoveOldXlogFiles, xlog.c: the timeline part of the name is ignored). Future names start
  // past the walreceiver's current segment (it may be creating the next one).
  const segSize = prev.segSize;
  const maxFutureSegments = Math.floor(Math.max(c.minWalSizeBytes, c.maxWalSizeBytes) / segSize);
  const r = recycleOldSegments(c.walDir, segSize, prev.tli, segNo(c.keepFrom(m.redo), segSize), segNo(c.written(), segSize) + 2, maxFutureSegments);
  return { control, info: { checkpointLsn: m.lsn, redoLsn: m.redo, minRecoveryPoint, snapshotName, segmentsRemoved: r.removed, segmentsRecycled: r.recycled } };
}
