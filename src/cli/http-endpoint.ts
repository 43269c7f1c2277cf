// The monitoring endpoint of `walstream primary --metrics-port`: GET /metrics (Prometheus text
// format, from a WalstreamMetrics registry) and GET /status (JSON for `walstream status`), on
// 127.0.0.1 unless told otherwise. startMetricsServer owns its http.Server; close() stops it and
// drops open connections. Nothing else holds a handle.

import http from 'node:http';
import { Errors } from '../errors.js';
import type { Primary } from '../primary/primary.js';
import type { WalstreamMetrics } from '../replication/metrics.js';

/** A JSON-friendly snapshot of a primary for `walstream status` (served at /status). */
export function primaryStatus(p: Primary): Record<string, unknown> {
  const st = p.stats();
  return {
    systemIdentifier: st.systemIdentifier,
    timeline: st.timeline,
    insertLsn: st.insertLsn,
    writeLsn: st.writeLsn,
    flushLsn: st.flushLsn,
    synchronousStandbyNames: p.synchronousStandbyNames,
    syncDegraded: p.syncRep.degraded,
    syncWaits: p.syncWaitCounts(),
    replication: p.replicationStatus(),
    slots: p.replicationSlots(),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` (Prometheus text format) — and `GET /status` (JSON) when `status` is given —
 * on host:port (127.0.0.1 unless told otherwise; port 0 = ephemeral).
 */
export async function startMetricsServer(opts: { port: number; host?: string; metrics: WalstreamMetrics; status?: () => unknown }): Promise<MetricsServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw Errors.invalidOption('port', 'must be an integer from 0 to 65535');
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/status' && opts.status) {
      let body: string;
      try {
        body = JSON.stringify(opts.status());
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`status failed: ${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    opts.metrics.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': opts.metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
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
