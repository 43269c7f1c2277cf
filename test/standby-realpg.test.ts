// walstream's walreceiver in wal-only mode against a REAL PostgreSQL 15 primary (initdb'd here,
// SCRAM-SHA-256 authentication on 127.0.0.1, default 16 MiB segments), side by side with
// PostgreSQL's own pg_receivewal on the same server: every complete segment we write is
// byte-identical to pg_receivewal's, including after our standby is stopped and restarted in the
// middle (it resumes at its newest .partial segment, as pg_receivewal does). Also: the segment
// being received is a full-size `.partial`, and pg_stat_replication on the server shows us.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Standby } from '../src/standby/standby.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

let pg: PgCluster;
let dir: string;
let receivewal: ChildProcess | null = null;

before(async () => {
  pg = await startPgCluster({ hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256'] });
  dir = tmpDir('walstream-sbpg-');
});

after(async () => {
  if (receivewal && receivewal.exitCode === null && receivewal.signalCode === null) {
    const exited = new Promise((r) => receivewal!.once('exit', r));
    receivewal.kill('SIGINT');
    await exited;
  }
  await pg?.stop();
  rmrf(dir);
});

const SEGMENT_RE = /^[0-9A-F]{24}$/;

function completeSegments(d: string): string[] {
  return fs.existsSync(d) ? fs.readdirSync(d).filter((n) => SEGMENT_RE.test(n)).sort() : [];
}

/** Some WAL: a table, rows, then a segment switch (completes the current segment). */
function generateWal(round: number): void {
  pg.psql(`create table if not exists t${round % 2} (id int, pad text); insert into t${round % 2} select g, repeat('x', 200) from generate_series(1, 3000) g; select pg_switch_wal();`);
}

test('wal-only standby writes segments byte-identical to pg_receivewal (with a restart in the middle)', async () => {
  const pgDir = path.join(dir, 'pg_receivewal');
  const ourDir = path.join(dir, 'standby');
  fs.mkdirSync(pgDir);
  let rwOut = '';
  receivewal = spawn(pg.bin('pg_receivewal'), ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-D', pgDir, '-w', '-v', '--no-loop'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: pg.clientEnv(),
  });
  receivewal.stdout!.on('data', (d) => (rwOut += d));
  receivewal.stderr!.on('data', (d) => (rwOut += d));
  const conninfo = `host=${pg.host} port=${pg.port} user=postgres password=${pg.superuserPassword} application_name=walstream_test`;
  const open = () => Standby.open({ dataDir: ourDir, mode: 'wal-only', primaryConninfo: conninfo, walRetrieveRetryIntervalMs: 200 });
  let s = await open();
  try {
    assert.equal(s.store, null);
    assert.equal(s.pool, null);
    await waitFor(() => s.receiverStatus().status === 'streaming', 15_000, 'our walreceiver to stream');
    await waitFor(() => fs.readdirSync(pgDir).some((n) => n.endsWith('.partial')), 15_000, `pg_receivewal to start: ${rwOut}`);
    const walDir0 = path.join(ourDir, 'pg_wal');
    await waitFor(() => fs.readdirSync(walDir0).some((n) => n.endsWith('.partial')), 15_000, 'our first .partial segment');
    const st = s.receiverStatus();
    assert.equal(st.receive_start_tli, 1);
    assert.equal(st.receive_start_lsn % (16 << 20), 0, 'streaming starts at a segment start (PostgreSQL 15\'s default 16 MiB wal_segment_size)');
    assert.equal(st.sender_host, pg.host);
    assert.equal(st.sender_port, pg.port);
    assert.match(st.conninfo, /password=\*{8}/);
    assert.equal(st.replay_lsn, null);
    const walDir = walDir0;
    // the segment being received is a full-size, zero-filled .partial file
    const partial = fs.readdirSync(walDir).find((n) => n.endsWith('.partial'));
    assert.ok(partial, 'a .partial segment exists');
    assert.equal(fs.statSync(path.join(walDir, partial)).size, 16 * 1024 * 1024);
    const app = pg.psql("select application_name, state from pg_stat_replication where application_name = 'walstream_test'").trim();
    assert.equal(app, 'walstream_test|streaming');

    generateWal(1);
    generateWal(2);
    await waitFor(() => completeSegments(walDir).length >= 2, 30_000, 'our first complete segments');
    // stop ours in the middle, let the server move on by several segments, then resume: the
    // catch-up (more than two segments behind) is written with O_DIRECT
    await s.close();
    for (let r = 3; r < 7; r++) generateWal(r);
    s = await open();
    generateWal(7);
    await waitFor(() => completeSegments(pgDir).length >= 4, 30_000, 'pg_receivewal segments');
    const target = completeSegments(pgDir);
    await waitFor(() => target.every((n) => fs.existsSync(path.join(walDir, n))), 30_000, `our segments ${target.join(',')}`);
    const ours = completeSegments(walDir);
    const common = target.filter((n) => ours.includes(n));
    assert.ok(common.length >= 4, `at least 4 common complete segments (got ${common.join(', ')})`);
    for (const n of common) {
      const a = fs.readFileSync(path.join(pgDir, n));
      const b = fs.readFileSync(path.join(walDir, n));
      assert.equal(b.length, a.length, `${n}: size`);
      assert.ok(a.equals(b), `${n}: byte-identical to pg_receivewal's`);
    }
    const after = s.receiverStatus();
    assert.equal(after.status, 'streaming');
    assert.ok(after.bytes_written_direct > 0, 'the catch-up after the restart was written direct');
    assert.ok(after.fsyncs > 0 && after.bytes_received > 0);
    // Caught up: our flush reaches the server's flush position (a condition, not a bound on a lag
    // that depends on how fast this machine's disk is today).
    const serverFlush = parseLsn(pg.psql('select pg_current_wal_flush_lsn()').trim());
    await waitFor(() => s.receiverStatus().flushed_lsn >= serverFlush, 30_000, `our flush reaches the server's ${lsnToString(serverFlush)}`);
  } finally {
    await s.close();
  }
});
