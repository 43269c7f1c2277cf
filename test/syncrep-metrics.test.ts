// Monitoring pieces: the lag tracker (time lag that stays meaningful while the primary is idle),
// the prom-client registry filled at scrape time, sync-wait outcomes, and the HTTP endpoint on
// 127.0.0.1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PG_BIN, rmrf, tmpDir } from './helpers/tmp.js';
import { startMetricsServer } from '../src/cli/http-endpoint.js';
import { LagTracker } from '../src/replication/lag.js';
import { WalstreamMetrics, type MetricsSource } from '../src/replication/metrics.js';

test('LagTracker: age of the oldest unconfirmed WAL; 0 when caught up; grows while idle; bounded', () => {
  const lt = new LagTracker(4);
  assert.equal(lt.lagMs(0, 0), null, 'unknown position');
  lt.record(100, 1000);
  lt.record(200, 1010);
  lt.record(300, 1020);
  assert.equal(lt.lagMs(300, 1030), 0);
  assert.equal(lt.lagMs(250, 1030), 10); // WAL 250..300 was flushed at 1020
  assert.equal(lt.lagMs(50, 1030), 30);
  // Primary idle, standby stuck: the lag keeps growing (PostgreSQL would show NULL).
  assert.equal(lt.lagMs(150, 61_010), 60_000);
  // Full ring: the newest sample moves forward and keeps its (older) time.
  lt.record(400, 1030);
  lt.record(500, 1040);
  lt.record(600, 1050);
  assert.equal(lt.samples, 4);
  assert.equal(lt.lagMs(450, 1100), 70, 'rounded towards older, never younger');
  lt.record(600, 2000); // not ahead: ignored
  lt.trim(250);
  assert.equal(lt.samples, 2);
  assert.equal(lt.lagMs(250, 1100), 80);
});

test('registry: positions, cumulative counters, per-standby lag, slots, sync waits; HTTP endpoint', async (t) => {
  let commits = 10;
  let standbys: ReturnType<NonNullable<MetricsSource['standbys']>> = [
    {
      applicationName: 'standby1', clientAddr: '127.0.0.1', state: 'streaming', syncState: 'sync', syncPriority: 1,
      lsn: { sent: 0x2fff000, write: 0x2ffef80, flush: 0x2ffef00, replay: null },
      lagBytes: { sent: 0, write: 128, flush: 256, replay: null }, lagSeconds: { write: 0.001, flush: 0.002, replay: null },
    },
    // A second walsender with the same application_name, further behind: its figures are the series'.
    {
      applicationName: 'standby1', clientAddr: '127.0.0.1', state: 'catchup', syncState: 'potential', syncPriority: 1,
      lsn: { sent: 0x2f00000, write: 0x2e00000, flush: 0x2e00000, replay: null },
      lagBytes: { sent: 0xff000, write: 0x1ff000, flush: 0x1ff000, replay: null }, lagSeconds: { write: 2, flush: 2, replay: null },
    },
    {
      applicationName: 'standby2', clientAddr: null, state: 'streaming', syncState: 'async', syncPriority: 0,
      lsn: { sent: 0x2fff000, write: 0x2fff000, flush: 0x2fff000, replay: 0x2fff000 },
      lagBytes: { sent: 0, write: 0, flush: 0, replay: 0 }, lagSeconds: { write: 0, flush: 0, replay: 0 },
    },
  ];
  const m = new WalstreamMetrics({
    primary: () => ({ insertLsn: 0x3000100, writeLsn: 0x3000000, flushLsn: 0x2fff000, commits, walFsyncs: 4, walWrites: 5, walBytesWritten: 65536, checkpoints: 1 }),
    standbys: () => standbys,
    slots: () => [{ name: 's1', active: true, walStatus: 'reserved', retainedBytes: 4096 }],
    syncDegraded: () => false,
    timeline: () => 3,
  });
  m.recordSyncWait({ outcome: 'confirmed', confirmed: true, lsn: 1, mode: 'remote_flush', waitedMs: 0.3 });
  m.recordSyncWait({ outcome: 'timeout', confirmed: false, lsn: 2, mode: 'remote_apply', waitedMs: 1500 });
  let text = await m.metrics();
  const has = (line: string) => assert.ok(text.split('\n').includes(line), `missing: ${line}\n${text}`);
  has(`walstream_wal_lsn_bytes{position="flush"} ${0x2fff000}`);
  has('walstream_commits_total 10');
  has('walstream_wal_fsyncs_total 4');
  has(`walstream_replication_lsn_bytes{application_name="standby1",position="flush"} ${0x2e00000}`);
  has(`walstream_replication_lag_bytes{application_name="standby1",position="flush"} ${0x1ff000}`);
  has('walstream_replication_lag_seconds{application_name="standby1",position="write"} 2');
  has('walstream_replication_info{application_name="standby1",client_addr="127.0.0.1",state="catchup",sync_state="potential"} 1');
  has('walstream_replication_info{application_name="standby2",client_addr="",state="streaming",sync_state="async"} 0');
  has(`walstream_replication_lsn_bytes{application_name="standby2",position="replay"} ${0x2fff000}`);
  has('walstream_replication_senders 3');
  has('walstream_in_recovery 0');
  has('walstream_timeline 3');
  assert.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics');
  assert.match(text, /^nodejs_eventloop_lag_seconds /m, 'default Node.js metrics');
  assert.equal(text.split('\n').filter((l) => l.startsWith('walstream_replication_info{')).length, 2, 'one series per application_name');
  has('walstream_replication_slot_retained_bytes{slot_name="s1",wal_status="reserved",active="true"} 4096');
  has('walstream_sync_degraded 0');
  has('walstream_sync_wait_outcomes_total{outcome="confirmed",mode="remote_flush"} 1');
  has('walstream_sync_wait_outcomes_total{outcome="timeout",mode="remote_apply"} 1');
  has('walstream_sync_wait_seconds_bucket{le="0.0005",mode="remote_flush"} 1');
  assert.ok(!text.includes('application_name="standby1",position="replay"'), 'unknown positions and lags are not exported');

  // Counters follow the primary's cumulative figures; a departed standby disappears.
  commits = 25;
  standbys = [];
  const srv = await startMetricsServer({ port: 0, registry: m.registry });
  t.after(() => srv.close());
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const res = await fetch(srv.url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  text = await res.text();
  has('walstream_commits_total 25');
  assert.ok(!text.includes('application_name="standby1"'));
  assert.equal((await fetch(srv.url.replace('/metrics', '/other'))).status, 404);
  assert.equal((await fetch(srv.url, { method: 'POST' })).status, 405);
});

test('walstream primary --metrics-port and walstream status (table and --json)', async (t) => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const bin = path.join(root, 'bin', 'walstream.js');
  const dir = tmpDir('walstream-status-');
  const child = spawn(process.execPath, [bin, 'primary', '--data', path.join(dir, 'data'), '--port', '0', '--metrics-port', '0', '--synchronous-standby-names', 'ANY 1 (s1, s2)'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmrf(dir);
  });
  const first = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (c) => reject(new Error(`primary exited ${c}`)));
  });
  const info = JSON.parse(first) as { listening: { port: number }; metrics: string };
  assert.match(info.metrics, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const mk = spawnSync(path.join(PG_BIN, 'psql'), [`host=127.0.0.1 port=${info.listening.port} user=tester replication=true`, '-AtX', '-c', 'CREATE_REPLICATION_SLOT s1 PHYSICAL RESERVE_WAL'], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const run = (args: string[]) => new Promise<{ code: number | null; out: string }>((resolve) => {
    const c = spawn(process.execPath, [bin, 'status', '--url', info.metrics, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.once('exit', (code) => resolve({ code, out }));
  });
  const js = await run(['--json']);
  assert.equal(js.code, 0, js.out);
  const st = JSON.parse(js.out) as { synchronousStandbyNames: string; slots: Array<{ slot_name: string; wal_status: string }>; replication: unknown[] };
  assert.equal(st.synchronousStandbyNames, 'ANY 1 (s1, s2)');
  assert.deepEqual(st.slots.map((x) => [x.slot_name, x.wal_status]), [['s1', 'reserved']]);
  assert.deepEqual(st.replication, []);
  const table = await run([]);
  assert.equal(table.code, 0, table.out);
  assert.match(table.out, /synchronous_standby_names = 'ANY 1 \(s1, s2\)'/);
  assert.match(table.out, /slot_name \| temporary \| active/);
  assert.match(table.out, / s1 +\| f +\| f /);
  const res = await fetch(info.metrics);
  assert.match(await res.text(), /walstream_replication_slot_retained_bytes\{slot_name="s1",wal_status="reserved",active="false"\}/);
});
