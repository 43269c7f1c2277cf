// Rejoining after a failover: an old primary's data directory (or a standby's) opened as a standby
// of the new primary. Run by Standby.open on the main thread, after it took the pid file and
// before any worker starts; owns nothing past its return. It stops by returning (or throwing).
//
// PostgreSQL turns a primary's directory into a standby with standby.signal (the startup process
// then recovers to the end of its WAL, and from then on replays what it streams); an old primary
// that wrote past the point where the new primary's timeline forked off its own cannot follow
// that timeline (rescanLatestTimeLine refuses) and needs pg_rewind or a new base backup. Here:
//  - Standby.open of the directory is the standby.signal: the control file is set to archive
//    recovery with minRecoveryPoint at the end of its WAL (a primary's checkpoint snapshot is
//    fuzzy and every commit it flushed must be replayed before it is read), so that it stays a
//    standby after a crash too;
//  - the end of its WAL (the end of the last valid record, along the control file's timeline
//    history) is compared with the fork point from the upstream's history (IDENTIFY_SYSTEM,
//    TIMELINE_HISTORY): at or before it, the directory streams and follows like any standby; past
//    it, it is refused (WS_REJOIN_DIVERGED, naming both positions) unless rebuildIfDiverged, which
//    moves the directory aside (renamed to `<dataDir>.diverged-<UTC time>`, never deleted) for a
//    fresh base backup of the upstream into `dataDir`.
// The upstream must be reachable for the check: if it is not, Standby.open fails with the
// connection error and changes nothing (the caller retries).

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { type ControlData, DbState, writeControl } from '../storage/control.js';
import { acquirePidFile, releasePidFile } from '../storage/datadir.js';
import { fsyncDir } from '../util/fsync.js';
import { RM_XLOG_ID, XLOG_SWITCH } from '../wal/consts.js';
import { type Lsn } from '../wal/lsn.js';
import { FileSegmentSource, XLogReader } from '../wal/reader.js';
import { parseTimeLineHistory, readTimeLineHistory, TLHistoryFileName, tliInHistory, tliSwitchPoint } from '../wal/timeline.js';
import type { WalRcvConnection } from './transport.js';

/** What rejoining found and did (Standby.rejoin). */
export interface RejoinInfo {
  /** The directory was a primary's (in production, or shut down). */
  wasPrimary: boolean;
  /** End of the last valid WAL record in the directory. */
  endOfWal: Lsn;
  /** The upstream's timeline. */
  upstreamTli: number;
  /** Where the upstream's timeline history left ours (null: the upstream is on our timeline). */
  forkLsn: Lsn | null;
  diverged: boolean;
  /** rebuildIfDiverged: where the old contents were moved (null: not moved). */
  movedAside: string | null;
}

/** Runs `fn` on a connection to the upstream (outside streaming), closed after it. */
export type UpstreamRunner = <T>(fn: (conn: WalRcvConnection) => Promise<T>) => Promise<T>;

export interface RejoinResult {
  /** The control file to open with; null: the directory is empty now (take a base backup). */
  control: ControlData | null;
  info: RejoinInfo;
}

/** A primary's directory (PostgreSQL's DB_IN_PRODUCTION / DB_SHUTDOWNED). */
export function isPrimaryState(c: ControlData): boolean {
  return c.state === DbState.InProduction || c.state === DbState.ShutDown;
}

/**
 * End of the last valid record of the directory's WAL from its checkpoint's redo point, along the
 * control file's timeline history (read only: nothing is written, nothing applied).
 */
export function endOfLocalWal(walDir: string, c: ControlData): Lsn {
  const history = readTimeLineHistory(walDir, c.tli);
  const src = new FileSegmentSource(walDir, history, c.segSize);
  const reader = new XLogReader(src, { segSize: c.segSize, sysid: c.sysid }, c.redoLsn, null);
  reader.setHistory(history);
  try {
    for (;;) {
      const r = reader.readRecord();
      if (r.kind !== 'record') {
        if (r.kind === 'end' && r.reason === 'sysid-mismatch') throw Errors.walSystemIdMismatch(walDir, r.walSysid!, c.sysid);
        break;
      }
      const h = r.record.header;
      if (h.rmid === RM_XLOG_ID && (h.info & 0xf0) === XLOG_SWITCH) reader.skipToNextSegment();
    }
  } finally {
    src.close();
  }
  return reader.nextLsn;
}

/** `<dataDir>.diverged-<UTC time>` (a free name): where a diverged directory goes. */
export function asideName(dataDir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let name = `${dataDir}.diverged-${stamp}`;
  for (let i = 1; fs.existsSync(name); i++) name = `${dataDir}.diverged-${stamp}-${i}`;
  return name;
}

/**
 * Check `dataDir` (control file `c`, replica mode, pid file held) against the upstream, and make it a standby of it: see the header. Throws WS_REJOIN_DIVERGED when it has
 * diverged and `rebuild` is false.
 */
export async function prepareRejoin(dataDir: string, c: ControlData, withUpstream: UpstreamRunner, rebuild: boolean): Promise<RejoinResult> {
  const walDir = path.join(dataDir, 'pg_wal');
  const wasPrimary = isPrimaryState(c);
  const endOfWal = endOfLocalWal(walDir, c);
  const { upstreamTli, forkLsn } = await withUpstream(async (conn) => {
    const ident = await conn.identifySystem();
    if (ident.systemId !== c.sysid.toString()) throw Errors.systemIdMismatch(ident.systemId, c.sysid.toString());
    if (ident.timeline < c.tli) throw Errors.timelineMismatch(ident.timeline, c.tli);
    if (ident.timeline === c.tli) return { upstreamTli: ident.timeline, forkLsn: null };
    const h = await conn.timelineHistory(ident.timeline);
    const history = parseTimeLineHistory(h.content, ident.timeline, TLHistoryFileName(ident.timeline));
    if (!tliInHistory(c.tli, history)) throw Errors.timelineNotAChild(ident.timeline, c.tli);
    return { upstreamTli: ident.timeline, forkLsn: tliSwitchPoint(c.tli, history).switchpoint as Lsn | null };
  });
  const diverged = forkLsn !== null && endOfWal > forkLsn;
  const info: RejoinInfo = { wasPrimary, endOfWal, upstreamTli, forkLsn, diverged, movedAside: null };
  if (diverged) {
    if (!rebuild) throw Errors.rejoinDiverged(dataDir, upstreamTli, c.tli, forkLsn!, endOfWal, `${dataDir}.diverged-<UTC time>`);
    info.movedAside = moveAside(dataDir);
    return { control: null, info };
  }
  if (!wasPrimary) return { control: c, info };
  // standby.signal: from now on this directory is a standby's, consistent at the end of its WAL.
  const next: ControlData = { ...c, state: DbState.InArchiveRecovery, minRecoveryPoint: Math.max(c.minRecoveryPoint, endOfWal), timeMs: Date.now() };
  writeControl(dataDir, next);
  return { control: next, info };
}

/** Rename `dataDir` aside (durably) and leave an empty `dataDir` with its pid file held. Returns the new name. */
function moveAside(dataDir: string): string {
  const aside = asideName(dataDir);
  releasePidFile(dataDir);
  fs.renameSync(dataDir, aside);
  fs.mkdirSync(dataDir, { mode: 0o700 });
  fsyncDir(path.dirname(dataDir));
  acquirePidFile(dataDir);
  return aside;
}
