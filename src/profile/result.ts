// The JSON results of `walstream profile live|replay --json` (bench/schemas/bench.schema.json,
// #/$defs/profile): the library's results with the command's context. Told apart from the bench
// results by `bench: 'profile'`, so `walstream bench report FILE` renders a saved one too. A saved
// result is text for people and tools: its LSNs are PostgreSQL's X/X, converted here from the
// library's `Lsn` numbers (liveProfileJson, replayProfileJson: the one place). Pure functions.

import { lsnToString } from '../wal/lsn.js';
import type { LiveProfileResult } from './live.js';
import type { OfflineProfileResult } from './offline.js';

export interface ProfileUnits {
  latency: 'ms';
  throughput: 'MB/s';
  rates: 'records/s';
}

export const PROFILE_UNITS: ProfileUnits = { latency: 'ms', throughput: 'MB/s', rates: 'records/s' };

/** Who was profiled: a walstream primary (replica mode) or PostgreSQL 15 (wal-only). */
export interface ProfileUpstream {
  kind: 'walstream' | 'postgresql';
  serverVersion: string;
}

export interface LiveProfileJson extends Omit<LiveProfileResult, 'window'> {
  bench: 'profile';
  units: ProfileUnits;
  upstream: ProfileUpstream;
  /** The window, its first and last WAL position as X/X. */
  window: Omit<LiveProfileResult['window'], 'startLsn' | 'endLsn'> & { startLsn: string; endLsn: string };
}

export interface ReplayProfileJson extends Omit<OfflineProfileResult, 'startLsn' | 'endLsn'> {
  bench: 'profile';
  units: ProfileUnits;
  /** The first record replayed and where replay stopped, as X/X. */
  startLsn: string;
  endLsn: string;
}

export type ProfileJson = LiveProfileJson | ReplayProfileJson;

/** standby.profile()'s result as `walstream profile live --json` writes it. */
export function liveProfileJson(r: LiveProfileResult, upstream: ProfileUpstream): LiveProfileJson {
  return { bench: 'profile', units: PROFILE_UNITS, upstream, ...r, window: { ...r.window, startLsn: lsnToString(r.window.startLsn), endLsn: lsnToString(r.window.endLsn) } };
}

/** profileReplay()'s result as `walstream profile replay --json` writes it. */
export function replayProfileJson(r: OfflineProfileResult): ReplayProfileJson {
  return { bench: 'profile', units: PROFILE_UNITS, ...r, startLsn: lsnToString(r.startLsn), endLsn: lsnToString(r.endLsn) };
}
