// `walstream bench stream`: the streaming-replication catch-up matrix and live latency, in one run.
// Catch-up (WAL already written, in the page cache; the same volume on each side, at least 1 GiB
// for the acceptance figures), each pairing run `runs` times, interleaved so that the disk's noise
// falls on all of them alike; medians, bests and ratios of medians:
//   - walstream walsender → walstream walreceiver (wal-only mode: written and fdatasynced, like
//     pg_receivewal), over TCP and through the SharedArrayBuffer rings of an in-process standby;
//   - PostgreSQL's walsender → pg_receivewal (the reference);
//   - a warm walstream standby (replica mode) whose restartpoints recycled old segments, catching up
//     into them (flushed and replayed), as a standby that has been running for a while does;
//   - walstream walsender → pg_receivewal, and PostgreSQL's walsender → walstream walreceiver;
//   - each walsender feeding a client that discards the stream (the sender alone), and raw loopback
//     TCP between two Node threads (the transport's ceiling).
// pg_receivewal runs with its default fsyncs and, separately, with --no-sync.
// Live: commit-to-visible-on-standby latency p50/p99 at a paced commit rate (10k/s by default) with
// 1, 2 and 4 standbys (bench/standby.ts's live runner), beside the chain floor.
// Owns a directory of its own (inside `dir` or the temp directory), a walstream primary and a
// throwaway PostgreSQL cluster; removes them at the end (the directory unless `keep`). Returns a
// JSON-ready object (latency in ms, MB/s = 10^6 bytes/s).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { DbState, writeControl } from '../src/storage/control.js';
import { lsnToString, parseLsn, type Lsn } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN_DIR, startPgCluster, type PgCluster } from '../test/helpers/pgcluster.js';
import { measureChainFloor } from './chain-floor.js';
import { Errors } from '../src/errors.js';
import { measureLoopbackTcp, measureSegmentWrites } from './raw-limits.js';
import { live, LIVE_WARMUP_MS, type BenchTransport } from './standby.js';
import { median } from '../src/util/quantile.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

export interface StreamBenchOptions {
  volumeMiB: number;
  dir?: string | undefined;
  /** Runs per configuration (the best is reported beside the median). */
  runs: number;
  /** Live runs: seconds each (0: no live runs), rounds (interleaved, medians reported), paced commits/s, standby counts, transports. */
  liveSeconds?: number;
  liveRounds?: number;
  commitsPerSec?: number;
  standbys?: number[];
  liveTransports?: BenchTransport[];
  /** Keep the run's directory instead of removing it. */
  keep?: boolean;
  progress?: BenchProgress;
}

const SEG = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

interface Run {
  seconds: number;
  bytes: number;
  mbPerSec: number;
}

/** The round whose p99 is the median one (its tail shape is reported). */
function medianRound<T extends { p99Ms: number }>(rs: T[]): T {
  const s = [...rs].sort((a, b) => a.p99Ms - b.p99Ms);
  return s[Math.floor((s.length - 1) / 2)]!;
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

/**
 * Our walreceiver in wal-only mode (pg_receivewal's job) from `startLsn` (a segment start) until it
 * has flushed `endLsn`: a directory holding a control file with the server's identity and a
 * complete placeholder for the segment before, so it resumes exactly there, as pg_receivewal does.
 */
async function walOnly(dir: string, sysid: bigint, via: { primary: Primary } | { host: string; port: number; user: string }, startLsn: Lsn, endLsn: Lsn): Promise<Run> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'pg_wal'), { recursive: true });
  writeControl(dir, { sysid, segSize: SEG, state: DbState.InArchiveRecovery, tli: 1, checkpointLsn: 0, redoLsn: 0, nextXid: 0, timeMs: Date.now(), snapshotName: '', minRecoveryPoint: 0 });
  const seg = segNo(startLsn, SEG);
  fs.writeFileSync(path.join(dir, 'pg_wal', segmentFileName(1, seg - 1, SEG)), Buffer.alloc(SEG));
  const t0 = performance.now();
  const s = await Standby.open({
    dataDir: dir,
    mode: 'wal-only',
    ...('primary' in via ? { primary: via.primary } : { primaryConninfo: { host: via.host, port: via.port, user: via.user, applicationName: 'bench' } }),
  });
  try {
    while (s.flushLsn < endLsn) {
      if (performance.now() - t0 > 600_000) throw new Error(`wal-only catch-up stuck at ${lsnToString(s.flushLsn)}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    const seconds = (performance.now() - t0) / 1000;
    const bytes = endLsn - startLsn;
    return { seconds, bytes, mbPerSec: bytes / 1e6 / seconds };
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Between runs: write back what the last receiver left dirty and let the file system finish the
 * removal of its gigabyte (ext4 here is mounted with `discard`), so that no run pays for the one
 * before it.
 */
async function settleDisk(): Promise<void> {
  await new Promise((resolve) => spawn('sync', [], { stdio: 'ignore' }).once('exit', resolve).once('error', resolve));
  await new Promise((r) => setTimeout(r, 500));
}

/**
 * A warm standby (replica mode, walstream's own): it has streamed and replayed `volume` before, and
 * its restartpoints recycled the segments it no longer needed (min_wal_size), as on any standby
 * that has been running for a while. Each run: the standby goes away, the primary writes `volume`
 * (its WAL pinned for the standby), the standby comes back and catches up into recycled segments.
 * Flushed is the figure comparable to pg_receivewal; replayed is reported beside it.
 */
class WarmStandby {
  private constructor(
    private readonly root: string,
    readonly primary: Primary,
    private readonly opts: import('../src/standby/options.js').StandbyOptions,
    private pin: Lsn,
    private i: number,
  ) {}

  static async create(root: string, volume: number): Promise<WarmStandby> {
    const primary = await Primary.open({
      dataDir: path.join(root, 'warm-p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * MiB, synchronousCommit: 'off', port: 0,
    });
    const opts = {
      dataDir: path.join(root, 'warm-s'), primaryConninfo: { host: '127.0.0.1', port: primary.port!, user: 'bench' }, readerThreads: 0,
      checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * MiB, minWalSizeBytes: 2 * volume + 256 * MiB,
    };
    const w = new WarmStandby(root, primary, opts, 0, 0);
    primary.pinWal(() => w.pin);
    const s = await Standby.open(opts);
    try {
      w.pin = s.flushLsn;
      const end = await w.write(volume);
      await s.waitForReplay(end, 600_000);
      w.pin = s.flushLsn;
    } finally {
      await s.close();
    }
    return w;
  }

  private async write(volume: number): Promise<Lsn> {
    const value = 'w'.repeat(256 * 1024);
    const target = this.primary.insertLsn + volume;
    while (this.primary.insertLsn < target) {
      const k = `k${this.i++ % 64}`;
      await this.primary.transaction((tx) => tx.put('bench', k, value));
    }
    return this.primary.flush();
  }

  async run(volume: number): Promise<{ flushed: Run; replayed: Run }> {
    const start = this.pin;
    const end = await this.write(volume);
    await settleDisk();
    const t0 = performance.now();
    const s = await Standby.open(this.opts);
    try {
      let tFlushed = 0;
      while (s.replayLsn < end) {
        if (tFlushed === 0 && s.flushLsn >= end) tFlushed = performance.now();
        if (performance.now() - t0 > 600_000) throw new Error(`warm catch-up stuck at ${lsnToString(s.flushLsn)}`);
        await new Promise((r) => setTimeout(r, 1));
      }
      const tReplayed = performance.now();
      if (tFlushed === 0) tFlushed = tReplayed;
      this.pin = s.flushLsn;
      const bytes = end - start;
      const at = (t: number) => ({ seconds: (t - t0) / 1000, bytes, mbPerSec: bytes / 1e6 / ((t - t0) / 1000) });
      return { flushed: at(tFlushed), replayed: at(tReplayed) };
    } finally {
      await s.close();
    }
  }

  async close(): Promise<void> {
    await this.primary.close();
    fs.rmSync(path.join(this.root, 'warm-p'), { recursive: true, force: true });
    fs.rmSync(path.join(this.root, 'warm-s'), { recursive: true, force: true });
  }
}

function summary(runs: Run[]) {
  const r = runs.map((x) => x.mbPerSec).sort((a, b) => a - b);
  return { mbPerSec: +r[Math.floor(r.length / 2)]!.toFixed(1), best: +r[r.length - 1]!.toFixed(1), runs: r.map((x) => +x.toFixed(1)), bytes: runs[0]!.bytes };
}

/** Labels of the catch-up pairings, in run order (progress lines). */
const PAIRING_LABELS: Record<string, string> = {
  ours_e2e: 'walstream walsender → walstream walreceiver (TCP)',
  pg_e2e: 'PostgreSQL walsender → pg_receivewal',
  ours_e2e_ring: 'walstream walsender → walstream walreceiver (ring)',
  ours_to_pgrw: 'walstream walsender → pg_receivewal',
  pg_to_ours: 'PostgreSQL walsender → walstream walreceiver',
  ours_to_pgrw_nosync: 'walstream walsender → pg_receivewal --no-sync',
  pg_nosync: 'PostgreSQL walsender → pg_receivewal --no-sync',
  ours_discard: 'walstream walsender → discarding client',
  pg_discard: 'PostgreSQL walsender → discarding client',
};

export async function runStreamBench(o: StreamBenchOptions) {
  const work = benchWorkDir('stream', o);
  const root = work.root;
  const progress = o.progress ?? noProgress;
  const volume = o.volumeMiB * MiB;
  const liveTransportsPlanned = o.liveTransports ?? ['tcp', 'ring'];
  const liveRoundsPlanned = (o.liveSeconds ?? 3) > 0 ? (o.liveRounds ?? 3) * (o.standbys ?? [1, 2, 4]).length * (1 + liveTransportsPlanned.length) : 0;
  progress.plan(3 + o.runs * (Object.keys(PAIRING_LABELS).length + 1) + 2 + liveRoundsPlanned);
  let primary: Primary | null = null;
  let pg: PgCluster | null = null;
  try {
    progress.step(`walstream primary: writing ${o.volumeMiB} MiB of WAL`);
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
    progress.step(`PostgreSQL: initdb and writing ${o.volumeMiB} MiB of WAL`);
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

    const pgSysid = BigInt(pg.psql('select system_identifier from pg_control_system()').trim());
    const wsSysid = BigInt(primary.systemIdentifier);
    const ws = { host: '127.0.0.1', port: wsPort, user: 'bench' };
    const pgc = { host: '127.0.0.1', port: pg.port, user: 'postgres' };

    // The same pairings in the same order in every run, so the disk's noise falls on all alike.
    const pairings: Array<[string, () => Promise<Run>]> = [
      ['ours_e2e', () => walOnly(path.join(root, 'wo-ours'), wsSysid, ws, wsStart, wsEnd)],
      ['pg_e2e', () => receive(pg!.port, 'postgres', env, path.join(root, 'rw-pg'), pgStart, pgEnd, false)],
      ['ours_e2e_ring', () => walOnly(path.join(root, 'wo-ring'), wsSysid, { primary: primary! }, wsStart, wsEnd)],
      ['ours_to_pgrw', () => receive(wsPort, 'bench', env, path.join(root, 'rw-ours'), wsStart, wsEnd, false)],
      ['pg_to_ours', () => walOnly(path.join(root, 'wo-pg'), pgSysid, pgc, pgStart, pgEnd)],
      ['ours_to_pgrw_nosync', () => receive(wsPort, 'bench', env, path.join(root, 'rw-ours'), wsStart, wsEnd, true)],
      ['pg_nosync', () => receive(pg!.port, 'postgres', env, path.join(root, 'rw-pg'), pgStart, pgEnd, true)],
      ['ours_discard', () => discard(wsPort, 'bench', wsStart, wsEnd)],
      ['pg_discard', () => discard(pg!.port, 'postgres', pgStart, pgEnd)],
    ];
    const res: Record<string, Run[]> = Object.fromEntries(pairings.map(([k]) => [k, []]));
    res.ours_warm_flushed = [];
    res.ours_warm_replayed = [];
    progress.step('warming a walstream standby (recycled segments)');
    const warm = await WarmStandby.create(root, volume);
    try {
      for (let r = 0; r < o.runs; r++) {
        for (const [k, run] of pairings) {
          progress.step(`run ${r + 1}/${o.runs}: ${PAIRING_LABELS[k] ?? k}`);
          res[k]!.push(await run());
          await settleDisk();
        }
        progress.step(`run ${r + 1}/${o.runs}: warm walstream standby catching up`);
        const w = await warm.run(volume);
        res.ours_warm_flushed.push(w.flushed);
        res.ours_warm_replayed.push(w.replayed);
        await settleDisk();
      }
    } finally {
      await warm.close();
    }
    progress.step('raw loopback TCP between two threads');
    const loopback = await measureLoopbackTcp({ bytes: volume });
    progress.step('raw disk: segment writes (zero-filled, sparse, allocated)');
    const disk = measureSegmentWrites({ dir: root, bytes: Math.min(volume, 512 * MiB), runs: 3 });
    const sum = Object.fromEntries(Object.entries(res).map(([k, v]) => [k, summary(v)])) as Record<string, ReturnType<typeof summary>>;
    const ratio = (a: string, b: string) => +(sum[a]!.mbPerSec / sum[b]!.mbPerSec).toFixed(2);
    const catchup = {
      what: 'catch-up of WAL already written (page cache); MB/s = 1e6 bytes/s; median of runs (best, all runs); every receiver writes and fdatasyncs unless marked nosync',
      volumeMiB: o.volumeMiB,
      walstream_walsender_to_walstream_walreceiver: sum.ours_e2e,
      postgresql_walsender_to_pg_receivewal: sum.pg_e2e,
      walstream_walsender_to_walstream_walreceiver_in_process_ring: sum.ours_e2e_ring,
      warm_walstream_standby: {
        what: 'a replica that ran before: its restartpoints recycled old segments (min_wal_size), so catch-up overwrites allocated files; flushed (comparable to pg_receivewal) and replayed',
        flushed: sum.ours_warm_flushed,
        replayed: sum.ours_warm_replayed,
      },
      walstream_walsender_to_pg_receivewal: sum.ours_to_pgrw,
      postgresql_walsender_to_walstream_walreceiver: sum.pg_to_ours,
      no_sync: { walstream_walsender_to_pg_receivewal: sum.ours_to_pgrw_nosync, postgresql_walsender_to_pg_receivewal: sum.pg_nosync },
      discarding_client: { walstream_walsender: sum.ours_discard, postgresql_walsender: sum.pg_discard },
      raw_loopback_tcp_node: { mbPerSec: +(loopback.bytesPerSec / 1e6).toFixed(1), bytes: loopback.bytes },
      raw_disk_segment_writes: {
        what: 'the disk alone (no network, no protocol): MB/s of 128 KiB WAL writes into 16 MiB segments made as pg_receivewal makes them (zero-filled first), as walstream catches up (new, sparse), or recycled (allocated); median of 3 interleaved runs',
        ...disk,
        ceiling_ratio_sparse_vs_zero_filled: +(disk.sparseMbPerSec / disk.zeroFilledMbPerSec).toFixed(2),
        ceiling_ratio_allocated_vs_zero_filled: +(disk.allocatedMbPerSec / disk.zeroFilledMbPerSec).toFixed(2),
      },
      ratios: {
        ours_end_to_end_vs_postgresql_end_to_end: ratio('ours_e2e', 'pg_e2e'),
        ours_end_to_end_ring_vs_postgresql_end_to_end: ratio('ours_e2e_ring', 'pg_e2e'),
        ours_end_to_end_warm_standby_flushed_vs_postgresql_end_to_end: ratio('ours_warm_flushed', 'pg_e2e'),
        ours_end_to_end_warm_standby_replayed_vs_postgresql_end_to_end: ratio('ours_warm_replayed', 'pg_e2e'),
        pg_receivewal_fed_by_ours_vs_by_postgresql: ratio('ours_to_pgrw', 'pg_e2e'),
        pg_receivewal_no_sync_fed_by_ours_vs_by_postgresql: ratio('ours_to_pgrw_nosync', 'pg_nosync'),
        our_walreceiver_vs_pg_receivewal_both_fed_by_postgresql: ratio('pg_to_ours', 'pg_e2e'),
        walsender_to_discarding_client_ours_vs_postgresql: ratio('ours_discard', 'pg_discard'),
        ours_end_to_end_vs_raw_loopback_tcp: +(sum.ours_e2e!.mbPerSec / (loopback.bytesPerSec / 1e6)).toFixed(2),
      },
    };
    // Free the disk and the CPUs before the live runs.
    await primary.close();
    primary = null;
    await pg.stop();
    pg = null;

    const liveRuns = [];
    const liveSeconds = o.liveSeconds ?? 3;
    if (liveSeconds > 0) {
      const rate = o.commitsPerSec ?? 10_000;
      const rounds = o.liveRounds ?? 3;
      if (!Number.isInteger(rounds) || rounds < 1) throw Errors.invalidOption('liveRounds', `must be an integer >= 1 (got ${rounds})`);
      const transports = o.liveTransports ?? ['tcp', 'ring'];
      for (const n of o.standbys ?? [1, 2, 4]) {
        // Rounds interleave the floor and our transports, so a noisy moment of the machine falls on
        // all of them; each figure is the median over rounds, every round is listed.
        const floors: Awaited<ReturnType<typeof measureChainFloor>>[] = [];
        const ours = new Map<BenchTransport, Awaited<ReturnType<typeof live>>[]>(transports.map((t) => [t, []]));
        for (let r = 0; r < rounds; r++) {
          progress.step(`live round ${r + 1}/${rounds}, ${n} standby${n === 1 ? '' : 's'}: floor`);
          floors.push(await measureChainFloor({ dir: root, seconds: liveSeconds, rate, standbys: n, warmupMs: LIVE_WARMUP_MS }));
          for (const tr of transports) {
            progress.step(`live round ${r + 1}/${rounds}, ${n} standby${n === 1 ? '' : 's'}: walstream over ${tr}`);
            ours.get(tr)!.push(await live(path.join(root, 'live'), n, liveSeconds, rate, tr));
          }
        }
        const byTransport = transports.map((tr) => {
          const rs = ours.get(tr)!;
          const mid = medianRound(rs);
          return {
            transport: tr, standbys: n, commits: rs.reduce((a, x) => a + x.commits, 0),
            p50Ms: median(rs.map((x) => x.p50Ms)), p99Ms: median(rs.map((x) => x.p99Ms)), maxMs: Math.max(...rs.map((x) => x.maxMs)),
            tail: mid.tail, cdf: mid.cdf, timeline: mid.timeline, ...(rs[0]!.hops ? { hops: rs[0]!.hops } : {}),
            rounds: rs.map((x) => ({ p50Ms: x.p50Ms, p99Ms: x.p99Ms, maxMs: x.maxMs, tail: x.tail })),
          };
        });
        const fmid = medianRound(floors);
        liveRuns.push({
          standbys: n, rate, runs: byTransport,
          floor: { p50Ms: median(floors.map((x) => x.p50Ms)), p99Ms: median(floors.map((x) => x.p99Ms)), tail: fmid.tail, cdf: fmid.cdf, rounds: floors.map((x) => ({ p50Ms: x.p50Ms, p99Ms: x.p99Ms, tail: x.tail })) },
        });
      }
    }
    return {
      bench: 'stream' as const,
      units: { latency: 'ms', throughput: 'MB/s (10^6 bytes/s)', rate: 'commits/s' },
      cpus: os.cpus().length,
      walSegmentSize: SEG,
      catchup,
      live: {
        what: 'commit (synchronous_commit=local) acknowledged → replayed on every standby, ms, median over interleaved rounds (each listed); floor = the same thread hops, TCP message and fdatasync with no walstream code (bench/chain-floor.ts); tail = the slowest 1 % grouped by 5 ms windows of acknowledgement time (few windows: a few stalls held whole batches); cdf and timeline (latency over time, 250 ms buckets) are those of the median round',
        runs: liveRuns,
      },
    };
  } finally {
    await primary?.close();
    await pg?.stop();
    work.cleanup();
  }
}
