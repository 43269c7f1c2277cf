// `walstream bench commit`: commits/s and commit latency (p50/p99) at several committer counts,
// synchronous_commit off and on, printed beside the raw 8 KiB write+fdatasync rate of the same
// disk measured in the same run; plus WAL insert bandwidth for 1 KiB records at
// synchronous_commit=off. Returns a JSON-ready object (latency in ms, MB/s = 10^6 bytes/s); works in
// a directory of its own inside `dir` (or the temp directory), removed at the end unless `keep`.

import os from 'node:os';
import path from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { Primary } from '../src/primary/primary.js';
import { measureRawFsync } from './raw-limits.js';
import { cdfOf, CDF_PERCENTILES } from './report/model.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

export interface CommitBenchOptions {
  dir?: string | undefined;
  seconds: number;
  committers: number[];
  /** Keep the run's directory instead of removing it. */
  keep?: boolean;
  progress?: BenchProgress;
}

async function measure(p: Primary, committers: number, level: 'off' | 'on', seconds: number, valueBytes: number) {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 });
  const value = 'v'.repeat(valueBytes);
  let commits = 0;
  const fs0 = p.stats().walFsyncs;
  const stopAt = performance.now() + seconds * 1000;
  let seq = 0;
  await Promise.all(
    Array.from({ length: committers }, async () => {
      while (performance.now() < stopAt) {
        const k = `k${seq++ % 100_000}`;
        const t0 = performance.now();
        await p.transaction((tx) => tx.put('bench', k, value), { synchronousCommit: level });
        h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        commits++;
        // With synchronous_commit=off nothing yields to the event loop: let other work run.
        if (level === 'off' && commits % 1024 === 0) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  const fsyncs = p.stats().walFsyncs - fs0;
  const res = {
    synchronous_commit: level,
    committers,
    commitsPerSec: Math.round(commits / seconds),
    p50Ms: h.getValueAtPercentile(50) / 1000,
    p99Ms: h.getValueAtPercentile(99) / 1000,
    commitsPerFsync: fsyncs > 0 ? +(commits / fsyncs).toFixed(1) : null,
    cdf: commits > 0 ? CDF_PERCENTILES.map((q) => ({ p: q, ms: h.getValueAtPercentile(q === 0 ? 0.0001 : q) / 1000 })) : cdfOf([]),
  };
  h.destroy();
  return res;
}

export async function insertBandwidth(p: Primary, seconds: number) {
  const value = new Uint8Array(1024 - 40).fill(0x61);
  const waits0 = p.stats().ringWaits;
  const start = p.insertLsn;
  const t0 = performance.now();
  const stopAt = t0 + seconds * 1000;
  let n = 0;
  while (performance.now() < stopAt) {
    for (let i = 0; i < 1000; i++) {
      await p.transaction((tx) => tx.put('wal', `r${(n + i) % 10_000}`, value), { synchronousCommit: 'off' });
    }
    n += 1000;
  }
  const secs = (performance.now() - t0) / 1000;
  await p.flush();
  const bytes = p.insertLsn - start;
  // ringWaits: times the inserter found wal_buffers full and waited for the walwriter (the disk
  // bounded the rate, not the insert path).
  return { records: n, avgRecordBytes: Math.round(bytes / n), walMbPerSec: +(bytes / secs / 1e6).toFixed(1), recordsPerSec: Math.round(n / secs), ringWaits: p.stats().ringWaits - waits0 };
}

export async function runCommitBench(o: CommitBenchOptions) {
  const work = benchWorkDir('commit', o);
  const base = work.root;
  const progress = o.progress ?? noProgress;
  progress.plan(1 + 2 * o.committers.length + 3);
  let p: Primary | null = null;
  try {
    progress.step('raw 8 KiB write + fdatasync');
    const raw = await measureRawFsync({ dir: base, seconds: Math.min(2, o.seconds) });
    const results = [];
    const dataDir = path.join(base, 'data');
    p = await Primary.open({ dataDir, checkpointTimeoutMs: 0, maxWalSizeBytes: 4 * 2 ** 30, walBuffersBytes: 64 << 20 });
    for (const level of ['off', 'on'] as const) {
      for (const c of o.committers) {
        progress.step(`synchronous_commit=${level}, ${c} committer${c === 1 ? '' : 's'}`);
        results.push(await measure(p, c, level, o.seconds, 100));
      }
    }
    // 1 KiB inserts, twice. Cold: a fresh data directory, so every segment is created (zero-filled)
    // on the way. Steady state, as on a primary that has been running: enough WAL since the last
    // checkpoint for the run, then a checkpoint, which recycles those segments into future names
    // (min_wal_size), so WAL goes into allocated files.
    progress.step('1 KiB inserts, cold');
    const cold = await insertBandwidth(p, o.seconds);
    progress.step('filling WAL for the steady state');
    const steadyBytes = Math.max(cold.walMbPerSec, 600) * 1e6 * o.seconds * 1.25;
    const filler = new Uint8Array(256 * 1024).fill(0x62);
    while (p.insertLsn - p.stats().redoLsn < steadyBytes) {
      await p.transaction((tx) => tx.put('fill', 'f', filler), { synchronousCommit: 'off' });
    }
    await p.flush();
    let recycled = 0;
    p.once('checkpoint', (e: { segmentsRecycled: number }) => (recycled = e.segmentsRecycled));
    await p.checkpoint();
    progress.step('1 KiB inserts, steady state');
    const steady = await insertBandwidth(p, o.seconds);
    const wal = {
      cold: { what: 'fresh data directory: segments created (zero-filled) as WAL reaches them', ...cold },
      steadyState: { what: 'after a checkpoint recycled the segments written before (as on a running primary)', recycledSegments: recycled, ...steady },
    };
    const at64 = results.find((r) => r.synchronous_commit === 'on' && r.committers === 64);
    return {
      bench: 'commit' as const,
      units: { latency: 'ms', throughput: 'MB/s (10^6 bytes/s)', rate: 'commits/s' },
      host: { cpus: os.cpus().length, node: process.version },
      secondsPerPoint: o.seconds,
      rawFsync: raw,
      results,
      walInsert1KiB: wal,
      ratios: {
        commitsPerSecAt64OverRawFsync: at64 ? +(at64.commitsPerSec / raw.opsPerSec).toFixed(1) : null,
      },
      primary: p.stats(),
    };
  } finally {
    await p?.close();
    work.cleanup();
  }
}
