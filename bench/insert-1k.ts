// Standalone runner for the 1 KiB synchronous_commit=off insert loop of `bench commit`
// (insertBandwidth): the same public-API loop, for profiling with `node --cpu-prof`.
// Usage: node dist/bench/insert-1k.js [seconds]. Env: RING_MB (wal_buffers, default 64), PRESEG_MB
// (segment files created before timing, default 0). Prints JSON; removes its temp data directory.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { ensureSegment } from '../src/wal/segfile.js';

async function main() {
  const seconds = Number(process.argv[2] ?? 2);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-ins1k-'));
  const p = await Primary.open({ dataDir: path.join(base, 'data'), checkpointTimeoutMs: 0, maxWalSizeBytes: 4 * 2 ** 30, walBuffersBytes: Number(process.env.RING_MB ?? 64) << 20 });
  try {
    // PRESEG_MB=n: create n MB of segment files ahead of the insert position first (as recycled
    // segments would be in a steady state), to see the insert path without new-segment creation.
    const preMB = Number(process.env.PRESEG_MB ?? 0);
    const segSize = p.stats().walSegmentSize;
    for (let s = Math.floor(p.insertLsn / segSize) + 1, k = 0; k * segSize < preMB * 2 ** 20; s++, k++) ensureSegment(p.walDir, p.timeline, s, segSize);
    const value = new Uint8Array(1024 - 40).fill(0x61);
    const s0 = p.stats();
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
    const s1 = p.stats();
    console.log(JSON.stringify({
      records: n, avgRecordBytes: Math.round(bytes / n), walMBps: +(bytes / secs / 1e6).toFixed(1), recordsPerSec: Math.round(n / secs),
      usPerTxn: +((secs * 1e6) / n).toFixed(2), ringWaits: s1.ringWaits - s0.ringWaits, walWrites: s1.walWrites - s0.walWrites, walFsyncs: s1.walFsyncs - s0.walFsyncs,
    }));
  } finally {
    await p.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}
await main();
