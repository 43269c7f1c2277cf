// WalFileWriter: writes wal_buffers ring bytes to segment files and fdatasyncs them, publishing
// WRITTEN and FLUSHED in XLogCtl (PostgreSQL's XLogWrite). One per thread that writes WAL: the
// walwriter worker, and the primary's main thread when a lone commit flushes its own WAL
// (FlushWaiter). The caller must hold XLogCtl's WRITE_LOCK around flushTo(); each instance owns its
// own file descriptors (fdatasync is per file, so a flush covers bytes any thread wrote to it) and
// closes them in close(). Synchronous on purpose.

import fs from 'node:fs';
import { assert } from '../util/assert.js';
import type { StageTrace } from '../util/stage-trace.js';
import { XLOG_BLCKSZ } from './consts.js';
import type { Lsn } from './lsn.js';
import { ensureSegment, segmentPath } from './segfile.js';
import {
  XC_BYTES_WRITTEN, XC_FLUSHED, XC_FLUSH_SEQ, XC_FSYNC_COUNT, XC_WRITE_COUNT, XC_WRITE_LOCK, XC_WRITTEN, type XLogCtl,
} from './xlogctl.js';
import { fdatasyncSync } from '../util/fsync.js';

const ZERO_PAGE = Buffer.alloc(XLOG_BLCKSZ);

export class WalFileWriter {
  private curSeg = -1;
  private curFd = -1;
  /** fds written since the last fdatasync (a completed segment's stays here until synced). */
  private readonly toSync: number[] = [];

  /**
   * `createSegments`: a missing segment is created (zero-filled) when the write reaches it (the
   * walwriter); false: canWrite() refuses a range that needs a segment that does not exist yet
   * (a committing thread never pays for a 16 MiB zero-fill).
   */
  constructor(private readonly ctl: XLogCtl, private readonly walDir: string, private readonly createSegments: boolean, private readonly trace: StageTrace | null = null) {}

  /** Whether [WRITTEN, target) can be written without creating a segment (always true when creating). */
  canWrite(target: Lsn): boolean {
    if (this.createSegments) return true;
    const segSize = this.ctl.segSize;
    const last = Math.floor((target - 1) / segSize);
    for (let seg = Math.floor(this.ctl.load(XC_WRITTEN) / segSize); seg <= last; seg++) {
      if (seg === this.curSeg) continue;
      try {
        if (fs.statSync(segmentPath(this.walDir, this.ctl.tli, seg, segSize)).size < segSize) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Write and fdatasync everything up to `target`, then publish WRITTEN, FLUSHED and bump their sequences. */
  flushTo(target: Lsn): void {
    const ctl = this.ctl;
    assert(Atomics.load(ctl.i32, XC_WRITE_LOCK) === 1, 'flushTo without WRITE_LOCK');
    const written = ctl.load(XC_WRITTEN);
    if (target > written) {
      this.writeRange(written, target);
      ctl.store(XC_WRITTEN, target);
      ctl.bumpWriteSeq();
    }
    if (target > ctl.load(XC_FLUSHED)) {
      this.syncAll();
      this.trace?.record('flushed', target); // (before anyone can see it)
      ctl.store(XC_FLUSHED, target);
      ctl.bump(XC_FLUSH_SEQ);
    }
  }

  close(): void {
    for (const fd of this.toSync) if (fd !== this.curFd) fs.closeSync(fd);
    this.toSync.length = 0;
    if (this.curFd >= 0) fs.closeSync(this.curFd);
    this.curFd = -1;
    this.curSeg = -1;
  }

  private openSeg(seg: number): void {
    if (this.curFd >= 0 && !this.toSync.includes(this.curFd)) fs.closeSync(this.curFd);
    const segSize = this.ctl.segSize;
    if (this.createSegments) ensureSegment(this.walDir, this.ctl.tli, seg, segSize);
    this.curFd = fs.openSync(segmentPath(this.walDir, this.ctl.tli, seg, segSize), 'r+');
    this.curSeg = seg;
  }

  /**
   * Write ring bytes [from, to) to the segment files. When `to` is inside a page, the page's tail
   * goes out as zeros in the same writev (so no byte of an older life of the file survives right
   * after the end of WAL).
   */
  private writeRange(from: Lsn, to: Lsn): void {
    const ctl = this.ctl;
    const segSize = ctl.segSize;
    const tail = to % XLOG_BLCKSZ === 0 ? 0 : XLOG_BLCKSZ - (to % XLOG_BLCKSZ);
    let p = from;
    while (p < to) {
      const seg = Math.floor(p / segSize);
      if (seg !== this.curSeg) this.openSeg(seg);
      const fd = this.curFd;
      const segEnd = (seg + 1) * segSize;
      // contiguous in the ring up to the ring's end
      const off = ctl.ringOffset(p);
      const ringRoom = ctl.ring.length - off;
      const n = Math.min(to - p, segEnd - p, ringRoom);
      const view = Buffer.from(ctl.ring.buffer, ctl.ring.byteOffset + off, n);
      const filePos = p % segSize;
      let w = 0;
      if (p + n === to && tail > 0) w = fs.writevSync(fd, [view, ZERO_PAGE.subarray(0, tail)], filePos);
      while (w < n) w += fs.writeSync(fd, view, w, n - w, filePos + w);
      if (w < n + tail && p + n === to && tail > 0) {
        for (let z = w - n; z < tail; ) z += fs.writeSync(fd, ZERO_PAGE, 0, tail - z, filePos + n + z);
      }
      if (!this.toSync.includes(fd)) this.toSync.push(fd);
      p += n;
    }
    ctl.addCounter(XC_WRITE_COUNT, 1);
    ctl.addCounter(XC_BYTES_WRITTEN, to - from);
  }

  private syncAll(): void {
    for (const fd of this.toSync) {
      fdatasyncSync(fd);
      if (fd !== this.curFd) fs.closeSync(fd);
    }
    this.toSync.length = 0;
    this.ctl.addCounter(XC_FSYNC_COUNT, 1);
  }
}
