// The monitoring endpoint of `walstream primary|standby --metrics-port` and of library users
// (startMonitoringServer): GET /metrics (Prometheus text format, from the node's prom-client
// Registry), GET /healthz (200 or 503 with a JSON reason, src/replication/health.ts) and GET /status
// (JSON; `walstream status` reads a primary's), on 127.0.0.1 unless told otherwise. /status is
// text for people and scripts: its LSNs are PostgreSQL's X/X, as its views print them, formatted
// here from the API's `Lsn` numbers (statusLsnText).
// startMetricsServer owns its http.Server; close() stops it and drops open connections. Nothing
// else holds a handle.

import http from 'node:http';
import type { Registry } from 'prom-client';
import { Errors } from '../errors.js';
import type { Primary } from '../primary/primary.js';
import type { Standby } from '../standby/standby.js';
import { type HealthBounds, type HealthReport, primaryHealth, resolveHealthBounds, standbyHealth } from '../replication/health.js';
import { metricsForPrimary } from '../replication/metrics.js';
import { standbyMetrics } from '../standby/standby-metrics.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { DEFAULT_METRICS_PORT } from './options.js';

export { DEFAULT_METRICS_PORT };

/** `row` with its LSN fields `keys` as X/X text (null stays null). */
function statusLsnText<T extends object, K extends keyof T>(row: T, keys: readonly K[]): Omit<T, K> & Record<K, string | null> {
  const out: Record<PropertyKey, unknown> = { ...(row as Record<PropertyKey, unknown>) };
  for (const k of keys) {
    const v = row[k] as Lsn | null;
    out[k] = v === null ? null : lsnToString(v);
  }
  return out as Omit<T, K> & Record<K, string | null>;
}

/** A JSON-friendly snapshot of a primary for `walstream status` (served at /status; LSNs as X/X). */
export function primaryStatus(p: Primary): Record<string, unknown> {
  const st = p.stats();
  return {
    role: 'primary',
    systemIdentifier: st.systemIdentifier,
    timeline: st.timeline,
    ...statusLsnText({ insertLsn: st.insertLsn, writeLsn: st.writeLsn, flushLsn: st.flushLsn }, ['insertLsn', 'writeLsn', 'flushLsn']),
    synchronousStandbyNames: p.synchronousStandbyNames,
    syncDegraded: p.syncRep.degraded,
    syncWaits: p.syncWaitCounts(),
    replication: p.replicationStatus().map((r) => statusLsnText(r, ['sent_lsn', 'write_lsn', 'flush_lsn', 'replay_lsn', 'receive_lsn'])),
    slots: p.replicationSlots().map((r) => statusLsnText(r, ['restart_lsn'])),
  };
}

/** A JSON-friendly snapshot of a standby (served at /status; LSNs as X/X). */
export function standbyStatus(s: Standby): Record<string, unknown> {
  if (s.promoted !== null) return primaryStatus(s.promoted);
  return {
    role: 'standby',
    mode: s.mode,
    systemIdentifier: s.systemIdentifier?.toString() ?? null,
    timeline: s.timeline,
    replayPauseState: s.replayPauseState,
    ...statusLsnText(s.stats(), ['redoLsn', 'minRecoveryPoint']),
    walReceiver: statusLsnText(s.receiverStatus(), ['receive_start_lsn', 'written_lsn', 'flushed_lsn', 'latest_end_lsn', 'replay_lsn']),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint

export interface MetricsServer {
  readonly port: number;
  /** The /metrics URL. */
  readonly url: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /** 0 = ephemeral. */
  port: number;
  host?: string;
  /** Served at /metrics. */
  registry: Registry;
  /** Served at /status (JSON) when given. */
  status?: () => unknown;
  /** Served at /healthz when given: 200 when healthy, else 503; the report as JSON either way. */
  health?: () => HealthReport;
}

function sendJson(res: http.ServerResponse, head: boolean, code: number, body: () => unknown): void {
  let text: string;
  try {
    text = JSON.stringify(body());
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`failed: ${(e as Error).message}\n`);
    return;
  }
  res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(head ? undefined : text + '\n');
}

/**
 * Serve `GET /metrics` (Prometheus text format), `GET /healthz` and `GET /status` (JSON) when
 * given, on host:port (127.0.0.1 unless told otherwise; port 0 = ephemeral).
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw Errors.invalidOption('port', 'must be an integer from 0 to 65535');
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const head = req.method === 'HEAD';
    if (url === '/status' && opts.status) {
      sendJson(res, head, 200, opts.status);
      return;
    }
    if (url === '/healthz' && opts.health) {
      let report: HealthReport;
      try {
        report = opts.health();
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`health check failed: ${(e as Error).message}\n`);
        return;
      }
      sendJson(res, head, report.healthy ? 200 : 503, () => report);
      return;
    }
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try /metrics${opts.health ? ', /healthz' : ''}${opts.status ? ', /status' : ''}\n`);
      return;
    }
    opts.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': opts.registry.contentType });
        res.end(head ? undefined : text);
      },
      (e: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${(e as Error).message}\n`);
      },
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const port = typeof a === 'object' && a !== null ? a.port : opts.port;
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface MonitoringOptions {
  /** Default DEFAULT_METRICS_PORT; 0 = ephemeral. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** A standby's /healthz bounds on its lag (replay lag; flush lag in wal-only mode). */
  healthz?: Partial<HealthBounds>;
}

/** /metrics, /healthz and /status of a Primary or Standby on one HTTP port. */
export function startMonitoringServer(node: Primary | Standby, opts: MonitoringOptions = {}): Promise<MetricsServer> {
  const bounds = resolveHealthBounds(opts.healthz);
  const port = opts.port ?? DEFAULT_METRICS_PORT;
  const host = opts.host ?? '127.0.0.1';
  if ('receiverStatus' in node) {
    const m = standbyMetrics(node);
    return startMetricsServer({ port, host, registry: m.registry, status: () => standbyStatus(node), health: () => standbyHealth(node, m.lag(), bounds) });
  }
  return startMetricsServer({ port, host, registry: metricsForPrimary(node).registry, status: () => primaryStatus(node), health: () => primaryHealth(node) });
}
