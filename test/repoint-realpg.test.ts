// Re-pointing a wal-only standby (Standby.setPrimaryConninfo) against REAL PostgreSQL 15. A real
// primary P and a real standby S of it (pg_basebackup -R); our standby streams from P.
// 1. P stops, S is promoted (timeline 2) and writes more WAL; we re-point to S without a restart:
//    the walreceiver ends its stream, connects to S (IDENTIFY_SYSTEM: timeline 2), fetches
//    00000002.history, streams timeline 1 from its flush up to the switch point, follows to
//    timeline 2, and its history file and complete timeline 2 segments are S's own bytes.
// 2. Divergence: S is stopped while P writes WAL we receive, then P stops and S is promoted
//    behind our flush; re-pointed to S, we refuse to stream with PostgreSQL's "forked off" error
//    naming both positions, and write nothing of S's (no history file, no timeline 2 segment).
// 3. `walstream standby` re-reads primary_conninfo from postgresql.auto.conf on SIGHUP and moves
//    from P to S (a cascade: same system, same timeline), as pg_stat_replication on both shows.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AUTO_CONF_FILE, parseAutoConf, readPrimaryConninfo } from '../src/standby/auto-conf.js';
import { Standby } from '../src/standby/standby.js';
import { readControl } from '../src/storage/control.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { pgBaseBackup, pgTempRoot, startPgNode, type PgNode } from './helpers/pgnode.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 16 * 1024 * 1024;
const SEGMENT_RE = /^[0-9A-F]{24}$/;
const dirs: string[] = [];
const nodes: Array<PgNode | PgCluster> = [];
const standbys: Standby[] = [];

after(async () => {
  for (const s of standbys) await s.close();
  for (const n of nodes) await n.stop();
  dirs.forEach(rmrf);
});

const HBA = ['host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'];
const conninfo = (port: number) => `host=127.0.0.1 port=${port} user=postgres application_name=walstream_repoint`;

async function setUp(): Promise<{ p: PgCluster; s: PgNode; sDir: string; root: string; ours: Standby; ourDir: string; warnings: string[]; timelines: number[] }> {
  const p = await startPgCluster({ hbaLines: HBA });
  nodes.push(p);
  p.psql('CREATE TABLE t (i int, pad text)');
  const root = pgTempRoot('walstream-repoint-');
  dirs.push(root);
  const sDir = path.join(root, 's');
  pgBaseBackup(p.port, sDir);
  const s = await startPgNode(sDir, root);
  nodes.push(s);
  const work = tmpDir('walstream-repoint-ours-');
  dirs.push(work);
  const ourDir = path.join(work, 'standby');
  const ours = await Standby.open({ dataDir: ourDir, mode: 'wal-only', primaryConninfo: conninfo(p.port), walRetrieveRetryIntervalMs: 200 });
  standbys.push(ours);
  const warnings: string[] = [];
  const timelines: number[] = [];
  ours.on('warning', (e: Error) => warnings.push(e.message));
  ours.on('timeline', (m: { tli: number }) => timelines.push(m.tli));
  await waitFor(() => ours.receiverStatus().status === 'streaming', 15_000, 'our walreceiver to stream');
  return { p, s, sDir, root, ours, ourDir, warnings, timelines };
}

function generate(node: { psql(sql: string): string }, rounds: number): void {
  for (let r = 0; r < rounds; r++) node.psql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g; SELECT pg_switch_wal()");
  node.psql("INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 500) g");
}

async function caughtUp(ours: Standby, p: PgCluster): Promise<void> {
  const end = parseLsn(p.psql('SELECT pg_current_wal_flush_lsn()').trim());
  await waitFor(() => ours.receiverStatus().flushed_lsn >= end, 30_000, `our flush to reach ${lsnToString(end)}`);
}

async function replayedAll(s: PgNode): Promise<void> {
  let last = '';
  await waitFor(() => {
    const now = s.psql('SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()').trim();
    const [recv, replay] = now.split('|');
    const settled = recv === replay && now === last;
    last = now;
    return settled;
  }, 30_000, 'the standby to replay all it received', 200);
}

test('setPrimaryConninfo re-points to a promoted standby: history fetched, timeline 1 to the switch point, then timeline 2, byte for byte', async () => {
  const { p, s, sDir, ours, ourDir, warnings, timelines } = await setUp();
  await waitFor(() => s.psql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").trim() === '1', 30_000, 'S to stream', 100);
  generate(p, 2);
  await caughtUp(ours, p);
  await p.stop();
  await replayedAll(s);
  s.promote();
  generate(s, 2);
  const history = fs.readFileSync(path.join(sDir, 'pg_wal', '00000002.history'));
  const switchpoint = parseLsn(/^1\t(\S+)\t/.exec(history.toString('latin1'))![1]!);
  assert.ok(ours.receiverStatus().flushed_lsn <= switchpoint, 'we have nothing past the switch point');

  ours.setPrimaryConninfo(conninfo(s.port));
  const walDir = path.join(ourDir, 'pg_wal');
  await waitFor(() => timelines.includes(2), 30_000, `the walreceiver to follow to timeline 2 (${warnings.join(' | ')})`);
  const sFlush = parseLsn(s.psql('SELECT pg_current_wal_flush_lsn()').trim());
  await waitFor(() => ours.receiverStatus().flushed_lsn >= sFlush, 30_000, 'our flush to reach S\'s');
  const st = ours.receiverStatus();
  assert.equal(st.sender_port, s.port);
  assert.equal(st.received_tli, 2);
  assert.equal(readControl(ourDir)!.tli, 2);
  assert.ok(fs.readFileSync(path.join(walDir, '00000002.history')).equals(history), 'S\'s history file');
  const tli2 = fs.readdirSync(walDir).filter((n) => SEGMENT_RE.test(n) && n.startsWith('00000002')).sort();
  assert.ok(tli2.length >= 2, `complete timeline 2 segments (${tli2.join(', ')})`);
  assert.equal(parseInt(tli2[0]!.slice(16), 16), Math.floor(switchpoint / SEG) % 256, 'timeline 2 begins in the switch point\'s segment');
  for (const n of tli2) assert.ok(fs.readFileSync(path.join(walDir, n)).equals(fs.readFileSync(path.join(sDir, 'pg_wal', n))), `${n}: S's bytes`);
  // Timeline 1 up to the switch point came from P and from S: every byte of it is P's WAL.
  const last1 = fs.readdirSync(walDir).filter((n) => n.startsWith('00000001')).sort().pop()!;
  assert.ok(last1.endsWith('.partial'), `timeline 1's last segment is kept as ${last1}`);
});

test('re-pointed to a standby promoted behind our flush: refuses to stream, naming both positions', async () => {
  const { p, s, sDir, root, ours, ourDir, warnings, timelines } = await setUp();
  await waitFor(() => s.psql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").trim() === '1', 30_000, 'S to stream', 100);
  await replayedAll(s);
  await s.stop();
  nodes.splice(nodes.indexOf(s), 1);
  generate(p, 1); // WAL that S never gets
  await caughtUp(ours, p);
  await p.stop();
  const flushed = ours.receiverStatus().flushed_lsn;
  const s2 = await startPgNode(sDir, root);
  nodes.push(s2);
  s2.promote();
  const switchpoint = parseLsn(/^1\t(\S+)\t/.exec(fs.readFileSync(path.join(sDir, 'pg_wal', '00000002.history'), 'latin1'))![1]!);
  assert.ok(switchpoint < flushed, 'S forked off before our flush');

  ours.setPrimaryConninfo(conninfo(s2.port));
  const want = `new timeline 2 forked off current database system timeline 1 before current recovery point ${lsnToString(flushed)}`;
  await waitFor(() => warnings.some((w) => w === want), 30_000, `the refusal (${warnings.join(' | ')})`);
  const walDir = path.join(ourDir, 'pg_wal');
  assert.deepEqual(timelines, []);
  assert.ok(!fs.existsSync(path.join(walDir, '00000002.history')), 'no history file written');
  assert.deepEqual(fs.readdirSync(walDir).filter((n) => n.startsWith('00000002')), [], 'nothing of timeline 2');
  assert.equal(ours.receiverStatus().flushed_lsn, flushed, 'our WAL is untouched');
  assert.equal(readControl(ourDir)!.tli, 1);
});

test('postgresql.auto.conf: primary_conninfo as PostgreSQL writes and quotes it (the last setting wins)', () => {
  const dir = tmpDir('walstream-autoconf-');
  dirs.push(dir);
  assert.equal(readPrimaryConninfo(dir), null, 'no file: no setting');
  fs.writeFileSync(path.join(dir, AUTO_CONF_FILE), "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\nprimary_conninfo = 'user=postgres passfile=''/var/lib/postgresql/.pgpass'' host=127.0.0.1 port=5432'\nwork_mem = 64MB # a comment\n");
  assert.equal(readPrimaryConninfo(dir), "user=postgres passfile='/var/lib/postgresql/.pgpass' host=127.0.0.1 port=5432");
  fs.appendFileSync(path.join(dir, AUTO_CONF_FILE), "PRIMARY_CONNINFO 'host=h2 it\\'s=1'\n");
  assert.equal(readPrimaryConninfo(dir), "host=h2 it's=1");
  assert.deepEqual([...parseAutoConf("a = 1\n\n  # x\nb='x\\ty'")], [['a', '1'], ['b', 'x\ty']]);
  assert.throws(() => parseAutoConf("a = 'unterminated"), /unterminated quoted string in file "postgresql.auto.conf" line 1/);
});

test('walstream standby (CLI) re-reads primary_conninfo from postgresql.auto.conf on SIGHUP and re-points', async () => {
  const p = await startPgCluster({ hbaLines: HBA });
  nodes.push(p);
  const root = pgTempRoot('walstream-sighup-');
  dirs.push(root);
  const sDir = path.join(root, 's');
  pgBaseBackup(p.port, sDir);
  const s = await startPgNode(sDir, root);
  nodes.push(s);
  const work = tmpDir('walstream-sighup-ours-');
  dirs.push(work);
  const ourDir = path.join(work, 'standby');
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'standby', '--data', ourDir, '--mode', 'wal-only', '--primary', conninfo(p.port), '--retry-interval-ms', '200', '--status-every-ms', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  try {
    const app = (n: { psql(sql: string): string }) => n.psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'walstream_repoint'").trim();
    await waitFor(() => app(p) === '1', 30_000, `our standby streaming from P: ${err}`, 100);
    // Nothing to reload yet: SIGHUP changes nothing.
    child.kill('SIGHUP');
    await waitFor(() => err.includes('received SIGHUP, reloading configuration files'), 10_000, 'the reload');
    assert.equal(app(p), '1');
    fs.writeFileSync(path.join(ourDir, AUTO_CONF_FILE), `primary_conninfo = '${conninfo(s.port)}'\n`);
    child.kill('SIGHUP');
    await waitFor(() => app(s) === '1' && app(p) === '0', 30_000, `our standby streaming from S instead: ${err}`, 100);
    await waitFor(() => new RegExp(`parameter "primary_conninfo" changed to ".*port=${s.port} `).test(err), 10_000, 'the LOG line');
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstdout: ${out}\nstderr: ${err}`);
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, err);
  }
});
