// `walstream bench stream`: pg_receivewal catch-up throughput (MB/s) from walstream's walsender
// beside the same from a real PostgreSQL 15 walsender, in one run over the same WAL volume
// (already written, in the page cache), with pg_receivewal's default fsyncs and with --no-sync.
// Also both walsenders feeding a client that discards the stream (bench/stream-discard.ts).
// Each side first writes `volumeMiB` of WAL; pg_receivewal then streams it from the first
// segment (a complete placeholder file for the segment before makes it start there) to the end
// (-E). Owns a temp directory, a walstream primary and a throwaway PostgreSQL cluster; removes
// them at the end. Prints JSON.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { lsnToString, parseLsn, type Lsn } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN_DIR, startPgCluster, type PgCluster } from '../test/helpers/pgcluster.js';

export interface StreamBenchOptions {
  volumeMiB: number;
  dir?: string | undefined;
  /** Runs per configuration (the best is reported beside the median). */
  runs: number;
}

const SEG = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

interface Run {
  seconds: number;
  bytes: number;
  mbPerSec: number;
}

/** pg_receivewal from `startLsn` (a segment start) to `endLsn`; returns the elapsed time. */
async function receive(port: number, user: string, env: NodeJS.ProcessEnv, dir: string, startLsn: Lsn, endLsn: Lsn, noSync: boolean): Promise<Run> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  // A complete segment just before the start: pg_receivewal resumes right after it.
  const seg = segNo(startLsn, SEG);
  fs.writeFileSync(path.join(dir, segmentFileName(1, seg - 1, SEG)), Buffer.alloc(0));
  fs.truncateSync(path.join(dir, segmentFileName(1, seg - 1, SEG)), SEG);
  const args = ['-h', '127.0.0.1', '-p', String(port), '-U', user, '-D', dir, '--no-loop', '-w', '-E', lsnToString(endLsn - 1)];
  if (noSync) args.push('--no-sync');
  const t0 = performance.now();
  const timeBin = process.env.WALSTREAM_BENCH_TIME === '1' ? '/usr/bin/time' : null;
  const child = timeBin
    ? spawn(timeBin, ['-f', 'pg_receivewal user %U s sys %S s', path.join(PG_BIN_DIR, 'pg_receivewal'), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env })
    : spawn(path.join(PG_BIN_DIR, 'pg_receivewal'), args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`pg_receivewal exited with ${code}: ${err}`);
  // It must have streamed the whole range: the last segment exists (complete or .partial).
  const last = segmentFileName(1, segNo(endLsn - 1, SEG), SEG);
  const first = segmentFileName(1, seg, SEG);
  for (const n of [first, last]) {
    if (!fs.existsSync(path.join(dir, n)) && !fs.existsSync(path.join(dir, `${n}.partial`))) throw new Error(`pg_receivewal did not write ${n}: ${err}`);
  }
  const bytes = endLsn - startLsn;
  if (timeBin) process.stderr.write(`${port} ${noSync ? 'nosync' : 'fsync'} ${(bytes / 1e6 / seconds).toFixed(0)} MB/s ${err.trim()}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  return { seconds, bytes, mbPerSec: bytes / 1e6 / seconds };
}

/** The discarding client (bench/stream-discard.ts) from `startLsn` until `endLsn - startLsn` stream bytes arrived. */
async function discard(port: number, user: string, startLsn: Lsn, endLsn: Lsn): Promise<Run> {
  const script = new URL('./stream-discard.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [script, String(port), user, lsnToString(startLsn), String(endLsn - startLsn)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`discarding client exited with ${code}: ${err}`);
  const seconds = Number(out.trim());
  const bytes = endLsn - startLsn;
  return { seconds, bytes, mbPerSec: bytes / 1e6 / seconds };
}

function summary(runs: Run[]) {
  const r = runs.map((x) => x.mbPerSec).sort((a, b) => a - b);
  return { mbPerSec: +r[Math.floor(r.length / 2)]!.toFixed(1), best: +r[r.length - 1]!.toFixed(1), runs: r.map((x) => +x.toFixed(1)), bytes: runs[0]!.bytes };
}

export async function runStreamBench(o: StreamBenchOptions) {
  const root = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-bench-stream-'));
  const volume = o.volumeMiB * MiB;
  let primary: Primary | null = null;
  let pg: PgCluster | null = null;
  try {
    // ---- walstream: write the volume, then stream it ----
    primary = await Primary.open({
      dataDir: path.join(root, 'ws'),
      walSegmentSize: SEG,
      checkpointTimeoutMs: 0,
      maxWalSizeBytes: 4 * volume + 4 * SEG,
      synchronousCommit: 'off',
      port: 0,
    });
    const value = 'w'.repeat(256 * 1024);
    let i = 0;
    // pg_receivewal ignores a placeholder for segment 0, so the measured range starts at segment 2 or later.
    while (primary.insertLsn < 2 * SEG) await primary.transaction((tx) => tx.put('bench', `k${i++ % 64}`, value));
    const wsStart = segNo(primary.insertLsn, SEG) * SEG;
    while (primary.insertLsn - wsStart < volume) {
      const k = `k${i++ % 64}`;
      await primary.transaction((tx) => tx.put('bench', k, value));
    }
    await primary.flush();
    const wsEnd = primary.flushLsn;
    const wsPort = primary.port!;

    // ---- PostgreSQL: same volume of WAL (non-transactional logical messages of 256 KiB) ----
    pg = await startPgCluster({
      hbaLines: ['host replication all 127.0.0.1/32 trust'],
      settings: { max_wal_size: `${Math.max(1024, 4 * o.volumeMiB)}MB`, wal_keep_size: `${2 * o.volumeMiB + 64}MB`, checkpoint_timeout: '1h' },
    });
    pg.psql('SELECT pg_switch_wal()');
    const pgStart = segNo(parseLsn(pg.psql('SELECT pg_current_wal_flush_lsn()').trim()), SEG) * SEG;
    const msgs = Math.ceil(volume / (256 * 1024));
    for (let done = 0; done < msgs; done += 64) {
      pg.psql(`SELECT count(pg_logical_emit_message(false, 'bench', repeat('p', 262144))) FROM generate_series(1, ${Math.min(64, msgs - done)})`);
    }
    const pgEnd = parseLsn(pg.psql('SELECT pg_current_wal_flush_lsn()').trim());
    const env = { ...process.env, PGCONNECT_TIMEOUT: '10' };

    const res: Record<string, Run[]> = { ours_fsync: [], pg_fsync: [], ours_nosync: [], pg_nosync: [], ours_discard: [], pg_discard: [] };
    for (let r = 0; r < o.runs; r++) {
      res.ours_discard!.push(await discard(wsPort, 'bench', wsStart, wsEnd));
      res.pg_discard!.push(await discard(pg.port, 'postgres', pgStart, pgEnd));
      for (const noSync of [false, true]) {
        const tag = noSync ? 'nosync' : 'fsync';
        res[`ours_${tag}`]!.push(await receive(wsPort, 'bench', env, path.join(root, 'rw-ours'), wsStart, wsEnd, noSync));
        res[`pg_${tag}`]!.push(await receive(pg.port, 'postgres', env, path.join(root, 'rw-pg'), pgStart, pgEnd, noSync));
      }
    }
    const ours = summary(res.ours_fsync!);
    const theirs = summary(res.pg_fsync!);
    const oursNs = summary(res.ours_nosync!);
    const theirsNs = summary(res.pg_nosync!);
    return {
      bench: 'stream',
      what: 'pg_receivewal catch-up of WAL already written (page cache), MB/s = 1e6 bytes/s, median of runs',
      volumeMiB: o.volumeMiB,
      walSegmentSize: SEG,
      cpus: os.cpus().length,
      pg_receivewal_from_walstream: ours,
      pg_receivewal_from_postgresql: theirs,
      ratio_walstream_vs_postgresql: +(ours.mbPerSec / theirs.mbPerSec).toFixed(2),
      discarding_client: {
        what: 'a Node client that discards the stream (the walsender alone, without pg_receivewal)',
        from_walstream: summary(res.ours_discard!),
        from_postgresql: summary(res.pg_discard!),
        ratio_walstream_vs_postgresql: +(summary(res.ours_discard!).mbPerSec / summary(res.pg_discard!).mbPerSec).toFixed(2),
      },
      no_sync: {
        pg_receivewal_from_walstream: oursNs,
        pg_receivewal_from_postgresql: theirsNs,
        ratio_walstream_vs_postgresql: +(oursNs.mbPerSec / theirsNs.mbPerSec).toFixed(2),
      },
    };
  } finally {
    await primary?.close();
    await pg?.stop();
    if (!o.dir) fs.rmSync(root, { recursive: true, force: true });
  }
}
