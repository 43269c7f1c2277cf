// Synchronous replication with walstream's own standbys: remote_apply commits readable on the
// synchronous standby the moment they resolve; the potential standby taking over when the
// synchronous one stops, and handing back when it returns; and no loss — the primary (a child
// process) is killed with SIGKILL at random moments, 20 rounds, and every commit it acknowledged
// at synchronous_commit=on is on the synchronous standby.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { XLOG_BLCKSZ } from '../src/wal/consts.js';
import { FileSegmentSource, XLogReader } from '../src/wal/reader.js';
import { freePort } from './helpers/pgcluster.js';
import { waitFor } from './helpers/rawpg.js';
import { killStandbyChildren, StandbyChild } from './helpers/standby-proc.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;

function openStandby(dataDir: string, port: number, name: string): Promise<Standby> {
  return Standby.open({
    dataDir,
    primaryConninfo: { host: '127.0.0.1', port, user: 'tester', applicationName: name },
    walRetrieveRetryIntervalMs: 100,
    checkpointTimeoutMs: 0,
    readerThreads: 1,
  });
}

test('remote_apply is readable on the synchronous standby at once; the potential standby takes over and hands back', async (t) => {
  const dir = tmpDir('walstream-syncsb-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, synchronousStandbyNames: 'FIRST 1 (s1, s2)' });
  const standbys: Standby[] = [];
  t.after(async () => {
    for (const s of standbys) await s.close().catch(() => undefined);
    await p.close();
    rmrf(dir);
  });
  const changes: Array<[string, string]> = [];
  p.on('syncStateChanged', (e: { applicationName: string; syncState: string }) => changes.push([e.applicationName, e.syncState]));
  let s1 = await openStandby(path.join(dir, 's1'), p.port!, 's1');
  standbys.push(s1);
  const s2 = await openStandby(path.join(dir, 's2'), p.port!, 's2');
  standbys.push(s2);
  const states = () => Object.fromEntries(p.replicationStatus().map((r) => [r.application_name, `${r.sync_priority}|${r.sync_state}`]));
  await waitFor(() => states().s1 === '1|sync' && states().s2 === '2|potential', 10_000, 's1 sync, s2 potential');

  for (let i = 0; i < 30; i++) {
    const r = await p.commit((tx) => tx.put('t', `apply${i}`, { i }), { synchronousCommit: 'remote_apply' });
    assert.equal(r.sync?.outcome, 'confirmed');
    assert.deepEqual(s1.get('t', `apply${i}`), { i }, 'visible on the synchronous standby when the commit resolves');
  }
  for (const level of ['remote_receive', 'remote_write', 'on'] as const) {
    const r = await p.commit((tx) => tx.put('t', level, 1), { synchronousCommit: level });
    assert.equal(r.sync?.outcome, 'confirmed');
    assert.ok(s1.flushLsn >= (level === 'on' ? r.lsn : 0));
  }
  const row = p.replicationStatus().find((x) => x.application_name === 's1')!;
  assert.equal(typeof row.replay_lag_ms, 'number');

  // The synchronous standby stops: s2 takes its place and commits keep being confirmed.
  await s1.close();
  standbys.splice(standbys.indexOf(s1), 1);
  await waitFor(() => states().s2 === '2|sync' && states().s1 === undefined, 10_000, 's2 takes over');
  for (let i = 0; i < 10; i++) {
    const r = await p.commit((tx) => tx.put('t', `s2-${i}`, i), { synchronousCommit: 'remote_apply' });
    assert.equal(r.sync?.outcome, 'confirmed');
    assert.equal(s2.get('t', `s2-${i}`), i);
  }
  // s1 comes back: once it streams it is synchronous again.
  s1 = await openStandby(path.join(dir, 's1'), p.port!, 's1');
  standbys.push(s1);
  await waitFor(() => states().s1 === '1|sync' && states().s2 === '2|potential', 10_000, 's1 back as sync');
  const back = await p.commit((tx) => tx.put('t', 'back', 1), { synchronousCommit: 'remote_apply' });
  assert.equal(back.sync?.outcome, 'confirmed');
  assert.equal(s1.get('t', 'back'), 1);
  assert.deepEqual(changes.filter(([n]) => n === 's2').map(([, st]) => st).slice(-2), ['sync', 'potential']);
});

test('walSenderAsyncDelayMs: while commits wait for the synchronous standby, the potential one gets WAL at most once per delay (0: at every flush)', async (t) => {
  // Deterministic waiting: the synchronous standby is a child process stopped with SIGSTOP while a
  // synchronous_commit=on commit waits for it, so commits wait for the whole measured window
  // whatever this machine's speed. Meanwhile commits at synchronous_commit=local make flushes. The
  // potential standby may get at most one message per delay in that window, plus slack for a
  // keepalive or a send before the waiting commit joined the queue (a bound taken from the window
  // this run measured, never a latency); with 0 it gets
  // WAL at every flush it sees, more than that bound. When the synchronous standby resumes, the
  // waiting commit is confirmed and the potential standby has everything.
  const DELAY_MS = 500;
  const LOCAL_COMMITS = 200;
  const SLACK_MESSAGES = 2;
  t.after(() => killStandbyChildren());
  for (const delayMs of [DELAY_MS, 0]) {
    const dir = tmpDir('walstream-asyncdelay-');
    const p = await Primary.open({
      dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, users: { rep: 'pw' },
      synchronousStandbyNames: 'FIRST 1 (child, s2)', walSenderAsyncDelayMs: delayMs,
    });
    let s2: Standby | null = null;
    const s1 = new StandbyChild(path.join(dir, 's1'), p.port!);
    try {
      await s1.line('ready ');
      s2 = await Standby.open({
        dataDir: path.join(dir, 's2'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'rep', password: 'pw', applicationName: 's2' },
        walRetrieveRetryIntervalMs: 100, checkpointTimeoutMs: 0, readerThreads: 0,
      });
      const states = () => Object.fromEntries(p.replicationStatus().map((r) => [r.application_name, r.sync_state]));
      await waitFor(() => states().child === 'sync' && states().s2 === 'potential', 30_000, 'child sync, s2 potential');
      await s2.waitForReplay(p.flushLsn, 30_000);

      process.kill(s1.proc.pid!, 'SIGSTOP');
      const waiting = p.commit((tx) => tx.put('t', 'waits', 1), { synchronousCommit: 'on' });
      const m2 = s2.receiverStatus().messages;
      const f0 = p.stats().walFsyncs;
      const t0 = performance.now();
      for (let i = 0; i < LOCAL_COMMITS; i++) await p.transaction((tx) => tx.put('t', `d${i}`, i), { synchronousCommit: 'local' });
      const windowMs = performance.now() - t0;
      const d2 = s2.receiverStatus().messages - m2;
      const flushes = p.stats().walFsyncs - f0;
      const bound = Math.ceil(windowMs / DELAY_MS) + SLACK_MESSAGES;
      t.diagnostic(`walSenderAsyncDelayMs ${delayMs}: potential standby got ${d2} messages in ${windowMs.toFixed(0)} ms (${flushes} flushes; at most ${bound} with a ${DELAY_MS} ms delay)`);
      assert.ok(flushes >= LOCAL_COMMITS, `each synchronous_commit=local commit flushed (${flushes})`);
      if (delayMs > 0) assert.ok(d2 <= bound, `batched: ${d2} messages, at most ${bound} in ${windowMs.toFixed(0)} ms`);
      else assert.ok(d2 > bound, `with 0, WAL at every flush: ${d2} messages (batching would allow at most ${bound})`);

      process.kill(s1.proc.pid!, 'SIGCONT');
      assert.equal((await waiting).sync?.outcome, 'confirmed');
      await s2.waitForReplay(p.flushLsn, 30_000);
      assert.equal(s2.get('t', `d${LOCAL_COMMITS - 1}`), LOCAL_COMMITS - 1);
      assert.equal(s2.get('t', 'waits'), 1);
    } finally {
      if (s1.proc.exitCode === null && s1.proc.signalCode === null) process.kill(s1.proc.pid!, 'SIGCONT');
      await s1.kill('SIGTERM');
      await s2?.close();
      await p.close();
      rmrf(dir);
    }
  }
});

test('no loss: SIGKILL the primary at random moments (20 rounds); every commit acknowledged at on is on the synchronous standby', async (t) => {
  const dir = tmpDir('walstream-syncloss-');
  const port = await freePort();
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'syncrep-primary-child.js');
  let current: ChildProcess | null = null;
  let standby: Standby | null = null;
  t.after(async () => {
    if (current && current.exitCode === null && current.signalCode === null) current.kill('SIGKILL');
    await standby?.close().catch(() => undefined);
    rmrf(dir);
  });
  const acked = new Map<string, number>();
  const start = async (round: number): Promise<ChildProcess> => {
    const c = spawn(process.execPath, [child, path.join(dir, 'p'), String(port), String(round), '4'], { stdio: ['ignore', 'pipe', 'inherit'] });
    current = c;
    const rl = readline.createInterface({ input: c.stdout! });
    await new Promise<void>((resolve, reject) => {
      rl.on('line', (line) => {
        if (line === 'ready') resolve();
        const m = /^ack (\S+) (\d+)$/.exec(line);
        if (m) acked.set(m[1]!, Number(m[2]));
      });
      c.once('exit', (code, sig) => reject(new Error(`primary child exited (${code ?? sig}) before ready`)));
    });
    return c;
  };
  const ROUNDS = 20;
  let rounds = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const c = await start(round);
    if (standby === null) standby = await openStandby(path.join(dir, 's1'), port, 's1');
    const before = acked.size;
    // Let it commit (confirmed by the standby) for a random while, then kill it mid-flight.
    await waitFor(() => acked.size > before, 15_000, `round ${round}: first confirmed commit`);
    await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 200)));
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
    // Everything acknowledged is flushed on the standby; once replay reaches its flush position it is readable.
    const s: Standby = standby!;
    await s.waitForReplay(s.flushLsn, 15_000);
    for (const [key, n] of acked) assert.equal(s.get('t', key), n, `acknowledged commit ${key} is on the standby (round ${round})`);
    rounds++;
  }
  assert.equal(rounds, ROUNDS);
  assert.ok(acked.size >= ROUNDS, `${acked.size} acknowledged commits`);
});

test('replay (remote_apply) does not stall on a record that ends just past a page header', async (t) => {
  // A standby replays up to its flushed position; a record continued on a new page and ending
  // 8 bytes after that page's short header must be returned, not waited on (else a remote_apply
  // commit ending there waits for the next WAL to arrive).
  const dir = tmpDir('walstream-syncpage-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0 });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  const start = p.insertLsn;
  let seed = 7;
  for (let i = 0; i < 4000; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    void p.transaction((tx) => tx.put('t', `k${i}`, 'x'.repeat(seed % 120)), { synchronousCommit: 'off' });
  }
  await p.flush();
  // Every record, read with no limit: find those ending 8 bytes after a short page header.
  const all: Array<{ start: number; end: number }> = [];
  const src = new FileSegmentSource(p.walDir, 1, SEG);
  const r0 = new XLogReader(src, { segSize: SEG, sysid: BigInt(p.systemIdentifier) }, start, null);
  for (;;) {
    const r = r0.readRecord();
    if (r.kind !== 'record') break;
    all.push({ start: r.record.start, end: r.record.end });
  }
  const edge = all.filter((r) => r.end % XLOG_BLCKSZ === 32 && r.end % SEG !== 32 && r.start < r.end - 32);
  assert.ok(edge.length > 0, 'the workload produced a record ending 8 bytes into a page');
  for (const rec of edge) {
    const reader = new XLogReader(src, { segSize: SEG, sysid: BigInt(p.systemIdentifier) }, rec.start, null);
    reader.limit = rec.end; // flushed exactly up to the end of this record
    const r = reader.readRecord();
    assert.equal(r.kind, 'record', `record ${rec.start}..${rec.end} is complete at limit ${rec.end}`);
  }
  src.close();
});
