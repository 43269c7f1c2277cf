// Standalone runner for the 1 KiB synchronous_commit=off insert loop of `bench commit`
// (insertBandwidth): the same public-API loop, for profiling with `node --cpu-prof`.
// Usage: node dist/bench/insert-1k.js [seconds]. Env: RING_MB (wal_buffers, default 64), PRESEG_MB
// (segment files created before timing, default 0). Prints JSON; removes its temp data directory.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { ensureSegment } from '../src/wal/segfile.js';
import { insertBandwidth } from './commit.js';

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
    const s0 = p.stats();
    const r = await insertBandwidth(p, seconds);
    const s1 = p.stats();
    console.log(JSON.stringify({
      ...r, usPerTxn: +(1e6 / r.recordsPerSec).toFixed(2), walWrites: s1.walWrites - s0.walWrites, walFsyncs: s1.walFsyncs - s0.walFsyncs,
    }));
  } finally {
    await p.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}
await main();
