// No lost wake-ups where Atomics.notify is skipped for lack of a sleeper (docs/architecture.md,
// "Atomics.notify only where someone may sleep"). A lost wake-up here is not an error but a stall
// until some timer fires, so the tests make that timer long and bound every wait well below it:
// - the walwriter with wal_writer_delay = 10 s, no spinning, and committers that pause between
//   commits so that it is asleep at each one (WALWRITER_SLEEPING);
// - an inserter waiting for wal_buffers space (WRITE_SEQ_WAITERS), whose wait times out after 100 ms;
// - read-your-writes on an in-process standby, a wait per commit with pauses between them, so
//   the startup worker publishes while the main thread arms and disarms (REPLAY_WAITING).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('walwriter: a commit that finds it asleep wakes it (wal_writer_delay 10 s, no spin): every commit well under 2 s', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir('walstream-wake-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: 1 << 20, checkpointTimeoutMs: 0, walWriterDelayMs: 10_000, walWriterSpinIterations: 0, committerFlush: false });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  let worst = 0;
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    await p.transaction((tx) => tx.put('t', `k${i % 50}`, i), { synchronousCommit: 'local' });
    worst = Math.max(worst, performance.now() - t0);
    assert.ok(worst < 2000, `commit ${i} took ${worst.toFixed(1)} ms: a lost wake-up waits for wal_writer_delay (10 s)`);
    // Mostly let the walwriter fall asleep; sometimes commit at once (it may still be awake).
    if (i % 4 !== 0) await pause(i % 3);
  }
});

test('read-your-writes: every waitForReplay resolves while the main thread arms and disarms its replay wait', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir('walstream-wake-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: 1 << 20, checkpointTimeoutMs: 0, port: 0 });
  let standby: Standby | null = null;
  t.after(async () => {
    await standby?.close();
    await p.close();
    rmrf(dir);
  });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0, checkpointTimeoutMs: 0 });
  standby = s;
  let worst = 0;
  for (let i = 0; i < 300; i++) {
    const lsn = await p.transaction((tx) => tx.put('t', `k${i % 50}`, i), { synchronousCommit: 'local' });
    const t0 = performance.now();
    // A timeout rejects (WS_WAIT_TIMEOUT): a lost wake-up waits for the next publish, and none comes.
    await s.waitForReplay(lsn, 5_000);
    worst = Math.max(worst, performance.now() - t0);
    if (i % 4 !== 0) await pause(i % 3);
  }
  assert.ok(worst < 2000, `slowest replay wait ${worst.toFixed(1)} ms`);
});

test('wal_buffers full: the inserter waiting for ring space is woken by the write (WRITE_SEQ_WAITERS), not by its 100 ms timeout', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir('walstream-wake-');
  // 4 pages of wal_buffers and 20 KB values: most inserts wait for the walwriter to write.
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: 1 << 20, checkpointTimeoutMs: 0, walBuffersBytes: 4 * 8192, walWriterDelayMs: 10_000, walWriterSpinIterations: 0 });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  const value = 'x'.repeat(20_000);
  const waits0 = p.stats().ringWaits;
  const ms: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await p.transaction((tx) => tx.put('t', `k${i % 20}`, value), { synchronousCommit: 'off' });
    ms.push(performance.now() - t0);
  }
  const waits = p.stats().ringWaits - waits0;
  assert.ok(waits >= 50, `${waits} inserts waited for ring space`);
  ms.sort((a, b) => a - b);
  t.diagnostic(`median transaction ${ms[ms.length >> 1]!.toFixed(2)} ms (a lost wake-up waits 100 ms)`);
  // Every wait ended by the walwriter's write, none by its guard expiring after the write.
  assert.equal(p.stats().ringWaitMissedWakeups, 0, 'ring-space waits woken by their timeout after the write (lost wake-ups)');
});
