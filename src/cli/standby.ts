// `walstream standby`: run a standby as a server process until SIGINT or SIGTERM, then stop
// cleanly (CopyDone, Terminate, control file "shut down in recovery"). Owns the Standby it opens.
// Prints one JSON line on stdout once it is consistent (or streaming, in wal-only mode), then a
// status line every --status-every-ms on stderr, warnings and restartpoints as they happen.
// SIGHUP reloads primary_conninfo from the data directory's postgresql.auto.conf (as PostgreSQL 15
// re-reads it on reload; `pg_basebackup -R` and ALTER SYSTEM write that file): when it is set and
// differs from the current one, the standby is re-pointed (Standby.setPrimaryConninfo).

import { readPrimaryConninfo } from '../standby/auto-conf.js';
import { displayConninfo, resolveConninfo } from '../standby/options.js';
import { Standby } from '../standby/standby.js';
import { untilSignal } from './until-signal.js';
import type { StandbyMode } from '../standby/options.js';

export interface StandbyCliOptions {
  data: string;
  primary: string;
  mode: StandbyMode;
  slot?: string;
  readerThreads?: number;
  statusIntervalMs?: number;
  receiverTimeoutMs?: number;
  retryIntervalMs?: number;
  statusEveryMs: number;
}

export async function runStandby(o: StandbyCliOptions): Promise<void> {
  const s = await Standby.open({
    dataDir: o.data,
    primaryConninfo: o.primary,
    mode: o.mode,
    ...(o.slot !== undefined ? { primarySlotName: o.slot } : {}),
    ...(o.readerThreads !== undefined ? { readerThreads: o.readerThreads } : {}),
    ...(o.statusIntervalMs !== undefined ? { walReceiverStatusIntervalMs: o.statusIntervalMs } : {}),
    ...(o.receiverTimeoutMs !== undefined ? { walReceiverTimeoutMs: o.receiverTimeoutMs } : {}),
    ...(o.retryIntervalMs !== undefined ? { walRetrieveRetryIntervalMs: o.retryIntervalMs } : {}),
  });
  s.on('warning', (e: Error) => console.error(`WARNING: ${e.message}`));
  s.on('error', (e: Error) => console.error(`ERROR: ${e.message}`));
  s.on('restartpoint', (i: { redoLsn: number; segmentsRemoved: number; segmentsRecycled: number }) => console.error(`LOG: restartpoint at redo ${i.redoLsn}, ${i.segmentsRemoved} segments removed, ${i.segmentsRecycled} recycled`));
  const st = s.receiverStatus();
  console.log(JSON.stringify({ standby: { dataDir: s.dataDir, mode: s.mode, systemIdentifier: s.systemIdentifier?.toString() ?? null, timeline: s.timeline, replayLsn: st.replay_lsn, conninfo: st.conninfo } }));
  const onHup = () => reloadPrimaryConninfo(s);
  process.on('SIGHUP', onHup);
  const timer = o.statusEveryMs > 0
    ? setInterval(() => {
        const x = s.receiverStatus();
        console.error(`status=${x.status} flushed=${x.flushed_lsn} replay=${x.replay_lsn ?? '-'} latest_end=${x.latest_end_lsn} replay_lag_bytes=${x.replay_lag_bytes}`);
      }, o.statusEveryMs)
    : null;
  await untilSignal(() => s.close(), () => {
    if (timer) clearInterval(timer);
    process.removeListener('SIGHUP', onHup);
  });
  console.error('shut down');
}

/** SIGHUP: re-read primary_conninfo (postgresql.auto.conf in the data directory) and re-point if it changed. */
function reloadPrimaryConninfo(s: Standby): void {
  console.error('LOG: received SIGHUP, reloading configuration files');
  try {
    const text = readPrimaryConninfo(s.dataDir);
    if (text === null) return;
    const next = resolveConninfo(text);
    if (JSON.stringify(next) === JSON.stringify(s.options.primaryConninfo)) return;
    s.setPrimaryConninfo(next);
    console.error(`LOG: parameter "primary_conninfo" changed to "${displayConninfo(next)}"`);
  } catch (e) {
    console.error(`ERROR: ${(e as Error).message}`);
  }
}
