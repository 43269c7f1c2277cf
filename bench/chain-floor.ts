// The floor under walstream's live commit-to-visible latency on this machine, measured with no
// walstream code: the same chain of threads and I/O that PostgreSQL's design puts between a flushed
// commit on the primary and a read on the standby, each step doing nothing but its hand-off:
//   main: publish an LSN, bump a sequence word, notify        (walwriter after its fdatasync)
//   sender thread: Atomics.waitAsync wakes, writes 40 bytes    (walsender → XLogData)
//     to a loopback TCP socket
//   receiver thread: socket 'data', 8 KiB pwrite + fdatasync   (walreceiver: write, flush)
//     of a preallocated file, publish, Atomics.notify
//   replay thread: Atomics.wait wakes, publish, notify         (startup: replay)
//   main: Atomics.waitAsync wakes → latency                    (waitForReplay resolves)
// Paced like the live bench (one event per 1/rate s, none skipped; the first warmupMs not counted). Used by bench/standby.ts to
// print walstream's live latency as a ratio to this floor, measured in the same run.
// Owns three worker threads, a socket pair and a temp file; all are gone when it resolves.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export interface ChainFloorResult {
  events: number;
  p50Ms: number;
  p99Ms: number;
  /** 8 KiB pwrite + fdatasync alone, as timed inside the chain. */
  fsyncP50Ms: number;
  fsyncP99Ms: number;
}

// Int32 words of the shared control block
const SEQ = 0; // main → sender
const FLUSHED = 1; // receiver → replay (count of flushed events)
const REPLAYED = 2; // replay → main
const STOP = 3;
const PORT = 4;
const FSYNC_US = 16; // receiver: fsync durations (µs), ring of FSYNC_SLOTS
const FSYNC_SLOTS = 4096;

const q = (a: number[], p: number) => +(a[Math.min(a.length - 1, Math.floor(a.length * p))] ?? NaN).toFixed(3);

export async function measureChainFloor(o: { dir: string; seconds: number; rate: number; warmupMs?: number }): Promise<ChainFloorResult> {
  const sab = new SharedArrayBuffer(4 * (FSYNC_US + FSYNC_SLOTS + 1));
  const i32 = new Int32Array(sab);
  const file = path.join(o.dir, `chain-floor.${process.pid}.tmp`);
  const url = new URL(import.meta.url);
  const workers: Worker[] = [];
  const exited: Promise<unknown>[] = [];
  const start = (role: string) => {
    const w = new Worker(url, { workerData: { chainFloor: { role, sab, file } } });
    workers.push(w);
    exited.push(new Promise((r) => w.once('exit', r)));
    w.on('error', () => undefined);
    return w;
  };
  try {
    const ready = (w: Worker) => new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
    });
    const recv = start('receiver');
    await ready(recv);
    const replay = start('replay');
    const send = start('sender');
    await Promise.all([ready(replay), ready(send)]);
    const lat: number[] = [];
    const interval = 1000 / o.rate;
    const countFrom = performance.now() + (o.warmupMs ?? 0);
    const end = countFrom + o.seconds * 1000;
    let next = performance.now();
    let sent = 0;
    let seen = 0;
    const startAt: number[] = [];
    let armed = false;
    const arm = () => {
      if (armed) return;
      const cur = Atomics.load(i32, REPLAYED);
      if (cur > seen) {
        const now = performance.now();
        for (; seen < cur; seen++) if (startAt[seen]! >= countFrom) lat.push(now - startAt[seen]!);
        queueMicrotask(arm);
        return;
      }
      if (seen >= sent) return;
      const r = Atomics.waitAsync(i32, REPLAYED, cur);
      armed = true;
      void (r.async ? r.value : Promise.resolve()).then(() => {
        armed = false;
        arm();
      });
    };
    while (performance.now() < end) {
      startAt[sent] = performance.now();
      sent++;
      Atomics.store(i32, SEQ, sent);
      Atomics.notify(i32, SEQ);
      arm();
      next += interval;
      const wait = next - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      else await new Promise((r) => setImmediate(r));
    }
    const deadline = performance.now() + 10_000;
    while (seen < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    lat.sort((a, b) => a - b);
    const n = Math.min(Atomics.load(i32, FLUSHED), FSYNC_SLOTS);
    const fs_ = Array.from(i32.subarray(FSYNC_US, FSYNC_US + n), (us) => us / 1000).sort((a, b) => a - b);
    return { events: lat.length, p50Ms: q(lat, 0.5), p99Ms: q(lat, 0.99), fsyncP50Ms: q(fs_, 0.5), fsyncP99Ms: q(fs_, 0.99) };
  } finally {
    Atomics.store(i32, STOP, 1);
    for (const k of [SEQ, FLUSHED, REPLAYED]) {
      Atomics.add(i32, k, 0);
      Atomics.notify(i32, k);
    }
    const t = setTimeout(() => workers.forEach((w) => void w.terminate()), 2000);
    await Promise.all(exited);
    clearTimeout(t);
    fs.rmSync(file, { force: true });
  }
}

function worker(role: string, sab: SharedArrayBuffer, file: string): void {
  const i32 = new Int32Array(sab);
  if (role === 'receiver') {
    const fd = fs.openSync(file, 'w+');
    const block = Buffer.alloc(8192, 1);
    const zeros = Buffer.alloc(1 << 20);
    for (let off = 0; off < 16 << 20; off += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, off);
    fs.fdatasyncSync(fd);
    let count = 0;
    const server = net.createServer((s) => {
      s.setNoDelay(true);
      s.on('data', (d: Buffer) => {
        const events = d.length / 40; // one 40-byte message per event
        const t = performance.now();
        fs.writeSync(fd, block, 0, block.length, (count % 2048) * 8192);
        fs.fdatasyncSync(fd);
        Atomics.store(i32, FSYNC_US + (count % FSYNC_SLOTS), Math.round((performance.now() - t) * 1000));
        count++;
        Atomics.add(i32, FLUSHED, events);
        Atomics.notify(i32, FLUSHED);
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        server.close();
        fs.closeSync(fd);
      });
    });
    server.listen(0, '127.0.0.1', () => {
      Atomics.store(i32, PORT, (server.address() as net.AddressInfo).port);
      parentPort!.postMessage('ready');
    });
  } else if (role === 'sender') {
    const s = net.connect(Atomics.load(i32, PORT), '127.0.0.1', () => parentPort!.postMessage('ready'));
    s.setNoDelay(true);
    s.on('error', () => undefined);
    let done = 0;
    const wait = () => {
      if (Atomics.load(i32, STOP) !== 0) {
        s.destroy();
        return;
      }
      const cur = Atomics.load(i32, SEQ);
      if (cur > done) {
        s.write(Buffer.alloc(40 * (cur - done)));
        done = cur;
      }
      const r = Atomics.waitAsync(i32, SEQ, cur);
      void (r.async ? r.value : Promise.resolve()).then(wait);
    };
    wait();
  } else {
    parentPort!.postMessage('ready');
    let done = 0;
    while (Atomics.load(i32, STOP) === 0) {
      const cur = Atomics.load(i32, FLUSHED);
      if (cur > done) {
        done = cur;
        Atomics.store(i32, REPLAYED, cur);
        Atomics.notify(i32, REPLAYED);
        continue;
      }
      Atomics.wait(i32, FLUSHED, cur, 1000);
    }
  }
}

if (!isMainThread && (workerData as { chainFloor?: unknown } | null)?.chainFloor) {
  const w = (workerData as { chainFloor: { role: string; sab: SharedArrayBuffer; file: string } }).chainFloor;
  worker(w.role, w.sab, w.file);
}
