// `walstream primary`: run a primary as a server process (replication listener on), until SIGINT
// or SIGTERM, then shut down cleanly (walsenders finish with "COPY 0", shutdown checkpoint).
// Owns the Primary it opens; prints one "listening" line on stdout and walsender logs on stderr.
// --load N runs a write load in this process (load.ts: walstream has no client protocol for
// transactions); status lines (status-lines.ts) go to stderr every --status-every-ms. Both stop
// before the primary closes.

import { Errors } from '../errors.js';
import { Primary } from '../primary/primary.js';
import { assertCanListen } from '../replication/listen-probe.js';
import type { HbaRule } from '../replication/protocol/hba.js';
import { commitRateMeter, type LoadHandle, startLoad } from './load.js';
import { PRIMARY_COLUMNS, primaryStatusLines, statusHeader } from './status-lines.js';
import { untilSignal } from './until-signal.js';
import { lsnToString } from '../wal/lsn.js';
import { DEFAULT_METRICS_PORT, type MetricsServer, startMonitoringServer } from './http-endpoint.js';

export interface PrimaryCliOptions {
  data: string;
  port: number;
  host: string;
  auth: 'trust' | 'scram-sha-256';
  user?: string;
  password?: string;
  maxWalSenders?: number;
  walSenderTimeoutMs?: number;
  walSegmentSize?: number;
  quiet?: boolean;
  synchronousStandbyNames?: string;
  syncTimeoutMs?: number;
  syncTimeoutPolicy?: 'block' | 'degrade' | 'fail';
  maxSlotWalKeepSize?: number;
  /** Serve Prometheus /metrics, /healthz and /status on 127.0.0.1:<port> (true: the default port). */
  metricsPort?: number | true;
  /** A write load in this process (src/cli/load.ts), commits/s. */
  load?: number;
  loadClients?: number;
  loadValueBytes?: number;
  /** Status lines on stderr this often (ms; 0 = never). Default 1000 with load, else 0. */
  statusEveryMs?: number;
}

/** --status-every-ms when --load is given without it, ms. */
const LOAD_STATUS_EVERY_MS = 1000;

/** --auth/--user/--password as the listener's hba rules and users (walstream primary, and standby --port). */
export function replicationAuth(o: { auth: string; user?: string; password?: string }): { users?: Record<string, string>; hba: HbaRule[] } {
  if (o.auth === 'scram-sha-256') {
    if (!o.user || !o.password) throw Errors.invalidOption('auth', 'scram-sha-256 needs --user and --password');
    return { users: { [o.user]: o.password }, hba: [{ type: 'host', database: 'replication', user: o.user, address: 'all', method: 'scram-sha-256' }] };
  }
  if (o.auth === 'trust') return { hba: [{ type: 'host', database: 'replication', user: 'all', address: 'all', method: 'trust' }] };
  throw Errors.invalidOption('auth', `must be trust or scram-sha-256, got "${String(o.auth)}"`);
}

export async function runPrimary(o: PrimaryCliOptions): Promise<void> {
  await assertCanListen('--port', o.host, o.port);
  const metricsPort = o.metricsPort === true ? DEFAULT_METRICS_PORT : o.metricsPort;
  if (metricsPort !== undefined) await assertCanListen('--metrics-port', '127.0.0.1', metricsPort);
  const { users, hba } = replicationAuth(o);
  const p = await Primary.open({
    dataDir: o.data,
    port: o.port,
    host: o.host,
    hba,
    ...(users ? { users } : {}),
    ...(o.maxWalSenders !== undefined ? { maxWalSenders: o.maxWalSenders } : {}),
    ...(o.walSenderTimeoutMs !== undefined ? { walSenderTimeoutMs: o.walSenderTimeoutMs } : {}),
    ...(o.walSegmentSize !== undefined ? { walSegmentSize: o.walSegmentSize } : {}),
    ...(o.synchronousStandbyNames !== undefined ? { synchronousStandbyNames: o.synchronousStandbyNames } : {}),
    ...(o.syncTimeoutMs !== undefined ? { syncTimeoutMs: o.syncTimeoutMs } : {}),
    ...(o.syncTimeoutPolicy !== undefined ? { syncTimeoutPolicy: o.syncTimeoutPolicy } : {}),
    ...(o.maxSlotWalKeepSize !== undefined ? { maxSlotWalKeepSizeBytes: o.maxSlotWalKeepSize } : {}),
  });
  let metrics: MetricsServer | null = null;
  if (metricsPort !== undefined) {
    try {
      metrics = await startMonitoringServer(p, { port: metricsPort, host: '127.0.0.1' });
    } catch (e) {
      await p.close();
      throw e;
    }
  }
  const load = o.load === undefined ? null : startLoad(p, { rate: o.load, clients: o.loadClients ?? 8, valueBytes: o.loadValueBytes ?? 100 });
  const stopStatus = startPrimaryStatusLines(p, o.statusEveryMs ?? (load ? LOAD_STATUS_EVERY_MS : 0), () => load?.commits ?? p.stats().commits, load);
  if (!o.quiet) p.on('log', (l: { level: string; message: string }) => console.error(`${l.level.toUpperCase()}: ${l.message}`));
  p.on('error', (e: Error) => console.error(`ERROR: ${e.message}`));
  // The signal handlers go in before the ready line: a SIGTERM right after it must shut down
  // cleanly, not meet the default disposition.
  const stopped = untilSignal(async () => {
    stopStatus();
    await load?.stop();
    await metrics?.close();
    await p.close();
  });
  console.log(JSON.stringify({ listening: { host: o.host, port: p.port }, ...(metrics ? { metrics: metrics.url } : {}), systemIdentifier: p.systemIdentifier, timeline: p.timeline, flushLsn: lsnToString(p.stats().flushLsn), dataDir: p.dataDir }));
  await stopped;
  console.error('shut down');
}

/**
 * Status lines on stderr every `everyMs` (none for 0): the header once, then one line per standby
 * with the commit rate since the last line. A load that stopped on an error says so once, on
 * its own line. Returns the stop function.
 */
function startPrimaryStatusLines(p: Primary, everyMs: number, commits: () => number, load: LoadHandle | null): () => void {
  if (everyMs === 0) return () => undefined;
  const rate = commitRateMeter(commits);
  let headerDone = false;
  let loadErrorShown = false;
  const timer = setInterval(() => {
    if (!headerDone) {
      console.error(statusHeader(PRIMARY_COLUMNS));
      headerDone = true;
    }
    for (const line of primaryStatusLines(new Date(), rate(), p.stats().flushLsn, p.replicationStatus())) console.error(line);
    if (load?.error && !loadErrorShown) {
      console.error(`ERROR: load stopped: ${load.error.message}`);
      loadErrorShown = true;
    }
  }, everyMs);
  return () => clearInterval(timer);
}
