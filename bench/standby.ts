// `walstream bench standby`: the standby side of streaming replication, in one run.
//  - catch-up: a walstream replica that has been away while `volumeMiB` of WAL was written streams
//    it from the primary's segment files: MB/s until flushed (received, written, fdatasynced)
//    and until replayed; with walInitZero (new segments zero-filled, as pg_receivewal does) and
//    without (PostgreSQL's wal_init_zero = off);
//  - wal-only catch-up from a REAL PostgreSQL 15 walsender: our walreceiver beside pg_receivewal,
//    same server, same WAL range (both with their fsyncs);
//  - live: commit-to-visible-on-standby latency (primary commit acknowledged → replay on the
//    standby passed its LSN), p50/p99, at a paced commit rate with 1, 2 and 4 standbys, after a
//    warm-up of LIVE_WARMUP_MS (connections settle, JIT, each side preparing its next segment);
//  - catch-up and live both over TCP and through the SharedArrayBuffer rings of an in-process
//    standby (Standby.open({ primary })), in the same run, with ring/TCP ratios; and the byte
//    pipe alone: the walsender catching up from its segment files into the walreceiver's own
//    connection code (decode, queue, release), which discards the WAL instead of writing it;
//  - the floor under the live latency, measured beside each live round (bench/chain-floor.ts: the
//    same thread hops, TCP message and fdatasync with no walstream code), and the ratios to it.
// Owns a directory of its own (inside `dir` or the temp directory), a primary, standbys and a
// throwaway PostgreSQL cluster; removes them (the directory unless `keep`). Returns a JSON-ready
// object (latency in ms, MB/s = 10^6 bytes/s).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import type { StandbyOptions } from '../src/standby/options.js';
import { hopBreakdown, StageTrace } from '../src/util/stage-trace.js';
import { Standby } from '../src/standby/standby.js';
import { RingTransport, TcpTransport, type WalRcvTransport } from '../src/standby/transport.js';
import { writeControl, DbState } from '../src/storage/control.js';
import { lsnToString, parseLsn, type Lsn } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN_DIR, startPgCluster, type PgCluster } from '../test/helpers/pgcluster.js';
import { measureChainFloor } from './chain-floor.js';
import { tailShape } from './tail-shape.js';
import { quantileMs } from '../src/util/quantile.js';
import { cdfOf, timelineOf } from './report/model.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

export type BenchTransport = 'tcp' | 'ring';

export interface StandbyBenchOptions {
  volumeMiB: number;
  dir?: string | undefined;
  liveSeconds: number;
  commitsPerSec: number;
  standbys: number[];
  /** Transports measured (catch-up and live). Default both. */
  transports?: BenchTransport[];
  /** Run the real-PostgreSQL comparison (initdb, pg_receivewal). Default true. */
  realPg?: boolean;
  /** Keep the run's directory instead of removing it. */
  keep?: boolean;
  progress?: BenchProgress;
}

/** How a standby of `p` connects: over loopback TCP, or through the in-process rings. */
function connect(p: Primary, transport: BenchTransport, user: string): Pick<StandbyOptions, 'primaryConninfo' | 'primary'> {
  return transport === 'ring' ? { primary: p } : { primaryConninfo: { host: '127.0.0.1', port: p.port!, user } };
}

const SEG = 16 * 1024 * 1024;
/** Live runs: commits acknowledged in the first this-many ms are not counted (the whole run is paced). */
/**
 * Live runs (ours and the chain floor alike) count events only after this long: on this VM even
 * the floor, with no walstream code, has a transient of about 3 s after its threads start (p99
 * 1.38 ms with 0.5 s of warm-up, 0.49 ms with 3 s, same run length), so a shorter warm-up
 * measures the machine's ramp-up rather than the steady state.
 */
export const LIVE_WARMUP_MS = 3000;
const MiB = 1024 * 1024;

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function writeWal(p: Primary, bytes: number): Promise<Lsn> {
  const target = p.insertLsn + bytes;
  const val = 'v'.repeat(8000);
  let i = 0;
  const pending: Promise<Lsn>[] = [];
  while (p.insertLsn < target) {
    const n = i++;
    pending.push(p.transaction((tx) => tx.put('bulk', `k${n % 20000}`, val), { synchronousCommit: 'off' }));
    if (pending.length >= 256) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  return p.flush();
}

async function catchUp(root: string, volume: number, walInitZero: boolean, transport: BenchTransport = 'tcp') {
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, walBuffersBytes: 16 * MiB, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * 1024 * MiB, port: 0 });
  try {
    const conninfo = connect(p, transport, 'bench');
    const s0 = await Standby.open({ dataDir: path.join(root, 's'), ...conninfo, readerThreads: 0 });
    await s0.close();
    const start = s0.flushLsn;
    const end = await writeWal(p, volume);
    const t0 = performance.now();
    const s = await Standby.open({ dataDir: path.join(root, 's'), ...conninfo, readerThreads: 0, walInitZero });
    let tFlushed = 0;
    await until(() => {
      if (tFlushed === 0 && s.flushLsn >= end) tFlushed = performance.now();
      return s.replayLsn >= end;
    }, 600_000, 'catch-up');
    const tReplayed = performance.now();
    if (tFlushed === 0) tFlushed = tReplayed;
    const st = s.receiverStatus();
    await s.close();
    const bytes = end - start;
    return {
      transport,
      bytes,
      flushedMbPerSec: +(bytes / 1e6 / ((tFlushed - t0) / 1000)).toFixed(1),
      replayedMbPerSec: +(bytes / 1e6 / ((tReplayed - t0) / 1000)).toFixed(1),
      fsyncs: st.fsyncs,
      records: st.records_replayed,
    };
  } finally {
    await p.close();
  }
}

/**
 * The byte pipe alone: `volume` of WAL already in the primary's segment files, streamed by its
 * walsender into StreamConnection (what the walreceiver uses), which drops each message.
 */
async function pipe(root: string, volume: number, transport: BenchTransport) {
  const p = await Primary.open({ dataDir: path.join(root, `pp-${transport}`), walSegmentSize: SEG, walBuffersBytes: 16 * MiB, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * 1024 * MiB, port: 0 });
  try {
    const start = p.flushLsn - (p.flushLsn % SEG);
    const end = await writeWal(p, volume);
    const info = { host: '127.0.0.1', port: p.port!, user: 'bench', password: null, passfile: null, applicationName: 'pipe' };
    const topts = { connectTimeoutMs: 10_000, commandTimeoutMs: 10_000, maxMessageBytes: 64 * MiB, maxBufferedBytes: 32 * MiB };
    const t: WalRcvTransport = transport === 'ring'
      ? new RingTransport(p.inProcessListener(), { ...info, host: '[in-process]', port: 0 }, { ...topts, ringBytes: 8 * MiB, spinIterations: 1000 })
      : new TcpTransport(info, topts);
    const conn = await t.connect();
    try {
      const t0 = performance.now();
      await conn.startStreaming(start, 1, null);
      let at = start;
      let messages = 0;
      while (at < end) {
        for (let m = conn.receive(); m !== null; m = conn.receive()) {
          if (m.kind === 'xlogData') {
            at = m.dataStart + m.data.length;
            messages++;
          } else if (m.kind === 'error') throw m.error;
        }
        if (at < end) await conn.waitReadable(1000);
      }
      const sec = (performance.now() - t0) / 1000;
      return { transport, bytes: end - start, mbPerSec: +((end - start) / 1e6 / sec).toFixed(1), messages };
    } finally {
      conn.disconnect();
    }
  } finally {
    await p.close();
  }
}

/** Real PostgreSQL walsender → pg_receivewal and → our wal-only walreceiver, same range. */
async function fromRealPg(root: string, volume: number) {
  let pg: PgCluster | null = null;
  try {
    pg = await startPgCluster({ hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256'], settings: { max_wal_size: '4GB', checkpoint_timeout: '1h' } });
    const startLsn = parseLsn(pg.psql('select pg_current_wal_lsn()').trim());
    const startSeg = segNo(startLsn, SEG) + 1;
    pg.psql('select pg_switch_wal()');
    const rows = Math.ceil(volume / 2200);
    // storage external: no compression, so each row puts ~2 KiB into WAL
    pg.psql(`create table b (id int, pad text); alter table b alter column pad set storage external; insert into b select g, repeat(md5(g::text), 64) from generate_series(1, ${rows}) g; select pg_switch_wal();`);
    const endLsn = parseLsn(pg.psql('select pg_current_wal_lsn()').trim());
    const endSeg = segNo(endLsn - 1, SEG);
    const bytes = (endSeg - startSeg) * SEG; // complete segments from startSeg to endSeg (exclusive)
    // pg_receivewal: resumes after a complete placeholder segment, stops past -E.
    const rwDir = path.join(root, 'rw');
    fs.mkdirSync(rwDir, { recursive: true });
    fs.writeFileSync(path.join(rwDir, segmentFileName(1, startSeg - 1, SEG)), Buffer.alloc(SEG));
    const t0 = performance.now();
    const child = spawn(path.join(PG_BIN_DIR, 'pg_receivewal'), ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-D', rwDir, '--no-loop', '-w', '-E', lsnToString(endSeg * SEG)], { stdio: 'ignore', env: pg.clientEnv() });
    await new Promise((r) => child.once('exit', r));
    const rwSec = (performance.now() - t0) / 1000;
    fs.rmSync(rwDir, { recursive: true, force: true });
    // ours, wal-only: the same resume rule (a control file with the server's identity, a placeholder segment)
    const sDir = path.join(root, 'wo');
    fs.mkdirSync(path.join(sDir, 'pg_wal'), { recursive: true });
    const sysid = BigInt(pg.psql('select system_identifier from pg_control_system()').trim());
    writeControl(sDir, { sysid, segSize: SEG, state: DbState.InArchiveRecovery, tli: 1, checkpointLsn: 0, redoLsn: 0, nextXid: 0, timeMs: Date.now(), snapshotName: '', minRecoveryPoint: 0 });
    fs.writeFileSync(path.join(sDir, 'pg_wal', segmentFileName(1, startSeg - 1, SEG)), Buffer.alloc(SEG));
    const t1 = performance.now();
    const s = await Standby.open({ dataDir: sDir, mode: 'wal-only', primaryConninfo: { host: pg.host, port: pg.port, user: 'postgres', password: pg.superuserPassword } });
    await until(() => s.flushLsn >= endSeg * SEG, 600_000, 'wal-only catch-up');
    const oursSec = (performance.now() - t1) / 1000;
    await s.close();
    fs.rmSync(sDir, { recursive: true, force: true });
    return {
      bytes,
      pgReceivewalMbPerSec: +(bytes / 1e6 / rwSec).toFixed(1),
      walstreamWalreceiverMbPerSec: +(bytes / 1e6 / oursSec).toFixed(1),
    };
  } finally {
    await pg?.stop();
  }
}

/**
 * One live run. `onCommitTimes` gets every counted commit's [acknowledged, visible] times in ms on
 * the shared clock (performance.timeOrigin + now), in commit order (bench/gc-tail.ts).
 */
export async function live(root: string, n: number, seconds: number, rate: number, transport: BenchTransport = 'tcp', onCommitTimes?: (rows: Array<[number, number]>) => void) {
  // With one standby, every hop is traced (src/util/stage-trace.ts) and reported beside the total.
  const traceCapacity = Math.ceil(rate * (seconds + LIVE_WARMUP_MS / 1000) * 1.5) + 10_000;
  const trace = n === 1 ? StageTrace.create(traceCapacity) : null;
  const p = await Primary.open({ dataDir: path.join(root, `lp${n}-${transport}`), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, stageTrace: trace?.handle ?? null });
  const standbys: Standby[] = [];
  try {
    for (let i = 0; i < n; i++) standbys.push(await Standby.open({ dataDir: path.join(root, `ls${n}-${transport}-${i}`), ...connect(p, transport, 'b'), readerThreads: 0, stageTrace: trace?.handle ?? null }));
    const lat: number[] = [];
    const ackedAt: number[] = [];
    const traced: Array<[number, number, number]> = [];
    const t0 = performance.timeOrigin;
    const countFrom = performance.now() + LIVE_WARMUP_MS;
    const end = countFrom + seconds * 1000;
    const interval = 1000 / rate;
    let next = performance.now();
    let i = 0;
    // Commits in flight are counted, not kept: holding every promise until the end made the
    // harness's own garbage survive into the old generation (GC pauses on the committing thread).
    let pending = 0;
    let failure: unknown = null;
    let allDone: (() => void) | null = null;
    const one = async (k: number) => {
      try {
        const lsn = await p.transaction((tx) => tx.put('t', `k${k % 1000}`, k), { synchronousCommit: 'local' });
        const acked = performance.now();
        if (standbys.length === 1) await standbys[0]!.waitForReplay(lsn, 30_000);
        else await Promise.all(standbys.map((s) => s.waitForReplay(lsn, 30_000)));
        const visible = performance.now();
        if (acked >= countFrom) {
          lat.push(visible - acked);
          ackedAt.push(acked);
          if (trace !== null) traced.push([lsn, t0 + acked, t0 + visible]);
        }
      } catch (e) {
        failure ??= e;
      } finally {
        if (--pending === 0) allDone?.();
      }
    };
    while (performance.now() < end) {
      pending++;
      void one(i++);
      next += interval;
      const wait = next - performance.now();
      // Yield after every commit (a timer when ahead of the pace): the waits for replay resolve on
      // this thread too, and must not queue behind a burst of commits.
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      else await new Promise((r) => setImmediate(r));
    }
    if (pending > 0) await new Promise<void>((r) => (allDone = r));
    if (failure !== null) throw failure;
    onCommitTimes?.(ackedAt.map((a, k) => [t0 + a, t0 + a + lat[k]!]));
    const tail = tailShape(ackedAt, lat);
    const timeline = timelineOf(ackedAt, lat);
    lat.sort((a, b) => a - b);
    const hops = trace !== null ? hopBreakdown(trace, traced) : null;
    return {
      transport, standbys: n, commits: lat.length, commitsPerSec: +(lat.length / seconds).toFixed(0), p50Ms: quantileMs(lat, 0.5), p99Ms: quantileMs(lat, 0.99), maxMs: quantileMs(lat, 1), tail,
      cdf: cdfOf(lat), timeline, ...(hops !== null ? { hops } : {}),
    };
  } finally {
    for (const s of standbys) await s.close();
    await p.close();
  }
}

export async function runStandbyBench(o: StandbyBenchOptions) {
  const work = benchWorkDir('standby', o);
  const root = work.root;
  const progress = o.progress ?? noProgress;
  try {
    const volume = o.volumeMiB * MiB;
    const transports = o.transports ?? ['tcp', 'ring'];
    progress.plan(2 * transports.length + (transports.includes('tcp') ? 1 : 0) + (o.realPg === false ? 0 : 1) + o.standbys.length * (1 + transports.length));
    const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? null : +(a / b).toFixed(2));
    const catchups: Partial<Record<BenchTransport, Awaited<ReturnType<typeof catchUp>>>> = {};
    for (const tr of transports) {
      progress.step(`catch-up of ${o.volumeMiB} MiB over ${tr}`);
      catchups[tr] = await catchUp(path.join(root, `c-${tr}`), volume, true, tr);
    }
    const pipes: Partial<Record<BenchTransport, Awaited<ReturnType<typeof pipe>>>> = {};
    for (const tr of transports) {
      progress.step(`byte pipe without disk over ${tr}`);
      pipes[tr] = await pipe(path.join(root, 'pipe'), volume, tr);
    }
    if (transports.includes('tcp')) progress.step('catch-up with wal_init_zero off');
    const catchupNoInitZero = transports.includes('tcp') ? await catchUp(path.join(root, 'c0'), volume, false) : null;
    if (o.realPg !== false) progress.step('PostgreSQL walsender → pg_receivewal and → our walreceiver');
    const realPg = o.realPg === false ? null : await fromRealPg(path.join(root, 'r'), volume);
    const liveRuns = [];
    const liveCmp = [];
    for (const n of o.standbys) {
      progress.step(`live floor, ${n} standby${n === 1 ? '' : 's'}`);
      const floor = await measureChainFloor({ dir: root, seconds: o.liveSeconds, rate: o.commitsPerSec, standbys: n, warmupMs: LIVE_WARMUP_MS });
      const byTr: Partial<Record<BenchTransport, Awaited<ReturnType<typeof live>>>> = {};
      for (const tr of transports) {
        progress.step(`live, ${n} standby${n === 1 ? '' : 's'} over ${tr}`);
        byTr[tr] = await live(path.join(root, 'l'), n, o.liveSeconds, o.commitsPerSec, tr);
        liveRuns.push(byTr[tr]);
      }
      liveCmp.push({
        standbys: n,
        p50RingOverTcp: ratio(byTr.ring?.p50Ms, byTr.tcp?.p50Ms),
        p99RingOverTcp: ratio(byTr.ring?.p99Ms, byTr.tcp?.p99Ms),
        floor,
        tcpOverFloor: { p50: ratio(byTr.tcp?.p50Ms, floor.p50Ms), p99: ratio(byTr.tcp?.p99Ms, floor.p99Ms) },
        ringOverFloor: { p50: ratio(byTr.ring?.p50Ms, floor.p50Ms), p99: ratio(byTr.ring?.p99Ms, floor.p99Ms) },
      });
    }
    return {
      bench: 'standby' as const,
      units: { latency: 'ms', throughput: 'MB/s (10^6 bytes/s)', rate: 'commits/s' },
      volumeMiB: o.volumeMiB,
      catchupFromWalstreamPrimary: catchups.tcp ?? null,
      catchupThroughRing: catchups.ring ?? null,
      catchupRingOverTcp: { flushed: ratio(catchups.ring?.flushedMbPerSec, catchups.tcp?.flushedMbPerSec), replayed: ratio(catchups.ring?.replayedMbPerSec, catchups.tcp?.replayedMbPerSec) },
      pipeWithoutDisk: { tcp: pipes.tcp ?? null, ring: pipes.ring ?? null, ringOverTcp: ratio(pipes.ring?.mbPerSec, pipes.tcp?.mbPerSec) },
      catchupWalInitZeroOff: catchupNoInitZero,
      walOnlyFromRealPostgres: realPg,
      live: liveRuns,
      liveRingOverTcp: liveCmp,
      cpus: os.cpus().length,
    };
  } finally {
    work.cleanup();
  }
}
