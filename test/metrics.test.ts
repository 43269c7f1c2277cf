// `walstream primary|standby --metrics-port` on the command line: the standby's /metrics carries
// pg_stat_wal_receiver's positions, lag, connected state, timeline and connection counters
// (scraped over HTTP), the primary's carries each standby's pg_stat_replication positions labelled
// by application_name (no pid), both carry the default process metrics; /healthz and /status on
// the same port (/status and the commands' first JSON line print LSNs as X/X); the standby's /healthz turns 503 when its primary stops. Bad monitoring options
// end the command with one line naming the option.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { LAG_SAMPLES_MAX, StandbyLagClock } from '../src/standby/standby-metrics.js';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'walstream.js');
/** Bound of every wait for a state (a hang bound, not a timing assertion). */
const HANG_MS = 60_000;
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  dirs.forEach(rmrf);
});

/** A walstream command as a child process; resolves its first stdout line (JSON). */
async function start(args: string[]): Promise<{ proc: ChildProcess; first: Record<string, unknown>; err: () => string }> {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const first = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.once('exit', (c) => reject(new Error(`walstream ${args[0]} exited ${c}: ${err}`)));
  });
  return { proc, first: JSON.parse(first) as Record<string, unknown>, err: () => err };
}

async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  proc.kill('SIGTERM');
  const [code] = (await once(proc, 'exit')) as [number | null];
  return code;
}

/** Scrape `url` until `want` holds for the text (a state: e.g. a series appeared). */
async function scrapeUntil(url: string, want: (text: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + HANG_MS;
  for (;;) {
    const text = await (await fetch(url)).text();
    if (want(text)) return text;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${HANG_MS} ms in:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const series = (text: string, prefix: string) => text.split('\n').filter((l) => l.startsWith(prefix));
function value(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  assert.ok(line, `missing ${name} in:\n${text}`);
  return Number(line.slice(name.length + 1));
}

test("StandbyLagClock: a position's lag is the age of the oldest WAL known past it; merging when full never under-reports", () => {
  const c = new StandbyLagClock();
  assert.equal(c.lagSeconds(0, 1000), 0, 'nothing known: no lag');
  c.note(100, 1000);
  c.note(100, 1500); // not forward: ignored
  c.note(200, 2000);
  assert.equal(c.lagSeconds(200, 3000), 0, 'caught up');
  assert.equal(c.lagSeconds(150, 3000), 1, 'WAL past 150 known since 2000 ms');
  assert.equal(c.lagSeconds(50, 3000), 2, 'WAL past 50 known since 1000 ms');
  assert.equal(c.lagSeconds(50, 9000), 8, 'keeps growing while the position stays');
  c.trim(100);
  assert.equal(c.lagSeconds(150, 3000), 1);
  assert.equal(c.lagSeconds(100, 3000), 1, 'trimmed notes at or below 100: the next one counts');
  // Full: pairs merge into the later position with the earlier time (lag rounded up, never down).
  const d = new StandbyLagClock();
  for (let i = 1; i <= LAG_SAMPLES_MAX + 1; i++) d.note(i * 10, i);
  const now = 1_000_000;
  assert.equal(d.lagSeconds(5, now), (now - 1) / 1000, 'the oldest time survives');
  assert.equal(d.lagSeconds(15, now), (now - 1) / 1000, 'WAL past 15 was known since 2 ms: merged, reported since 1 ms');
  assert.equal(d.lagSeconds(25, now), (now - 3) / 1000);
  for (let pos = 0; pos <= (LAG_SAMPLES_MAX + 1) * 10; pos += 7) {
    const trueSince = Math.floor(pos / 10) + 1; // the first note past pos
    if (trueSince <= LAG_SAMPLES_MAX + 1) assert.ok(d.lagSeconds(pos, now) >= (now - trueSince) / 1000, `never under-reported at ${pos}`);
  }
  assert.equal(d.lagSeconds(LAG_SAMPLES_MAX * 10 + 10, now), 0);
});

test('walstream primary and standby --metrics-port: series over HTTP, /healthz, /status', async () => {
  const dir = tmpDir('walstream-metrics-');
  dirs.push(dir);
  const prim = await start(['primary', '--data', path.join(dir, 'p'), '--port', '0', '--metrics-port', '0']);
  const port = (prim.first.listening as { port: number }).port;
  const pUrl = prim.first.metrics as string;
  assert.match(pUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const sb = await start(['standby', '--data', path.join(dir, 's'), '--primary', `host=127.0.0.1 port=${port} user=rep application_name=s1`,
    '--metrics-port', '0', '--healthz-max-lag-bytes', String(16 << 20), '--status-every-ms', '0', '--reader-threads', '0', '--status-interval-ms', '100']);
  const sUrl = sb.first.metrics as string;
  assert.match(sUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  assert.notEqual(sUrl, pUrl);

  // The standby's series.
  let text = await scrapeUntil(sUrl, (t) => t.includes('walstream_wal_receiver_connected 1') && t.includes('walstream_wal_receiver_connects_total 1'), 'a connected walreceiver');
  assert.equal(value(text, 'walstream_in_recovery'), 1);
  assert.equal(value(text, 'walstream_timeline'), 1);
  assert.equal(value(text, 'walstream_wal_receiver_received_tli'), 1);
  assert.equal(value(text, 'walstream_wal_receiver_status{status="streaming"}'), 1);
  assert.equal(value(text, 'walstream_wal_receiver_status{status="waiting"}'), 0);
  assert.equal(value(text, 'walstream_wal_receiver_connects_total'), 1);
  assert.equal(value(text, 'walstream_wal_receiver_reconnects_total'), 0);
  assert.equal(value(text, 'walstream_wal_receiver_info{application_name="s1",slot_name="",mode="replica"}'), 1);
  const pos = (p: string) => value(text, `walstream_wal_receiver_lsn_bytes{position="${p}"}`);
  assert.ok(pos('replay') <= pos('flushed') && pos('flushed') <= pos('written'), 'replay <= flushed <= written');
  assert.ok(pos('written') > 0);
  for (const level of ['write', 'flush', 'replay']) {
    assert.equal(series(text, `walstream_wal_receiver_lag_bytes{position="${level}"} `).length, 1, `lag bytes ${level}`);
    assert.equal(series(text, `walstream_wal_receiver_lag_seconds{position="${level}"} `).length, 1, `lag seconds ${level}`);
  }
  assert.equal(value(text, 'walstream_replay_paused'), 0);
  assert.equal(series(text, 'process_cpu_user_seconds_total ').length, 1, 'default process metrics');
  assert.equal(series(text, 'nodejs_heap_size_used_bytes ').length, 1, 'default Node.js metrics');

  // The primary's: its standby by application_name, positions as the standby reports them.
  const info = 'walstream_replication_info{application_name="s1",client_addr="127.0.0.1",state="streaming",sync_state="async"} 0';
  text = await scrapeUntil(pUrl, (t) => t.includes('walstream_replication_lsn_bytes{application_name="s1",position="replay"}') && t.includes(info), "the standby streaming, with its replay position, on the primary");
  assert.equal(series(text, info).length, 1, text);
  assert.equal(series(text, 'walstream_replication_senders ').length, 1);
  assert.equal(value(text, 'walstream_replication_senders'), 1);
  assert.ok(!/^walstream_replication_\w+\{[^}]*pid=/m.test(text), 'no pid labels');
  assert.equal(value(text, 'walstream_in_recovery'), 0);
  assert.equal(value(text, 'walstream_timeline'), 1);
  assert.ok(value(text, 'walstream_checkpoints_total') >= 1);
  assert.equal(series(text, 'walstream_wal_lsn_bytes{position="insert"} ').length, 1);
  assert.equal(series(text, 'process_resident_memory_bytes ').length, 1, 'default process metrics');

  // /healthz and /status on both.
  const get = async (url: string, p: string) => {
    const res = await fetch(url.replace(/\/metrics$/, p));
    return { code: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  let h = await get(pUrl, '/healthz');
  assert.deepEqual([h.code, h.body.role, h.body.healthy], [200, 'primary', true]);
  h = await get(sUrl, '/healthz');
  assert.deepEqual([h.code, h.body.role, h.body.healthy, h.body.walReceiverStatus], [200, 'standby', true, 'streaming']);
  const st = await get(sUrl, '/status');
  assert.equal(st.code, 200);
  assert.equal(st.body.role, 'standby');
  assert.equal((st.body.walReceiver as { status: string }).status, 'streaming');
  // /status and the commands' first JSON line are text: their LSNs are PostgreSQL's X/X.
  const X_X = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
  const rcv = st.body.walReceiver as Record<string, string>;
  for (const k of ['receive_start_lsn', 'written_lsn', 'flushed_lsn', 'latest_end_lsn', 'replay_lsn']) assert.match(rcv[k]!, X_X, k);
  for (const k of ['redoLsn', 'minRecoveryPoint']) assert.match(st.body[k] as string, X_X, k);
  assert.match(prim.first.flushLsn as string, X_X);
  assert.match((sb.first.standby as { replayLsn: string }).replayLsn, X_X);
  const pst = (await get(pUrl, '/status')).body;
  assert.equal(pst.role, 'primary');
  for (const k of ['insertLsn', 'writeLsn', 'flushLsn']) assert.match(pst[k] as string, X_X, k);
  const row = (pst.replication as Array<Record<string, string>>).find((r) => r.application_name === 's1')!;
  for (const k of ['sent_lsn', 'write_lsn', 'flush_lsn', 'replay_lsn']) assert.match(row[k]!, X_X, k);

  // The primary stops: the standby's walreceiver is no longer streaming.
  assert.equal(await stop(prim.proc), 0, prim.err());
  const deadline = Date.now() + HANG_MS;
  do {
    h = await get(sUrl, '/healthz');
    if (h.code === 503) break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  assert.equal(h.code, 503, JSON.stringify(h.body));
  assert.equal(h.body.reason, 'not_streaming');
  text = await (await fetch(sUrl)).text();
  assert.equal(value(text, 'walstream_wal_receiver_connected'), 0);
  assert.equal(await stop(sb.proc), 0, sb.err());
});

test('monitoring options: one line naming the option', async () => {
  const dir = tmpDir('walstream-metrics-opts-');
  dirs.push(dir);
  const run = async (args: string[]) => {
    const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const [code] = (await once(proc, 'exit')) as [number | null];
    return { code, err };
  };
  let r = await run(['standby', '--data', path.join(dir, 's'), '--primary', 'host=127.0.0.1 port=1 user=rep', '--healthz-max-lag-ms', '100']);
  assert.equal(r.code, 1);
  assert.equal(r.err, 'walstream: invalid value for option "--healthz-max-lag-ms": /healthz is served on --metrics-port, which is not given\n');
  r = await run(['standby', '--data', path.join(dir, 's'), '--metrics-port', '0', '--healthz-max-lag-bytes', '-1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^walstream: option '--healthz-max-lag-bytes <bytes>' argument '-1' is invalid\. Expected an integer >= 0\.\n$/);
  r = await run(['standby', '--data', path.join(dir, 's'), '--metrics-port', '70000']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^walstream: option '--metrics-port \[port\]' argument '70000' is invalid\. Expected an integer from 0 to 65535\.\n$/);
});
