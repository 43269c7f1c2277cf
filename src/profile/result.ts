// The JSON results of `walstream profile live|replay --json` (bench/schemas/bench.schema.json,
// #/$defs/profile): the library's results with the command's context. Told apart from the bench
// results by `bench: 'profile'`, so `walstream bench report FILE` renders a saved one too. Types
// only.

import type { LiveProfileResult } from './live.js';
import type { OfflineProfileResult } from './offline.js';

export interface ProfileUnits {
  latency: 'ms';
  throughput: 'MB/s';
  rates: 'records/s';
}

export const PROFILE_UNITS: ProfileUnits = { latency: 'ms', throughput: 'MB/s', rates: 'records/s' };

export interface LiveProfileJson extends LiveProfileResult {
  bench: 'profile';
  units: ProfileUnits;
  /** Who was profiled: a walstream primary (replica mode) or PostgreSQL 15 (wal-only). */
  upstream: { kind: 'walstream' | 'postgresql'; serverVersion: string };
}

export interface ReplayProfileJson extends OfflineProfileResult {
  bench: 'profile';
  units: ProfileUnits;
}

export type ProfileJson = LiveProfileJson | ReplayProfileJson;
