// Segment files under pg_wal/: the one module that creates, prepares ahead, installs, renames
// (`.partial`), recycles and removes them, on a primary (walwriter, crash recovery, initialisation)
// and on a standby (walreceiver, restartpoints) alike. PostgreSQL's XLogFileInit,
// InstallXLogFileSegment, RemoveOldXlogFiles and RemoveTempXlogFiles (src/backend/access/transam/
// xlog.c), and pg_receivewal's `.partial` convention (src/bin/pg_basebackup/walmethods.c).
//
// One temp-name scheme: a segment being made is `xlogtemp.<pid>.<seg>.<random>` in pg_wal (never
// a name a reader or a restart takes for WAL), filled, optionally fdatasynced, and installed under
// its final name with link() + unlink() (link never replaces a file: a concurrent creator or a
// recycled file wins). Temp files left by a dead process are removed by removeTempSegments.
//
// Durability: `durable` creation fdatasyncs the file and fsyncs pg_wal before returning. A
// non-durable creation (the walreceiver catching up, or installing a prepared file) leaves the
// directory fsync to the caller's next flush, which must do it before anything in that segment is
// published as flushed (src/standby/flush-pipeline.ts owns that rule on a standby).
// Synchronous except SegmentPrefill (libuv threadpool): called from worker threads.

import fs from 'node:fs';
import path from 'node:path';
import { fdatasync, fdatasyncSync, fsyncDir, fsyncDirAsync } from '../util/fsync.js';
import { assert } from '../util/assert.js';
import { parseSegmentFileName, segmentFileName } from './segment.js';
import type { Lsn } from './lsn.js';

/** Zeros written per write() call when filling a segment, in bytes. */
const ZERO_CHUNK_BYTES = 1024 * 1024;
const ZERO_CHUNK = Buffer.alloc(ZERO_CHUNK_BYTES);
/** Prefix of every temp segment file (PostgreSQL's `xlogtemp.`). */
export const TEMP_SEGMENT_PREFIX = 'xlogtemp.';
/** Suffix of the segment a wal-only receiver is still writing (pg_receivewal's). */
export const PARTIAL_SUFFIX = '.partial';
/** Zero-filling in the background: fdatasync after every this many bytes (a multiple of ZERO_CHUNK_BYTES). */
const PREFILL_SYNC_BYTES = 2 * 1024 * 1024;

export { fsyncDir, fsyncDirAsync };

export function segmentPath(walDir: string, tli: number, seg: number, segSize: number, partial = false): string {
  return path.join(walDir, segmentFileName(tli, seg, segSize) + (partial ? PARTIAL_SUFFIX : ''));
}

/** A fresh temp path for segment `seg` (the one temp-name scheme). */
export function tempSegmentPath(walDir: string, seg: number): string {
  return path.join(walDir, `${TEMP_SEGMENT_PREFIX}${process.pid}.${seg}.${Math.random().toString(36).slice(2)}`);
}

/** Whether `file` exists with at least `size` bytes. */
export function isFullSize(file: string, size: number): boolean {
  try {
    return fs.statSync(file).size >= size;
  } catch {
    return false;
  }
}

/** How a new segment's bytes are made: all zeros (wal_init_zero), or sparse (only the last byte written). */
export type SegmentFill = 'zero' | 'sparse';

/** Fill [from, size) of an open file: zeros written, or (sparse) only the last byte. */
function fillSync(fd: number, from: number, size: number, fill: SegmentFill): void {
  if (fill === 'sparse') {
    if (from < size) fs.writeSync(fd, ZERO_CHUNK, 0, 1, size - 1);
    return;
  }
  for (let off = from; off < size; off += ZERO_CHUNK_BYTES) fs.writeSync(fd, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK_BYTES, size - off), off);
}

/**
 * Put a filled temp file in place as `file` (link + unlink: never replacing). If `file` already
 * exists (a concurrent creator, a recycled file, or a short file a crash left), the temp file is
 * dropped and a short `file` is extended to `size` (fdatasynced when `durable`). True if the temp
 * file became `file`. The directory fsync is the caller's.
 */
export function installSegment(tmp: string, file: string, size: number, fill: SegmentFill, durable: boolean): boolean {
  let installed = true;
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    installed = false;
  }
  fs.unlinkSync(tmp);
  if (!installed) {
    const have = fs.statSync(file).size;
    if (have < size) {
      const fd = fs.openSync(file, 'r+');
      try {
        fillSync(fd, have, size, fill);
        if (durable) fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  return installed;
}

/**
 * Make sure `file` (segment `seg`) exists full-size: made under a temp name, filled, fdatasynced
 * when `durable`, installed, and pg_wal fsynced when `durable`. Returns true if it was missing or
 * short (so a non-durable caller knows a directory fsync is owed).
 */
export function createSegmentFile(walDir: string, file: string, seg: number, size: number, fill: SegmentFill, durable: boolean): boolean {
  if (isFullSize(file, size)) return false;
  const tmp = tempSegmentPath(walDir, seg);
  const fd = fs.openSync(tmp, 'wx');
  try {
    fillSync(fd, 0, size, fill);
    if (durable) fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  installSegment(tmp, file, size, fill, durable);
  if (durable) fsyncDir(walDir);
  return true;
}

/**
 * Make sure segment `seg` exists full-size, zero-filled and durable (PostgreSQL's XLogFileInit).
 * Returns true if it was missing or short.
 */
export function ensureSegment(walDir: string, tli: number, seg: number, segSize: number): boolean {
  return createSegmentFile(walDir, segmentPath(walDir, tli, seg, segSize), seg, segSize, 'zero', true);
}

/**
 * wal-only: segment `seg` is complete: rename `<name>.partial` to `<name>` (pg_receivewal's close).
 * False if there was no `.partial` (already complete under its final name). The directory fsync
 * is the caller's, before the segment is published as flushed.
 */
export function renamePartialSegment(walDir: string, tli: number, seg: number, segSize: number): boolean {
  try {
    fs.renameSync(segmentPath(walDir, tli, seg, segSize, true), segmentPath(walDir, tli, seg, segSize, false));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export interface SegmentEntry {
  name: string;
  tli: number;
  seg: number;
  partial: boolean;
}

/**
 * Where a wal-only receiver resumes on timeline `tli` (pg_receivewal's FindStreamingStart): at the
 * start of the newest `.partial` segment, else after the newest complete one; null: no segment.
 */
export function receiveWalResumeLsn(walDir: string, segSize: number, tli: number): Lsn | null {
  const segs = listSegments(walDir, segSize).filter((x) => x.tli === tli);
  const last = segs[segs.length - 1];
  return last === undefined ? null : (last.partial ? last.seg : last.seg + 1) * segSize;
}

/** Segment files in `walDir`, sorted by (seg, tli). */
export function listSegments(walDir: string, segSize: number): SegmentEntry[] {
  const out: SegmentEntry[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(walDir);
  } catch {
    return out;
  }
  for (const n of names) {
    const partial = n.endsWith(PARTIAL_SUFFIX);
    const base = partial ? n.slice(0, -PARTIAL_SUFFIX.length) : n;
    const p = parseSegmentFileName(base, segSize);
    if (p) out.push({ name: n, tli: p.tli, seg: p.seg, partial });
  }
  out.sort((a, b) => a.seg - b.seg || a.tli - b.tli);
  return out;
}

/**
 * PostgreSQL's RemoveOldXlogFiles with recycling (InstallXLogFileSegment): each segment before
 * `keepFromSeg` is renamed to the first free future name at or after `recycleFromSeg`, as long as
 * fewer than `maxFutureSegments` names from `recycleFromSeg` on would then exist; the rest are
 * removed. A recycled file keeps its old bytes: its blocks are allocated, so WAL written into it
 * later costs no block allocation (on ext4 here an overwrite with fdatasync runs about 2× faster
 * than filling a new file, 4–5× faster than zero-filling first). Readers never mistake the old bytes for WAL:
 * every page header carries its own address (xlp_pageaddr), checked on read.
 * The rename is link() + unlink(): it never replaces a file that exists under the new name (a
 * concurrent creator wins). Returns how many were recycled and removed.
 */
export function recycleOldSegments(
  walDir: string, segSize: number, tli: number, keepFromSeg: number, recycleFromSeg: number, maxFutureSegments: number,
): { recycled: number; removed: number } {
  const all = listSegments(walDir, segSize);
  const taken = new Set(all.map((s) => s.seg));
  let future = all.filter((s) => s.seg >= recycleFromSeg).length;
  let next = recycleFromSeg;
  let recycled = 0;
  let removed = 0;
  for (const s of all) {
    if (s.seg >= keepFromSeg || s.seg >= recycleFromSeg) continue;
    const from = path.join(walDir, s.name);
    let done = false;
    if (!s.partial && future < maxFutureSegments) {
      while (taken.has(next)) next++;
      try {
        fs.linkSync(from, segmentPath(walDir, tli, next, segSize));
        fs.unlinkSync(from);
        taken.add(next);
        future++;
        recycled++;
        done = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        taken.add(next); // created meanwhile: try the next name with the next old segment
      }
    }
    if (!done) {
      fs.rmSync(from, { force: true });
      removed++;
    }
  }
  if (recycled + removed > 0) fsyncDir(walDir);
  return { recycled, removed };
}

/**
 * Remove temp segment files (segments being made when a process died; PostgreSQL's
 * RemoveTempXlogFiles). Only when no other process writes this pg_wal. Returns how many.
 */
export function removeTempSegments(walDir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = fs.readdirSync(walDir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(TEMP_SEGMENT_PREFIX)) continue;
    fs.rmSync(path.join(walDir, name), { force: true });
    n++;
  }
  if (n > 0) fsyncDir(walDir);
  return n;
}

/**
 * Prepares a segment ahead of need on the calling thread, a little at a time, so the thread that
 * also does latency-critical WAL fdatasyncs (the walwriter) is never stalled by one 16 MiB write +
 * flush: each step writes at most `stepBytes` of zeros to a temp file (with an fdatasync every
 * `syncEveryBytes`), and the last step installs the file and fsyncs pg_wal.
 */
export class SegmentPreparer {
  private fd = -1;
  private tmp = '';
  private written = 0;
  private sinceSync = 0;
  constructor(
    private readonly walDir: string,
    private readonly tli: number,
    readonly seg: number,
    private readonly segSize: number,
    private readonly stepBytes = ZERO_CHUNK_BYTES,
    private readonly syncEveryBytes = 2 * 1024 * 1024,
  ) {}

  /** True once the segment exists full-size (created here or already there). */
  step(): boolean {
    const file = segmentPath(this.walDir, this.tli, this.seg, this.segSize);
    if (this.fd < 0) {
      if (isFullSize(file, this.segSize)) return true;
      this.tmp = tempSegmentPath(this.walDir, this.seg);
      this.fd = fs.openSync(this.tmp, 'wx');
    }
    const n = Math.min(this.stepBytes, this.segSize - this.written, ZERO_CHUNK_BYTES);
    fs.writeSync(this.fd, ZERO_CHUNK, 0, n, this.written);
    this.written += n;
    this.sinceSync += n;
    if (this.sinceSync >= this.syncEveryBytes || this.written >= this.segSize) {
      fdatasyncSync(this.fd);
      this.sinceSync = 0;
    }
    if (this.written < this.segSize) return false;
    fs.closeSync(this.fd);
    this.fd = -1;
    installSegment(this.tmp, file, this.segSize, 'zero', true);
    fsyncDir(this.walDir);
    return true;
  }

  /** Abandon a half-made temp file (shutdown). */
  abort(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
      fs.rmSync(this.tmp, { force: true });
    }
  }
}

/**
 * Fills the next segment in the background (fs.promises: libuv threadpool) under a temp name and
 * fdatasyncs it; the owner takes the finished temp file and installs it (installSegment) when the
 * stream reaches that segment. One job at a time. Used by the walreceiver, whose thread must not
 * stall on a 16 MiB write.
 */
export class SegmentPrefill {
  private job: { seg: number; tmp: string; done: Promise<boolean>; ok: boolean | null } | null = null;

  constructor(private readonly walDir: string) {}

  /** Begin preparing `seg` unless it is being prepared or `exists(seg)`; a job for an older segment is dropped. */
  start(seg: number, size: number, fill: SegmentFill, exists: (seg: number) => boolean): void {
    if (this.job !== null && this.job.seg >= seg) return;
    this.discard();
    if (exists(seg)) return;
    const tmp = tempSegmentPath(this.walDir, seg);
    const job = { seg, tmp, done: Promise.resolve(false), ok: null as boolean | null };
    job.done = (async () => {
      const fh = await fs.promises.open(tmp, 'wx');
      try {
        if (fill === 'zero') {
          // fdatasync every PREFILL_SYNC_BYTES: one flush of a whole segment would hold up the
          // WAL fdatasyncs that run meanwhile (ext4 data=ordered writes the new blocks of every
          // file in the journal transaction first) for tens of ms; small flushes interleave.
          for (let off = 0; off < size; off += ZERO_CHUNK_BYTES) {
            await fh.write(ZERO_CHUNK, 0, Math.min(ZERO_CHUNK_BYTES, size - off), off);
            if ((off + ZERO_CHUNK_BYTES) % PREFILL_SYNC_BYTES === 0) await fdatasync(fh.fd);
          }
        } else {
          await fh.write(ZERO_CHUNK, 0, 1, size - 1);
        }
        await fdatasync(fh.fd);
      } finally {
        await fh.close();
      }
      return true;
    })().then(
      (v) => (job.ok = v),
      () => (job.ok = false),
    );
    this.job = job;
  }

  /** Wait for the job preparing `seg` (if any) to finish. */
  async settle(seg: number): Promise<void> {
    if (this.job !== null && this.job.seg === seg && this.job.ok === null) await this.job.done;
  }

  /** The prepared (filled, fdatasynced) temp file for `seg`, handed over (null if none is ready). */
  take(seg: number): string | null {
    const j = this.job;
    if (j === null || j.seg !== seg || j.ok === null) return null;
    this.job = null;
    if (!j.ok) {
      fs.rmSync(j.tmp, { force: true });
      return null;
    }
    return j.tmp;
  }

  /** Forget a job (its file is removed once it finishes). */
  discard(): void {
    const j = this.job;
    this.job = null;
    if (j !== null) void j.done.then(() => fs.rmSync(j.tmp, { force: true }));
  }
}

/**
 * XLogFileCopy (PostgreSQL's XLogInitNewTimeline for a switch inside a segment): segment `seg` of
 * timeline `toTli` made from the first `upto` bytes of the same segment of `fromTli`; written
 * under a temp name, fdatasynced, installed (never replacing: the new timeline's file must not
 * exist yet), pg_wal fsynced. A crash leaves either no file or the whole copy. Only the prefix is
 * read and written: the rest of the file is left sparse (it reads as zeros), as PostgreSQL makes
 * segments with wal_init_zero = off, so a promotion fdatasyncs `upto` bytes, not a whole segment.
 */
export function copySegmentPrefix(walDir: string, fromTli: number, toTli: number, seg: number, segSize: number, upto: number): void {
  assert(upto > 0 && upto < segSize, `copySegmentPrefix: ${upto} is not inside a segment`);
  const src = Buffer.allocUnsafe(upto);
  const sfd = fs.openSync(segmentPath(walDir, fromTli, seg, segSize), 'r');
  let r = 0;
  try {
    for (let n = -1; r < upto && n !== 0; r += n) n = fs.readSync(sfd, src, r, upto - r, r);
  } finally {
    fs.closeSync(sfd);
  }
  assert(r === upto, `segment ${seg} of timeline ${fromTli} is shorter than the switch point`);
  const tmp = tempSegmentPath(walDir, seg);
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, 'wx');
  try {
    let w = 0;
    while (w < upto) w += fs.writeSync(fd, src, w, upto - w, w);
    fillSync(fd, upto, segSize, 'sparse');
    fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const file = segmentPath(walDir, toTli, seg, segSize);
  try {
    fs.linkSync(tmp, file);
  } finally {
    fs.unlinkSync(tmp);
  }
  fsyncDir(walDir);
}

/**
 * CleanupAfterArchiveRecovery: the old timeline's segment holding the switch point becomes
 * `<name>.partial` (durably). Idempotent: false when there is nothing (left) to rename.
 */
export function renameToPartial(walDir: string, tli: number, seg: number, segSize: number): boolean {
  try {
    fs.renameSync(segmentPath(walDir, tli, seg, segSize, false), segmentPath(walDir, tli, seg, segSize, true));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  fsyncDir(walDir);
  return true;
}
