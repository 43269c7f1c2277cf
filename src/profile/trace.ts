// The stage trace a profiled standby is opened with (`Standby.open({ stageTrace: profileTrace() })`,
// and the same handle to an in-process `Primary.open` to see its flushes and sends too). Sizing
// only; the trace itself is src/util/stage-trace.ts. No state.

import { Errors } from '../errors.js';
import { StageTrace, type StageTraceHandle } from '../util/stage-trace.js';

/** Entries per stage by default: 2^17 (16 bytes each, 8 stages: 16 MiB), ~13 s at 10 000 XLogData messages/s. */
export const PROFILE_TRACE_ENTRIES = 1 << 17;
/** Entries per stage at most (the trace's own limit). */
const MAX_PROFILE_TRACE_ENTRIES = 1 << 22;

/** A stage trace for profiling: `entriesPerStage` entries per stage (past them, entries are dropped and counted). */
export function profileTrace(entriesPerStage = PROFILE_TRACE_ENTRIES): StageTraceHandle {
  if (!Number.isInteger(entriesPerStage) || entriesPerStage < 1 || entriesPerStage > MAX_PROFILE_TRACE_ENTRIES) {
    throw Errors.invalidOption('entriesPerStage', `must be an integer from 1 to ${MAX_PROFILE_TRACE_ENTRIES}, got ${String(entriesPerStage)}`);
  }
  return StageTrace.create(entriesPerStage).handle;
}
