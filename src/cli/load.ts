// A pgbench-like write load for `walstream primary --load N` and `walstream demo`: `clients`
// concurrent committers (pgbench -c) on the primary's main thread, together at most `rate`
// commits per second (pgbench --rate, a uniform schedule), each commit one upsert of a
// `valueBytes` value into table LOAD_TABLE. It runs in the primary's process because walstream
// has no client protocol for transactions: its listener speaks the replication protocol only
// (writes come from Primary.transaction in the process that owns the primary). The owner stops
// it (stop(): clients waiting for their slot wake at once, the others finish their commit in
// flight, and all end); a failed commit stops it too and is kept in `error`.

import type { Primary } from '../primary/primary.js';
import type { Transaction } from '../primary/transaction.js';
import type { Lsn } from '../wal/lsn.js';

/** The table the load writes. */
export const LOAD_TABLE = 'walstream_load';
/** Rows each client cycles through (upserts), so the store stays bounded however long it runs. */
export const LOAD_ROWS_PER_CLIENT = 10_000;
/** Upper bounds of the options, with their units. */
export const MAX_LOAD_RATE = 1_000_000; // commits/s
export const MAX_LOAD_CLIENTS = 1024;
export const MAX_LOAD_VALUE_BYTES = 1024 * 1024;
/** A schedule this far behind (ms) restarts from now instead of bursting to catch up. */
export const LOAD_MAX_SCHEDULE_LAG_MS = 1000;

export interface LoadOptions {
  /** Commits per second over all clients; null = as fast as the clients commit. */
  rate: number | null;
  clients: number;
  valueBytes: number;
  /** What each commit does (default: one upsert of a valueBytes value into LOAD_TABLE). */
  body?: (tx: Transaction, client: number, i: number) => void;
  /** Called after each commit with its end LSN (the demo's read-your-writes checks); awaited. */
  onCommit?: (lsn: Lsn, client: number, i: number) => Promise<void> | void;
}

export interface LoadHandle {
  /** Commits acknowledged so far. */
  readonly commits: number;
  /** The error that stopped the load, or null. */
  readonly error: Error | null;
  /** Stop scheduling; resolves once every client has ended. */
  stop(): Promise<void>;
}

export function startLoad(p: Primary, o: LoadOptions): LoadHandle {
  let stopped = false;
  // Clients waiting for their slot: stop() wakes them at once (a slot may be seconds away at a low rate).
  const sleepers = new Map<NodeJS.Timeout, () => void>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        sleepers.delete(t);
        resolve();
      }, ms);
      sleepers.set(t, resolve);
    });
  let commits = 0;
  let error: Error | null = null;
  // The uniform schedule: the k-th commit since t0 is due at t0 + k / rate.
  let t0 = performance.now();
  let issued = 0;
  const body =
    o.body ??
    ((tx: Transaction, client: number, i: number) => {
      const value = Buffer.alloc(o.valueBytes, (client + i) & 0xff);
      tx.put(LOAD_TABLE, `c${client}-${i % LOAD_ROWS_PER_CLIENT}`, value);
    });
  const client = async (c: number): Promise<void> => {
    for (let i = 0; !stopped; i++) {
      if (o.rate !== null) {
        const now = performance.now();
        let due = t0 + (issued * 1000) / o.rate;
        if (now - due > LOAD_MAX_SCHEDULE_LAG_MS) {
          t0 = now;
          issued = 0;
          due = now;
        }
        issued++;
        if (due > now) await sleep(due - now);
        if (stopped) break;
      }
      const lsn = await p.transaction((tx) => body(tx, c, i));
      commits++;
      if (o.onCommit) await o.onCommit(lsn, c, i);
    }
  };
  const done = Promise.all(
    Array.from({ length: o.clients }, (_, c) =>
      client(c).catch((e: unknown) => {
        if (error === null) error = e instanceof Error ? e : new Error(String(e));
        stopped = true;
      }),
    ),
  );
  return {
    get commits() {
      return commits;
    },
    get error() {
      return error;
    },
    async stop() {
      stopped = true;
      for (const [t, wake] of sleepers) {
        clearTimeout(t);
        wake();
      }
      sleepers.clear();
      await done;
    },
  };
}

/**
 * Commits per second between calls (the status lines' commits_per_s): the first call measures
 * from when the meter was made.
 */
export function commitRateMeter(count: () => number): () => number {
  let last = { n: count(), t: performance.now() };
  return () => {
    const now = { n: count(), t: performance.now() };
    const rate = now.t > last.t ? ((now.n - last.n) * 1000) / (now.t - last.t) : 0;
    last = now;
    return rate;
  };
}
