// PostgreSQL 15's own clients against a cascading walstream standby (s1: a standby of a walstream
// primary serving replication with `port`):
//   * psql replication=true: IDENTIFY_SYSTEM on s1 names the primary's system and s1's timeline
//     and flush position; a slot created there (pg_receivewal --create-slot) lives in s1's
//     pg_replslot/ (the primary has none);
//   * pg_receivewal through that slot writes segments byte-identical to the primary's, and resumes
//     without a gap after an outage during which s1 made restartpoints past the slot (the slot
//     kept its WAL on s1);
//   * pg_basebackup -X stream and -X fetch (and -R) against s1 exit 0, pg_verifybackup passes on
//     each, backup_label says "BACKUP FROM: standby", and each directory opens as a walstream
//     standby whose store equals the primary's once it replayed the primary's flush position.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { parseLsn } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN_DIR } from './helpers/pgcluster.js';
import { pgTempRoot, pgTool } from './helpers/pgnode.js';
import { psql } from './helpers/psql.js';
import { startPgReceivewal, waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
/** Hang bound of a wait or a tool run, ms (a failure bound, not a measurement). */
const HANG_MS = 120_000;

async function fill(p: Primary, bytes: number, tag: string): Promise<void> {
  const target = p.insertLsn + bytes;
  let i = 0;
  const pending: Promise<unknown>[] = [];
  while (p.insertLsn < target) {
    const n = i++;
    pending.push(p.transaction((tx) => tx.put('t', `${tag}-${n % 2000}`, { n, pad: 'x'.repeat(900) }), { synchronousCommit: 'off' }));
    if (pending.length >= 64) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await p.flush();
}

test('pg_receivewal through a slot on a cascading standby: segments identical to the primary\'s, WAL kept across the standby\'s restartpoints', async (t) => {
  const dir = tmpDir('walstream-cascade-rw-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, port: 0 });
  // Restartpoints at every replayed checkpoint record; no future segments kept (recycled WAL is removed).
  const s1 = await Standby.open({ dataDir: path.join(dir, 's1'), primaryConninfo: `host=127.0.0.1 port=${p.port!} user=tester application_name=s1`, port: 0, readerThreads: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: SEG, minWalSizeBytes: 0 });
  let rw: ReturnType<typeof startPgReceivewal> | null = null;
  t.after(async () => {
    await rw?.stop();
    await s1.close();
    await p.close();
    rmrf(dir);
  });
  const port = s1.replication!.port;
  p.createReplicationSlot('keep', { reserveWal: true }); // the primary keeps its segments for the comparison
  await fill(p, SEG / 2, 'a');
  await s1.waitForReplay(p.flushLsn, HANG_MS);

  const id = await psql(port, 'IDENTIFY_SYSTEM');
  assert.equal(id.status, 0, id.stderr);
  const [sysid, tli, xlogpos] = id.stdout.split('|');
  assert.equal(sysid, p.systemIdentifier.toString());
  assert.equal(tli, '1');
  assert.ok(parseLsn(xlogpos!) <= s1.flushLsn && parseLsn(xlogpos!) >= p.flushLsn, 'IDENTIFY_SYSTEM reports what s1 flushed');

  const create = startPgReceivewal(port, path.join(dir, 'rw'), ['--create-slot', '--slot', 'down']);
  assert.equal(await create.exited, 0, create.output());
  assert.deepEqual(s1.replication!.replicationSlots().map((r) => r.slot_name), ['down']);
  assert.deepEqual(p.replicationSlots().map((r) => r.slot_name), ['keep'], 'the slot is on s1, not on the primary');
  assert.ok(fs.existsSync(path.join(s1.dataDir, 'pg_replslot', 'down', 'state')));

  rw = startPgReceivewal(port, path.join(dir, 'rw'), ['--slot', 'down', '--synchronous']);
  await waitFor(() => s1.replicationStatus().some((r) => r.application_name === 'pg_receivewal'), HANG_MS, 'pg_receivewal streaming from s1');
  await fill(p, SEG / 2, 'b');
  let end = p.flushLsn;
  await waitFor(() => (s1.replication!.slots!.get('down')?.restartLsn ?? 0) >= end, HANG_MS, "the slot's restart_lsn follows pg_receivewal's flush");
  assert.deepEqual(p.replicationStatus().map((r) => r.application_name), ['s1'], 'the primary sees only s1');

  // Outage: WAL moves on, the primary checkpoints, s1 replays the checkpoints and makes restartpoints.
  await rw.stop();
  rw = null;
  const held = s1.replication!.slots!.get('down')!.restartLsn;
  const restartpoints = s1.stats().restartpoints;
  for (let i = 0; i < 3; i++) {
    await fill(p, SEG, `c${i}`);
    await p.checkpoint();
  }
  end = p.flushLsn;
  await s1.waitForReplay(end, HANG_MS);
  await waitFor(() => segNo(s1.stats().redoLsn, SEG) > segNo(held, SEG) + 1, HANG_MS, "s1's restartpoint redo point past the slot");
  assert.ok(s1.stats().restartpoints > restartpoints);
  assert.ok(fs.existsSync(path.join(s1.walDir, segmentFileName(1, segNo(held, SEG), SEG))), 'the slot kept its segment on s1');

  rw = startPgReceivewal(port, path.join(dir, 'rw'), ['--slot', 'down', '--synchronous']);
  await waitFor(() => (s1.replication!.slots!.get('down')?.restartLsn ?? 0) >= end, HANG_MS, 'pg_receivewal caught up through the slot');
  const first = listSegs(path.join(dir, 'rw'))[0]!;
  for (let seg = first; seg < segNo(end, SEG); seg++) {
    const name = segmentFileName(1, seg, SEG);
    assert.ok(fs.readFileSync(path.join(dir, 'rw', name)).equals(fs.readFileSync(path.join(p.walDir, name))), `segment ${name} identical to the primary's`);
  }
  assert.ok(segNo(end, SEG) - first >= 3, 'several complete segments compared');
});

function listSegs(dir: string): number[] {
  return fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n)).map((n) => segNo(parseInt(n.slice(8, 16), 16) * 0x1_0000_0000 + parseInt(n.slice(16), 16) * SEG, SEG)).sort((a, b) => a - b);
}

function postgresIds(): { uid: number; gid: number } | Record<string, never> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no "postgres" account to run PostgreSQL as');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** pg_basebackup as the PostgreSQL account, without blocking this thread (primary and s1 run here). */
function pgBaseBackup(port: number, dir: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  const child: ChildProcess = spawn(path.join(PG_BIN_DIR, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-D', dir, '-c', 'fast', '--no-sync', ...args], {
    ...postgresIds(), env: { ...process.env, LC_ALL: 'C', PGCONNECT_TIMEOUT: '10' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
  return new Promise((resolve) => child.on('close', (status) => {
    clearTimeout(timer);
    resolve({ status, stderr });
  }));
}

test('pg_basebackup -X stream / -X fetch / -R against a cascading standby: pg_verifybackup passes, each opens as a standby equal to the primary', async (t) => {
  const root = pgTempRoot('walstream-cascade-bb-');
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, port: 0 });
  const s1 = await Standby.open({ dataDir: path.join(root, 's1'), primaryConninfo: `host=127.0.0.1 port=${p.port!} user=postgres application_name=s1`, port: 0, readerThreads: 0, checkpointTimeoutMs: 0 });
  const opened: Standby[] = [];
  let stop = false;
  let writes = 0;
  const load = (async () => {
    while (!stop) {
      await p.transaction((tx) => tx.put('t', `k${writes % 2000}`, { n: writes, s: 'v'.repeat(300) }));
      writes++;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  t.after(async () => {
    stop = true;
    await load.catch(() => undefined);
    for (const s of opened) await s.close().catch(() => undefined);
    await s1.close();
    await p.close();
    rmrf(root);
  });
  await fill(p, SEG, 'base');
  await p.checkpoint(); // s1 replays it: its backups start from a restartpoint at it
  const port = s1.replication!.port;
  const cases = [
    { name: 'stream', args: ['-X', 'stream'] },
    { name: 'fetch', args: ['-X', 'fetch'] },
    { name: 'stream-R', args: ['-X', 'stream', '-R'] },
  ];
  for (const c of cases) {
    const dir = path.join(root, `bb-${c.name}`);
    const r = await pgBaseBackup(port, dir, c.args);
    assert.equal(r.status, 0, `pg_basebackup ${c.args.join(' ')} against s1: ${r.stderr}`);
    assert.match(fs.readFileSync(path.join(dir, 'backup_label'), 'utf8'), /^BACKUP FROM: standby$/m);
    const v = pgTool('pg_verifybackup', [dir], { allowFail: true });
    assert.equal(v.status, 0, `pg_verifybackup (${c.name}): ${v.stderr}`);
    const s = await Standby.open({ dataDir: dir, readerThreads: 0, ...(c.args.includes('-R') ? {} : { primaryConninfo: `host=127.0.0.1 port=${port} user=postgres` }) });
    opened.push(s);
    assert.ok(fs.existsSync(path.join(dir, 'backup_label.old')), 'backup_label adopted');
    if (c.args.includes('-R')) assert.equal(s.receiverStatus().conninfo?.includes(`port=${port}`), true, '-R points the new standby at s1');
  }
  stop = true;
  await load;
  const end = await p.flush();
  for (const s of [s1, ...opened]) await s.waitForReplay(end, HANG_MS);
  for (const s of opened) assert.equal(s.store!.digest(), p.store.digest());
  assert.deepEqual(s1.replication!.backupsInProgress(), [], 'no WAL pinned once the backups ended');
});
