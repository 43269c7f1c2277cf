// Status lines (src/cli/status-lines.ts) and the write load (src/cli/load.ts): the headers match
// their snapshot (test/snapshots/status-lines.headers.txt; UPDATE_SNAPSHOTS=1 rewrites it), every
// line starts with an ISO timestamp and keeps its columns under the header's, the standby's time
// lag is the age of the oldest reported WAL not yet written / flushed / replayed, the load never
// commits more than its schedule allows and stops without waiting for a slot, `walstream primary
// --load` drives a standby that replays what it commits, with status lines on stderr, and
// `walstream status` says when it was taken and shows byte lag beside time lag.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import type { ReplicationStatusRow } from '../src/replication/server.js';
import type { WalReceiverStatus } from '../src/standby/wal-receiver-status.js';
import { LOAD_TABLE, startLoad } from '../src/cli/load.js';
import { PRIMARY_COLUMNS, primaryStatusLines, STANDBY_COLUMNS, StandbyLagTracker, statusHeader } from '../src/cli/status-lines.js';
import { formatStatus } from '../src/cli/status.js';
import { ROOT } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const BIN = path.join(ROOT, 'bin', 'walstream.js');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Where each column starts in a line (runs of non-blanks). */
const starts = (line: string) => [...line.matchAll(/\S+/g)].map((m) => m.index);

test('status line headers match their snapshot', () => {
  const text = `primary: ${statusHeader(PRIMARY_COLUMNS)}\nstandby: ${statusHeader(STANDBY_COLUMNS)}\n`;
  const file = path.join(ROOT, 'test', 'snapshots', 'status-lines.headers.txt');
  if (process.env.UPDATE_SNAPSHOTS === '1') fs.writeFileSync(file, text);
  assert.equal(text, fs.readFileSync(file, 'utf8'));
});

const row = (over: Partial<ReplicationStatusRow>): ReplicationStatusRow => ({
  pid: 1, application_name: 'standby1', client_addr: '127.0.0.1', client_port: 5, backend_start: new Date(0), state: 'streaming',
  sent_lsn: 0x3000148, write_lsn: 0x3000148, flush_lsn: 0x3000000, replay_lsn: 0x2FFF000, receive_lsn: null, reply_time: null,
  backend_xmin: null, sent_lag_bytes: 0, write_lag_bytes: 0, flush_lag_bytes: 328, replay_lag_bytes: 4424, sync_priority: 0, sync_state: 'async',
  write_lag_ms: 0, flush_lag_ms: 1.6, replay_lag_ms: 2.4, ...over,
});

test('primary lines: a timestamp first, one line per standby, columns under the header', () => {
  const now = new Date('2026-12-07T21:54:29.123Z');
  const header = statusHeader(PRIMARY_COLUMNS);
  const lines = primaryStatusLines(now, 1234.4, 0x3000148, [row({}), row({ application_name: 'my app', state: 'catchup', write_lag_ms: null, replay_lsn: null, replay_lag_bytes: null })]);
  assert.equal(lines.length, 2);
  for (const l of lines) {
    const f = l.split(/\s+/);
    assert.equal(f.length, PRIMARY_COLUMNS.length, l);
    assert.match(f[0]!, ISO);
    assert.deepEqual(starts(l).filter((_, i) => PRIMARY_COLUMNS[i]!.align === 'left'), starts(header).filter((_, i) => PRIMARY_COLUMNS[i]!.align === 'left'), l);
  }
  const cols = Object.fromEntries(PRIMARY_COLUMNS.map((c, i) => [c.name, lines[1]!.split(/\s+/)[i]]));
  assert.deepEqual(cols, {
    time: '2026-12-07T21:54:29.123Z', commits_per_s: '1234', primary_flush_lsn: '0/3000148', application_name: 'my_app', state: 'catchup',
    sent_lsn: '0/3000148', write_lsn: '0/3000148', flush_lsn: '0/3000000', replay_lsn: '-', write_lag_bytes: '0', write_lag_ms: '-',
    flush_lag_bytes: '328', flush_lag_ms: '2', replay_lag_bytes: '-', replay_lag_ms: '2', sync_state: 'async',
  });
  // No standby: still one line, with "-" for the standby's columns.
  const none = primaryStatusLines(now, 0, 0x3000148, []);
  assert.equal(none.length, 1);
  assert.deepEqual(none[0]!.split(/\s+/).slice(1), ['0', '0/3000148', ...Array<string>(PRIMARY_COLUMNS.length - 3).fill('-')]);
});

const rcv = (over: Partial<WalReceiverStatus>): WalReceiverStatus => ({
  pid: 1, status: 'streaming', receive_start_lsn: 0x1000000, receive_start_tli: 1, written_lsn: 0x100, flushed_lsn: 0x100, received_tli: 1,
  last_msg_send_time: null, last_msg_receipt_time: null, latest_end_lsn: 0x100, latest_end_time: null, slot_name: null, sender_host: '127.0.0.1',
  sender_port: 5, conninfo: '', replay_lsn: 0x100, last_xact_replay_timestamp: null, write_lag_bytes: 0, flush_lag_bytes: 0, replay_lag_bytes: 0,
  replay_delay_ms: null, bytes_received: 0, fsyncs: 0, messages: 0, records_replayed: 0, replies_sent: 0, connects: 1, bytes_written_direct: 0,
  apply_reports_put_off: 0, ...over,
});

test('standby lag: the age of the oldest reported WAL not yet written, flushed, replayed', () => {
  const lag = new StandbyLagTracker();
  const col = (line: string, name: string) => line.split(/\s+/)[STANDBY_COLUMNS.findIndex((c) => c.name === name)];
  lag.sample(rcv({ latest_end_lsn: 0x200, latest_end_time: new Date(1000) }), 1000);
  lag.sample(rcv({ latest_end_lsn: 0x300, latest_end_time: new Date(1100) }), 1100);
  lag.sample(rcv({ latest_end_lsn: 0x300, latest_end_time: new Date(1200) }), 1200); // no new WAL: no sample
  const behind = rcv({ latest_end_lsn: 0x300, written_lsn: 0x300, flushed_lsn: 0x200, replay_lsn: 0x100, write_lag_bytes: 0, flush_lag_bytes: 256, replay_lag_bytes: 256 });
  const l1 = lag.line(behind, new Date(1500));
  assert.match(col(l1, 'time')!, ISO);
  assert.deepEqual(['write_lag_bytes', 'write_lag_ms', 'flush_lag_bytes', 'flush_lag_ms', 'replay_lag_bytes', 'replay_lag_ms'].map((n) => col(l1, n)), ['0', '0', '256', '400', '256', '500']);
  assert.deepEqual(['latest_end_lsn', 'written_lsn', 'flushed_lsn', 'replay_lsn'].map((n) => col(l1, n)), ['0/300', '0/300', '0/200', '0/100'], 'LSN columns print X/X');
  assert.equal(col(lag.line(rcv({ latest_end_lsn: 0x1_7fd0fa98 }), new Date(2000)), 'latest_end_lsn'), '1/7FD0FA98');
  // Caught up: every time lag is 0; wal-only (no replay): "-".
  const l2 = lag.line(rcv({ latest_end_lsn: 0x300, written_lsn: 0x300, flushed_lsn: 0x300, replay_lsn: 0x300 }), new Date(2000));
  assert.deepEqual(['write_lag_ms', 'flush_lag_ms', 'replay_lag_ms'].map((n) => col(l2, n)), ['0', '0', '0']);
  const l3 = lag.line(rcv({ latest_end_lsn: 0x300, written_lsn: 0x300, flushed_lsn: 0x300, replay_lsn: null }), new Date(2000));
  assert.deepEqual(['replay_lsn', 'replay_lag_bytes', 'replay_lag_ms'].map((n) => col(l3, n)), ['-', '-', '-']);
});

test('the load commits no more than its schedule: rate × elapsed + one per client', async (t) => {
  const dir = tmpDir('walstream-load-');
  const p = await Primary.open({ dataDir: dir });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  const rate = 400;
  const clients = 4;
  const t0 = performance.now();
  const load = startLoad(p, { rate, clients, valueBytes: 64 });
  await new Promise((r) => setTimeout(r, 500));
  await load.stop();
  const elapsedS = (performance.now() - t0) / 1000;
  assert.equal(load.error, null);
  assert.ok(load.commits > 0, 'the load committed');
  assert.ok(load.commits <= Math.ceil(rate * elapsedS) + clients, `${load.commits} commits in ${elapsedS} s at ${rate}/s`);
  const rows = p.scan(LOAD_TABLE);
  assert.ok(rows.length > 0 && rows.length <= load.commits);
  assert.ok(rows.every((r) => (r.value as Uint8Array).length === 64));
});

test('walstream primary --load: a standby replays the load; status lines on stderr; SIGTERM ends it cleanly', async (t) => {
  const dir = tmpDir('walstream-load-cli-');
  const proc = spawn(process.execPath, [BIN, 'primary', '--data', path.join(dir, 'p'), '--port', '0', '--load', '200', '--load-clients', '2', '--load-value-bytes', '32', '--status-every-ms', '100'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  let s: Standby | null = null;
  t.after(async () => {
    await s?.close();
    if (proc.exitCode === null) proc.kill('SIGKILL');
    rmrf(dir);
  });
  const until = async (cond: () => boolean, what: string) => {
    for (let i = 0; !cond(); i++) {
      if (i > 600 || proc.exitCode !== null) assert.fail(`${what}: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until(() => out.includes('\n'), 'the listening line');
  const info = JSON.parse(out.split('\n')[0]!) as { listening: { port: number } };
  s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: `host=127.0.0.1 port=${info.listening.port} user=rep application_name=s1`, readerThreads: 0 });
  const lines = () => err.split('\n').filter((l) => /^\S+Z /.test(l));
  await until(() => lines().some((l) => l.split(/\s+/)[3] === 's1' && l.split(/\s+/)[4] === 'streaming'), 'a status line for s1');
  await until(() => s!.scan(LOAD_TABLE).length > 0, 'the standby to replay load rows');
  assert.equal(err.split('\n').filter((l) => l.startsWith('time ')).length, 1, 'one header line');
  assert.equal(err.split('\n').find((l) => l.startsWith('time ')), statusHeader(PRIMARY_COLUMNS));
  for (const l of lines()) assert.equal(l.split(/\s+/).length, PRIMARY_COLUMNS.length, l);
  proc.kill('SIGTERM');
  const [code] = (await once(proc, 'exit')) as [number | null];
  assert.equal(code, 0, err);
  assert.ok(s.scan(LOAD_TABLE).every((r) => (r.value as Uint8Array).length === 32));
});

test('walstream status: the time it was taken, byte lag beside time lag per level', () => {
  // /status's JSON carries X/X text (src/cli/http-endpoint.ts formats the API's numbers).
  const statusRow = { ...row({}), sent_lsn: '0/3000148', write_lsn: '0/3000148', flush_lsn: '0/3000000', replay_lsn: '0/2FFF000' };
  const text = formatStatus({ systemIdentifier: '7716689170669883634', timeline: 1, insertLsn: '0/3000148', flushLsn: '0/3000148', synchronousStandbyNames: '', replication: [statusRow], slots: [] }, new Date('2026-12-07T21:54:29.123Z'));
  const lines = text.split('\n');
  assert.equal(lines[0], 'time 2026-12-07T21:54:29.123Z  system 7716689170669883634  timeline 1  insert 0/3000148  flush 0/3000148');
  const header = lines[3]!.split('|').map((h) => h.trim());
  assert.deepEqual(header.slice(header.indexOf('write_lag_bytes'), header.indexOf('replay_lag_ms') + 1), ['write_lag_bytes', 'write_lag_ms', 'flush_lag_bytes', 'flush_lag_ms', 'replay_lag_bytes', 'replay_lag_ms']);
  const cells = lines[5]!.split('|').map((c) => c.trim());
  assert.deepEqual(cells.slice(header.indexOf('write_lag_bytes'), header.indexOf('replay_lag_ms') + 1), ['0', '0.000', '328', '1.600', '4424', '2.400']);
});

test('stopping a slow load wakes the clients waiting for their slot (no timer has to fire)', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir('walstream-load-stop-');
  const p = await Primary.open({ dataDir: dir });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  // Timers are frozen: a client whose slot is in the future sleeps until stop() wakes it.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  // 1 commit/s over 8 clients: client 0 commits at once, the others' slots are 1..7 s away.
  const load = startLoad(p, { rate: 1, clients: 8, valueBytes: 1 });
  for (let i = 0; load.commits < 1; i++) {
    assert.ok(i < 100_000, 'the first commit');
    await new Promise((r) => setImmediate(r));
  }
  await load.stop();
  t.mock.timers.reset();
  assert.equal(load.error, null);
  assert.equal(load.commits, 1);
  assert.equal(p.scan(LOAD_TABLE).length, 1);
});
