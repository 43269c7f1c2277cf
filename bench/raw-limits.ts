// Raw limits of this machine, measured with no walstream code in the way, so benchmarks can print
// walstream's figures beside them *from the same run* (see docs: figures are ratios to these).
// Imported by the benchmarks; also a CLI (`node dist/bench/raw-limits.js [--dir D] [--seconds S]
// [--tcp-bytes N]`) that prints one JSON object. Each measurement cleans up what it creates (its
// temp file, its worker thread and sockets) before it resolves, also when it fails.
//
//   measureRawFsync     8 KiB pwrite at increasing offsets of a preallocated zero-filled file, each
//                       followed by fdatasync (what pg_test_fsync's "one 8kB write" line measures).
//                       Synchronous syscalls: blocks the calling thread for `seconds`.
//   measureLoopbackTcp  one node:net connection over 127.0.0.1 between this thread (receiving with a
//                       static `onread` buffer, the fastest receive Node offers) and a worker thread
//                       (sending one reused buffer with backpressure).
//   measureMemcpy       Buffer.copy (or a copy out of a SharedArrayBuffer) of `bytes`, in cache.
//   measureSegmentWrites  the disk's ceiling for receiving WAL into 16 MiB segment files, per way
//                       of making them: zero-filled first and then written (pg_receivewal), new and
//                       sparse (walstream's walreceiver while catching up), already allocated
//                       (a recycled segment); 128 KiB writes; MB/s of WAL.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { median, quantile } from '../src/util/quantile.js';

export interface RawFsyncOptions {
  /** Existing directory on the disk to measure (a temp file is created and removed there). */
  dir: string;
  /** Measuring time in seconds (after preallocation). */
  seconds: number;
  /** Bytes per write; 8192 like PostgreSQL's WAL block. */
  blockBytes?: number;
  /** Size of the preallocated file; writes wrap around inside it. 16 MiB like a WAL segment. */
  fileBytes?: number;
}

export interface RawFsyncResult {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** 8 KiB write + fdatasync per op on a preallocated file; ops/s and latency percentiles (ms). */
export async function measureRawFsync(o: RawFsyncOptions): Promise<RawFsyncResult> {
  const blockBytes = o.blockBytes ?? 8192;
  const fileBytes = Math.max(blockBytes, Math.floor((o.fileBytes ?? 16 << 20) / blockBytes) * blockBytes);
  if (!(o.seconds > 0)) throw new RangeError('measureRawFsync: seconds must be > 0');
  const file = path.join(o.dir, `raw-fsync-${process.pid}-${Date.now().toString(36)}.tmp`);
  const fd = fs.openSync(file, 'wx+');
  try {
    // preallocate with real zeros (not a hole), durably, so the timed writes never extend the file
    const zeros = Buffer.alloc(Math.min(fileBytes, 1 << 20));
    for (let at = 0; at < fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, Math.min(zeros.length, fileBytes - at), at);
    fs.fsyncSync(fd);
    const block = Buffer.alloc(blockBytes, 0x5a);
    let lat = new Float64Array(1 << 14);
    let ops = 0;
    let offset = 0;
    const t0 = process.hrtime.bigint();
    const stop = t0 + BigInt(Math.round(o.seconds * 1e9));
    let now = t0;
    while (now < stop) {
      const a = now;
      fs.writeSync(fd, block, 0, blockBytes, offset);
      fs.fdatasyncSync(fd);
      now = process.hrtime.bigint();
      if (ops === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[ops++] = Number(now - a) / 1000;
      offset += blockBytes;
      if (offset >= fileBytes) offset = 0;
    }
    const elapsedS = Number(now - t0) / 1e9;
    const sorted = lat.subarray(0, ops).sort();
    return {
      opsPerSec: Math.round(ops / elapsedS),
      p50Ms: +(quantile(sorted, 0.5) / 1000).toFixed(3),
      p99Ms: +(quantile(sorted, 0.99) / 1000).toFixed(3),
    };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

export interface SegmentWritesOptions {
  dir: string;
  /** WAL bytes per pattern (whole 16 MiB segments). */
  bytes: number;
  /** Runs per pattern, interleaved (the median is reported). Default 3. */
  runs?: number;
}

export interface SegmentWritesResult {
  /** pg_receivewal: each segment zero-filled in 8 KiB writes + fsync, then WAL written, fsync per segment. */
  zeroFilledMbPerSec: number;
  /** New sparse segment (its last byte written, fdatasync), WAL written, fdatasync per 4 MiB. */
  sparseMbPerSec: number;
  /** Segments that exist fully allocated (recycled), WAL written over them, fdatasync per 4 MiB. */
  allocatedMbPerSec: number;
  runs: number;
}

const SEGMENT_BYTES = 16 << 20;
const WAL_WRITE_BYTES = 128 << 10;
const FLUSH_EVERY_BYTES = 4 << 20;

/** MB/s of WAL received into segment files made each way (see SegmentWritesResult). Synchronous. */
export function measureSegmentWrites(o: SegmentWritesOptions): SegmentWritesResult {
  const segs = Math.max(1, Math.round(o.bytes / SEGMENT_BYTES));
  const runs = o.runs ?? 3;
  const root = fs.mkdtempSync(path.join(o.dir, 'raw-segments-'));
  const wal = Buffer.alloc(WAL_WRITE_BYTES, 0x5a);
  const zero8k = Buffer.alloc(8192);
  const zero1m = Buffer.alloc(1 << 20);
  const settle = () => {
    fs.rmSync(path.join(root, 'd'), { recursive: true, force: true });
    fs.mkdirSync(path.join(root, 'd'));
    const d = fs.openSync(root, 'r');
    fs.fsyncSync(d);
    fs.closeSync(d);
  };
  const writeWal = (fd: number, flushEvery: number) => {
    for (let off = 0; off < SEGMENT_BYTES; off += WAL_WRITE_BYTES) {
      fs.writeSync(fd, wal, 0, WAL_WRITE_BYTES, off);
      if ((off + WAL_WRITE_BYTES) % flushEvery === 0) fs.fdatasyncSync(fd);
    }
  };
  const once = (kind: 'zero' | 'sparse' | 'allocated'): number => {
    settle();
    const file = (i: number) => path.join(root, 'd', `seg${i}`);
    if (kind === 'allocated') {
      for (let i = 0; i < segs; i++) {
        const fd = fs.openSync(file(i), 'w');
        for (let off = 0; off < SEGMENT_BYTES; off += zero1m.length) fs.writeSync(fd, zero1m, 0, zero1m.length, off);
        fs.fdatasyncSync(fd);
        fs.closeSync(fd);
      }
    }
    const t0 = performance.now();
    for (let i = 0; i < segs; i++) {
      let fd: number;
      if (kind === 'zero') {
        fd = fs.openSync(file(i), 'w+');
        for (let off = 0; off < SEGMENT_BYTES; off += zero8k.length) fs.writeSync(fd, zero8k, 0, zero8k.length, off);
        fs.fsyncSync(fd);
        writeWal(fd, SEGMENT_BYTES);
      } else if (kind === 'sparse') {
        fd = fs.openSync(file(i), 'w+');
        fs.writeSync(fd, zero8k, 0, 1, SEGMENT_BYTES - 1);
        fs.fdatasyncSync(fd);
        writeWal(fd, FLUSH_EVERY_BYTES);
      } else {
        fd = fs.openSync(file(i), 'r+');
        writeWal(fd, FLUSH_EVERY_BYTES);
      }
      fs.closeSync(fd);
    }
    return (segs * SEGMENT_BYTES) / 1e6 / ((performance.now() - t0) / 1000);
  };
  try {
    const got: Record<'zero' | 'sparse' | 'allocated', number[]> = { zero: [], sparse: [], allocated: [] };
    for (let r = 0; r < runs; r++) for (const k of ['zero', 'sparse', 'allocated'] as const) got[k].push(once(k));
    const med = (a: number[]) => +median(a).toFixed(1);
    return { zeroFilledMbPerSec: med(got.zero), sparseMbPerSec: med(got.sparse), allocatedMbPerSec: med(got.allocated), runs };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export interface LoopbackTcpOptions {
  /** Bytes to send over the connection (default 1 GiB). */
  bytes?: number;
  /** Size of the sender's write buffer and of the receiver's static read buffer (default 1 MiB). */
  chunkBytes?: number;
}

export interface LoopbackTcpResult {
  bytesPerSec: number;
  bytes: number;
  seconds: number;
}

// The sender, run in a worker thread: listen on 127.0.0.1:0, post the port, send `bytes` to the
// first connection, then close everything and exit.
const senderSource = `
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const { bytes, chunkBytes } = workerData;
const chunk = Buffer.alloc(chunkBytes, 0x61);
const server = net.createServer({ noDelay: true }, async (sock) => {
  server.close();
  sock.on('error', () => {});
  let sent = 0;
  while (sent < bytes) {
    const n = Math.min(chunkBytes, bytes - sent);
    const ok = sock.write(n === chunkBytes ? chunk : chunk.subarray(0, n));
    sent += n;
    if (!ok) {
      await new Promise((resolve) => {
        const go = () => { sock.off('drain', go); sock.off('close', go); resolve(); };
        sock.on('drain', go);
        sock.on('close', go);
      });
    }
    if (sock.destroyed) break;
  }
  sock.end();
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

/** One TCP connection over 127.0.0.1 between two threads; receive rate in bytes/s. */
export async function measureLoopbackTcp(o: LoopbackTcpOptions = {}): Promise<LoopbackTcpResult> {
  const bytes = o.bytes ?? 1 << 30;
  const chunkBytes = o.chunkBytes ?? 1 << 20;
  const worker = new Worker(senderSource, { eval: true, workerData: { bytes, chunkBytes } });
  let sock: net.Socket | undefined;
  try {
    const [port] = (await Promise.race([once(worker, 'message'), once(worker, 'error').then(([e]) => Promise.reject(e))])) as [number];
    let received = 0;
    let t0 = 0n;
    const readBuf = Buffer.allocUnsafe(chunkBytes);
    const done = new Promise<bigint>((resolve, reject) => {
      sock = net.connect({
        port,
        host: '127.0.0.1',
        noDelay: true,
        onread: {
          buffer: readBuf,
          callback: (n: number) => {
            received += n;
            return true;
          },
        },
      });
      sock.once('connect', () => (t0 = process.hrtime.bigint()));
      sock.once('end', () => resolve(process.hrtime.bigint()));
      sock.once('error', reject);
    });
    const t1 = await done;
    const seconds = Number(t1 - t0) / 1e9;
    if (received !== bytes) throw new Error(`measureLoopbackTcp: received ${received} of ${bytes} bytes`);
    return { bytesPerSec: Math.round(received / seconds), bytes: received, seconds: +seconds.toFixed(4) };
  } finally {
    (sock as net.Socket | undefined)?.destroy();
    await worker.terminate();
  }
}

export interface MemcpyOptions {
  /** Bytes per copy (default 1 MiB). */
  bytes?: number;
  /** Measuring time in seconds (default 0.3). */
  seconds?: number;
  /** Copy out of a SharedArrayBuffer instead of between ordinary buffers. */
  shared?: boolean;
}

export interface MemcpyResult {
  bytesPerSec: number;
  bytes: number;
}

/** Buffer.copy of `bytes` between two buffers (kept in cache); best batch of the run, bytes/s. */
function measureMemcpy(o: MemcpyOptions = {}): MemcpyResult {
  const bytes = o.bytes ?? 1 << 20;
  const seconds = o.seconds ?? 0.3;
  const src = o.shared ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.alloc(bytes);
  src.fill(0x33);
  const dst = Buffer.alloc(bytes);
  // batches of ~1 ms; report the best batch (noise on a shared machine only slows copies down)
  const perBatch = Math.max(1, Math.round(1e6 / (bytes / 16))); // assume >= 16 bytes/ns for sizing
  let best = 0;
  const stop = performance.now() + seconds * 1000;
  do {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) src.copy(dst, 0, 0, bytes);
    const ns = Number(process.hrtime.bigint() - t0);
    best = Math.max(best, (perBatch * bytes) / ns);
  } while (performance.now() < stop);
  return { bytesPerSec: Math.round(best * 1e9), bytes };
}

// ---------------------------------------------------------------------------------------------
// CLI

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const dir = argValue('--dir') ?? os.tmpdir();
  const seconds = Number(argValue('--seconds') ?? 2);
  const tcpBytes = Number(argValue('--tcp-bytes') ?? 1 << 30);
  const fsync = await measureRawFsync({ dir, seconds });
  const loopbackTcp = await measureLoopbackTcp({ bytes: tcpBytes });
  const memcpy = measureMemcpy();
  const memcpyFromShared = measureMemcpy({ shared: true });
  const mb = (x: number) => +(x / 1e6).toFixed(1);
  console.log(
    JSON.stringify(
      {
        bench: 'raw-limits',
        host: { cpus: os.cpus().length, node: process.version },
        fsync8KiB: { dir, ...fsync },
        units: { latency: 'ms', throughput: 'MB/s (10^6 bytes/s)' },
        loopbackTcpMbPerSec: mb(loopbackTcp.bytesPerSec),
        memcpy1MiBMbPerSec: mb(memcpy.bytesPerSec),
        memcpyFromShared1MiBMbPerSec: mb(memcpyFromShared.bytesPerSec),
      },
      null,
      2,
    ),
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
