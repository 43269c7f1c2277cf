// StageTrace (src/util/stage-trace.ts): entries recorded from several threads land whole; the
// timeline answers "when did this stage first cover LSN x" with positions that only grow; the
// per-hop breakdown of synthetic commits gives the hop times they were built with, and the slowest
// 1 % shows the hop that made them slow; bad handles are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { WalstreamError } from '../src/errors.js';
import { hopBreakdown, StageTimeline, StageTrace, stageTraceOption } from '../src/util/stage-trace.js';

test('entries from 3 threads at once all land, whole; past capacity they are dropped and counted', async () => {
  const t = StageTrace.create(30_000);
  const src = `const { workerData } = require('node:worker_threads');
    const counts = new Int32Array(workerData.sab, 0, 5); const data = new Float64Array(workerData.sab, 40, 5 * workerData.capacity * 2);
    for (let k = 0; k < 10000; k++) { const i = Atomics.add(counts, 1, 1); const o = (workerData.capacity + i) * 2; data[o] = workerData.base + k; data[o + 1] = 1; }`;
  // (the workers write the 'sent' stage the way record() does, without importing the module)
  await Promise.all([0, 1, 2].map((w) => new Promise((resolve, reject) => {
    const wk = new Worker(src, { eval: true, workerData: { ...t.handle, base: w * 1e6 } });
    wk.once('exit', resolve).once('error', reject);
  })));
  const e = t.entries('sent');
  assert.equal(e.length, 30_000);
  assert.equal(new Set(e.map((x) => x[0])).size, 30_000, 'no entry lost or overwritten');
  for (let k = 0; k < 5; k++) t.record('sent', 1);
  assert.equal(t.dropped('sent'), 5);
  assert.equal(t.entries('flushed').length, 0);
});

test('timeline: the first time a position covered an LSN', () => {
  const tl = new StageTimeline([[100, 10], [200, 12], [200, 11], [500, 20]]);
  assert.equal(tl.reached(50), 10);
  assert.equal(tl.reached(100), 10);
  assert.equal(tl.reached(150), 11, 'the earlier of the two entries at 200');
  assert.equal(tl.reached(500), 20);
  assert.equal(tl.reached(501), null);
});

test('hop breakdown of synthetic commits: the hop times they were built with; the slowest 1 % names the slow hop', () => {
  const t = StageTrace.create(1000);
  const commits: Array<[number, number, number]> = [];
  for (let i = 0; i < 200; i++) {
    const lsn = 1000 * (i + 1);
    const base = i * 10;
    const slow = i === 150 ? 5 : 0; // one commit whose startup hop took 5 ms more
    t.recordAt('flushed', lsn, base);
    t.recordAt('sent', lsn, base + 0.1);
    t.recordAt('received', lsn, base + 0.2);
    t.recordAt('standbyFlushed', lsn, base + 0.5);
    t.recordAt('replayed', lsn, base + 0.6 + slow);
    commits.push([lsn - 10, base + 0.05, base + 0.7 + slow]);
  }
  const hops = hopBreakdown(t, commits);
  const by = Object.fromEntries(hops.map((h) => [h.hop, h]));
  assert.equal(by['flushed → sent']!.p50Ms, 0.1);
  assert.equal(by['received → standbyFlushed']!.p50Ms, 0.3);
  assert.equal(by['standbyFlushed → replayed']!.p50Ms, 0.1);
  assert.equal(by['flushed → acknowledged']!.p50Ms, 0.05);
  // The slowest 1 % (2 commits, one of them the slow one): the startup hop carries the tail.
  assert.ok(by['standbyFlushed → replayed']!.slowestPercentMeanMs > 2, JSON.stringify(by['standbyFlushed → replayed']));
  assert.ok(by['sent → received']!.slowestPercentMeanMs < 0.2);
});

test('the stageTrace option: null, or a StageTrace handle', () => {
  assert.equal(stageTraceOption(undefined), null);
  assert.equal(stageTraceOption(null), null);
  const h = StageTrace.create(10).handle;
  assert.deepEqual(stageTraceOption(h), h);
  for (const bad of [{}, { sab: new SharedArrayBuffer(8), capacity: 10 }, { sab: h.sab, capacity: 11 }, 'x']) {
    assert.throws(() => stageTraceOption(bad), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_INVALID_OPTION');
  }
});
