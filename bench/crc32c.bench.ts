// CRC-32C throughput (`npm run bench:crc` = `node dist/bench/crc32c.bench.js`): tinybench over
// 64 B, 1 KiB, 8 KiB and 1 MiB, beside Buffer.copy of 1 MiB measured in the same run (the limit).
// Before measuring, crc32c is called from mixed sites (small pooled Buffers, Uint8Arrays,
// SharedArrayBuffer views at odd offsets), as the WAL code does, so the figures are those of the
// shared, already-polymorphic function. Also measures the JS slicing-by-16 path (crc32cUpdatePortable,
// the fallback without WebAssembly SIMD) in the same run, and the ratio of the two per size.
// Prints one JSON object; takes ~10 s of one core; creates nothing on disk.

import os from 'node:os';
import { Bench } from 'tinybench';
import { crc32c, crc32cImplementation, crc32cUpdatePortable, CRC32C_INIT } from '../src/wal/crc32c.js';

const MiB = 1 << 20;
const sizes = [64, 1024, 8192, MiB];
/** Each timed iteration covers at least this many bytes (batches small inputs above timer noise). */
const bytesPerIteration = 256 * 1024;

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24;
  return b;
}

/** Call crc32c from every kind of site the WAL uses, so the measured code is the shared one. */
function warmMixedCallSites(): number {
  const sab = new SharedArrayBuffer(MiB + 64);
  const shared = new Uint8Array(sab);
  shared.set(pattern(MiB + 64));
  const plain = pattern(MiB + 64);
  let x = 0;
  for (let k = 0; k < 20_000; k++) {
    x ^= crc32c(Buffer.from([k & 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, k & 7])); // pooled
    x ^= crc32c(new Uint8Array(sab, k & 7, 40 + (k & 511)));
    x ^= crc32c(plain, k & 15, 300 + (k & 1023));
    x ^= crc32c(shared, 3, 3 + 4096 + (k & 63));
    if (k % 1000 === 0) x ^= crc32c(new Uint8Array(sab, 5, MiB));
  }
  return x;
}

interface Row {
  bytes: number;
  GBps: number;
  ratioToMemcpy: number;
}

async function main(): Promise<void> {
  const sink = { x: warmMixedCallSites() };
  const bench = new Bench({ time: 400, warmupTime: 100, timestampProvider: 'hrtimeNow' });
  const batch = (n: number) => Math.max(1, Math.floor(bytesPerIteration / n));
  const tasks: { name: string; bytesPerIter: number }[] = [];
  const add = (name: string, bytesPerIter: number, fn: () => void) => {
    bench.add(name, fn);
    tasks.push({ name, bytesPerIter });
  };

  const memSrc = pattern(MiB);
  const memDst = Buffer.alloc(MiB);
  add('memcpy 1MiB', MiB, () => {
    memSrc.copy(memDst, 0, 0, MiB);
  });
  for (const n of sizes) {
    const buf = pattern(n);
    const k = batch(n);
    add(`crc32c ${n}`, n * k, () => {
      for (let i = 0; i < k; i++) sink.x ^= crc32c(buf);
    });
  }
  const sab = new SharedArrayBuffer(MiB + 8);
  const sabView = new Uint8Array(sab, 3, MiB);
  sabView.set(pattern(MiB));
  add('crc32c 1MiB SharedArrayBuffer+3', MiB, () => {
    sink.x ^= crc32c(sabView);
  });
  const odd = new Uint8Array(pattern(MiB + 8).buffer, 5, MiB);
  add('crc32c 1MiB Uint8Array+5', MiB, () => {
    sink.x ^= crc32c(odd);
  });
  for (const n of sizes) {
    const buf = pattern(n);
    const k = batch(n);
    add(`portable ${n}`, n * k, () => {
      for (let i = 0; i < k; i++) sink.x ^= crc32cUpdatePortable(CRC32C_INIT, buf);
    });
  }

  await bench.run();

  const gbps = new Map<string, number>();
  for (const t of bench.tasks) {
    const r = t.result;
    if (r.state !== 'completed') throw new Error(`task ${t.name}: ${r.state}${'error' in r ? `: ${String(r.error)}` : ''}`);
    const spec = tasks.find((x) => x.name === t.name)!;
    gbps.set(t.name, spec.bytesPerIter / (r.latency.p50 * 1e6)); // p50 in ms -> GB/s
  }
  const memcpy = gbps.get('memcpy 1MiB')!;
  const row = (name: string, bytes: number): Row => {
    const g = gbps.get(name)!;
    return { bytes, GBps: +g.toFixed(2), ratioToMemcpy: +(g / memcpy).toFixed(3) };
  };
  console.log(
    JSON.stringify(
      {
        bench: 'crc32c',
        host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
        implementation: crc32cImplementation(),
        method: 'tinybench p50 per iteration; small sizes batched to >= 256 KiB per iteration; crc32c warmed from mixed call sites first',
        memcpy1MiBGBps: +memcpy.toFixed(2),
        crc32c: Object.fromEntries(sizes.map((n) => [n, row(`crc32c ${n}`, n)])),
        crc32c1MiBSharedArrayBufferOffset3: row('crc32c 1MiB SharedArrayBuffer+3', MiB),
        crc32c1MiBUint8ArrayOffset5: row('crc32c 1MiB Uint8Array+5', MiB),
        portableSlicing16: Object.fromEntries(sizes.map((n) => [n, row(`portable ${n}`, n)])),
        crc32cOverPortable: Object.fromEntries(sizes.map((n) => [n, +(gbps.get(`crc32c ${n}`)! / gbps.get(`portable ${n}`)!).toFixed(2)])),
        sink: sink.x >>> 0,
      },
      null,
      2,
    ),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
