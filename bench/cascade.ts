// `walstream bench cascade`: commit-to-visible latency one and two levels down a cascade, in one
// live run: a primary, s1 (its standby over TCP, serving replication itself: Standby.open({ port }))
// and s2 (s1's standby over TCP). Each paced commit (synchronous_commit local, acknowledged at the
// primary's flush) is timed until replay passed its LSN on s1 and on s2, after a warm-up of
// LIVE_WARMUP_MS: p50/p99/max and CDFs per level and the ratio level 2 / level 1. The same commits
// are measured at both levels, so the ratio is what the second hop (s1's cascading walsender
// reading what s1 flushed, s2's walreceiver and replay) adds. Owns a directory of its own (inside
// `dir` or the temp directory) and the three servers; removes them (the directory unless `keep`).
// Returns a JSON-ready object (latency in ms).

import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { quantileMs } from '../src/util/quantile.js';
import { LIVE_WARMUP_MS } from './standby.js';
import { cdfOf, type CdfPoint } from './report/model.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

const SEG = 16 * 1024 * 1024;
/** Bound on one commit's wait for replay on a level (a failure bound, ms). */
const REPLAY_WAIT_BOUND_MS = 30_000;

export interface CascadeBenchOptions {
  seconds: number;
  rate: number;
  dir?: string | undefined;
  keep?: boolean;
  progress?: BenchProgress;
}

export interface CascadeLevel {
  level: 1 | 2;
  /** Which standby: 's1 (standby of the primary)', 's2 (standby of s1)'. */
  standby: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cdf: CdfPoint[];
}

export interface CascadeResult {
  bench: 'cascade';
  units: { latency: 'ms' };
  seconds: number;
  rate: number;
  commits: number;
  levels: CascadeLevel[];
  /** Level 2 / level 1 at p50 and p99. */
  ratioP50: number;
  ratioP99: number;
}

function levelOf(level: 1 | 2, standby: string, lat: number[]): CascadeLevel {
  lat.sort((a, b) => a - b);
  return { level, standby, p50Ms: quantileMs(lat, 0.5), p99Ms: quantileMs(lat, 0.99), maxMs: quantileMs(lat, 1), cdf: cdfOf(lat) };
}

export async function runCascadeBench(o: CascadeBenchOptions): Promise<CascadeResult> {
  const work = benchWorkDir('cascade', o);
  const root = work.root;
  const progress = o.progress ?? noProgress;
  progress.plan(2);
  progress.step('primary → s1 → s2 (base backups: s1 from the primary, s2 from s1)');
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0 });
  const standbys: Standby[] = [];
  try {
    const s1 = await Standby.open({ dataDir: path.join(root, 's1'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'b', applicationName: 's1' }, port: 0, readerThreads: 0 });
    standbys.push(s1);
    const s2 = await Standby.open({ dataDir: path.join(root, 's2'), primaryConninfo: { host: '127.0.0.1', port: s1.replication!.port, user: 'b', applicationName: 's2' }, readerThreads: 0 });
    standbys.push(s2);
    progress.step(`live: ${o.rate} commits/s, ${LIVE_WARMUP_MS / 1000} s warm-up + ${o.seconds} s`);
    const lat1: number[] = [];
    const lat2: number[] = [];
    const countFrom = performance.now() + LIVE_WARMUP_MS;
    const end = countFrom + o.seconds * 1000;
    const interval = 1000 / o.rate;
    let next = performance.now();
    let i = 0;
    let pending = 0;
    let failure: unknown = null;
    let allDone: (() => void) | null = null;
    const one = async (k: number) => {
      try {
        const lsn = await p.transaction((tx) => tx.put('t', `k${k % 1000}`, k), { synchronousCommit: 'local' });
        const acked = performance.now();
        let v1 = 0;
        const w1 = s1.waitForReplay(lsn, REPLAY_WAIT_BOUND_MS).then(() => (v1 = performance.now()));
        await s2.waitForReplay(lsn, REPLAY_WAIT_BOUND_MS);
        const v2 = performance.now();
        await w1;
        if (acked >= countFrom) {
          lat1.push(v1 - acked);
          lat2.push(v2 - acked);
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
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      else await new Promise((r) => setImmediate(r));
    }
    if (pending > 0) await new Promise<void>((r) => (allDone = r));
    if (failure !== null) throw failure;
    if (lat1.length === 0) throw new Error('cascade: no commits were counted');
    const l1 = levelOf(1, 's1 (standby of the primary)', lat1);
    const l2 = levelOf(2, 's2 (standby of s1)', lat2);
    return {
      bench: 'cascade', units: { latency: 'ms' }, seconds: o.seconds, rate: o.rate, commits: lat1.length, levels: [l1, l2],
      ratioP50: +(l2.p50Ms / l1.p50Ms).toFixed(2), ratioP99: +(l2.p99Ms / l1.p99Ms).toFixed(2),
    };
  } finally {
    for (const s of standbys.reverse()) await s.close();
    await p.close();
    work.cleanup();
  }
}
