// SharedStore micro-benchmarks (tinybench): applyTransaction of 1-op and 10-op transactions with
// 100 B and 1 KiB values (overwrites in a 100k-key table, the steady state of replay), get, getRaw,
// readConsistent of 10 gets, and scans of 100 entries. Prints a JSON summary.
// Run: npx tsc -p . && node dist/bench/store.bench.js [--time-ms 400]

import { Bench } from 'tinybench';
import { Packr } from '../src/util/msgpackr.js';
import { SharedStore, type StoreOp } from '../src/storage/store.js';

const packr = new Packr({ useRecords: false });
const enc = new TextEncoder();
const KEYS = 100_000;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function valueOf(bytes: number, i: number): Uint8Array {
  // a row-like object padded to about `bytes` of msgpack
  const base = { id: i, name: `user-${i}`, balance: i * 3, tags: ['a', 'b'] };
  const pad = Math.max(0, bytes - packr.pack(base).length - 8);
  return packr.pack({ ...base, pad: 'x'.repeat(pad) });
}

async function runStoreBench(timeMs = 400): Promise<unknown> {
  const store = SharedStore.create({ maxStoreBytes: 1 << 30 });
  const keys = Array.from({ length: KEYS }, (_, i) => enc.encode(`user:${String(i).padStart(8, '0')}`));
  const strKeys = keys.map((k) => new TextDecoder().decode(k));
  const v100 = Array.from({ length: 64 }, (_, i) => valueOf(100, i));
  const v1k = Array.from({ length: 64 }, (_, i) => valueOf(1024, i));
  for (let s = 0; s < KEYS; s += 10_000) {
    const ops: StoreOp[] = [];
    for (let i = s; i < s + 10_000; i++) ops.push({ kind: 'put', table: 'users', key: keys[i]!, keyIsString: true, value: v100[i & 63]! });
    store.applyTransaction(ops);
  }
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) % KEYS;
  const txn = (n: number, vals: Uint8Array[]): StoreOp[] => {
    const ops: StoreOp[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const k = rnd();
      ops[j] = { kind: 'put', table: 'users', key: keys[k]!, keyIsString: true, value: vals[k & 63]! };
    }
    return ops;
  };

  const bench = new Bench({ time: timeMs, warmupTime: 100 });
  bench
    .add('apply 1-op txn, 100 B', () => store.applyTransaction(txn(1, v100)))
    .add('apply 1-op txn, 1 KiB', () => store.applyTransaction(txn(1, v1k)))
    .add('apply 10-op txn, 100 B', () => store.applyTransaction(txn(10, v100)))
    .add('apply 10-op txn, 1 KiB', () => store.applyTransaction(txn(10, v1k)))
    .add('get (decoded)', () => store.get('users', strKeys[rnd()]!))
    .add('getRaw', () => store.getRaw('users', keys[rnd()]!))
    .add('readConsistent 10 gets', () =>
      store.readConsistent((v) => {
        for (let j = 0; j < 10; j++) v.get('users', strKeys[rnd()]!);
      }),
    )
    .add('scan 100 (forward)', () => store.scan('users', { gte: strKeys[rnd()]!, limit: 100 }))
    .add('scan 100 (reverse)', () => store.scan('users', { lte: strKeys[rnd()]!, limit: 100, reverse: true }));
  await bench.run();
  const tasks = bench.tasks.map((t) => {
    const r = t.result as unknown as { state: string; latency?: { mean: number; p50: number; p99: number }; throughput?: { mean: number } };
    if (r.latency === undefined || r.throughput === undefined) return { name: t.name, state: r.state };
    return {
      name: t.name,
      opsPerSec: Math.round(r.throughput.mean),
      meanUs: +(r.latency.mean * 1000).toFixed(2),
      p50Us: +(r.latency.p50 * 1000).toFixed(2),
      p99Us: +(r.latency.p99 * 1000).toFixed(2),
    };
  });
  const st = store.stats();
  return { bench: 'store', node: process.version, tableKeys: KEYS, tasks, store: { entries: st.entries, bytesUsed: st.bytesUsed, bytesReserved: st.bytesReserved } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await runStoreBench(arg('--time-ms', 400)), null, 2));
}
