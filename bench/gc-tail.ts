// `walstream bench gc-tail`: how much of the live latency tail (bench/standby.ts live(): commit
// acknowledged → replayed on every standby, paced) coincides with garbage collection in one of the
// threads that carry a commit: the primary's thread, walwriter, walsenders, walreceivers, startup
// workers. One live run in a child process started with `--require dist/bench/gc-observer.cjs`
// (every thread then records its own collections); the parent reads the commit times and the
// collections and reports, per role, the collections inside the measured window and how many of
// the slowest 1 % of commits overlap one, beside the share of all commits that overlap one (what
// chance alone gives). Owns a directory of its own (inside `dir` or the temp directory) and the
// child; removes both (the directory unless `keep`). Returns a JSON-ready object (latency in ms).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { live, LIVE_WARMUP_MS, type BenchTransport } from './standby.js';
import { quantile, quantileMs } from '../src/util/quantile.js';
import { cdfOf, timelineOf, type CdfPoint, type TimelinePoint } from './report/model.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';


export interface GcTailOptions {
  standbys: number;
  seconds: number;
  rate: number;
  transport: BenchTransport;
  dir?: string | undefined;
  /** Keep the run's directory instead of removing it. */
  keep?: boolean;
  progress?: BenchProgress;
}

export interface GcTailRole {
  threads: number;
  collections: number;
  pauseTotalMs: number;
  pauseMaxMs: number;
  /** Slowest-1 % commits whose [acknowledged, visible] interval overlaps a collection of this role. */
  slowCommitsOverlapping: number;
}

export interface GcTailResult {
  bench: 'gc-tail';
  units: { latency: 'ms' };
  standbys: number;
  transport: BenchTransport;
  rate: number;
  commits: number;
  p50Ms: number;
  p99Ms: number;
  slowCommits: number;
  /** Slow commits overlapping a collection in any role, and their share. */
  slowCommitsOverlappingGc: number;
  slowShareOverlappingGc: number;
  /** The same share over all commits: what the slow commits would show if collections did not matter. */
  allShareOverlappingGc: number;
  roles: Record<string, GcTailRole>;
  /** Commit acknowledged → visible on every standby: CDF (percentile → ms) and over time (250 ms buckets). */
  cdf: CdfPoint[];
  timeline: TimelinePoint[];
}

const CHILD_FLAG = '--gc-tail-child';

/** The analysis, from commit times and each thread's collections (all ms on the shared clock). */
export function analyseGcTail(
  o: GcTailOptions, commits: ReadonlyArray<readonly [number, number]>, threads: ReadonlyArray<{ role: string; gcs: ReadonlyArray<readonly [number, number]> }>,
): GcTailResult {
  if (commits.length === 0) throw new Error('gc-tail: no commits were counted');
  const lat = commits.map(([a, v]) => v - a).sort((x, y) => x - y);
  const p99 = quantile(lat, 0.99);
  let from = Infinity;
  let to = -Infinity;
  for (const [a, v] of commits) {
    from = Math.min(from, a);
    to = Math.max(to, v);
  }
  const roles: Record<string, GcTailRole> = {};
  const spans: Array<{ s: number; e: number; role: string }> = [];
  for (const t of threads) {
    const r = (roles[t.role] ??= { threads: 0, collections: 0, pauseTotalMs: 0, pauseMaxMs: 0, slowCommitsOverlapping: 0 });
    r.threads++;
    for (const [s, d] of t.gcs) {
      if (s + d < from || s > to) continue;
      r.collections++;
      r.pauseTotalMs += d;
      r.pauseMaxMs = Math.max(r.pauseMaxMs, d);
      spans.push({ s, e: s + d, role: t.role });
    }
  }
  spans.sort((x, y) => x.s - y.s);
  const overlapping = (a: number, v: number): Set<string> => {
    const hit = new Set<string>();
    for (const sp of spans) {
      if (sp.s >= v) break;
      if (sp.e > a) hit.add(sp.role);
    }
    return hit;
  };
  let slow = 0;
  let slowHit = 0;
  let allHit = 0;
  for (const [a, v] of commits) {
    const hit = overlapping(a, v);
    if (hit.size > 0) allHit++;
    if (v - a < p99) continue;
    slow++;
    if (hit.size > 0) slowHit++;
    for (const role of hit) roles[role]!.slowCommitsOverlapping++;
  }
  for (const r of Object.values(roles)) {
    r.pauseTotalMs = +r.pauseTotalMs.toFixed(2);
    r.pauseMaxMs = +r.pauseMaxMs.toFixed(3);
  }
  const ack = commits.map(([a]) => a);
  const latInOrder = commits.map(([a, v]) => v - a);
  return {
    bench: 'gc-tail', units: { latency: 'ms' },
    standbys: o.standbys, transport: o.transport, rate: o.rate, commits: commits.length, p50Ms: quantileMs(lat, 0.5), p99Ms: quantileMs(lat, 0.99),
    slowCommits: slow, slowCommitsOverlappingGc: slowHit, slowShareOverlappingGc: +(slowHit / slow).toFixed(3),
    allShareOverlappingGc: +(allHit / commits.length).toFixed(3), roles,
    cdf: cdfOf(lat), timeline: timelineOf(ack, latInOrder),
  };
}

/** Run one live run in a child process whose threads record their collections; analyse. */
export async function runGcTailBench(o: GcTailOptions): Promise<GcTailResult> {
  const work = benchWorkDir('gc-tail', o);
  const dir = work.root;
  const progress = o.progress ?? noProgress;
  progress.plan(2);
  try {
    const here = fileURLToPath(import.meta.url);
    const observer = path.join(path.dirname(here), 'gc-observer.cjs');
    const args = ['--require', observer, here, CHILD_FLAG, JSON.stringify({ standbys: o.standbys, seconds: o.seconds, rate: o.rate, transport: o.transport, dir })];
    progress.step(`live run: ${o.standbys} standby${o.standbys === 1 ? '' : 's'} over ${o.transport}, ${o.rate} commits/s, ${LIVE_WARMUP_MS / 1000} s warm-up + ${o.seconds} s`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, args, { env: { ...process.env, WALSTREAM_GC_OBSERVER_DIR: path.join(dir, 'gc') }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`gc-tail child exited with ${code}: ${err.slice(-2000)}`))));
    });
    progress.step('matching slow commits to collections');
    const commits = JSON.parse(fs.readFileSync(path.join(dir, 'commits.json'), 'utf8')) as Array<[number, number]>;
    const threads = fs.readdirSync(path.join(dir, 'gc')).map((f) => ({
      role: f.replace(/^\d+-/, '').replace(/\.json$/, ''),
      gcs: JSON.parse(fs.readFileSync(path.join(dir, 'gc', f), 'utf8')) as Array<[number, number]>,
    }));
    return analyseGcTail(o, commits, threads);
  } finally {
    work.cleanup();
  }
}

// Child: the live run itself (its threads record their collections through the preloaded observer).
if (process.argv[2] === CHILD_FLAG) {
  const o = JSON.parse(process.argv[3]!) as GcTailOptions & { dir: string };
  fs.mkdirSync(path.join(o.dir, 'gc'), { recursive: true });
  let rows: Array<[number, number]> = [];
  await live(path.join(o.dir, 'data'), o.standbys, o.seconds, o.rate, o.transport, (r) => (rows = r));
  fs.writeFileSync(path.join(o.dir, 'commits.json'), JSON.stringify(rows));
}
