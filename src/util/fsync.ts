// Durability primitives. Every fdatasync and fsync walstream makes goes through this module: WAL
// segments (walwriter, committers in latency mode, walreceiver), directories after a create or
// rename, the control file, checkpoint snapshots, slot state files and base-backup files.
//
// Slow-disk simulation (tests only): WALSTREAM_FSYNC_DELAY_US=N, or MIN-MAX for a uniform random
// delay per call, adds that many microseconds after each real flush, in every thread of the
// process and its children (workers and child processes inherit the environment). A synchronous
// flush blocks its thread for the delay (Atomics.wait, as a slow fdatasync blocks it); an
// asynchronous one resolves that much later. `npm run test:slow-disk` runs the suite this way.
// The setting is read once when the module loads; unset (the default), each call is the plain
// fs call plus one comparison.

import fs from 'node:fs';
import path from 'node:path';
import { assert } from './assert.js';

/** Upper bound of the injected delay per flush, µs (10 s): a typo must not hang a test run. */
const MAX_FSYNC_DELAY_US = 10_000_000;

/** Name of the environment variable that turns the slow-disk simulation on. */
export const FSYNC_DELAY_ENV = 'WALSTREAM_FSYNC_DELAY_US';

export interface FsyncDelay {
  minUs: number;
  maxUs: number;
}

/**
 * Parses the slow-disk setting: '' or undefined → null (off); 'N' → N µs; 'MIN-MAX' → uniform in
 * [MIN, MAX] µs. Anything else throws, naming the variable and what it accepts.
 */
export function parseFsyncDelay(text: string | undefined): FsyncDelay | null {
  if (text === undefined || text.trim() === '') return null;
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
  const minUs = m ? Number(m[1]) : NaN;
  const maxUs = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || minUs > maxUs || maxUs > MAX_FSYNC_DELAY_US) {
    throw new Error(
      `${FSYNC_DELAY_ENV}: expected microseconds as N or MIN-MAX (0 to ${MAX_FSYNC_DELAY_US}), got ${JSON.stringify(text)}`,
    );
  }
  return maxUs === 0 ? null : { minUs, maxUs };
}

const delay = parseFsyncDelay(process.env[FSYNC_DELAY_ENV]);
const sleepWord = delay === null ? null : new Int32Array(new SharedArrayBuffer(4));
let flushes = 0;

function delayUs(): number {
  if (delay === null) return 0;
  return delay.minUs + Math.floor(Math.random() * (delay.maxUs - delay.minUs + 1));
}

function sleepAfterFlush(): void {
  if (sleepWord !== null) Atomics.wait(sleepWord, 0, 0, delayUs() / 1000);
}

function waitAfterFlush(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delayUs() / 1000));
}

/** The injected delay in force in this thread (null when the disk is not slowed). */
export function fsyncDelay(): FsyncDelay | null {
  return delay;
}

/** Flushes made through this module in this thread (every kind). */
export function flushCount(): number {
  return flushes;
}

/** fdatasync(2) on the calling thread. */
export function fdatasyncSync(fd: number): void {
  fs.fdatasyncSync(fd);
  flushes++;
  if (delay !== null) sleepAfterFlush();
}

/** fsync(2) on the calling thread. */
export function fsyncSync(fd: number): void {
  fs.fsyncSync(fd);
  flushes++;
  if (delay !== null) sleepAfterFlush();
}

/** fdatasync(2) on the libuv threadpool. */
export function fdatasync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    fs.fdatasync(fd, (e) => {
      if (e) return reject(e);
      flushes++;
      if (delay === null) resolve();
      else waitAfterFlush().then(resolve, reject);
    });
  });
}

/** fsync(2) on the libuv threadpool. */
export function fsync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    fs.fsync(fd, (e) => {
      if (e) return reject(e);
      flushes++;
      if (delay === null) resolve();
      else waitAfterFlush().then(resolve, reject);
    });
  });
}

/** FileHandle.sync() (fsync on the libuv threadpool). */
export async function syncHandle(fh: fs.promises.FileHandle): Promise<void> {
  await fh.sync();
  flushes++;
  if (delay !== null) await waitAfterFlush();
}

/** Every byte of `data` written at the file's position (short writes continued), then fsync. */
export function writeAllSynced(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
  fsyncSync(fd);
}

/**
 * A small file written whole and durably: `tmp` (in the same directory) is created afresh, written,
 * fsynced, then renamed over `file` (`replace`: the new content wins atomically) or linked to it
 * (not `replace`: an existing `file` is never touched, EEXIST is thrown), and the directory is
 * fsynced. The temp name is removed in every case. For the control file, slot state files and
 * timeline history files; segment files have their own scheme (src/wal/segfile.ts).
 */
export function writeFileDurably(file: string, data: Uint8Array, o: { tmp: string; replace: boolean; mode?: number }): void {
  const dir = path.dirname(file);
  assert(path.dirname(o.tmp) === dir, `writeFileDurably: ${o.tmp} is not in ${dir}`);
  fs.rmSync(o.tmp, { force: true });
  const fd = fs.openSync(o.tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, o.mode ?? 0o600);
  try {
    try {
      writeAllSynced(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    if (o.replace) fs.renameSync(o.tmp, file);
    else fs.linkSync(o.tmp, file);
  } finally {
    fs.rmSync(o.tmp, { force: true });
  }
  fsyncDir(dir);
}

/** fsync of a directory, so that a create, rename or unlink in it is durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsyncDir on the libuv threadpool. */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await syncHandle(fh);
  } finally {
    await fh.close();
  }
}
