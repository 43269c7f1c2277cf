// `walstream bench basebackup`: how fast a new standby's copy is taken, for the same amount of data,
// in one run: pg_basebackup 15 from a walstream primary, pg_basebackup 15 from a real PostgreSQL 15
// primary, walstream's own bootstrap (takeBaseBackup, what `walstream basebackup` and an empty
// Standby.open run) from the walstream primary, and the limit: copying the walstream primary's files
// with `cp -a` and fsyncing each copy (coreutils `sync FILE…`). Every way writes to the same disk and
// makes its copy durable (pg_basebackup syncs its output by default; the bootstrap fsyncs; the
// limit fsyncs every file). MB/s = bytes of the copy (the archive: data, manifest excluded, WAL
// included) / wall time. Runs are interleaved (one of each way per round) and the median per way is
// reported. Returns a JSON-ready object; works in a directory of its own, removed unless `keep`.

import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { takeBaseBackup } from '../src/standby/basebackup-client.js';
import { PG_BIN_DIR, startPgCluster, type PgCluster } from '../test/helpers/pgcluster.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

export interface BaseBackupBenchOptions {
  dir?: string | undefined;
  keep?: boolean;
  /** Data to copy, MiB (each primary is filled to about this size). */
  mib: number;
  /** Rounds; one copy of each way per round. */
  runs: number;
  /** Include the real PostgreSQL 15 primary. */
  realPg: boolean;
  progress?: BenchProgress;
}

/** Size of each value written to fill a primary, bytes (incompressible, so nothing shrinks it). */
const FILL_VALUE_BYTES = 4096;
/** Failure bound of one copy, ms (not a measurement). */
const COPY_TIMEOUT_MS = 600_000;

export interface CopyRun {
  way: string;
  bytes: number;
  ms: number;
  mbPerSec: number;
}

/** Bytes of the regular files under `dir`, recursively. */
function treeBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += treeBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The copy's size the way a base backup counts it: everything but the manifest (and the pid file). */
function copyBytes(dir: string): number {
  let n = treeBytes(dir);
  for (const f of ['backup_manifest', 'postmaster.pid', 'walstream.pid']) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) n -= fs.statSync(p).size;
  }
  return n;
}

function run(cmd: string, args: string[], opts: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COPY_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(cmd)} failed (${code ?? signal}): ${err.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

async function timed(way: string, out: string, copy: () => Promise<void>): Promise<CopyRun> {
  const t0 = performance.now();
  await copy();
  const ms = performance.now() - t0;
  const bytes = copyBytes(out);
  return { way, bytes, ms: +ms.toFixed(1), mbPerSec: +(bytes / (ms / 1000) / 1e6).toFixed(1) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 === 1 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Fill a real PostgreSQL primary with about `mib` MiB of incompressible rows, stored out of line uncompressed. */
function fillPg(pg: PgCluster, mib: number): void {
  const rows = Math.ceil((mib * 1024 * 1024) / FILL_VALUE_BYTES);
  pg.psql(`create table fill(id int primary key, v text); alter table fill alter column v set storage external;
    insert into fill select g, (select string_agg(md5(g::text || ':' || i), '') from generate_series(1, ${FILL_VALUE_BYTES / 32}) i) from generate_series(1, ${rows}) g;
    checkpoint;`);
}

export async function runBaseBackupBench(o: BaseBackupBenchOptions) {
  const work = benchWorkDir('basebackup', o);
  const progress = o.progress ?? noProgress;
  const ways = ['pg_basebackup from walstream', ...(o.realPg ? ['pg_basebackup from PostgreSQL 15'] : []), 'walstream bootstrap from walstream', 'cp -a + fsync of the files'];
  progress.plan(2 + (o.realPg ? 1 : 0) + o.runs * ways.length);
  let p: Primary | null = null;
  let pg: PgCluster | null = null;
  try {
    progress.step(`walstream primary: ${o.mib} MiB of data, checkpoint`);
    p = await Primary.open({ dataDir: path.join(work.root, 'primary'), checkpointTimeoutMs: 0, maxWalSizeBytes: 4 * 2 ** 30, port: 0 });
    const value = new Uint8Array(FILL_VALUE_BYTES);
    const rows = Math.ceil((o.mib * 1024 * 1024) / FILL_VALUE_BYTES);
    for (let i = 0; i < rows; i += 256) {
      await Promise.all(Array.from({ length: Math.min(256, rows - i) }, (_, j) => {
        const v = new Uint8Array(value.length);
        for (let k = 0; k < v.length; k += 4) new DataView(v.buffer).setUint32(k, Math.imul(i + j + 1, 2654435761) ^ Math.imul(k + 1, 40503), true);
        return p!.transaction((tx) => tx.put('fill', `k${i + j}`, v), { synchronousCommit: 'off' });
      }));
    }
    await p.flush();
    await p.checkpoint();
    const primaryBytes = treeBytes(p.dataDir);
    if (o.realPg) {
      progress.step(`PostgreSQL 15 primary: initdb, ${o.mib} MiB of data, checkpoint`);
      pg = await startPgCluster({ hbaLines: ['host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'] });
      fillPg(pg, o.mib);
    }
    progress.step('warm-up: one copy of each primary\'s files (page cache)');
    for (const f of filesUnder(p.dataDir)) fs.readFileSync(f);
    const runs: CopyRun[] = [];
    let n = 0;
    const out = () => path.join(work.root, `copy-${n++}`);
    const pgBaseBackup = (port: number, dir: string) => run(path.join(PG_BIN_DIR, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-D', dir, '-c', 'fast', '-X', 'fetch'], {
      env: { ...process.env, LC_ALL: 'C' },
    });
    for (let r = 0; r < o.runs; r++) {
      for (const way of ways) {
        progress.step(`round ${r + 1}/${o.runs}: ${way}`);
        const dir = out();
        if (way === 'pg_basebackup from walstream') runs.push(await timed(way, dir, () => pgBaseBackup(p!.port!, dir)));
        else if (way === 'pg_basebackup from PostgreSQL 15') runs.push(await timed(way, dir, () => pgBaseBackup(pg!.port, dir)));
        else if (way === 'walstream bootstrap from walstream') {
          runs.push(await timed(way, dir, async () => {
            await takeBaseBackup({ dataDir: dir, primaryConninfo: `host=127.0.0.1 port=${p!.port!} user=postgres` });
          }));
        } else {
          runs.push(await timed(way, dir, async () => {
            await run('cp', ['-a', p!.dataDir, dir], {});
            const files = filesUnder(dir);
            for (let i = 0; i < files.length; i += 256) await run('sync', files.slice(i, i + 256), {});
            spawnSync('sync', [dir]);
          }));
        }
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const summary = ways.map((way) => {
      const mine = runs.filter((x) => x.way === way);
      return { way, bytes: Math.round(median(mine.map((x) => x.bytes))), medianMs: +median(mine.map((x) => x.ms)).toFixed(1), mbPerSec: +median(mine.map((x) => x.mbPerSec)).toFixed(1) };
    });
    const rate = (way: string) => summary.find((s) => s.way === way)?.mbPerSec ?? null;
    const div = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : +(a / b).toFixed(2));
    return {
      bench: 'basebackup' as const,
      units: { throughput: 'MB/s (10^6 bytes/s)', duration: 'ms' },
      host: { cpus: os.cpus().length, node: process.version },
      mib: o.mib,
      rounds: o.runs,
      primaryDataBytes: primaryBytes,
      ways: summary,
      runs,
      ratios: {
        pgBaseBackupOursOverPostgres: div(rate('pg_basebackup from walstream'), rate('pg_basebackup from PostgreSQL 15')),
        bootstrapOverPostgres: div(rate('walstream bootstrap from walstream'), rate('pg_basebackup from PostgreSQL 15')),
        pgBaseBackupOursOverCopy: div(rate('pg_basebackup from walstream'), rate('cp -a + fsync of the files')),
        bootstrapOverCopy: div(rate('walstream bootstrap from walstream'), rate('cp -a + fsync of the files')),
      },
    };
  } finally {
    await p?.close();
    await pg?.stop();
    work.cleanup();
  }
}
