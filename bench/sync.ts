// `walstream bench sync`: the cost of synchronous replication, in one run.
//  - ours: a walstream primary with 1 and 2 walstream standbys (loopback TCP, named in
//    synchronous_standby_names); commit latency p50/p99 and commits/s for every
//    synchronous_commit level (off, local, remote_receive, remote_write, on, remote_apply) at 1
//    and 64 committers;
//  - PostgreSQL 15: a real primary (fsync on) with one real standby (pg_basebackup -R, its own
//    postmaster on another port, named in synchronous_standby_names), `pgbench -N -M prepared`
//    at the same levels (PGOPTIONS=-c synchronous_commit=…) and client counts; latencies from
//    pgbench's per-transaction log. PostgreSQL has no remote_receive: reported as null.
//  - ours in latency mode (committerFlush: a lone commit fdatasyncs its own WAL) at 1 committer,
//    for each standby count (walstreamLatencyMode, an array);
//  - each walstream configuration is warmed up (commits not measured) before its points;
//  - ratios: our commits/s over PostgreSQL's TPS per level and client count;
//  - the raw 8 KiB write + fdatasync rate of the same disk (the floor under every level but off).
// Owns a temp directory, the walstream primary/standbys and both PostgreSQL postmasters; stops and
// removes them all (also on error). Returns a JSON-ready object (latency in ms); its own directory
// (inside `dir` or the temp directory) is removed at the end unless `keep`.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { Primary } from '../src/primary/primary.js';
import type { SynchronousCommit } from '../src/primary/options.js';
import { Standby } from '../src/standby/standby.js';
import { freePort, PG_BIN_DIR, startPgCluster, type PgCluster } from '../test/helpers/pgcluster.js';
import { quantileMs } from '../src/util/quantile.js';
import { measureRawFsync } from './raw-limits.js';
import { cdfOf, CDF_PERCENTILES, type CdfPoint } from './report/model.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

export const BENCH_SYNC_LEVELS: readonly SynchronousCommit[] = ['off', 'local', 'remote_receive', 'remote_write', 'on', 'remote_apply'];

export interface SyncBenchOptions {
  /** Seconds per measured point (one level at one committer count). */
  seconds: number;
  levels?: readonly SynchronousCommit[];
  committers?: readonly number[];
  /** walstream standby counts (1 → 's1'; 2 → 'FIRST 1 (s1, s2)'). */
  standbys?: readonly number[];
  /** Run the real PostgreSQL comparison. Default true. */
  realPg?: boolean;
  dir?: string | undefined;
  /** Keep the run's directory instead of removing it. */
  keep?: boolean;
  progress?: BenchProgress;
}

export interface SyncPoint {
  synchronous_commit: SynchronousCommit;
  committers: number;
  commitsPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Latency CDF (percentile → ms); empty where not measured. */
  cdf: CdfPoint[];
}

const SEG = 16 * 1024 * 1024;
const MiB = 1024 * 1024;
/** Upper bound on waiting for standbys to stream and become synchronous, in ms. */
const setupTimeoutMs = 60_000;

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Seconds of commits before the measured points of each walstream configuration (at most one point's duration). */
const WARMUP_SECONDS = 3;

function standbyNamesFor(n: number): string {
  return n === 1 ? 's1' : `FIRST 1 (${Array.from({ length: n }, (_, i) => `s${i + 1}`).join(', ')})`;
}

async function measureOurs(p: Primary, level: SynchronousCommit, committers: number, seconds: number): Promise<SyncPoint> {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  const value = 'v'.repeat(100);
  let commits = 0;
  let seq = 0;
  const t0 = performance.now();
  const stopAt = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: committers }, async () => {
      while (performance.now() < stopAt) {
        const k = `k${seq++ % 100_000}`;
        const s = performance.now();
        await p.transaction((tx) => tx.put('bench', k, value), { synchronousCommit: level });
        h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
        commits++;
        // At 'off' nothing yields to the event loop: let the walsenders' replies be handled.
        if (level === 'off' && commits % 1024 === 0) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const res = {
    synchronous_commit: level, committers, commitsPerSec: Math.round(commits / secs), p50Ms: h.getValueAtPercentile(50) / 1000, p99Ms: h.getValueAtPercentile(99) / 1000,
    cdf: commits > 0 ? CDF_PERCENTILES.map((q) => ({ p: q, ms: h.getValueAtPercentile(q === 0 ? 0.0001 : q) / 1000 })) : [],
  };
  h.destroy();
  return res;
}

async function runOurs(root: string, n: number, o: Required<Pick<SyncBenchOptions, 'seconds' | 'levels' | 'committers' | 'progress'>>, committerFlush = false) {
  const names = standbyNamesFor(n);
  const dataDir = path.join(root, committerFlush ? `p${n}-latency` : `p${n}`);
  const p = await Primary.open({ dataDir, walSegmentSize: SEG, walBuffersBytes: 16 * MiB, checkpointTimeoutMs: 0, maxWalSizeBytes: 4096 * MiB, port: 0, synchronousStandbyNames: names, committerFlush });
  const standbys: Standby[] = [];
  try {
    for (let i = 1; i <= n; i++) {
      standbys.push(await Standby.open({ dataDir: `${dataDir}-s${i}`, primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'bench', applicationName: `s${i}` }, readerThreads: 0, checkpointTimeoutMs: 0 }));
    }
    await until(() => p.replicationStatus().some((r) => r.sync_state === 'sync') && p.replicationStatus().length === n, setupTimeoutMs, 'a synchronous walstream standby');
    const points: SyncPoint[] = [];
    // Warm-up, not measured (JIT tiers, first segments): with 2 standbys, a cold first point at
    // `on`, 1 committer measured p50 1.0–1.2 ms where the same point after 3 s of commits
    // measured 0.55–0.65 ms.
    await measureOurs(p, 'on', 8, Math.min(WARMUP_SECONDS, o.seconds));
    for (const level of o.levels) {
      for (const c of o.committers) {
        o.progress.step(`walstream${committerFlush ? ' (latency mode)' : ''}, ${n} standby${n === 1 ? '' : 's'}: ${level}, ${c} committer${c === 1 ? '' : 's'}`);
        points.push(await measureOurs(p, level, c, o.seconds));
      }
    }
    return { standbys: n, synchronous_standby_names: names, committerFlush, points };
  } finally {
    for (const s of standbys) await s.close().catch(() => undefined);
    await p.close();
  }
}

// ---- real PostgreSQL 15: primary + one streaming standby ----

interface Account { uid: number; gid: number }

function postgresAccount(): Account | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no "postgres" account to run PostgreSQL as');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Prefix of the PostgreSQL standby's temp directory (in os.tmpdir()). */
export const PG_STANDBY_DIR_PREFIX = 'walstream-benchsync-pg-';

interface PgStandby { port: number; stop(): Promise<void> }

/** pg_basebackup -R from `pg` into a fresh directory under `root`, started on a free port with application_name `name`. */
async function startPgStandby(pg: PgCluster, name: string, maxConnections: number): Promise<PgStandby> {
  const account = postgresAccount();
  const asPg: SpawnOptions = account ? { uid: account.uid, gid: account.gid } : {};
  // Its own temp directory (owned by the postgres account), not under `root`, which may sit in a directory that account cannot enter.
  const sroot = fs.mkdtempSync(path.join(os.tmpdir(), PG_STANDBY_DIR_PREFIX));
  const dataDir = path.join(sroot, 'data');
  if (account) fs.chownSync(sroot, account.uid, account.gid);
  let child: ChildProcess | undefined;
  const cleanup = () => fs.rmSync(sroot, { recursive: true, force: true });
  try {
    const bb = spawnSync(path.join(PG_BIN_DIR, 'pg_basebackup'), ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'], {
      ...asPg, encoding: 'utf8', env: pg.clientEnv(), timeout: 120_000,
    } as Parameters<typeof spawnSync>[2]);
    if (bb.status !== 0) throw new Error(`pg_basebackup failed (${bb.status}): ${String(bb.stderr)}`);
    // Later lines win: our own primary_conninfo with the application_name the primary waits for.
    fs.appendFileSync(path.join(dataDir, 'postgresql.auto.conf'), `primary_conninfo = 'host=${pg.host} port=${pg.port} user=postgres password=${pg.superuserPassword} application_name=${name}'\n`);
    const port = await freePort();
    const args = ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${sroot}`, '-c', 'hot_standby=on', '-c', 'wal_receiver_status_interval=1s', '-c', 'logging_collector=off', '-c', 'fsync=on', '-c', `max_connections=${maxConnections}`, '-c', 'shared_buffers=128MB'];
    let log = '';
    child = spawn(path.join(PG_BIN_DIR, 'postgres'), args, { ...asPg, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { log += d.toString(); if (log.length > 1 << 20) log = log.slice(-65536); });
    const proc = child;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const onExit = () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      cleanup();
    };
    process.once('exit', onExit);
    const stop = async () => {
      process.removeListener('exit', onExit);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGINT');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    };
    try {
      await until(() => /ready to accept read-only connections/.test(log) || proc.exitCode !== null, setupTimeoutMs, 'the PostgreSQL standby to start');
      if (proc.exitCode !== null) throw new Error(`PostgreSQL standby exited:\n${log}`);
      await until(() => pg.psql(`select count(*) from pg_stat_replication where application_name = '${name}' and state = 'streaming'`).trim() === '1', setupTimeoutMs, 'the PostgreSQL standby to stream');
    } catch (e) {
      await stop();
      throw e;
    }
    return { port, stop };
  } catch (e) {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    cleanup();
    throw e;
  }
}

function runPgbench(pg: PgCluster, level: SynchronousCommit, clients: number, seconds: number, logDir: string): Promise<SyncPoint> {
  const prefix = path.join(logDir, `pgbench-${level}-${clients}`);
  const args = ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-n', '-N', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(Math.max(1, Math.round(seconds))), '-l', `--log-prefix=${prefix}`, 'postgres'];
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(PG_BIN_DIR, 'pgbench'), args, { env: pg.clientEnv({ PGOPTIONS: `-c synchronous_commit=${level}` }), stdio: ['ignore', 'pipe', 'pipe'], cwd: logDir });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + 60_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`pgbench at ${level} -c ${clients} failed (${code}): ${err}`));
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
      if (!tps) return reject(new Error(`pgbench printed no tps:\n${out}`));
      // Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us.
      const lat: number[] = [];
      for (const f of fs.readdirSync(logDir)) {
        if (!f.startsWith(path.basename(prefix) + '.')) continue;
        const full = path.join(logDir, f);
        for (const line of fs.readFileSync(full, 'utf8').split('\n')) {
          const us = Number(line.split(' ')[2]);
          if (line.length > 0 && Number.isFinite(us)) lat.push(us / 1000);
        }
        fs.rmSync(full);
      }
      const sorted = Float64Array.from(lat).sort();
      resolve({
        synchronous_commit: level,
        committers: clients,
        commitsPerSec: Math.round(Number(tps[1])),
        p50Ms: sorted.length ? quantileMs(sorted, 0.5) : null,
        p99Ms: sorted.length ? quantileMs(sorted, 0.99) : null,
        cdf: cdfOf(sorted),
      });
    });
  });
}

async function runPostgres(root: string, o: Required<Pick<SyncBenchOptions, 'seconds' | 'levels' | 'committers' | 'progress'>>) {
  let pg: PgCluster | null = null;
  let sb: PgStandby | null = null;
  let logDir: string | null = null;
  const name = 'pgstandby';
  try {
    o.progress.step('PostgreSQL: initdb, pgbench -i, pg_basebackup, standby');
    // A hot standby needs max_connections >= the primary's.
    const maxConnections = Math.max(100, ...o.committers) + 10;
    pg = await startPgCluster({
      hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256'],
      settings: { fsync: 'on', max_connections: maxConnections, shared_buffers: '128MB', max_wal_size: '4GB', checkpoint_timeout: '1h' },
    });
    const init = spawnSync(path.join(PG_BIN_DIR, 'pgbench'), ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-i', '-s', '1', '-q', 'postgres'], { env: pg.clientEnv(), encoding: 'utf8', timeout: 120_000 });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    sb = await startPgStandby(pg, name, maxConnections);
    pg.psql(`alter system set synchronous_standby_names = '${name}'`);
    pg.psql('select pg_reload_conf()');
    await until(() => pg!.psql(`select sync_state from pg_stat_replication where application_name = '${name}'`).trim() === 'sync', setupTimeoutMs, 'the PostgreSQL standby to be synchronous');
    logDir = fs.mkdtempSync(path.join(root, 'pgbench-log-'));
    const points: SyncPoint[] = [];
    for (const level of o.levels) {
      for (const c of o.committers) {
        if (level === 'remote_receive') {
          points.push({ synchronous_commit: level, committers: c, commitsPerSec: null, p50Ms: null, p99Ms: null, cdf: [] });
          continue;
        }
        o.progress.step(`PostgreSQL pgbench: ${level}, ${c} client${c === 1 ? '' : 's'}`);
        points.push(await runPgbench(pg, level, c, o.seconds, logDir));
      }
    }
    return { standbys: 1, synchronous_standby_names: name, settings: 'fsync=on, pgbench -N -M prepared, -j min(2, clients)', points };
  } finally {
    if (logDir !== null) fs.rmSync(logDir, { recursive: true, force: true });
    await sb?.stop();
    await pg?.stop();
  }
}

export async function runSyncBench(o: SyncBenchOptions) {
  const levels = o.levels ?? BENCH_SYNC_LEVELS;
  const committers = o.committers ?? [1, 64];
  const standbyCounts = o.standbys ?? [1, 2];
  if (!(o.seconds > 0)) throw new Error('seconds must be > 0');
  const t0 = performance.now();
  const work = benchWorkDir('sync', o);
  const root = work.root;
  const progress = o.progress ?? noProgress;
  const realPg = o.realPg !== false;
  const lmLevels = levels.filter((l) => l !== 'off');
  progress.plan(
    1 + standbyCounts.length * levels.length * committers.length + (committers.includes(1) ? standbyCounts.length * lmLevels.length : 0)
      + (realPg ? 1 + levels.filter((l) => l !== 'remote_receive').length * committers.length : 0),
  );
  try {
    // The floor under every level but off: one 8 KiB write + fdatasync on this disk.
    progress.step('raw 8 KiB write + fdatasync');
    const rawFsync = await measureRawFsync({ dir: root, seconds: Math.min(1, o.seconds) });
    const cfg = { seconds: o.seconds, levels, committers, progress };
    const ours = [];
    for (const n of standbyCounts) ours.push(await runOurs(root, n, cfg));
    // Latency mode (committerFlush: a lone commit fdatasyncs its own WAL on its thread) at 1
    // committer, for each standby count.
    const latencyMode = [];
    if (committers.includes(1)) {
      for (const n of standbyCounts) latencyMode.push(await runOurs(root, n, { ...cfg, levels: lmLevels, committers: [1] }, true));
    }
    const postgres = realPg ? await runPostgres(root, cfg) : null;
    const ratios = [];
    for (const level of levels) {
      for (const c of committers) {
        const pgTps = postgres?.points.find((x) => x.synchronous_commit === level && x.committers === c)?.commitsPerSec ?? null;
        // Keyed by our standby count: our commits/s with that many standbys over PostgreSQL's TPS (one standby).
        const oursOverPostgres: Record<string, number | null> = {};
        for (const r of ours) {
          const mine = r.points.find((x) => x.synchronous_commit === level && x.committers === c)?.commitsPerSec ?? null;
          oursOverPostgres[String(r.standbys)] = mine !== null && pgTps ? +(mine / pgTps).toFixed(2) : null;
        }
        ratios.push({ synchronous_commit: level, committers: c, oursOverPostgres });
      }
    }
    return {
      bench: 'sync' as const,
      units: { latency: 'ms', rate: 'commits/s' },
      secondsPerPoint: o.seconds,
      host: { cpus: os.cpus().length, node: process.version },
      rawFsync,
      walstream: ours,
      walstreamLatencyMode: latencyMode,
      postgres,
      ratios,
      elapsedSeconds: +((performance.now() - t0) / 1000).toFixed(1),
    };
  } finally {
    work.cleanup();
  }
}
