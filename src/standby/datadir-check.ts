// The check Standby.open makes of a data directory before it owns it: empty (a base backup will
// fill it), a standby's (control file in recovery, of the requested mode, pg_wal present), or a
// former primary's in replica mode (rejoin.ts checks it against the new upstream first).
// Pure function of the directory's contents; runs on the thread that opens the standby.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { PID_FILE } from '../storage/datadir.js';
import { CONTROL_FILE, type ControlData, DbState, DB_STATE_NAMES, readControl } from '../storage/control.js';
import { listSegments } from '../wal/segfile.js';
import type { StandbyMode } from './options.js';
import { isPrimaryState } from './rejoin.js';

/** The control file of a standby directory, or null if the directory is empty/missing. */
export function inspectDataDir(dataDir: string, mode: StandbyMode): ControlData | null {
  let entries: string[];
  try {
    entries = fs.readdirSync(dataDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR') throw Errors.notADataDir(dataDir, 'it is not a directory');
    throw e;
  }
  const control = readControl(dataDir);
  if (control === null) {
    // Empty, or left so by an interrupted start (a stale pid file; wal-only: an empty pg_wal).
    const fresh = entries.every((n) => n === PID_FILE || (mode === 'wal-only' && n === 'pg_wal')) && listSegments(path.join(dataDir, 'pg_wal'), 1 << 24).length === 0;
    if (fresh) return null;
    throw Errors.notADataDir(dataDir, `it is not empty and has no ${CONTROL_FILE}`);
  }
  // (A primary's directory is opened as a standby: rejoin.ts checks it against the upstream first.)
  const primaryDir = isPrimaryState(control);
  if (!primaryDir && control.state !== DbState.InArchiveRecovery && control.state !== DbState.ShutDownInRecovery) {
    throw Errors.notADataDir(dataDir, `its control file says "${DB_STATE_NAMES[control.state] ?? control.state}"`);
  }
  if (primaryDir && mode === 'wal-only') throw Errors.notADataDir(dataDir, `its control file says "${DB_STATE_NAMES[control.state]}": it belongs to a primary; open it with mode 'replica' to rejoin`);
  const walOnly = control.snapshotName === '';
  if (walOnly && mode === 'replica') throw Errors.notADataDir(dataDir, 'it holds WAL only (made in wal-only mode): there is no checkpoint to replay from');
  if (!walOnly && mode === 'wal-only') throw Errors.notADataDir(dataDir, "it is a replica's directory; open it with mode 'replica'");
  if (!fs.existsSync(path.join(dataDir, 'pg_wal'))) throw Errors.notADataDir(dataDir, 'pg_wal is missing');
  return control;
}

