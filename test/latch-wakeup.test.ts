// RWLatch wake-ups: releaseWrite notifies sleeping readers only when one announced its sleep (it
// skips Atomics.notify otherwise). A lost wake-up would show as a reader that gets the latch only
// after its safety timeout (SAFETY_WAIT_MS = 100 ms) instead of right after the release: each
// worker counts such expiries (rwLatchMissedWakeups: the wait timed out, the word it slept on had
// not moved, yet the latch was free for it) and the tests expect 0, whatever the machine's speed.
// Real threads; each worker exits on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { RWLatch, RWLATCH_WORDS } from '../src/storage/latch.js';

const LATCH_URL = new URL('../src/storage/latch.js', import.meta.url).href;
const ROUNDS = 6;
// i32 words after the latch: GO = main's round counter; RDONE / WDONE = rounds the reader / the writer finished
const GO = RWLATCH_WORDS;
const RDONE = RWLATCH_WORDS + 1;
const WDONE = RWLATCH_WORDS + 2;
const READY = RWLATCH_WORDS + 3;
/** Missed wake-ups counted by the reader / the writer thread (rwLatchMissedWakeups), stored at its end. */
const RMISSED = RWLATCH_WORDS + 4;
const WMISSED = RWLATCH_WORDS + 5;

/** A worker that, for each round r, waits for GO >= r, then takes and drops the latch (`how`) and publishes r in `done`. */
function worker(sab: SharedArrayBuffer, how: 'read' | 'write', done: number, missed: number): { w: Worker; exit: Promise<number> } {
  const src = `
    const { workerData: wd } = require('node:worker_threads');
    import(${JSON.stringify(LATCH_URL)}).then((L) => {
      const i32 = new Int32Array(wd.sab);
      const latch = new L.RWLatch(i32, 0);
      Atomics.add(i32, ${READY}, 1);
      for (let r = 1; r <= ${ROUNDS}; r++) {
        while (Atomics.load(i32, ${GO}) < r) Atomics.wait(i32, ${GO}, Atomics.load(i32, ${GO}), 50);
        ${how === 'read' ? 'latch.acquireRead(); latch.releaseRead();' : 'latch.acquireWrite(); latch.releaseWrite();'}
        Atomics.store(i32, ${done}, r);
        Atomics.notify(i32, ${done});
      }
      Atomics.store(i32, ${missed}, L.rwLatchMissedWakeups());
    });
  `;
  const w = new Worker(src, { eval: true, workerData: { sab } });
  const exit = new Promise<number>((resolve, reject) => {
    w.on('error', reject);
    w.on('exit', resolve);
  });
  return { w, exit };
}

async function rounds(withWriter: boolean): Promise<{ delays: number[]; missed: number }> {
  const sab = new SharedArrayBuffer(4 * (RWLATCH_WORDS + 6));
  const i32 = new Int32Array(sab);
  const latch = new RWLatch(i32, 0);
  const workers = [worker(sab, 'read', RDONE, RMISSED)];
  if (withWriter) workers.push(worker(sab, 'write', WDONE, WMISSED));
  const delays: number[] = [];
  try {
    await rounds2(i32, latch, withWriter, workers.length, delays);
  } catch (e) {
    for (const { w } of workers) await w.terminate();
    throw e;
  }
  for (const e of await Promise.all(workers.map((w) => w.exit))) assert.equal(e, 0);
  assert.deepEqual(latch.peek(), { readers: 0, writer: false, writersWaiting: 0 });
  assert.equal(Atomics.load(i32, 1), 0, 'no reader still counted as asleep');
  return { delays: delays.sort((a, b) => a - b), missed: Atomics.load(i32, RMISSED) + Atomics.load(i32, WMISSED) };
}

async function rounds2(i32: Int32Array, latch: RWLatch, withWriter: boolean, nWorkers: number, delays: number[]): Promise<void> {
  const startBy = performance.now() + 10_000;
  while (Atomics.load(i32, READY) < nWorkers) {
    assert.ok(performance.now() < startBy, 'workers started');
    await new Promise((res) => setTimeout(res, 5));
  }
  for (let r = 1; r <= ROUNDS; r++) {
    latch.acquireWrite();
    Atomics.store(i32, GO, r);
    Atomics.notify(i32, GO);
    // the reader spins, announces itself and sleeps (behind our write latch, and behind the queued
    // writer): wait until it has announced its sleep (word 1 = WRITERS_WAITING, sleepers in its
    // upper half), and until the writer has queued
    const sleepingBy = performance.now() + 10_000;
    while ((Atomics.load(i32, 1) >>> 16) === 0 || (withWriter && latch.peek().writersWaiting !== 1)) {
      assert.ok(performance.now() < sleepingBy, 'the reader went to sleep behind the writer');
      await new Promise((res) => setTimeout(res, 1));
    }
    const t0 = performance.now();
    latch.releaseWrite(); // hands over to the queued writer if any; its release must wake the reader
    while (Atomics.load(i32, RDONE) < r) Atomics.wait(i32, RDONE, Atomics.load(i32, RDONE), 5);
    delays.push(performance.now() - t0);
    if (withWriter) while (Atomics.load(i32, WDONE) < r) Atomics.wait(i32, WDONE, Atomics.load(i32, WDONE), 5);
  }
}

test('RWLatch: a reader asleep behind a writer gets the latch right after the release', async (t) => {
  const { delays, missed } = await rounds(false);
  t.diagnostic(`wake-ups (ms): ${delays.map((x) => x.toFixed(1)).join(', ')}`);
  assert.equal(missed, 0, 'safety-timeout expiries that found the latch released (lost wake-ups)');
});

test('RWLatch: a reader asleep behind a writer and a queued writer wakes when the queued writer releases', async (t) => {
  const { delays, missed } = await rounds(true);
  t.diagnostic(`wake-ups (ms): ${delays.map((x) => x.toFixed(1)).join(', ')}`);
  assert.equal(missed, 0, 'safety-timeout expiries that found the latch released (lost wake-ups)');
});
