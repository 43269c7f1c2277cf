// `walstream standby`: run a standby as a server process until SIGINT or SIGTERM, then stop
// cleanly (CopyDone, Terminate, control file "shut down in recovery"). Owns the Standby it opens.
// With --metrics-port it serves /metrics, /healthz and /status (src/cli/http-endpoint.ts).
// Prints one JSON line on stdout once it is consistent (or streaming, in wal-only mode), then a
// status line every --status-every-ms on stderr (status-lines.ts: a header first), warnings and
// restartpoints as they happen.
// Promotion (walstream promote, or --promote-trigger-file): it becomes a primary on a new timeline
// in this process, serving replication on --promote-port or --port if given, prints a "promoted"
// JSON line, and runs until the signal as before (then closes the primary). With --port the
// standby serves replication itself until then (cascading walsenders, src/standby/cascade.ts).
// SIGHUP reloads primary_conninfo from the data directory's postgresql.auto.conf (as PostgreSQL 15
// re-reads it on reload; `pg_basebackup -R` and ALTER SYSTEM write that file): when it is set and
// differs from the current one, the standby is re-pointed (Standby.setPrimaryConninfo).

import fs from 'node:fs';
import path from 'node:path';
import type { Primary } from '../primary/primary.js';
import { PROMOTE_SIGNAL_FILE, watchPromoteSignal } from '../standby/promote-signal.js';
import { readPrimaryConninfo } from '../standby/auto-conf.js';
import { displayConninfo, resolveConninfo } from '../standby/options.js';
import { type RestartpointInfo, Standby } from '../standby/standby.js';
import { startStandbyStatusLines } from './status-lines.js';
import { untilSignal } from './until-signal.js';
import { Errors } from '../errors.js';
import { DEFAULT_METRICS_PORT, startMonitoringServer } from './http-endpoint.js';
import { assertCanListen } from '../replication/listen-probe.js';
import { replicationAuth } from './primary.js';
import type { StandbyMode } from '../standby/options.js';
import { lsnToString } from '../wal/lsn.js';

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
  /** Replication port served by the standby (cascading walsenders) and once promoted (unless --promote-port). */
  port?: number;
  /** Authentication of its replication connections (as walstream primary's). */
  auth?: 'trust' | 'scram-sha-256';
  user?: string;
  password?: string;
  promotePort?: number;
  promoteTriggerFile?: string;
  /** Serve Prometheus /metrics, /healthz and /status on 127.0.0.1:<port> (true: the default port). */
  metricsPort?: number | true;
  healthzMaxLagMs?: number;
  healthzMaxLagBytes?: number;
}

export async function runStandby(o: StandbyCliOptions): Promise<void> {
  const metricsPort = o.metricsPort === true ? DEFAULT_METRICS_PORT : o.metricsPort;
  if (metricsPort === undefined && (o.healthzMaxLagMs !== undefined || o.healthzMaxLagBytes !== undefined)) {
    throw Errors.invalidOption(o.healthzMaxLagMs !== undefined ? '--healthz-max-lag-ms' : '--healthz-max-lag-bytes', '/healthz is served on --metrics-port, which is not given');
  }
  if (metricsPort !== undefined) await assertCanListen('--metrics-port', '127.0.0.1', metricsPort);
  const s = await Standby.open({
    dataDir: o.data,
    ...(o.primary !== undefined ? { primaryConninfo: o.primary } : {}),
    mode: o.mode,
    ...(o.slot !== undefined ? { primarySlotName: o.slot } : {}),
    ...(o.readerThreads !== undefined ? { readerThreads: o.readerThreads } : {}),
    ...(o.statusIntervalMs !== undefined ? { walReceiverStatusIntervalMs: o.statusIntervalMs } : {}),
    ...(o.receiverTimeoutMs !== undefined ? { walReceiverTimeoutMs: o.receiverTimeoutMs } : {}),
    ...(o.retryIntervalMs !== undefined ? { walRetrieveRetryIntervalMs: o.retryIntervalMs } : {}),
    ...(o.port !== undefined ? { port: o.port, host: '127.0.0.1', ...replicationAuth({ ...o, auth: o.auth ?? 'trust' }) } : {}),
  });
  const metrics = metricsPort === undefined ? null : await startMonitoringServer(s, {
    port: metricsPort,
    healthz: { maxLagMs: o.healthzMaxLagMs ?? null, maxLagBytes: o.healthzMaxLagBytes ?? null },
  }).catch(async (e: unknown) => {
    await s.close();
    throw e;
  });
  s.on('warning', (e: Error) => console.error(`WARNING: ${e.message}`));
  s.on('error', (e: Error) => console.error(`ERROR: ${e.message}`));
  s.on('replayTimeline', (m: { tli: number }) => console.error(`LOG: new target timeline is ${m.tli}`));
  s.on('restartpoint', (i: RestartpointInfo) => console.error(`LOG: restartpoint at redo ${lsnToString(i.redoLsn)}, ${i.segmentsRemoved} segments removed, ${i.segmentsRecycled} recycled`));
  const st = s.receiverStatus();
  const onHup = () => reloadPrimaryConninfo(s);
  process.on('SIGHUP', onHup);
  const stopStatus = o.statusEveryMs > 0 ? startStandbyStatusLines(s, o.statusEveryMs) : () => undefined;
  // Promotion: the `promote` signal file (walstream promote, SIGUSR1) or --promote-trigger-file.
  let primary: Primary | null = null;
  let promoting: Promise<void> | null = null;
  fs.rmSync(path.join(s.dataDir, PROMOTE_SIGNAL_FILE), { force: true }); // a stale request does not count
  const port = o.promotePort ?? o.port;
  const stopWatching = o.mode === 'replica'
    ? watchPromoteSignal(s.dataDir, o.promoteTriggerFile === undefined ? null : path.resolve(o.promoteTriggerFile), () => {
        console.error('LOG: received promote request');
        promoting = s.promote(port !== undefined ? { port, host: '127.0.0.1' } : {}).then((p) => {
          primary = p;
          console.error(`LOG: selected new timeline ID: ${p.timeline}`);
          console.log(JSON.stringify({ promoted: { dataDir: p.dataDir, timeline: p.timeline, port: p.port } }));
        }, (e: Error) => {
          console.error(`ERROR: promotion failed: ${e.message}`);
        });
      })
    : () => undefined;
  // The signal handlers go in before the ready line: a SIGTERM right after it must shut down
  // cleanly, not meet the default disposition.
  const stopped = untilSignal(async () => {
    stopWatching();
    if (promoting) await promoting;
    await metrics?.close();
    if (primary) await (primary as Primary).close();
    await s.close();
  }, () => {
    stopStatus();
    process.removeListener('SIGHUP', onHup);
  });
  console.log(JSON.stringify({ standby: { dataDir: s.dataDir, mode: s.mode, systemIdentifier: s.systemIdentifier, timeline: s.timeline, replayLsn: st.replay_lsn === null ? null : lsnToString(st.replay_lsn), conninfo: st.conninfo, port: s.replication?.port ?? null }, ...(metrics ? { metrics: metrics.url } : {}) }));
  await stopped;
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
