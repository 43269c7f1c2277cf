// Cascading replication: primary → s1 → s2 (TCP) and s1 → s3 (in-process rings), where s1 is a
// walstream standby serving replication (Standby.open({ port })). s2 and s3 take their base backups from s1 (a standby's
// BASE_BACKUP: its last restartpoint, "BACKUP FROM: standby") and stream from it. Under load all
// reach the primary's flush position with the primary's digest; replicationStatus on s1 lists s2
// and s3, on the primary only s1; a cascaded standby named in the primary's
// synchronous_standby_names never confirms a commit; s1 closed (and, as a child process, killed
// with SIGKILL) and restarted on the same port: s2 and s3 reconnect and converge; WAL a downstream
// still needs (its slot on s1) survives s1's restartpoints.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import type { Lsn } from '../src/wal/lsn.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { killStandbyChildren, StandbyChild } from './helpers/standby-proc.js';

const SEG = 1 << 20;
/** Hang bound of every wait (never a timing assertion). */
const HANG_MS = 120_000;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dirs: string[] = [];
const open: Array<{ close(): Promise<void> }> = [];
const procs: ChildProcess[] = [];
after(async () => {
  killStandbyChildren();
  for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const x of open.reverse()) await x.close().catch(() => undefined);
  dirs.forEach(rmrf);
});

function conninfo(port: number, appName: string): string {
  return `host=127.0.0.1 port=${port} user=rep application_name=${appName}`;
}

/** Transactions of mixed sizes (puts and deletes), `n` of them, 32 in flight. */
async function load(p: Primary, n: number, tag: string): Promise<Lsn> {
  let last = 0;
  const pending: Promise<Lsn>[] = [];
  for (let i = 0; i < n; i++) {
    const big = i % 97 === 0;
    pending.push(
      i % 11 === 10
        ? p.transaction((tx) => tx.delete('kv', `k${(i * 7) % 300}`), { synchronousCommit: 'off' })
        : p.transaction((tx) => tx.put('kv', `k${i % 300}`, { tag, i, pad: 'x'.repeat(big ? 30_000 : i % 200) }).put('acc', `a${i % 20}`, i), { synchronousCommit: i % 5 === 0 ? 'on' : 'off' }),
    );
    if (pending.length >= 32) for (const l of await Promise.all(pending.splice(0))) last = Math.max(last, l);
  }
  for (const l of await Promise.all(pending)) last = Math.max(last, l);
  return last;
}

async function caughtUp(s: Standby, lsn: Lsn): Promise<void> {
  await s.waitForReplay(lsn, HANG_MS);
}

test('primary → s1 → s2, s1 → s3 under load: digests equal; status lists downstreams where they connect; a cascaded standby is never synchronous upstream', async () => {
  const dir = tmpDir('walstream-cascade-');
  dirs.push(dir);
  const p = await Primary.open({
    dataDir: path.join(dir, 'p'), walSegmentSize: SEG, walBuffersBytes: 256 * 1024, port: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 8 * SEG, minWalSizeBytes: 0,
    syncTimeoutMs: 300, syncTimeoutPolicy: 'fail',
  });
  open.push(p);
  await load(p, 300, 'before-s1');
  const s1 = await Standby.open({
    dataDir: path.join(dir, 's1'), primaryConninfo: conninfo(p.port!, 's1'), port: 0, readerThreads: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 2 * SEG, minWalSizeBytes: 0,
    synchronousStandbyNames: 's2', // no effect on a standby
  });
  open.push(s1);
  const s1Port = s1.replication!.port;
  assert.ok(s1Port > 0);
  const running = load(p, 1500, 'during');
  const s2 = await Standby.open({ dataDir: path.join(dir, 's2'), primaryConninfo: conninfo(s1Port, 's2'), readerThreads: 0 });
  open.push(s2);
  // s3 in this process through SharedArrayBuffer rings (s1's in-process listener), s2 over TCP.
  const s3 = await Standby.open({ dataDir: path.join(dir, 's3'), primaryConninfo: { inProcess: s1.replication!, applicationName: 's3' }, readerThreads: 0 });
  open.push(s3);
  assert.equal(s2.baseBackup?.control.sysid.toString(), p.systemIdentifier, 'base backup of s1 carries the primary system identifier');
  await running;
  // Checkpoints on the primary: s1 replays them and makes restartpoints while serving s2 and s3.
  await p.checkpoint();
  await load(p, 500, 'after');
  await p.checkpoint();
  const end = p.flushLsn;
  for (const s of [s1, s2, s3]) await caughtUp(s, end);
  const digest = p.store.digest();
  assert.equal(s1.store!.digest(), digest);
  assert.equal(s2.store!.digest(), digest);
  assert.equal(s3.store!.digest(), digest);
  assert.ok(s1.stats().restartpoints > 0, 's1 made restartpoints while serving');

  // pg_stat_replication: the primary sees only s1; s1 sees s2 and s3, all async there.
  assert.deepEqual(p.replicationStatus().map((r) => r.application_name), ['s1']);
  await waitFor(() => s1.replicationStatus().filter((r) => r.state === 'streaming' && r.flush_lsn !== null && r.flush_lsn >= end).length === 2, HANG_MS, 'both downstreams report their flush to s1');
  const rows = s1.replicationStatus().sort((a, b) => a.application_name.localeCompare(b.application_name));
  assert.deepEqual(rows.map((r) => r.application_name), ['s2', 's3']);
  assert.deepEqual(rows.map((r) => r.client_addr), ['127.0.0.1', null], 's2 over TCP, s3 through the in-process rings');
  assert.deepEqual(rows.map((r) => r.sync_state), ['async', 'async'], 'synchronous_standby_names has no effect on a standby');
  for (const r of rows) assert.ok(r.sent_lsn! <= s1.flushLsn, 'a cascading walsender never sends past what s1 flushed');

  // s2 is named in the primary's synchronous_standby_names, but it is not the primary's standby:
  // a commit waiting for it is never confirmed, even once s2 has replayed it.
  p.setSynchronousStandbyNames('FIRST 1 (s2)');
  await assert.rejects(p.transaction((tx) => tx.put('kv', 'sync', 1), { synchronousCommit: 'on' }), { code: 'WS_SYNC_NOT_CONFIRMED' });
  const syncEnd = p.flushLsn;
  await caughtUp(s2, syncEnd);
  assert.deepEqual(s2.get('kv', 'sync'), 1);
  assert.deepEqual(p.replicationStatus().map((r) => r.application_name), ['s1']);
  assert.equal(s2.receiverStatus().sender_port, s1Port, 's2 streams from s1');
});

test('s1 closed, then SIGKILLed (a child process), and restarted on the same port: s2 and s3 reconnect to it and converge with the primary', async () => {
  const dir = tmpDir('walstream-cascade-kill-');
  dirs.push(dir);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, walBuffersBytes: 256 * 1024, port: 0, users: { rep: 'pw' }, checkpointTimeoutMs: 0, maxWalSizeBytes: 8 * SEG });
  open.push(p);
  await load(p, 200, 'start');
  // 1. s1 in this process: close() and open again on the same port.
  const s1Dir = path.join(dir, 's1');
  const s1Opts = { dataDir: s1Dir, primaryConninfo: `${conninfo(p.port!, 's1')} password=pw`, readerThreads: 0, walRetrieveRetryIntervalMs: 100 };
  let s1 = await Standby.open({ ...s1Opts, port: 0 });
  const s1Port = s1.replication!.port;
  const down = { readerThreads: 0, walRetrieveRetryIntervalMs: 100 };
  const s2 = await Standby.open({ dataDir: path.join(dir, 's2'), primaryConninfo: conninfo(s1Port, 's2'), ...down });
  open.push(s2);
  const s3 = await Standby.open({ dataDir: path.join(dir, 's3'), primaryConninfo: conninfo(s1Port, 's3'), ...down });
  open.push(s3);
  const connects = (s: Standby) => s.receiverStatus().connects ?? 0;
  const before = [connects(s2), connects(s3)];
  let running = load(p, 800, 'closed');
  await s1.close();
  await running;
  s1 = await Standby.open({ ...s1Opts, port: s1Port });
  await p.checkpoint();
  let end = p.flushLsn;
  for (const s of [s1, s2, s3]) await caughtUp(s, end);
  for (const s of [s1, s2, s3]) assert.equal(s.store!.digest(), p.store.digest());
  assert.ok(connects(s2) > before[0]! && connects(s3) > before[1]!, 's2 and s3 reconnected');
  assert.deepEqual(s1.replicationStatus().map((r) => r.application_name).sort(), ['s2', 's3']);
  await s1.close();

  // 2. s1 as a child process, SIGKILLed under load and restarted on the same port.
  let child = new StandbyChild(s1Dir, p.port!, { port: s1Port, applicationName: 's1' });
  assert.equal((await child.line('ready', HANG_MS)).split(' ')[3], String(s1Port));
  running = load(p, 1500, 'killed');
  await waitFor(() => s2.replayLsn > end && s3.replayLsn > end, HANG_MS, 's2 and s3 streaming from the child s1');
  await child.kill('SIGKILL');
  await running;
  await p.checkpoint();
  child = new StandbyChild(s1Dir, p.port!, { port: s1Port, applicationName: 's1' });
  await child.line('ready', HANG_MS);
  end = p.flushLsn;
  const digest = p.store.digest();
  assert.equal(await child.digest(end), digest);
  for (const s of [s2, s3]) await caughtUp(s, end);
  assert.equal(s2.store!.digest(), digest);
  assert.equal(s3.store!.digest(), digest);
  assert.equal(s2.receiverStatus().sender_port, s1Port);
  await child.stop();
});

test('walstream standby --port: the standby process serves replication (a downstream takes its base backup from it and streams)', async () => {
  const dir = tmpDir('walstream-cascade-cli-');
  dirs.push(dir);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, users: { rep: 'pw' }, checkpointTimeoutMs: 0 });
  open.push(p);
  await load(p, 200, 'cli');
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'walstream.js'), 'standby', '--data', path.join(dir, 's1'), '--primary', `host=127.0.0.1 port=${p.port!} user=rep password=pw`,
    '--port', '0', '--auth', 'scram-sha-256', '--user', 'down', '--password', 'pw2', '--status-every-ms', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('"standby"') || proc.exitCode !== null, HANG_MS, 'the ready line');
  const ready = JSON.parse(out.split('\n').find((l) => l.includes('"standby"'))!) as { standby: { port: number } };
  assert.ok(ready.standby.port > 0, out);
  const s2 = await Standby.open({ dataDir: path.join(dir, 's2'), primaryConninfo: `host=127.0.0.1 port=${ready.standby.port} user=down password=pw2 application_name=s2`, readerThreads: 0 });
  open.push(s2);
  await load(p, 300, 'cli-2');
  const end = await p.flush(); // commits at 'off' are acknowledged before their flush
  await caughtUp(s2, end);
  assert.equal(s2.store!.digest(), p.store.digest());
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  assert.equal(await exited, 0, out);
});
