// What Standby.open does before any thread starts: the options resolved (with a `pg_basebackup -R`
// directory's settings), the data directory checked and owned (pid file), an old primary's
// directory checked against its new upstream (rejoin.ts), an empty directory filled by a base
// backup of the upstream (basebackup-client.ts), and the store loaded from the checkpoint snapshot
// (replica mode). An empty directory gets a base backup in replica mode; wal-only mode starts from
// nothing (the identity comes from the upstream). Runs on the thread that opens the standby. On failure nothing is left owned: the
// pid file is released (a base backup cleans up after itself).

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { acquirePidFile, releasePidFile } from '../storage/datadir.js';
import type { ControlData } from '../storage/control.js';
import { readSnapshot } from '../storage/snapshot.js';
import { SharedStore } from '../storage/store.js';
import { CKPT_DIR } from '../primary/recovery.js';
import { adoptBaseBackup, withDirectorySettings } from './auto-conf.js';
import { runBaseBackup, type BaseBackupResult } from './basebackup-client.js';
import { inspectDataDir } from './datadir-check.js';
import { type ResolvedStandbyOptions, resolveStandbyOptions, type StandbyOptions } from './options.js';
import { isPrimaryState, prepareRejoin, type RejoinInfo } from './rejoin.js';
import { fetchStartTimelineHistory } from './timeline-follow.js';
import { upstreamRunner } from './upstream-command.js';

export interface PreparedStandby {
  options: ResolvedStandbyOptions;
  /** Null only in an empty wal-only directory (the identity comes from the upstream). */
  control: ControlData | null;
  /** Replica mode: the store as of the checkpoint replay starts from. */
  store: SharedStore | null;
  baseBackup: BaseBackupResult | null;
  rejoin: RejoinInfo | null;
}

/** Resolve, check, own and (if empty) fill the data directory; load the store. The caller releases the pid file when done. */
export async function prepareStandbyDataDir(opts: StandbyOptions): Promise<PreparedStandby> {
  const options = resolveStandbyOptions(withDirectorySettings(opts));
  const dataDir = path.resolve(options.dataDir);
  options.dataDir = dataDir;
  if (options.mode === 'replica') adoptBaseBackup(dataDir);
  let control = inspectDataDir(dataDir, options.mode);
  fs.mkdirSync(dataDir, { recursive: true });
  acquirePidFile(dataDir); // before a base backup too: one owner fills the directory
  try {
    let baseBackup: BaseBackupResult | null = null;
    let rejoin: RejoinInfo | null = null;
    const withUpstream = upstreamRunner(options);
    // An old primary's directory (or, asked to, any replica's) rejoining after a failover.
    if (control !== null && options.mode === 'replica' && (isPrimaryState(control) || options.rebuildIfDiverged)) {
      const r = await prepareRejoin(dataDir, control, withUpstream, options.rebuildIfDiverged);
      control = r.control;
      rejoin = r.info;
    }
    if (control === null && options.mode === 'replica') {
      baseBackup = await withUpstream(async (conn) => {
        const b = await runBaseBackup(conn, dataDir, { maxBytes: options.maxBaseBackupBytes, onProgress: opts.onBaseBackupProgress ?? null, wal: 'none' });
        fs.mkdirSync(path.join(dataDir, 'pg_wal'), { recursive: true });
        await fetchStartTimelineHistory(conn, path.join(dataDir, 'pg_wal'), b.control.tli);
        return b;
      });
      control = baseBackup.control;
    }
    fs.mkdirSync(path.join(dataDir, 'pg_wal'), { recursive: true });
    let store: SharedStore | null = null;
    if (options.mode === 'replica') {
      const c = control!;
      store = SharedStore.create({ maxStoreBytes: options.maxStoreBytes, maxValueBytes: options.maxValueBytes });
      const snap = path.join(dataDir, CKPT_DIR, c.snapshotName);
      if (!fs.existsSync(snap)) throw Errors.checkpointCorrupt(snap, 'checkpoint snapshot file is missing');
      await readSnapshot(snap, store);
    }
    return { options, control, store, baseBackup, rejoin };
  } catch (e) {
    releasePidFile(dataDir);
    throw e;
  }
}
