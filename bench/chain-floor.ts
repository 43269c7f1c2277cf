// The floor under walstream's live commit-to-visible latency on this machine, measured with no
// walstream code: the same threads, hand-offs and fdatasyncs that PostgreSQL's design puts between
// a commit and a read on N standbys, each step doing nothing but its hand-off:
//   main: one event per 1/rate s: bump REQ, notify            (a commit asks the walwriter)
//   writer thread: 8 KiB pwrite + fdatasync of its own file,   (walwriter; its publish time is
//     record the time, publish FLUSHED, notify                   where the latency clock starts,
//                                                                like the commit acknowledgement)
//   per standby i:
//     sender thread: Atomics.waitAsync wakes, writes 40 bytes   (walsender → XLogData)
//       per event to a loopback TCP socket
//     receiver thread: socket 'data', 8 KiB pwrite + fdatasync  (walreceiver: write, flush)
//       of its own preallocated file, publish, notify
//     replay thread: Atomics.wait wakes, publish, notify        (startup: replay)
//   main: Atomics.waitAsync wakes; an event is visible once    (waitForReplay on every standby)
//     every standby replayed it
// So the disk sees the same 1 + N streams of small fdatasyncs as a primary with N standbys.
// Paced like the live bench (none skipped; events of the first warmupMs not counted). Used by
// bench/standby.ts to print walstream's live latency as a ratio to this floor, in the same run.
// Owns 1 + 3N worker threads, N socket pairs and 1 + N temp files; all are gone when it resolves.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { quantileMs } from '../src/util/quantile.js';
import { tailShape, type TailShape } from './tail-shape.js';
import { cdfOf, type CdfPoint } from './report/model.js';

export interface ChainFloorResult {
  standbys: number;
  events: number;
  p50Ms: number;
  p99Ms: number;
  /** 8 KiB pwrite + fdatasync as timed inside the chain (all files). */
  fsyncP50Ms: number;
  fsyncP99Ms: number;
  /** How the slowest 1 % is spread in time (bench/tail-shape.ts). */
  tail: TailShape;
  /** Latency CDF (percentile → ms). */
  cdf: CdfPoint[];
}

const MAX_STANDBYS = 16;
// Int32 words of the shared control block
const REQ = 0; // main → writer: events requested
const FLUSHED = 1; // writer → senders: events flushed on the "primary"
const DONE_SEQ = 2; // replayers → main: bumped on every replay publish
const STOP = 3;
const FSYNC_COUNT = 4;
const PORTS = 8; // receiver i listens on PORTS + i
const RECV_FLUSHED = PORTS + MAX_STANDBYS; // receiver i → replayer i
const REPLAYED = RECV_FLUSHED + MAX_STANDBYS; // replayer i → main
const FSYNC_US = REPLAYED + MAX_STANDBYS; // fdatasync durations (µs), FSYNC_SLOTS of them
const FSYNC_SLOTS = 8192;
const INT_WORDS = FSYNC_US + FSYNC_SLOTS;
const TS_SLOTS = 1 << 20; // Float64 publish times per event (modulo)

interface Shared {
  ctl: SharedArrayBuffer;
  ts: SharedArrayBuffer;
}


export async function measureChainFloor(o: { dir: string; seconds: number; rate: number; standbys?: number; warmupMs?: number }): Promise<ChainFloorResult> {
  const n = Math.max(1, Math.min(MAX_STANDBYS, o.standbys ?? 1));
  const sh: Shared = { ctl: new SharedArrayBuffer(4 * INT_WORDS), ts: new SharedArrayBuffer(8 * TS_SLOTS) };
  const i32 = new Int32Array(sh.ctl);
  const ts = new Float64Array(sh.ts);
  const url = new URL(import.meta.url);
  const workers: Worker[] = [];
  const exited: Promise<unknown>[] = [];
  const files: string[] = [];
  const start = (role: string, index: number) => {
    const file = path.join(o.dir, `chain-floor.${process.pid}.${role}.${index}.tmp`);
    files.push(file);
    const w = new Worker(url, { workerData: { chainFloor: { role, index, sh, file } } });
    workers.push(w);
    exited.push(new Promise((r) => w.once('exit', r)));
    const ready = new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
    });
    w.on('error', () => undefined);
    return ready;
  };
  try {
    await Promise.all([start('writer', 0), ...Array.from({ length: n }, (_, i) => start('receiver', i))]);
    await Promise.all(Array.from({ length: n }, (_, i) => [start('replay', i), start('sender', i)]).flat());
    const lat: number[] = [];
    const at: number[] = [];
    const interval = 1000 / o.rate;
    const countFrom = performance.timeOrigin + performance.now() + (o.warmupMs ?? 0);
    const end = performance.now() + (o.warmupMs ?? 0) + o.seconds * 1000;
    let next = performance.now();
    let sent = 0;
    let seen = 0;
    let armed = false;
    const collect = () => {
      let vis = Infinity;
      for (let i = 0; i < n; i++) vis = Math.min(vis, Atomics.load(i32, REPLAYED + i));
      if (vis <= seen) return;
      const now = performance.timeOrigin + performance.now();
      for (; seen < vis; seen++) {
        const t = ts[(seen + 1) % TS_SLOTS]!; // event k (1-based) was flushed at ts[k]
        if (t >= countFrom) {
          lat.push(now - t);
          at.push(t);
        }
      }
    };
    const arm = () => {
      if (armed) return;
      const cur = Atomics.load(i32, DONE_SEQ);
      collect();
      if (seen >= sent) return;
      const r = Atomics.waitAsync(i32, DONE_SEQ, cur);
      armed = true;
      void (r.async ? r.value : Promise.resolve()).then(() => {
        armed = false;
        arm();
      });
    };
    while (performance.now() < end) {
      sent++;
      Atomics.store(i32, REQ, sent);
      Atomics.notify(i32, REQ);
      arm();
      next += interval;
      const wait = next - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      else await new Promise((r) => setImmediate(r));
    }
    const deadline = performance.now() + 10_000;
    while (seen < sent && performance.now() < deadline) {
      arm();
      await new Promise((r) => setTimeout(r, 5));
    }
    const tail = tailShape(at, lat);
    lat.sort((a, b) => a - b);
    const k = Math.min(Atomics.load(i32, FSYNC_COUNT), FSYNC_SLOTS);
    const fsy = Array.from(i32.subarray(FSYNC_US, FSYNC_US + k), (us) => us / 1000).sort((a, b) => a - b);
    return { standbys: n, events: lat.length, p50Ms: quantileMs(lat, 0.5), p99Ms: quantileMs(lat, 0.99), fsyncP50Ms: quantileMs(fsy, 0.5), fsyncP99Ms: quantileMs(fsy, 0.99), tail, cdf: cdfOf(lat) };
  } finally {
    Atomics.store(i32, STOP, 1);
    for (let k = 0; k < PORTS + 3 * MAX_STANDBYS; k++) Atomics.notify(i32, k);
    const t = setTimeout(() => workers.forEach((w) => void w.terminate()), 2000);
    await Promise.all(exited);
    clearTimeout(t);
    for (const f of files) fs.rmSync(f, { force: true });
  }
}

const BLOCK = Buffer.alloc(8192, 1);

function openPrealloc(file: string): number {
  const fd = fs.openSync(file, 'w+');
  const zeros = Buffer.alloc(1 << 20);
  for (let off = 0; off < 16 << 20; off += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, off);
  fs.fdatasyncSync(fd);
  return fd;
}

/** 8 KiB pwrite + fdatasync at the next block; records its duration. */
function syncOne(i32: Int32Array, fd: number, k: number): void {
  const t = performance.now();
  fs.writeSync(fd, BLOCK, 0, BLOCK.length, (k % 2048) * 8192);
  fs.fdatasyncSync(fd);
  const slot = Atomics.add(i32, FSYNC_COUNT, 1);
  if (slot < FSYNC_SLOTS) Atomics.store(i32, FSYNC_US + slot, Math.round((performance.now() - t) * 1000));
}

function worker(role: string, index: number, sh: Shared, file: string): void {
  const i32 = new Int32Array(sh.ctl);
  const ts = new Float64Array(sh.ts);
  const stopped = () => Atomics.load(i32, STOP) !== 0;
  if (role === 'writer') {
    const fd = openPrealloc(file);
    parentPort!.postMessage('ready');
    let done = 0;
    let k = 0;
    while (!stopped()) {
      const req = Atomics.load(i32, REQ);
      if (req <= done) {
        Atomics.wait(i32, REQ, req, 1000);
        continue;
      }
      syncOne(i32, fd, k++);
      const now = performance.timeOrigin + performance.now();
      for (let e = done + 1; e <= req; e++) ts[e % TS_SLOTS] = now;
      done = req;
      Atomics.store(i32, FLUSHED, req);
      Atomics.notify(i32, FLUSHED);
    }
    fs.closeSync(fd);
  } else if (role === 'receiver') {
    const fd = openPrealloc(file);
    let k = 0;
    const server = net.createServer((s) => {
      s.setNoDelay(true);
      s.on('data', (d: Buffer) => {
        syncOne(i32, fd, k++);
        Atomics.add(i32, RECV_FLUSHED + index, d.length / 40); // one 40-byte message per event
        Atomics.notify(i32, RECV_FLUSHED + index);
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        server.close();
        fs.closeSync(fd);
      });
    });
    server.listen(0, '127.0.0.1', () => {
      Atomics.store(i32, PORTS + index, (server.address() as net.AddressInfo).port);
      parentPort!.postMessage('ready');
    });
  } else if (role === 'sender') {
    const s = net.connect(Atomics.load(i32, PORTS + index), '127.0.0.1', () => parentPort!.postMessage('ready'));
    s.setNoDelay(true);
    s.on('error', () => undefined);
    let done = 0;
    const wait = () => {
      if (stopped()) {
        s.destroy();
        return;
      }
      const cur = Atomics.load(i32, FLUSHED);
      if (cur > done) {
        s.write(Buffer.alloc(40 * (cur - done)));
        done = cur;
      }
      const r = Atomics.waitAsync(i32, FLUSHED, cur);
      void (r.async ? r.value : Promise.resolve()).then(wait);
    };
    wait();
  } else {
    parentPort!.postMessage('ready');
    let done = 0;
    while (!stopped()) {
      const cur = Atomics.load(i32, RECV_FLUSHED + index);
      if (cur > done) {
        done = cur;
        Atomics.store(i32, REPLAYED + index, cur);
        Atomics.add(i32, DONE_SEQ, 1);
        Atomics.notify(i32, DONE_SEQ);
        continue;
      }
      Atomics.wait(i32, RECV_FLUSHED + index, cur, 1000);
    }
  }
}

if (!isMainThread && (workerData as { chainFloor?: unknown } | null)?.chainFloor) {
  const w = (workerData as { chainFloor: { role: string; index: number; sh: Shared; file: string } }).chainFloor;
  worker(w.role, w.index, w.sh, w.file);
}
