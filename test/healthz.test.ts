// /healthz and the walreceiver's events against walstream's own primary, in this process: a
// standby is healthy while it streams within its lag bound; with replay paused
// (pg_wal_replay_pause) and WAL arriving it answers 503 `lag_bytes` (and, with a time bound,
// `lag_time`), and 200 again once resumed and caught up; when its primary goes away it answers
// 503 `not_streaming` and emits walreceiverDisconnected, and after the primary is back,
// walreceiverReconnected and 200; once promoted it is judged as a primary. A primary answers 200 while open, 503 `closed` once closing.
// Every wait is for a state, with a generous bound.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { startMonitoringServer, type MetricsServer } from '../src/cli/http-endpoint.js';
import type { HealthReport } from '../src/replication/health.js';
import type { WalReceiverConnectedEvent, WalReceiverDisconnectedEvent } from '../src/standby/standby-events.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
/** Bound of every wait for a state (a hang bound, not a timing assertion). */
const HANG_MS = 60_000;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

async function health(srv: MetricsServer): Promise<{ code: number; body: HealthReport }> {
  const res = await fetch(srv.url.replace(/\/metrics$/, '/healthz'));
  return { code: res.status, body: (await res.json()) as HealthReport };
}

/** Poll /healthz until `want` holds; returns that answer. */
async function healthUntil(srv: MetricsServer, want: (h: { code: number; body: HealthReport }) => boolean, what: string): Promise<{ code: number; body: HealthReport }> {
  const deadline = Date.now() + HANG_MS;
  let last: { code: number; body: HealthReport } | null = null;
  for (;;) {
    last = await health(srv);
    if (want(last)) return last;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${HANG_MS} ms; last: ${last.code} ${JSON.stringify(last.body)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + HANG_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${HANG_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function scrape(srv: MetricsServer): Promise<string> {
  return (await fetch(srv.url)).text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  assert.ok(line, `missing ${series}`);
  return Number(line.slice(series.length + 1));
}

/** About `bytes` of WAL in commits of 8 KiB values. */
async function writeWal(p: Primary, tag: string, bytes: number): Promise<number> {
  let lsn = 0;
  for (let i = 0; i * 8192 < bytes; i++) lsn = await p.transaction((tx) => tx.put('t', `${tag}${i}`, 'x'.repeat(8192)), { synchronousCommit: 'off' });
  return lsn;
}

test('standby /healthz: lag bound with replay paused, not_streaming without a primary, reconnection; events', async (t) => {
  const dir = tmpDir('walstream-healthz-');
  dirs.push(dir);
  let p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, users: { rep: 'secret' } });
  const port = p.port!;
  const s = await Standby.open({
    dataDir: path.join(dir, 's'),
    primaryConninfo: `host=127.0.0.1 port=${port} user=rep password=secret application_name=s1`,
    walReceiverStatusIntervalMs: 100,
    walRetrieveRetryIntervalMs: 100,
  });
  const connected: WalReceiverConnectedEvent[] = [];
  const reconnected: WalReceiverConnectedEvent[] = [];
  const disconnected: WalReceiverDisconnectedEvent[] = [];
  const states: string[] = [];
  s.on('walreceiverConnected', (e) => connected.push(e));
  s.on('walreceiverReconnected', (e) => reconnected.push(e));
  s.on('walreceiverDisconnected', (e) => disconnected.push(e));
  s.on('walreceiverStateChanged', (e) => states.push(`${e.previousState}->${e.state}`));
  const bytesBound = 64 * 1024;
  const byBytes = await startMonitoringServer(s, { port: 0, healthz: { maxLagBytes: bytesBound } });
  const byTime = await startMonitoringServer(s, { port: 0, healthz: { maxLagMs: 200 } });
  t.after(async () => {
    await byBytes.close();
    await byTime.close();
    await s.close();
    await p.close();
  });

  let h = await healthUntil(byBytes, (x) => x.code === 200, 'healthy standby');
  assert.equal(h.body.role, 'standby');
  assert.equal(h.body.walReceiverStatus, 'streaming');
  assert.equal(h.body.reason, null);
  await healthUntil(byTime, (x) => x.code === 200, 'healthy standby (time bound)');

  // Replay paused while WAL keeps arriving: behind by more than the bound.
  s.pauseReplay();
  await until(() => s.replayPauseState === 'paused', 'replay paused');
  const replayAtPause = s.replayLsn;
  const lsn = await writeWal(p, 'a', 4 * bytesBound);
  await until(() => s.flushLsn >= lsn, 'WAL flushed on the standby');
  assert.equal(s.replayLsn, replayAtPause, 'replay stays where it paused');
  h = await health(byBytes);
  assert.equal(h.code, 503);
  assert.equal(h.body.reason, 'lag_bytes');
  assert.equal(h.body.walReceiverStatus, 'streaming');
  assert.ok(h.body.lagBytes! >= lsn - replayAtPause, `lag ${h.body.lagBytes} covers the WAL written`);
  // The time bound: WAL past replay has been waiting ever longer.
  h = await healthUntil(byTime, (x) => x.code === 503, 'unhealthy by time');
  assert.equal(h.body.reason, 'lag_time');
  let text = await scrape(byBytes);
  assert.equal(value(text, 'walstream_replay_paused'), 1);
  assert.ok(value(text, 'walstream_wal_receiver_lag_bytes{position="replay"}') > bytesBound);
  assert.equal(value(text, 'walstream_wal_receiver_lag_bytes{position="flush"}'), 0, 'flushing goes on');
  assert.equal(value(text, 'walstream_wal_receiver_lsn_bytes{position="replay"}'), replayAtPause);

  // Resumed: replay catches up, healthy again on both bounds.
  s.resumeReplay();
  assert.equal(s.replayPauseState, 'not paused');
  await s.waitForReplay(lsn, HANG_MS);
  await healthUntil(byBytes, (x) => x.code === 200, 'healthy after catching up');
  await healthUntil(byTime, (x) => x.code === 200, 'healthy after catching up (time bound)');
  const caughtUp = (x: string) => value(x, 'walstream_wal_receiver_lag_bytes{position="replay"}') === 0 && value(x, 'walstream_wal_receiver_lag_seconds{position="replay"}') === 0;
  for (const deadline = Date.now() + HANG_MS; !caughtUp((text = await scrape(byBytes))); ) {
    if (Date.now() > deadline) throw new Error(`replay lag not back to 0:\n${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(value(text, 'walstream_replay_paused'), 0);

  // The primary goes away: not streaming. (The first connection came during Standby.open, before these listeners.)
  assert.equal(connected.length, 0);
  await p.close();
  h = await healthUntil(byBytes, (x) => x.code === 503, 'unhealthy without a primary');
  assert.equal(h.body.reason, 'not_streaming');
  await until(() => disconnected.length === 1, 'walreceiverDisconnected');
  assert.ok(disconnected[0]!.flushedLsn >= lsn);
  assert.equal(value(await scrape(byBytes), 'walstream_wal_receiver_connected'), 0);

  // Back on the same port: the walreceiver reconnects.
  p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port, users: { rep: 'secret' } });
  await healthUntil(byBytes, (x) => x.code === 200, 'healthy after reconnecting');
  await until(() => reconnected.length === 1, 'walreceiverReconnected');
  assert.equal(connected.length, 1);
  assert.deepEqual(reconnected, connected);
  assert.equal(connected[0]!.connects, 2);
  assert.equal(connected[0]!.senderPort, port);
  assert.equal(connected[0]!.senderHost, '127.0.0.1');
  const lsn2 = await writeWal(p, 'b', 8192);
  await s.waitForReplay(lsn2, HANG_MS);
  text = await scrape(byBytes);
  assert.equal(value(text, 'walstream_wal_receiver_connected'), 1);
  assert.equal(value(text, 'walstream_wal_receiver_connects_total'), 2);
  assert.equal(value(text, 'walstream_wal_receiver_reconnects_total'), 1);
  assert.ok(states.includes('streaming->waiting') || states.includes('streaming->starting'), `left streaming: ${states.join(', ')}`);
  assert.equal(states.filter((x) => x.endsWith('->streaming')).length, 1, `streaming again: ${states.join(', ')}`);

  // Promoted: judged (and counted) as the primary it became.
  const promoted = await s.promote();
  t.after(() => promoted.close());
  h = await health(byBytes);
  assert.deepEqual([h.code, h.body.role, h.body.reason], [200, 'primary', null]);
  assert.equal(value(await scrape(byBytes), 'walstream_in_recovery'), 0);
});

test('primary /healthz: 200 while open, 503 closed once closing; wal-only standby judged on flush lag', async (t) => {
  const dir = tmpDir('walstream-healthz-p-');
  dirs.push(dir);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0 });
  const w = await Standby.open({ dataDir: path.join(dir, 'w'), mode: 'wal-only', primaryConninfo: `host=127.0.0.1 port=${p.port} user=rep`, walReceiverStatusIntervalMs: 100 });
  const ps = await startMonitoringServer(p, { port: 0 });
  const ws = await startMonitoringServer(w, { port: 0, healthz: { maxLagBytes: 0 } });
  t.after(async () => {
    await ps.close();
    await ws.close();
    await w.close();
    await p.close();
  });
  let h = await health(ps);
  assert.equal(h.code, 200);
  assert.equal(h.body.role, 'primary');
  const lsn = await writeWal(p, 'c', 16 * 1024);
  await until(() => w.flushLsn >= lsn, 'wal-only standby flushed');
  h = await healthUntil(ws, (x) => x.code === 200, 'healthy wal-only standby');
  assert.equal(h.body.lagBytes, 0);
  assert.equal(w.replayPauseState, 'not paused');
  assert.throws(() => w.pauseReplay(), /does not replay/);
  const text = await scrape(ws);
  assert.ok(!text.includes('walstream_wal_receiver_lag_bytes{position="replay"}'), 'no replay series in wal-only mode');
  assert.equal(value(text, 'walstream_in_recovery'), 1);
  const closing = p.close();
  h = await health(ps);
  assert.equal(h.code, 503);
  assert.equal(h.body.reason, 'closed');
  await closing;
});
