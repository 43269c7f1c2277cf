// Health of a node for GET /healthz (src/cli/http-endpoint.ts): sans-I/O judgements over what a
// Primary or Standby reports. A primary is healthy while it is open and its walwriter runs; a
// standby while its walreceiver streams and its lag (replay in replica mode, flush in wal-only
// mode; bytes behind latest_end_lsn and seconds, src/standby/standby-metrics.ts) is within the
// configured bounds. A promoted standby is judged as the primary it became. Nothing to stop.

import { Errors } from '../errors.js';
import type { StandbyLag } from '../standby/standby-metrics.js';
import type { WalRcvStateName } from '../standby/walrcvdata.js';

/** Bounds on a standby's lag; null = not checked. */
export interface HealthBounds {
  maxLagMs: number | null;
  maxLagBytes: number | null;
}

/** Stable codes of an unhealthy node (never match on `message`). */
export type HealthReason = 'closed' | 'failed' | 'not_streaming' | 'lag_bytes' | 'lag_time';

export interface HealthReport {
  healthy: boolean;
  role: 'primary' | 'standby';
  reason: HealthReason | null;
  message: string | null;
  /** Standby: the walreceiver's status and the lag judged (bytes, ms). */
  walReceiverStatus?: WalRcvStateName;
  lagBytes?: number | null;
  lagMs?: number | null;
}

/** Check bounds given by a caller (library or command line) once. */
export function resolveHealthBounds(b: Partial<HealthBounds> = {}): HealthBounds {
  const check = (name: string, v: number | null | undefined): number | null => {
    if (v === undefined || v === null) return null;
    if (!Number.isSafeInteger(v) || v < 0) throw Errors.invalidOption(name, `must be an integer >= 0, got ${String(v)}`);
    return v;
  };
  return { maxLagMs: check('maxLagMs', b.maxLagMs), maxLagBytes: check('maxLagBytes', b.maxLagBytes) };
}

/** What primaryHealth reads (Primary satisfies it). */
export interface PrimaryHealthSubject {
  readonly isClosed: boolean;
  readonly failed: Error | null;
}

export function primaryHealth(p: PrimaryHealthSubject): HealthReport {
  if (p.isClosed) return { healthy: false, role: 'primary', reason: 'closed', message: 'the primary is shutting down' };
  if (p.failed) return { healthy: false, role: 'primary', reason: 'failed', message: `the walwriter failed: ${p.failed.message}` };
  return { healthy: true, role: 'primary', reason: null, message: null };
}

/** What standbyHealth reads (Standby satisfies it). */
export interface StandbyHealthSubject {
  readonly mode: 'replica' | 'wal-only';
  readonly failed: Error | null;
  readonly promoted: PrimaryHealthSubject | null;
}

export function standbyHealth(s: StandbyHealthSubject, lag: StandbyLag, bounds: HealthBounds): HealthReport {
  if (s.promoted !== null) return primaryHealth(s.promoted);
  const level = s.mode === 'replica' ? 'replay' : 'flush';
  const bytes = lag.bytes[level];
  const seconds = lag.seconds[level];
  const ms = seconds === null ? null : Math.round(seconds * 1000);
  const status = lag.snapshot.state;
  const base = { role: 'standby' as const, walReceiverStatus: status, lagBytes: bytes, lagMs: ms };
  if (s.failed) return { ...base, healthy: false, reason: 'failed', message: `streaming or replay stopped: ${s.failed.message}` };
  if (status !== 'streaming') return { ...base, healthy: false, reason: 'not_streaming', message: `the walreceiver is ${status}, not streaming` };
  if (bounds.maxLagBytes !== null && bytes !== null && bytes > bounds.maxLagBytes) {
    return { ...base, healthy: false, reason: 'lag_bytes', message: `${level} lag ${bytes} bytes exceeds ${bounds.maxLagBytes}` };
  }
  if (bounds.maxLagMs !== null && ms !== null && ms > bounds.maxLagMs) {
    return { ...base, healthy: false, reason: 'lag_time', message: `${level} lag ${ms} ms exceeds ${bounds.maxLagMs} ms` };
  }
  return { ...base, healthy: true, reason: null, message: null };
}
