// walwriter: a worker thread that writes wal_buffers to segment files and fdatasyncs them in
// batches (group commit). Started by Primary.open; owns the open segment file descriptors.
// It is woken through XLogCtl's WALWRITER_LATCH by committers (WRITE_REQUEST) and by the inserter
// when un-written WAL piles up, and on its own every wal_writer_delay for asynchronous commits.
// It stops when XC_STOP is set, after writing and flushing everything inserted: at shutdown every
// inserted record is durable.

import { parentPort, workerData } from 'node:worker_threads';
import { StageTrace, type StageTraceHandle } from '../util/stage-trace.js';
import type { Lsn } from '../wal/lsn.js';
import { SegmentPreparer } from '../wal/segfile.js';
import { WalFileWriter } from '../wal/wal-file-writer.js';
import {
  XC_FLUSHED, XC_INSERTED_UPTO, XC_STOP, XC_WAITERS,
  XC_WALWRITER_LATCH, XC_WRITE_REQUEST, XC_WRITTEN,
  XLogCtl, type XLogCtlHandle,
} from '../wal/xlogctl.js';

export interface WalWriterConfig {
  handle: XLogCtlHandle;
  walDir: string;
  walWriterDelayMs: number;
  walWriterFlushAfterBytes: number;
  commitDelayUs: number;
  commitSiblings: number;
  /** Spin iterations on the latch before sleeping (waking a sleeping thread costs ~60 µs). */
  spinIterations: number;
  stageTrace: StageTraceHandle | null;
}

const cfg = workerData as WalWriterConfig;
const ctl = new XLogCtl(cfg.handle);
const segSize = ctl.segSize;
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

const writer = new WalFileWriter(ctl, cfg.walDir, true, cfg.stageTrace ? new StageTrace(cfg.stageTrace) : null);
let preallocatedUpTo = -1;
let preparer: SegmentPreparer | null = null;

/** Under WRITE_LOCK (a committing thread may be flushing its own commit: then we wait for it). */
function flushTo(target: Lsn): void {
  ctl.lockWrite();
  try {
    writer.flushTo(target);
  } finally {
    ctl.unlockWrite();
  }
}

/**
 * Prepare the next segment ahead of need, 1 MiB per call (see SegmentPreparer), so that neither
 * the switch to it nor its creation stalls a commit's fdatasync for long. openSeg creates it
 * inline only if preparation has not finished by then.
 */
function maybePreallocate(): void {
  const seg = Math.floor(ctl.load(XC_WRITTEN) / segSize);
  if (preallocatedUpTo >= seg + 1) return;
  if (preparer === null || preparer.seg !== seg + 1) {
    preparer?.abort();
    preparer = new SegmentPreparer(cfg.walDir, ctl.tli, seg + 1, segSize);
  }
  if (preparer.step()) {
    preallocatedUpTo = seg + 1;
    preparer = null;
  }
}

function main(): void {
  let lastFlushAt = performance.now();
  for (;;) {
    const latch = Atomics.load(ctl.i32, XC_WALWRITER_LATCH);
    const stop = Atomics.load(ctl.i32, XC_STOP) !== 0;
    const inserted = ctl.load(XC_INSERTED_UPTO);
    const flushed = ctl.load(XC_FLUSHED);
    const written = ctl.load(XC_WRITTEN);
    const request = ctl.load(XC_WRITE_REQUEST);
    const now = performance.now();
    const due =
      (request > flushed && inserted > flushed) ||
      inserted - written >= cfg.walWriterFlushAfterBytes ||
      (inserted > flushed && now - lastFlushAt >= cfg.walWriterDelayMs);
    if (due || stop) {
      let target = inserted;
      if (!stop && cfg.commitDelayUs > 0 && Atomics.load(ctl.i32, XC_WAITERS) >= cfg.commitSiblings) {
        Atomics.wait(sleepWord, 0, 0, cfg.commitDelayUs / 1000);
        target = ctl.load(XC_INSERTED_UPTO);
      }
      if (target > flushed || target > written) flushTo(target);
      lastFlushAt = performance.now();
      // Past the middle of a segment, make sure the next one exists (not at the switch, inline).
      if (ctl.load(XC_WRITTEN) % segSize > segSize / 2) maybePreallocate();
      if (stop && ctl.load(XC_INSERTED_UPTO) <= ctl.load(XC_FLUSHED)) break;
      continue;
    }
    // Nothing due: prepare the next segment while idle (one step, then re-check for work), then
    // spin briefly, then sleep.
    if (preallocatedUpTo < Math.floor(ctl.load(XC_WRITTEN) / segSize) + 1) {
      maybePreallocate();
      continue;
    }
    let woke = false;
    for (let i = 0; i < cfg.spinIterations; i++) {
      if (Atomics.load(ctl.i32, XC_WALWRITER_LATCH) !== latch) {
        woke = true;
        break;
      }
    }
    if (!woke) {
      const timeout = inserted > flushed ? Math.max(0, cfg.walWriterDelayMs - (now - lastFlushAt)) : cfg.walWriterDelayMs;
      ctl.sleepWalWriter(latch, timeout);
    }
  }
  preparer?.abort();
  writer.close();
}

try {
  main();
  parentPort?.postMessage({ type: 'stopped' });
} catch (e) {
  ctl.markWriterFailed();
  parentPort?.postMessage({ type: 'failed', message: (e as Error).message, stack: (e as Error).stack });
}
