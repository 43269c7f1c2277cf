// `walstream primary`: run a primary as a server process (replication listener on), until SIGINT
// or SIGTERM, then shut down cleanly (walsenders finish with "COPY 0", shutdown checkpoint).
// Owns the Primary it opens; prints one "listening" line on stdout and walsender logs on stderr.

import net from 'node:net';
import { Errors } from '../errors.js';
import { Primary } from '../primary/primary.js';
import type { HbaRule } from '../replication/protocol/hba.js';
import { untilSignal } from './until-signal.js';

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
  /** Serve Prometheus /metrics and /status on 127.0.0.1:<port>. */
  metricsPort?: number;
}

/**
 * Fail with one line naming `option` when host:port cannot be listened on (in use, not permitted,
 * no such address), before anything touches the data directory. A probe: the port is released
 * again at once, so another process could still take it before the primary binds.
 */
async function assertCanListen(option: string, host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'is already in use' : e.code === 'EACCES' ? 'needs privileges this process lacks' : e.code === 'EADDRNOTAVAIL' ? 'is not an address of this machine' : `cannot be listened on (${e.code ?? e.message})`;
      reject(Errors.invalidOption(option, `${host}:${port} ${why}`));
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

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
  if (o.metricsPort !== undefined) await assertCanListen('--metrics-port', '127.0.0.1', o.metricsPort);
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
  let metrics: import('./http-endpoint.js').MetricsServer | null = null;
  if (o.metricsPort !== undefined) {
    const [{ metricsForPrimary }, { primaryStatus, startMetricsServer }] = await Promise.all([import('../replication/metrics.js'), import('./http-endpoint.js')]);
    try {
      metrics = await startMetricsServer({ port: o.metricsPort, host: '127.0.0.1', metrics: metricsForPrimary(p), status: () => primaryStatus(p) });
    } catch (e) {
      await p.close();
      throw e;
    }
  }
  if (!o.quiet) p.on('log', (l: { level: string; message: string }) => console.error(`${l.level.toUpperCase()}: ${l.message}`));
  p.on('error', (e: Error) => console.error(`ERROR: ${e.message}`));
  // The signal handlers go in before the ready line: a SIGTERM right after it must shut down
  // cleanly, not meet the default disposition.
  const stopped = untilSignal(async () => {
    await metrics?.close();
    await p.close();
  });
  console.log(JSON.stringify({ listening: { host: o.host, port: p.port }, ...(metrics ? { metrics: metrics.url } : {}), systemIdentifier: p.systemIdentifier.toString(), timeline: p.timeline, flushLsn: p.stats().flushLsn, dataDir: p.dataDir }));
  await stopped;
  console.error('shut down');
}
