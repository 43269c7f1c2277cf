// ReaderPool: a Piscina pool of reader threads over one SharedStore, so a standby can serve reads
// off the replay thread. Who runs it: the standby (or primary) main thread. What it owns: the
// pool's worker threads. How it stops: close() (destroys the pool; pending reads reject).

import { Piscina } from 'piscina';
import { Errors, WalstreamError } from '../errors.js';
import type { ReaderResult, ReaderTask } from './reader-worker.js';
import type { ScanEntry, ScanOptions, StoreHandle } from './store.js';

export interface ReaderPoolOptions {
  /** worker threads (default 2, at most MAX_READER_THREADS) */
  threads?: number;
}

export const MAX_READER_THREADS = 64;

export class ReaderPool {
  private readonly pool: Piscina<ReaderTask, ReaderResult>;
  private closed = false;

  constructor(storeHandle: StoreHandle, opts: ReaderPoolOptions = {}) {
    const threads = opts.threads ?? 2;
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_READER_THREADS) {
      throw Errors.invalidOption('threads', `must be an integer from 1 to ${MAX_READER_THREADS}, got ${String(opts.threads)}`);
    }
    if (storeHandle === null || typeof storeHandle !== 'object' || !(storeHandle.buffer instanceof SharedArrayBuffer)) {
      throw Errors.invalidOption('storeHandle', 'not a StoreHandle');
    }
    this.pool = new Piscina<ReaderTask, ReaderResult>({
      filename: new URL('./reader-worker.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Infinity,
      workerData: { storeHandle },
    });
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  private async run(task: ReaderTask): Promise<unknown> {
    if (this.closed) throw Errors.closed('ReaderPool');
    const r = await this.pool.run(task);
    if ('e' in r) {
      const { code, sqlstate, message, detail, hint } = r.e;
      const opts: { detail?: string; hint?: string } = {};
      if (detail !== undefined) opts.detail = detail;
      if (hint !== undefined) opts.hint = hint;
      throw new WalstreamError(code, sqlstate, message, opts);
    }
    return r.v;
  }

  get(table: string, key: string | Uint8Array): Promise<unknown> {
    return this.run({ op: 'get', table, key });
  }

  scan(table: string, opts?: ScanOptions): Promise<ScanEntry[]> {
    const task: ReaderTask = opts === undefined ? { op: 'scan', table } : { op: 'scan', table, opts };
    return this.run(task) as Promise<ScanEntry[]>;
  }

  /** All keys read under one read latch: a transaction-consistent set of values. */
  multiGet(table: string, keys: readonly (string | Uint8Array)[]): Promise<unknown[]> {
    return this.run({ op: 'multiGet', table, keys }) as Promise<unknown[]>;
  }

  count(table?: string): Promise<number> {
    const task: ReaderTask = table === undefined ? { op: 'count' } : { op: 'count', table };
    return this.run(task) as Promise<number>;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}
