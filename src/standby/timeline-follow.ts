// Timeline following: what a standby does with the timeline history of its upstream (PostgreSQL's
// walreceiver.c WalRcvFetchTimeLineHistoryFiles and the fork check of xlogrecovery.c
// rescanLatestTimeLine). Used by the walreceiver worker at the end of a historic timeline and
// when it connects to an upstream on a newer timeline (re-pointed, or a promoted cascade), and by
// Standby (main thread) for the timeline streaming resumes on and the control file's record of the
// timeline replay follows (the startup worker switches its own history: startup.ts). Owns no
// state: reads and writes history files in pg_wal (durably, through src/wal/timeline.ts
// writeTimeLineHistoryFile) and the control file, and runs TIMELINE_HISTORY on the connection.

import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { type ControlData, writeControl } from '../storage/control.js';
import { type Lsn } from '../wal/lsn.js';
import {
  existsTimeLineHistory, parseTimeLineHistory, readTimeLineHistory, TLHistoryFileName, tliInHistory, tliOfPointInHistory, tliSwitchPoint,
  type TimeLineHistoryEntry, writeTimeLineHistoryFile,
} from '../wal/timeline.js';
import type { WalRcvConnection } from './transport.js';

/** A history file fetched from the upstream (not yet written). */
interface FetchedHistory {
  tli: number;
  content: Uint8Array;
}

/**
 * TIMELINE_HISTORY for each timeline in [first, last] whose history file pg_wal lacks (timeline 1
 * has none), checked to be named as it should; returned, not written.
 */
async function fetchMissing(conn: WalRcvConnection, walDir: string, first: number, last: number): Promise<FetchedHistory[]> {
  const out: FetchedHistory[] = [];
  for (let tli = Math.max(first, 2); tli <= last; tli++) {
    if (existsTimeLineHistory(walDir, tli)) continue;
    const h = await conn.timelineHistory(tli);
    if (h.fileName !== TLHistoryFileName(tli)) {
      throw Errors.protocolViolation(`primary reported unexpected file name for timeline history file of timeline ${tli}`);
    }
    out.push({ tli, content: h.content });
  }
  return out;
}

/** The history of `tli`: from what was fetched, else from pg_wal. */
function historyOf(walDir: string, tli: number, fetched: readonly FetchedHistory[]): TimeLineHistoryEntry[] {
  const f = fetched.find((h) => h.tli === tli);
  return f !== undefined ? parseTimeLineHistory(f.content, tli, TLHistoryFileName(tli)) : readTimeLineHistory(walDir, tli);
}

/**
 * The upstream is on timeline `upstreamTli` (> `ourTli`, the timeline of our flushed WAL): fetch
 * the history files we lack (WalRcvFetchTimeLineHistoryFiles), check that our timeline is in the
 * upstream's history and that our flushed WAL does not go past the point where the upstream's
 * history left our timeline (a standby that did would hold WAL the new primary never had:
 * "new timeline %u forked off current database system timeline %u before current recovery point
 * %X/%X"), and only then write them durably into pg_wal. Returns the upstream timeline's history.
 */
export async function adoptUpstreamHistory(conn: WalRcvConnection, walDir: string, ourTli: number, upstreamTli: number, flushed: Lsn): Promise<TimeLineHistoryEntry[]> {
  assert(upstreamTli > ourTli, 'timeline-follow: the upstream timeline must be newer');
  const fetched = await fetchMissing(conn, walDir, ourTli + 1, upstreamTli);
  const history = historyOf(walDir, upstreamTli, fetched);
  if (!tliInHistory(ourTli, history)) throw Errors.timelineNotAChild(upstreamTli, ourTli);
  const { switchpoint } = tliSwitchPoint(ourTli, history);
  if (flushed > switchpoint) throw Errors.timelineForkedOff(upstreamTli, ourTli, flushed, switchpoint);
  for (const h of fetched) writeTimeLineHistoryFile(walDir, h.tli, h.content);
  return history;
}

/**
 * The timeline a replica's walreceiver streams on when replay's WAL ends at `end` and replay
 * follows `tli`'s history: the timeline of that point (RequestXLogStreaming's
 * tliOfPointInHistory). Streaming starts at the segment start of `end`; from the timeline that
 * holds `end`, as PostgreSQL asks for it, the switch segment coming from the new timeline's file.
 */
export function receiveTimelineAt(walDir: string, tli: number, end: Lsn): number {
  return tliOfPointInHistory(end, readTimeLineHistory(walDir, tli));
}

/**
 * Replay follows `tli` now (its history file is durable in pg_wal and its files hold the WAL
 * past the switch point that was flushed): the control file says so (PostgreSQL's
 * minRecoveryPointTLI), so that a restart replays along `tli`'s history. Returns the new contents.
 */
export function recordReplayTimeline(dataDir: string, control: ControlData, tli: number): ControlData {
  assert(tli > control.tli, 'timeline-follow: the replayed timeline never decreases');
  const next: ControlData = { ...control, tli, timeMs: Date.now() };
  writeControl(dataDir, next);
  return next;
}

/**
 * A base backup of an upstream on timeline `tli` > 1: fetch that timeline's history file into
 * pg_wal (durably) unless it is there, before replay starts (the backup's first WAL may hold
 * pages of the parent timeline: the switch segment). PostgreSQL's walreceiver fetches the history
 * of its start timeline the same way (WalRcvFetchTimeLineHistoryFiles from startpointTLI).
 */
export async function fetchStartTimelineHistory(conn: WalRcvConnection, walDir: string, tli: number): Promise<void> {
  const fetched = await fetchMissing(conn, walDir, tli, tli);
  for (const h of fetched) {
    parseTimeLineHistory(h.content, h.tli, TLHistoryFileName(h.tli)); // (checked before it is written)
    writeTimeLineHistoryFile(walDir, h.tli, h.content);
  }
}
