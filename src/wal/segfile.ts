// Segment files under pg_wal/: creation (preallocated, zero-filled, published atomically like
// PostgreSQL's XLogFileInit), listing, and recycling or removal of segments no longer needed.
// Synchronous on purpose: called from the walwriter and walreceiver worker threads.

import fs from 'node:fs';
import path from 'node:path';
import { fdatasyncSync, fsyncDir, fsyncDirAsync } from '../util/fsync.js';
import { parseSegmentFileName, segmentFileName } from './segment.js';

const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

export { fsyncDir, fsyncDirAsync };

/**
 * Make sure segment `seg` exists full-size. A new one is zero-filled in a temp file, fsynced and
 * linked into place (link never overwrites, so a concurrent creator or a recycled file wins).
 * Returns true if this call created it.
 */
export function ensureSegment(walDir: string, tli: number, seg: number, segSize: number): boolean {
  const name = segmentFileName(tli, seg, segSize);
  const file = path.join(walDir, name);
  try {
    const st = fs.statSync(file);
    if (st.size >= segSize) return false;
  } catch {
    /* missing: create below */
  }
  const tmp = path.join(walDir, `xlogtemp.${process.pid}.${seg}.${Math.random().toString(36).slice(2)}`);
  const fd = fs.openSync(tmp, 'w');
  try {
    for (let off = 0; off < segSize; off += ZERO_CHUNK.length) {
      fs.writeSync(fd, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, segSize - off), off);
    }
    fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  let created = true;
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    created = false;
  }
  fs.unlinkSync(tmp);
  // A short file (crash mid-creation by an older writer) is extended with zeros.
  const st = fs.statSync(file);
  if (st.size < segSize) {
    const fd2 = fs.openSync(file, 'r+');
    try {
      for (let off = st.size; off < segSize; off += ZERO_CHUNK.length) {
        fs.writeSync(fd2, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, segSize - off), off);
      }
      fdatasyncSync(fd2);
    } finally {
      fs.closeSync(fd2);
    }
  }
  fsyncDir(walDir);
  return created;
}

export interface SegmentEntry {
  name: string;
  tli: number;
  seg: number;
  partial: boolean;
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
    const partial = n.endsWith('.partial');
    const base = partial ? n.slice(0, -8) : n;
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
        fs.linkSync(from, path.join(walDir, segmentFileName(tli, next, segSize)));
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

/** Remove `xlogtemp.*` files (segments being created when a process died). Returns how many. */
export function removeTempSegments(walDir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(walDir)) {
    if (!name.startsWith('xlogtemp.')) continue;
    fs.rmSync(path.join(walDir, name), { force: true });
    n++;
  }
  if (n > 0) fsyncDir(walDir);
  return n;
}

export function segmentPath(walDir: string, tli: number, seg: number, segSize: number): string {
  return path.join(walDir, segmentFileName(tli, seg, segSize));
}

/**
 * Creates a segment a little at a time, so the thread that also does latency-critical WAL
 * fdatasyncs (the walwriter) is never stalled by one 16 MiB write + flush: each step writes at
 * most `stepBytes` of zeros to a temp file (with an fdatasync every `syncEveryBytes`), and the
 * last step publishes the file with link() (never overwriting a concurrent creator or a recycled
 * file) like ensureSegment.
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
    private readonly stepBytes = ZERO_CHUNK.length,
    private readonly syncEveryBytes = 2 * 1024 * 1024,
  ) {}

  /** True once the segment exists full-size (created here or already there). */
  step(): boolean {
    const file = path.join(this.walDir, segmentFileName(this.tli, this.seg, this.segSize));
    if (this.fd < 0) {
      try {
        if (fs.statSync(file).size >= this.segSize) return true;
      } catch {
        /* missing: create */
      }
      this.tmp = path.join(this.walDir, `xlogtemp.${process.pid}.${this.seg}.${Math.random().toString(36).slice(2)}`);
      this.fd = fs.openSync(this.tmp, 'w');
    }
    const n = Math.min(this.stepBytes, this.segSize - this.written, ZERO_CHUNK.length);
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
    try {
      fs.linkSync(this.tmp, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    fs.unlinkSync(this.tmp);
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
