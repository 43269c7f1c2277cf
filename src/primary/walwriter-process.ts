// The primary's handle on its walwriter worker (walwriter.ts): starts it with the options it needs,
// turns its failure ('failed' message, or the worker's error) into one callback, and stops it
// (XC_STOP, then waits for the thread to exit: it writes and flushes everything inserted first).
// Runs on the primary's thread; owns the Worker.

import { Worker } from 'node:worker_threads';
import { Errors } from '../errors.js';
import type { StageTraceHandle } from '../util/stage-trace.js';
import { XC_STOP, type XLogCtl } from '../wal/xlogctl.js';
import type { WalWriterConfig } from './walwriter.js';

export interface WalWriterOptions {
  walWriterDelayMs: number;
  walWriterFlushAfterBytes: number;
  commitDelayUs: number;
  commitSiblings: number;
  walWriterSpinIterations: number;
  stageTrace: StageTraceHandle | null;
}

export class WalWriterProcess {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** Resolves once the walwriter's thread runs JavaScript (Worker 'online'), or has exited. */
  readonly online: Promise<void>;

  /**
   * `onFailed(e, crashed)`: the walwriter could not write or flush WAL and reported it (crashed
   * false: its thread still runs and publishes what it flushed), or its thread died (crashed true).
   */
  constructor(private readonly ctl: XLogCtl, walDir: string, o: WalWriterOptions, onFailed: (e: Error, crashed: boolean) => void) {
    const workerData: WalWriterConfig = {
      handle: ctl.handle, walDir, walWriterDelayMs: o.walWriterDelayMs, walWriterFlushAfterBytes: o.walWriterFlushAfterBytes,
      commitDelayUs: o.commitDelayUs, commitSiblings: o.commitSiblings, spinIterations: o.walWriterSpinIterations, stageTrace: o.stageTrace,
    };
    this.worker = new Worker(new URL('./walwriter.js', import.meta.url), { workerData, name: 'walwriter' });
    this.exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.online = Promise.race([new Promise<void>((resolve) => this.worker.once('online', () => resolve())), this.exited]);
    this.worker.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'failed') onFailed(Errors.internal(`walwriter failed: ${m.message}`), false);
    });
    this.worker.on('error', (e) => onFailed(e, true));
  }

  /** Stop: the walwriter writes and flushes everything inserted, then its thread exits. */
  async stop(): Promise<void> {
    Atomics.store(this.ctl.i32, XC_STOP, 1);
    this.ctl.wakeWalWriter();
    await this.exited;
  }
}
