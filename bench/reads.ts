// `walstream bench reads`: how point reads of a standby's shared store scale across the
// application's own threads (openReader on standby.readerHandle(): reads in place, no message per
// read) while the standby replays a steady write load, in one run beside two references: the same
// reads on the primary's store (primary.readerHandle(), the primary's main thread writing) and the
// same reads through a piscina pool (ReaderPool: one message each way per read, dispatched by the
// application's main thread). For 1, 2 and 4 threads each: reads/s, the commits/s the write load
// achieved meanwhile (target `rate`, paced on the primary's main thread, synchronous_commit off),
// and the standby's replay lag at the end of the point.
// Owns a directory of its own (inside `dir` or the temp directory), a primary, an in-process
// standby, the reader threads and pools of each point; removes them (the directory unless `keep`).
// Returns a JSON-ready object (rates in reads/s and commits/s).

import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import type { ReaderHandle } from '../src/standby/reader-handle.js';
import { ReaderPool } from '../src/storage/reader-pool.js';
import { ratio } from './report/model.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';
import { CTL_WORDS, PHASE_RUN, PHASE_STOP, W_PHASE, W_READY } from './reads-worker.js';

export type ReadTarget = 'standby' | 'primary' | 'piscina';
export const READ_TARGETS: readonly ReadTarget[] = ['standby', 'primary', 'piscina'];

export interface ReadsBenchOptions {
  /** seconds measured per point */
  seconds: number;
  /** application thread counts */
  threads: number[];
  /** target commits/s of the write load */
  rate: number;
  /** keys in the table read (and written) */
  keys: number;
  dir?: string | undefined;
  keep?: boolean;
  progress?: BenchProgress;
}

export interface ReadsPoint {
  target: ReadTarget;
  threads: number;
  reads: number;
  readsPerSec: number;
  /** Commits/s the write load achieved during the point. */
  commitsPerSec: number;
  /** Primary insert position minus the standby's replay position at the end of the point. */
  replayLagBytes: number;
}

export interface ReadsResult {
  bench: 'reads';
  units: { reads: 'reads/s'; commits: 'commits/s' };
  host: { cpus: number; node: string };
  secondsPerPoint: number;
  keys: number;
  targetCommitsPerSec: number;
  /** Commits/s achieved over every point together. */
  commitsPerSec: number;
  points: ReadsPoint[];
  ratios: Array<{ threads: number; standbyOverPrimary: number | null; standbyOverPiscina: number | null; standbyOverOneThread: number | null }>;
}

/** Value size of each key, bytes of padding. */
const VALUE_PAD_BYTES = 100;
/** Keys per transaction while loading the table. */
const LOAD_BATCH_KEYS = 1000;
/** Most commits the write load issues in one event-loop turn (it catches up over several). */
const MAX_COMMITS_PER_TURN = 200;
/** Reads a piscina thread has queued, per thread (keeps each one busy without an unbounded queue). */
const PISCINA_INFLIGHT_PER_THREAD = 16;
/** How long the threads of a point may take to start, ms (hang bound). */
const THREAD_START_TIMEOUT_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A paced write load on the primary's main thread: `rate` commits/s of one key each, synchronous_commit off. */
class WriteLoad {
  committed = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly p: Primary, rate: number, keys: number) {
    const pad = 'w'.repeat(VALUE_PAD_BYTES);
    let issued = 0;
    let seed = 12345;
    const t0 = performance.now();
    this.done = (async () => {
      while (this.running) {
        const due = Math.min(MAX_COMMITS_PER_TURN, Math.floor(((performance.now() - t0) / 1000) * rate) - issued);
        if (due > 0) {
          const commits: Array<Promise<number>> = [];
          for (let i = 0; i < due; i++) {
            seed = (seed * 1103515245 + 12345) >>> 0;
            const k = `k${seed % keys}`;
            const v = { v: issued + i, pad };
            commits.push(this.p.transaction((tx) => tx.put('r', k, v), { synchronousCommit: 'off' }));
          }
          issued += due;
          await Promise.all(commits);
          this.committed += due;
        }
        await sleep(1);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** `threads` application threads reading through openReader(handle) for `seconds`: total reads. */
async function threadReads(handle: ReaderHandle, threads: number, seconds: number, keys: number): Promise<number> {
  const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
  const url = new URL('./reads-worker.js', import.meta.url);
  const workers = Array.from({ length: threads }, (_, i) => new Worker(url, { workerData: { readsBench: true, handle, ctl: ctl.buffer, keys, seed: 0x9e3779b9 * (i + 1) } }));
  try {
    const counts = workers.map((w) => new Promise<number>((resolve, reject) => {
      w.once('message', (m: { reads: number }) => resolve(m.reads));
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`reads: a reader thread exited (${code}) before reporting`)));
    }));
    const t0 = performance.now();
    while (Atomics.load(ctl, W_READY) < threads) {
      if (performance.now() - t0 > THREAD_START_TIMEOUT_MS) throw new Error(`reads: reader threads did not start within ${THREAD_START_TIMEOUT_MS} ms`);
      await sleep(5);
    }
    Atomics.store(ctl, W_PHASE, PHASE_RUN);
    Atomics.notify(ctl, W_PHASE);
    await sleep(seconds * 1000);
    Atomics.store(ctl, W_PHASE, PHASE_STOP);
    return (await Promise.all(counts)).reduce((a, b) => a + b, 0);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** The same reads through a piscina pool of `threads` (ReaderPool), dispatched from this thread: completed reads. */
async function piscinaReads(pool: ReaderPool, threads: number, seconds: number, keys: number): Promise<number> {
  let running = true;
  let reads = 0;
  let seed = 777;
  const lane = async () => {
    while (running) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      await pool.get('r', `k${seed % keys}`);
      if (running) reads++;
    }
  };
  const lanes = Array.from({ length: threads * PISCINA_INFLIGHT_PER_THREAD }, lane);
  await sleep(seconds * 1000);
  running = false;
  await Promise.all(lanes);
  return reads;
}

export async function runReadsBench(o: ReadsBenchOptions): Promise<ReadsResult> {
  const work = benchWorkDir('reads', o);
  const progress = o.progress ?? noProgress;
  progress.plan(1 + o.threads.length * READ_TARGETS.length);
  let p: Primary | null = null;
  let s: Standby | null = null;
  let load: WriteLoad | null = null;
  const pools: ReaderPool[] = [];
  try {
    progress.step(`loading ${o.keys} keys, opening an in-process standby`);
    p = await Primary.open({ dataDir: path.join(work.root, 'primary'), port: 0, checkpointTimeoutMs: 0 });
    const pad = 'x'.repeat(VALUE_PAD_BYTES);
    for (let from = 0; from < o.keys; from += LOAD_BATCH_KEYS) {
      await p.transaction((tx) => {
        for (let i = from; i < Math.min(o.keys, from + LOAD_BATCH_KEYS); i++) tx.put('r', `k${i}`, { v: 0, pad });
      }, { synchronousCommit: 'off' });
    }
    s = await Standby.open({ dataDir: path.join(work.root, 'standby'), primaryConninfo: { inProcess: p, applicationName: 'reads' }, readerThreads: 0 });
    await s.waitForReplay(await p.flush(), Infinity);
    const primary = p;
    const standby = s;
    const handles = { standby: standby.readerHandle(), primary: primary.readerHandle() };
    load = new WriteLoad(primary, o.rate, o.keys);
    const points: ReadsPoint[] = [];
    let commitsTotal = 0;
    let secondsTotal = 0;
    for (const threads of o.threads) {
      const pool = new ReaderPool(standby.store!.handle, { threads });
      pools.push(pool);
      await pool.get('r', 'k0'); // the pool's threads are up before the clock starts
      for (const target of READ_TARGETS) {
        progress.step(`${target}: ${threads} thread${threads === 1 ? '' : 's'} reading for ${o.seconds} s while the primary commits`);
        const c0 = load.committed;
        const t0 = performance.now();
        const reads = target === 'piscina' ? await piscinaReads(pool, threads, o.seconds, o.keys) : await threadReads(handles[target], threads, o.seconds, o.keys);
        const secs = (performance.now() - t0) / 1000;
        const commits = load.committed - c0;
        commitsTotal += commits;
        secondsTotal += secs;
        points.push({
          target, threads, reads, readsPerSec: Math.round(reads / o.seconds), commitsPerSec: Math.round(commits / secs),
          replayLagBytes: Math.max(0, primary.insertLsn - standby.replayLsn),
        });
      }
      await pool.close();
    }
    const rps = (t: ReadTarget, n: number) => points.find((x) => x.target === t && x.threads === n)?.readsPerSec ?? null;
    const one = rps('standby', Math.min(...o.threads));
    return {
      bench: 'reads', units: { reads: 'reads/s', commits: 'commits/s' }, host: { cpus: os.cpus().length, node: process.version },
      secondsPerPoint: o.seconds, keys: o.keys, targetCommitsPerSec: o.rate, commitsPerSec: Math.round(commitsTotal / secondsTotal), points,
      ratios: o.threads.map((n) => ({ threads: n, standbyOverPrimary: ratio(rps('standby', n), rps('primary', n)), standbyOverPiscina: ratio(rps('standby', n), rps('piscina', n)), standbyOverOneThread: ratio(rps('standby', n), one) })),
    };
  } finally {
    await load?.stop();
    for (const pool of pools) await pool.close();
    await s?.close();
    await p?.close();
    work.cleanup();
  }
}
