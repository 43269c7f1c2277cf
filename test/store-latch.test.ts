// Latch primitives across real threads: SpinLock mutual exclusion, RWLatch exclusion and writer
// preference, Latch set/wait/waitAsync (including the keep-alive behaviour of waitAsync).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Latch, LATCH_WORDS, RWLatch, RWLATCH_WORDS, SpinLock, SPINLOCK_WORDS } from '../src/storage/latch.js';

const LATCH_URL = new URL('../src/storage/latch.js', import.meta.url).href;

/** Run `body` (an async function body with `L` = latch module, `wd` = workerData) in a worker. */
function spawn(body: string, workerData: unknown): { worker: Worker; done: Promise<unknown[]>; exit: Promise<number> } {
  const src = `
    const { parentPort, workerData: wd } = require('node:worker_threads');
    import(${JSON.stringify(LATCH_URL)}).then(async (L) => { ${body} }).catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
  `;
  const worker = new Worker(src, { eval: true, workerData });
  const msgs: unknown[] = [];
  worker.on('message', (m) => msgs.push(m));
  const exit = new Promise<number>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', resolve);
  });
  const done = exit.then(() => {
    for (const m of msgs) if (m !== null && typeof m === 'object' && 'error' in m) throw new Error(String((m as { error: string }).error));
    return msgs;
  });
  return { worker, done, exit };
}

test('SpinLock: increments under the lock are never lost across 3 threads', async () => {
  const sab = new SharedArrayBuffer(64);
  const i32 = new Int32Array(sab);
  const LOCK = 2;
  const COUNTER = 8;
  assert.equal(SPINLOCK_WORDS, 1);
  const per = 50_000;
  const body = `
    const i32 = new Int32Array(wd.sab);
    const lock = new L.SpinLock(i32, ${LOCK});
    for (let i = 0; i < ${per}; i++) {
      lock.lock();
      const v = i32[${COUNTER}];   // plain, non-atomic read-modify-write
      if (i % 64 === 0) for (let k = 0; k < 50; k++) i32[${COUNTER} + 1] += k;
      i32[${COUNTER}] = v + 1;
      lock.unlock();
    }
  `;
  const ws = [spawn(body, { sab }), spawn(body, { sab }), spawn(body, { sab })];
  await Promise.all(ws.map((w) => w.done));
  assert.equal(i32[COUNTER], 3 * per);
  const lock = new SpinLock(i32, LOCK);
  assert.equal(lock.isLocked(), false);
  assert.equal(lock.tryLock(), true);
  assert.equal(lock.tryLock(), false);
  lock.unlock();
  assert.throws(() => lock.unlock(), /not locked/);
});

test('RWLatch: readers never see a half-done write; writers are not starved by readers', async () => {
  const sab = new SharedArrayBuffer(256);
  const i32 = new Int32Array(sab);
  const L0 = 4;
  const A = 16; // writer keeps A[0..7] all equal
  const STOP = 40;
  const READY = 41; // readers running

  assert.equal(RWLATCH_WORDS, 4);
  const reader = `
    const i32 = new Int32Array(wd.sab);
    const l = new L.RWLatch(i32, ${L0});
    let reads = 0, bad = 0;
    Atomics.add(i32, ${READY}, 1);
    while (Atomics.load(i32, ${STOP}) === 0) {
      l.acquireRead();
      const v = i32[${A}];
      for (let k = 1; k < 8; k++) if (i32[${A} + k] !== v) bad++;
      // hold the latch a little so readers overlap and a writer must wait for them
      const t = performance.now(); while (performance.now() - t < 0.02) {}
      l.releaseRead();
      reads++;
    }
    parentPort.postMessage({ reads, bad });
  `;
  const writer = `
    const i32 = new Int32Array(wd.sab);
    const l = new L.RWLatch(i32, ${L0});
    while (Atomics.load(i32, ${READY}) < 2) Atomics.wait(i32, ${READY}, Atomics.load(i32, ${READY}), 5);
    let worst = 0;
    for (let n = 1; n <= 300; n++) {
      const t0 = performance.now();
      l.acquireWrite();
      worst = Math.max(worst, performance.now() - t0);
      for (let k = 0; k < 8; k++) { i32[${A} + k] = n; for (let s = 0; s < 20; s++) i32[${A} + 8] += s; }
      l.releaseWrite();
    }
    parentPort.postMessage({ worst });
  `;
  const readers = [spawn(reader, { sab }), spawn(reader, { sab })];
  const w = spawn(writer, { sab });
  const [wm] = (await w.done) as [{ worst: number }];
  Atomics.store(i32, STOP, 1);
  const rs = (await Promise.all(readers.map((r) => r.done))).map((m) => m[0] as { reads: number; bad: number });
  for (const r of rs) {
    assert.equal(r.bad, 0);
    assert.ok(r.reads > 0);
  }
  assert.equal(i32[A], 300);
  // writer preference: each write waited at most for the readers already inside (plus scheduling)
  assert.ok(wm.worst < 1000, `a writer waited ${wm.worst} ms`);
  const l = new RWLatch(i32, L0);
  assert.deepEqual(l.peek(), { readers: 0, writer: false, writersWaiting: 0 });
  assert.equal(l.tryAcquireRead(), true);
  assert.equal(l.tryAcquireWrite(), false);
  l.releaseRead();
  assert.equal(l.tryAcquireWrite(), true);
  assert.equal(l.tryAcquireRead(), false);
  l.releaseWrite();
  assert.throws(() => l.releaseWrite(), /not write-held/);
});

test('Latch: set wakes a waiting thread; a set before wait is not lost; timeouts', async () => {
  const sab = new SharedArrayBuffer(64);
  const i32 = new Int32Array(sab);
  assert.equal(LATCH_WORDS, 1);
  const L0 = 3;
  const ACK = 8;
  const latch = new Latch(i32, L0);
  // a worker blocks in wait(); we set() and it acknowledges
  const w = spawn(
    `
    const i32 = new Int32Array(wd.sab);
    const latch = new L.Latch(i32, ${L0});
    Atomics.store(i32, ${ACK}, 1); Atomics.notify(i32, ${ACK});
    const t0 = performance.now();
    const r = latch.wait(10000);
    parentPort.postMessage({ r, ms: performance.now() - t0 });
    // second wait: nothing set since, so it times out
    parentPort.postMessage({ r2: latch.wait(50) });
  `,
    { sab },
  );
  while (Atomics.load(i32, ACK) === 0) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  latch.set();
  const msgs = (await w.done) as Array<Record<string, unknown>>;
  assert.equal(msgs[0]!.r, 'set');
  assert.ok((msgs[0]!.ms as number) < 5000);
  assert.equal(msgs[1]!.r2, 'timeout');

  // same thread: set before wait is seen once, then reset() forgets pending sets
  const mine = new Latch(i32, L0);
  assert.equal(mine.isSet(), false);
  latch.set();
  assert.equal(mine.isSet(), true);
  assert.equal(mine.wait(0), 'set');
  assert.equal(mine.wait(0), 'timeout');
  latch.set();
  mine.reset();
  const t0 = performance.now();
  assert.equal(mine.wait(30), 'timeout');
  assert.ok(performance.now() - t0 >= 25);
  // waitAsync on this thread: woken by a set from another thread
  const p = mine.waitAsync(10000);
  spawn(`new L.Latch(new Int32Array(wd.sab), ${L0}).set();`, { sab });
  assert.equal(await p, 'set');
  assert.equal(await mine.waitAsync(20), 'timeout');
});

test('Latch.waitAsync keeps the event loop alive unless told not to', async () => {
  const sab = new SharedArrayBuffer(16);
  // a worker with nothing else to do awaits a timeout: with keepAlive it reports it
  const alive = spawn(`parentPort.postMessage(await new L.Latch(new Int32Array(wd.sab), 0).waitAsync(100));`, { sab });
  assert.deepEqual(await alive.done, ['timeout']);
  // without keepAlive the worker's loop is empty: it exits before the wait settles
  const gone = spawn(`parentPort.postMessage(await new L.Latch(new Int32Array(wd.sab), 0).waitAsync(100, { keepAlive: false }));`, { sab });
  assert.deepEqual(await gone.done, []);
});
