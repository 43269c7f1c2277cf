// Costs of the native-free shared-memory pieces, measured side by side in one run (JSON; latency
// in ms, MB/s = 10^6 bytes/s):
// thread wake-ups through Atomics.wait/notify and Atomics.waitAsync (the latch), a spin-wait
// hand-off, and copies into the wal_buffers SharedArrayBuffer aligned vs misaligned vs an
// ordinary-buffer memcpy (the limit).
import { Worker } from 'node:worker_threads';
import { quantile } from '../src/util/quantile.js';

const N = 2000;

function pingPong(mode: 'wait' | 'spin' | 'waitAsync'): Promise<{ p50Ms: number; p99Ms: number }> {
  const sab = new SharedArrayBuffer(16);
  const i32 = new Int32Array(sab);
  const code = `
    const { workerData } = require('node:worker_threads');
    const i32 = new Int32Array(workerData.sab);
    const mode = workerData.mode;
    for (let k = 1; k <= ${N}; k++) {
      const want = 2 * k - 1;
      if (mode === 'spin') { while (Atomics.load(i32, 0) !== want) {} }
      else { while (Atomics.load(i32, 0) !== want) Atomics.wait(i32, 0, want - 1, 1000); }
      Atomics.store(i32, 0, want + 1);
      Atomics.notify(i32, 0);
    }`;
  const w = new Worker(code, { eval: true, workerData: { sab, mode } });
  return (async () => {
    const lat: number[] = [];
    for (let k = 1; k <= N; k++) {
      const t0 = performance.now();
      Atomics.store(i32, 0, 2 * k - 1);
      Atomics.notify(i32, 0);
      const want = 2 * k;
      if (mode === 'spin') while (Atomics.load(i32, 0) !== want) { /* spin */ }
      else if (mode === 'wait') while (Atomics.load(i32, 0) !== want) Atomics.wait(i32, 0, want - 1, 1000);
      else while (Atomics.load(i32, 0) !== want) await Atomics.waitAsync(i32, 0, want - 1, 1000).value;
      lat.push(performance.now() - t0);
    }
    await w.terminate();
    lat.sort((a, b) => a - b);
    return { p50Ms: +quantile(lat, 0.5).toFixed(5), p99Ms: +quantile(lat, 0.99).toFixed(5) };
  })();
}

function copyMbPerSec(dst: Uint8Array, src: Uint8Array, dstOff: number, n: number): number {
  for (let i = 0; i < 50; i++) dst.set(src.subarray(0, n), dstOff);
  const iters = 2000;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) dst.set(src.subarray(0, n), dstOff);
  return +((n * iters) / ((performance.now() - t0) / 1000) / 1e6).toFixed(0);
}

const ring = new Uint8Array(new SharedArrayBuffer(8 << 20));
const plainDst = new Uint8Array(8 << 20);
const src = new Uint8Array(1 << 20).fill(7);
const out = {
  bench: 'shm',
  units: { latency: 'ms', throughput: 'MB/s (10^6 bytes/s)' },
  wakeups: {
    atomicsWaitNotify: await pingPong('wait'),
    atomicsWaitAsync: await pingPong('waitAsync'),
    spin: await pingPong('spin'),
  },
  copy8KiB: {
    plainMemcpyMbPerSec: copyMbPerSec(plainDst, src, 0, 8192),
    intoSabAlignedMbPerSec: copyMbPerSec(ring, src, 8, 8192),
    intoSabMisalignedMbPerSec: copyMbPerSec(ring, src, 3, 8192),
  },
  copy1KiB: {
    plainMemcpyMbPerSec: copyMbPerSec(plainDst, src, 0, 1024),
    intoSabAlignedMbPerSec: copyMbPerSec(ring, src, 8, 1024),
    intoSabMisalignedMbPerSec: copyMbPerSec(ring, src, 3, 1024),
  },
};
console.log(JSON.stringify(out, null, 2));
