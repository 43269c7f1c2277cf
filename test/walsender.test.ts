// Walsender against PostgreSQL 15's own clients: pg_receivewal streams from our primary (catch-up
// from segment files, then live from wal_buffers) across several 1 MiB segments while a workload
// runs, and the segments it writes are byte-identical to the primary's; psql shows
// IDENTIFY_SYSTEM; close() with pg_receivewal connected delivers everything up to the shutdown
// checkpoint ("COPY 0"); the `walstream primary` command serves SCRAM clients and stops on SIGTERM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Primary } from '../src/primary/primary.js';
import { lsnToString } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { psql } from './helpers/psql.js';
import { startPgReceivewal, waitFor } from './helpers/rawpg.js';

const SEG = 1 << 20;

async function workload(p: Primary, bytes: number, tag: string): Promise<void> {
  const target = p.insertLsn + bytes;
  let i = 0;
  const pending: Promise<unknown>[] = [];
  while (p.insertLsn < target) {
    const n = i++;
    pending.push(p.transaction((tx) => tx.put('t', `${tag}-${n}`, { n, pad: 'x'.repeat(200 + (n % 7) * 300) }), { synchronousCommit: n % 50 === 0 ? 'on' : 'off' }));
    if (pending.length >= 64) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await p.flush();
}

/** psql in replication mode, run asynchronously (the primary under test lives in this thread). */

test('pg_receivewal streams byte-identical segments; close() sends up to the shutdown checkpoint', async (t) => {
  const dir = tmpDir('walstream-ws-');
  const p = await Primary.open({
    dataDir: path.join(dir, 'data'),
    walSegmentSize: SEG,
    walBuffersBytes: 256 * 1024, // small ring: the start of the stream comes from segment files
    checkpointTimeoutMs: 0, // no checkpoint may remove segments during the comparison
    port: 0,
  });
  let closed = false;
  let rw: ReturnType<typeof startPgReceivewal> | null = null;
  t.after(async () => {
    await rw?.stop();
    if (!closed) await p.close();
    rmrf(dir);
  });
  assert.ok(typeof p.port === 'number' && p.port > 0);

  await workload(p, 2.6 * SEG, 'a');
  const idle = await psql(p.port!, 'IDENTIFY_SYSTEM');
  assert.equal(idle.status, 0, idle.stderr);
  assert.equal(idle.stdout, `${p.systemIdentifier}|1|${lsnToString(p.flushLsn)}|`);
  const show = await psql(p.port!, 'SHOW wal_segment_size');
  assert.equal(show.stdout, '1MB');

  const recv = startPgReceivewal(p.port!, path.join(dir, 'rw'));
  rw = recv;
  const startSeg = segNo(p.flushLsn, SEG);
  // The first bytes of the start segment are no longer in the 256 KiB ring: catch-up from files.
  assert.ok(p.flushLsn % SEG > 256 * 1024, 'stream must start behind the ring');
  await waitFor(() => p.replicationStatus().some((r) => r.state === 'streaming'), 10_000, 'walsender to reach streaming');

  await workload(p, 3.3 * SEG, 'b'); // live, while pg_receivewal streams
  const endSeg = segNo(p.flushLsn, SEG);
  assert.ok(endSeg - startSeg >= 3, 'several segments streamed');
  const complete: string[] = [];
  for (let s = startSeg; s < endSeg; s++) complete.push(segmentFileName(1, s, SEG));
  await waitFor(() => complete.every((n) => fs.existsSync(path.join(recv.dir, n))), 15_000, 'pg_receivewal to complete its segments');
  for (const n of complete) {
    assert.ok(fs.readFileSync(path.join(recv.dir, n)).equals(fs.readFileSync(path.join(p.walDir, n))), `segment ${n} differs`);
  }

  const st = p.replicationStatus();
  assert.equal(st.length, 1);
  assert.equal(st[0]!.application_name, 'pg_receivewal');
  assert.equal(st[0]!.client_addr, '127.0.0.1');
  assert.equal(st[0]!.state, 'streaming');
  await waitFor(() => p.replicationStatus()[0]!.sent_lsn === p.flushLsn, 5000, 'sent_lsn to reach the flush position');
  assert.equal(p.replicationStatus()[0]!.sent_lag_bytes, 0);

  // Shutdown with pg_receivewal connected: it gets everything up to the shutdown checkpoint.
  const before = p.flushLsn;
  await p.close();
  closed = true;
  const final = p.stats().flushLsn;
  assert.ok(final > before, 'the shutdown checkpoint was flushed after the workload');
  const code = await recv.exited;
  assert.notEqual(code, 0);
  assert.match(recv.output(), /replication stream was terminated before stop point/);
  const last = segmentFileName(1, segNo(final, SEG), SEG);
  const partial = path.join(recv.dir, `${last}.partial`);
  assert.ok(fs.existsSync(partial), `pg_receivewal kept ${last}.partial`);
  const got = fs.readFileSync(partial);
  const want = fs.readFileSync(path.join(p.walDir, last));
  const upTo = final % SEG;
  assert.ok(got.subarray(0, upTo).equals(want.subarray(0, upTo)), 'the partial segment holds the WAL up to the shutdown checkpoint');
  assert.ok(got.equals(want));
});

test('walstream primary (CLI) serves SCRAM clients and shuts down on SIGTERM', async (t) => {
  const dir = tmpDir('walstream-cli-');
  t.after(() => rmrf(dir));
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'primary', '--data', path.join(dir, 'data'), '--port', '0', '--auth', 'scram-sha-256', '--user', 'rep', '--password', 's3cret', '--wal-segment-size', String(SEG)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  await waitFor(() => out.includes('\n'), 15_000, 'the listening line');
  const info = JSON.parse(out.split('\n')[0]!) as { listening: { port: number }; systemIdentifier: string; flushLsn: string };
  const ok = await psql(info.listening.port, 'IDENTIFY_SYSTEM', { PGPASSWORD: 's3cret' }, 'rep');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, `${info.systemIdentifier}|1|${info.flushLsn}|`);
  const bad = await psql(info.listening.port, 'IDENTIFY_SYSTEM', { PGPASSWORD: 'wrong' }, 'rep');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /password authentication failed for user "rep"/);
  const nouser = await psql(info.listening.port, 'IDENTIFY_SYSTEM', { PGPASSWORD: 's3cret' }, 'other');
  assert.match(nouser.stderr, /no pg_hba.conf entry for replication connection from host "127.0.0.1", user "other"/);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.match(err, /shut down/);
  assert.ok(!fs.existsSync(path.join(dir, 'data', 'walstream.pid')), 'pid file removed');
});

test('live streaming: each commit reaches the client without polling naps', async (t) => {
  // wal_sender_timeout of 10 minutes: no keepalive timer runs during the test, so nothing but the
  // flush wake-up can make the walsender send. Each commit waits for its WAL at the client before
  // the next is made: a lost wake-up would leave the stream still for good, and the 60 s wait
  // below (a hang bound, not a speed bound) turns that into a failure.
  const dir = tmpDir('walstream-live-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, walSenderTimeoutMs: 600_000 });
  const { RawClient } = await import('./helpers/rawpg.js');
  const { encodeQuery, decodeCopyBothMessage } = await import('../src/replication/protocol/messages.js');
  const c = await RawClient.connect(p.port!);
  t.after(async () => {
    c.close();
    await p.close();
    rmrf(dir);
  });
  await c.startup('tester', 'live');
  c.send(encodeQuery(`START_REPLICATION ${lsnToString(p.flushLsn)} TIMELINE 1`));
  await c.next(); // W
  let received = p.flushLsn;
  const lat: number[] = [];
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now();
    const end = await p.transaction((tx) => tx.put('t', `live-${i}`, i));
    while (received < end) {
      const f = await c.next(60_000);
      assert.ok(f, 'stream ended');
      const m = decodeCopyBothMessage(f.body);
      if (m.kind === 'w') {
        assert.equal(m.dataStart, received);
        received = m.dataStart + m.data.length;
        assert.equal(m.walEnd, received, 'a live message ends at the flush position');
      }
    }
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  const p50 = lat[Math.floor(lat.length / 2)]!;
  t.diagnostic(`commit (synchronous_commit on) → XLogData at the client: p50 ${p50.toFixed(3)} ms, max ${lat[lat.length - 1]!.toFixed(3)} ms`);
  assert.equal(p.replicationStatus()[0]!.state, 'streaming');
});

test('pg_receivewal --synchronous: its flush reports reach replicationStatus(); a taken port fails open() cleanly', async (t) => {
  const dir = tmpDir('walstream-sync-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0 });
  let recv: ReturnType<typeof startPgReceivewal> | null = null;
  t.after(async () => {
    await recv?.stop();
    await p.close();
    rmrf(dir);
  });
  await workload(p, 0.3 * SEG, 's');
  recv = startPgReceivewal(p.port!, path.join(dir, 'rw'), ['--synchronous']);
  await waitFor(() => p.replicationStatus()[0]?.flush_lsn === p.flushLsn, 10_000, 'flush_lsn reported by pg_receivewal');
  const row = p.replicationStatus()[0]!;
  assert.equal(row.write_lsn, row.flush_lsn);
  assert.equal(row.flush_lag_bytes, 0);
  assert.ok(row.reply_time instanceof Date && Math.abs(row.reply_time.getTime() - Date.now()) < 60_000);

  // The same port again: open() fails naming the port before it initialises the directory.
  await assert.rejects(Primary.open({ dataDir: path.join(dir, 'other'), port: p.port! }), /invalid value for option "port": 127\.0\.0\.1:\d+ is already in use/);
  assert.equal(fs.existsSync(path.join(dir, 'other')), false);
  const again = await Primary.open({ dataDir: path.join(dir, 'other') });
  await again.close();
});
