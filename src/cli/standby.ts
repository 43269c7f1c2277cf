// `walstream standby`: run a standby as a server process until SIGINT or SIGTERM, then stop
// cleanly (CopyDone, Terminate, control file "shut down in recovery"). Owns the Standby it opens.
// Prints one JSON line on stdout once it is consistent (or streaming, in wal-only mode), then a
// status line every --status-every-ms on stderr, warnings and restartpoints as they happen.

import { Standby } from '../standby/standby.js';
import { untilSignal } from './until-signal.js';
import type { StandbyMode } from '../standby/options.js';

export interface StandbyCliOptions {
  data: string;
  /** Absent: primary_conninfo from the directory's postgresql.auto.conf (pg_basebackup -R). */
  primary?: string;
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
    ...(o.primary !== undefined ? { primaryConninfo: o.primary } : {}),
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
  const timer = o.statusEveryMs > 0
    ? setInterval(() => {
        const x = s.receiverStatus();
        console.error(`status=${x.status} flushed=${x.flushed_lsn} replay=${x.replay_lsn ?? '-'} latest_end=${x.latest_end_lsn} replay_lag_bytes=${x.replay_lag_bytes}`);
      }, o.statusEveryMs)
    : null;
  await untilSignal(() => s.close(), () => {
    if (timer) clearInterval(timer);
  });
  console.error('shut down');
}
