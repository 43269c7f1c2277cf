// pg_basebackup 15 against a walstream primary under a light write load: every invocation exits 0,
// pg_verifybackup 15 passes on each plain-format backup (its WAL check too where the backup holds
// WAL, -n where it does not), each plain directory opens as a walstream standby whose store equals
// the primary's once it has replayed the primary's flush position (with -R from the
// postgresql.auto.conf pg_basebackup wrote, no other argument), tar formats hold the archive and
// manifest, three concurrent backups all verify, and a pg_basebackup killed mid-stream (SIGKILL,
// --max-rate at its minimum) leaves no WAL pinned. The PostgreSQL tools run as the `postgres`
// account when the tests run as root (pgnode.ts), asynchronously: the primary runs on this thread.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { parseTar } from '../src/replication/tar.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN_DIR } from './helpers/pgcluster.js';
import { pgTempRoot, pgTool } from './helpers/pgnode.js';
import { rmrf } from './helpers/tmp.js';
import { waitFor } from './helpers/rawpg.js';

const SEG = 1 << 20;
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Bound on one pg_basebackup run, ms (a failure bound, not a measurement). */
const TOOL_TIMEOUT_MS = 120_000;

function postgresIds(): { uid: number; gid: number } | Record<string, never> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no "postgres" account to run PostgreSQL as');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
const asPg = postgresIds();
const children = new Set<ChildProcess>();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

interface Run { status: number | null; signal: string | null; stderr: string; child: ChildProcess }

/** pg_basebackup as the PostgreSQL account, without blocking this thread (the primary runs here). */
function startBaseBackup(port: number, dir: string, args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(path.join(PG_BIN_DIR, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-D', dir, '-c', 'fast', '--no-sync', ...args], {
    ...asPg, env: { ...process.env, LC_ALL: 'C', PGCONNECT_TIMEOUT: '10' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), TOOL_TIMEOUT_MS);
  const done = new Promise<Run>((resolve) => child.on('close', (status, signal) => {
    clearTimeout(timer);
    children.delete(child);
    resolve({ status, signal, stderr, child });
  }));
  return { child, done };
}

async function baseBackup(port: number, dir: string, args: string[]): Promise<void> {
  const r = await startBaseBackup(port, dir, args).done;
  assert.equal(r.status, 0, `pg_basebackup ${args.join(' ')} failed: ${r.stderr}`);
}

function verify(dir: string, args: string[] = []): string {
  const r = pgTool('pg_verifybackup', [...args, dir], { allowFail: true });
  assert.equal(r.status, 0, `pg_verifybackup ${args.join(' ')} ${dir}: ${r.stderr}`);
  return r.stdout;
}

test('pg_basebackup 15 against walstream: formats, WAL methods, rate, -R, verify, open as a standby', async (t) => {
  const root = pgTempRoot('walstream-bbpg-');
  const p = await Primary.open({ dataDir: path.join(root, 'primary'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, port: 0 });
  // The walsenders' log lines, shown if a wait below fails (what each connection did last).
  const logs: string[] = [];
  p.on('log', (l) => {
    logs.push(`${new Date().toISOString()} ${l.level} ${l.message}`);
    if (logs.length > 200) logs.shift();
  });
  const standbys: Standby[] = [];
  let stop = true;
  let writes = 0;
  let loadRun: Promise<void> = Promise.resolve();
  /** The light write load: one transaction every couple of milliseconds until paused. */
  const startLoad = () => {
    stop = false;
    loadRun = (async () => {
      while (!stop) {
        await p.transaction((tx) => tx.put('t', `k${writes % 3000}`, { n: writes, s: 'v'.repeat(200) }));
        writes++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
  };
  const pause = async () => {
    stop = true;
    await loadRun;
  };
  t.after(async () => {
    await pause().catch(() => undefined);
    for (const s of standbys) await s.close().catch(() => undefined);
    await p.close();
    rmrf(root);
  });
  for (let i = 0; i < 3000; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => p.transaction((tx) => tx.put('t', `k${i + j}`, { n: i + j, s: 'z'.repeat(200) }), { synchronousCommit: 'off' })));
  }
  await p.flush();
  startLoad();
  const port = p.port!;
  const conninfo = `host=127.0.0.1 port=${port} user=postgres`;

  /** Opens a plain backup as a standby and compares its store with the primary's at one flush position. */
  const openAndCompare = async (dir: string, viaAutoConf: boolean) => {
    const s = await Standby.open({ dataDir: dir, readerThreads: 0, ...(viaAutoConf ? {} : { primaryConninfo: conninfo }) });
    standbys.push(s);
    await pause();
    const lsn = await p.flush();
    await s.waitForReplay(lsn, 60_000);
    assert.equal(s.store!.digest(), p.store.digest(), `standby from ${path.basename(dir)} equals the primary`);
    await s.close();
    standbys.splice(standbys.indexOf(s), 1);
    assert.ok(fs.existsSync(path.join(dir, 'backup_label.old')), 'backup_label adopted');
    startLoad();
  };
  const plain: { name: string; args: string[]; verifyArgs: string[]; autoConf?: boolean }[] = [
    { name: 'default', args: [], verifyArgs: [] },
    { name: 'server-gzip', args: ['--compress=server-gzip'], verifyArgs: [] },
    { name: 'fetch', args: ['-X', 'fetch'], verifyArgs: [] },
    { name: 'none', args: ['-X', 'none'], verifyArgs: ['-n'] },
    { name: 'stream-progress', args: ['-X', 'stream', '-P'], verifyArgs: [] },
    { name: 'max-rate', args: ['--max-rate=32M'], verifyArgs: [] },
    { name: 'sha256', args: ['--manifest-checksums=SHA256', '--manifest-force-encode'], verifyArgs: [] },
    { name: 'recovery-conf', args: ['-R'], verifyArgs: [], autoConf: true },
  ];
  for (const c of plain) {
    const dir = path.join(root, c.name);
    await baseBackup(port, dir, c.args);
    for (const f of ['backup_label', 'backup_manifest', 'walstream.control', 'WALSTREAM_VERSION']) assert.ok(fs.existsSync(path.join(dir, f)), `${c.name}: ${f}`);
    if (c.args.includes('-X') && c.args.includes('none')) assert.deepEqual(fs.readdirSync(path.join(dir, 'pg_wal')).filter((n) => /^[0-9A-F]{24}$/.test(n)), []);
    else assert.ok(fs.readdirSync(path.join(dir, 'pg_wal')).some((n) => /^[0-9A-F]{24}$/.test(n)), `${c.name}: WAL in the backup`);
    assert.match(verify(dir, c.verifyArgs), /backup successfully verified/);
    if (c.autoConf) {
      assert.ok(fs.existsSync(path.join(dir, 'standby.signal')));
      assert.match(fs.readFileSync(path.join(dir, 'postgresql.auto.conf'), 'utf8'), new RegExp(`primary_conninfo = '.*port=${port}`));
    }
    await openAndCompare(dir, c.autoConf === true);
    if (c.autoConf) {
      // `walstream standby --data DIR`, no other argument: up and consistent, stopped by SIGTERM.
      const cli = spawn(process.execPath, [path.join(REPO, 'bin', 'walstream.js'), 'standby', '--data', dir, '--reader-threads', '0', '--status-every-ms', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(cli);
      let out = '';
      let err = '';
      cli.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      cli.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise<number | null>((r) => cli.on('close', (code) => r(code)));
      await waitFor(() => out.includes('\n') || cli.exitCode !== null, 60_000, 'walstream standby to be consistent');
      const line = JSON.parse(out.split('\n')[0]!) as { standby: { conninfo: string } };
      assert.match(line.standby.conninfo, new RegExp(`host=127\\.0\\.0\\.1 port=${port}`), err);
      cli.kill('SIGTERM');
      assert.equal(await exited, 0, err);
      children.delete(cli);
    }
  }

  // Bad input gets PostgreSQL's error: no lz4 here.
  const lz4 = await startBaseBackup(port, path.join(root, 'lz4'), ['--compress=server-lz4', '-Ft']).done;
  assert.equal(lz4.status, 1);
  assert.match(lz4.stderr, /lz4 compression is not supported by this build/);

  // Tar formats: the archive (client- or server-side gzip) holds the data files, beside the manifest.
  const tars: { name: string; args: string[]; file: string }[] = [
    { name: 'tar', args: ['-Ft'], file: 'base.tar' },
    { name: 'tar-gzip', args: ['-Ft', '-z'], file: 'base.tar.gz' },
    { name: 'tar-server-gzip', args: ['--compress=server-gzip', '-Ft'], file: 'base.tar.gz' },
  ];
  for (const c of tars) {
    const dir = path.join(root, c.name);
    await baseBackup(port, dir, c.args);
    let bytes: Buffer = fs.readFileSync(path.join(dir, c.file));
    if (c.file.endsWith('.gz')) bytes = zlib.gunzipSync(bytes);
    const names = parseTar(bytes).map((e) => e.name);
    for (const n of ['backup_label', 'WALSTREAM_VERSION', 'walstream.control', 'checkpoints/', 'pg_wal/', 'pg_tblspc/']) assert.ok(names.includes(n), `${c.name}: ${n} in ${c.file}`);
    assert.ok(names.some((n) => /^checkpoints\/[0-9A-F]{16}\.snap$/.test(n)), `${c.name}: snapshot`);
    assert.ok(fs.existsSync(path.join(dir, 'backup_manifest')));
  }

  // Three concurrent backups under the write load all verify.
  const dirs = [0, 1, 2].map((i) => path.join(root, `concurrent-${i}`));
  const runs = await Promise.all(dirs.map((d) => startBaseBackup(port, d, ['-X', 'stream']).done));
  runs.forEach((r, i) => assert.equal(r.status, 0, `concurrent backup ${i}: ${r.stderr}`));
  for (const d of dirs) assert.match(verify(d), /backup successfully verified/);
  assert.deepEqual(p.backupsInProgress(), []);

  // A pg_basebackup killed mid-stream leaves no WAL pinned: its redo segment goes at the next checkpoints.
  const killedDir = path.join(root, 'killed');
  const killed = startBaseBackup(port, killedDir, ['-X', 'fetch', '--max-rate=32']);
  await waitFor(() => p.backupsInProgress().length === 1 && fs.existsSync(path.join(killedDir, 'backup_label')), 60_000, 'the backup to be streaming');
  const redo = p.backupsInProgress()[0]!.redoLsn;
  killed.child.kill('SIGKILL');
  const kr = await killed.done;
  assert.equal(kr.signal, 'SIGKILL');
  await waitFor(() => p.backupsInProgress().length === 0, 30_000, 'the killed backup to end').catch((e: Error) => {
    throw new Error(`${e.message}\nbackups: ${JSON.stringify(p.backupsInProgress())}\nwalsenders: ${JSON.stringify(p.replicationStatus())}\nlog:\n${logs.slice(-30).join('\n')}`);
  });
  await pause();
  const redoSeg = segmentFileName(1, segNo(redo, SEG), SEG);
  for (let i = 0; segNo(p.flushLsn, SEG) <= segNo(redo, SEG) + 1; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => p.transaction((tx) => tx.put('u', `x${i + j}`, { s: 'w'.repeat(500) }), { synchronousCommit: 'off' })));
  }
  await p.flush();
  await p.checkpoint();
  await p.checkpoint();
  assert.ok(!fs.existsSync(path.join(p.walDir, redoSeg)), `${redoSeg} is no longer pinned`);
});
