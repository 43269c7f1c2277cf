// tinybench: WAL replay as the startup worker does it (its ReceivedWalSource and XLogReader over
// segment pages: page checks, record assembly, CRC-32C, body decode; then redo into a
// SharedStore), 100k small commit records like the live benches' (one put of a small value each),
// beside the CRC-32C of the same bytes alone (work no reader can skip). Also counts this thread's
// garbage collections per 100k records replayed (each one pauses replay on a standby). The WAL
// comes from a real primary. `npm run bench:replay`.
import { Bench } from 'tinybench';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { Primary } from '../src/primary/primary.js';
import { XLogReader } from '../src/wal/reader.js';
import { ReceivedWalSource } from '../src/standby/startup.js';
import { redoRecord } from '../src/wal/replay.js';
import { SharedStore } from '../src/storage/store.js';
import { CRC32C_INIT, crc32cUpdate } from '../src/wal/crc32c.js';
import { segmentFileName } from '../src/wal/segment.js';

const RECORDS = 100_000;
const SEG = 16 << 20;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-replay-bench-'));
const primary = await Primary.open({ dataDir: path.join(dir, 'd'), walSegmentSize: SEG, checkpointTimeoutMs: 0 });
const startLsn = primary.flushLsn;
for (let i = 0; i < RECORDS; i += 1000) {
  await Promise.all(Array.from({ length: 1000 }, (_, j) => primary.transaction((tx) => tx.put('t', `k${(i + j) % 1000}`, i + j), { synchronousCommit: 'off' })));
}
const endLsn = await primary.flush();
if (Math.floor(startLsn / SEG) !== Math.floor(endLsn / SEG)) throw new Error('replay bench: the WAL must fit in one segment');
const sysid = BigInt(primary.systemIdentifier);
await primary.close();
const walDir = path.join(dir, 'd', 'pg_wal');
const walBytes = endLsn - startLsn;

/** Replay every record from startLsn to endLsn into a fresh store; returns the record count. */
function replayAll(store: SharedStore): number {
  // The startup worker's page source, as when replaying local WAL (limit Infinity).
  const src = new ReceivedWalSource(walDir, 1, SEG);
  const reader = new XLogReader(src, { segSize: SEG, sysid }, startLsn, null);
  let n = 0;
  for (;;) {
    const r = reader.readRecord();
    if (r.kind !== 'record') break;
    redoRecord(store, r.record);
    n++;
    if (r.record.end >= endLsn) break;
  }
  src.close();
  return n;
}

const store = SharedStore.create({ maxStoreBytes: 256 << 20 });
const replayed = replayAll(store); // warm (and the page cache)
// The same WAL bytes, for the CRC-32C limit (one segment holds them all: RECORDS small commits).
const bytes = new Uint8Array(walBytes);
{
  const seg = Math.floor(startLsn / SEG);
  const fd = fs.openSync(path.join(walDir, segmentFileName(1, seg, SEG)), 'r');
  fs.readSync(fd, bytes, 0, walBytes, startLsn % SEG);
  fs.closeSync(fd);
}
let gcs = 0;
const obs = new PerformanceObserver((l) => (gcs += l.getEntries().length));
obs.observe({ entryTypes: ['gc'] });
let runs = 0;

const bench = new Bench({ time: 2000 });
bench
  .add(`CRC-32C of the same ${(walBytes / 1e6).toFixed(1)} MB (limit)`, () => {
    crc32cUpdate(CRC32C_INIT, bytes, 0, bytes.length);
  })
  .add(`replay ${replayed} records (read + check + CRC + decode + redo)`, () => {
    replayAll(store);
    runs++;
  });
await bench.run();
await new Promise((r) => setImmediate(r));
gcs += obs.takeRecords().length;
obs.disconnect();
console.table(bench.table());
const replay = (bench.tasks[1]!.result as unknown as { latency: { mean: number } }).latency;
console.log(JSON.stringify({
  records: replayed,
  walBytes,
  recordsPerSec: Math.round((replayed * 1000) / replay.mean),
  usPerRecord: +((replay.mean * 1000) / replayed).toFixed(3),
  collectionsPer100kRecords: +((gcs * 100_000) / (runs * replayed)).toFixed(1),
}));
fs.rmSync(dir, { recursive: true, force: true });
