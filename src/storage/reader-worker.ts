// Piscina worker that serves store reads from its own thread. Who runs it: ReaderPool
// (reader-pool.ts) or any Piscina pool given this file. What it owns: one attached SharedStore per
// store handle (cached by store id). How it stops: with its pool (pool.destroy()).
//
// Task: { op: 'get' | 'scan' | 'multiGet' | 'count', table, key | keys | opts, handle? }. The handle
// may come with each task or once through the pool's workerData ({ storeHandle }). Result: an
// envelope { v: value } or { e: { code, sqlstate, message, detail, hint } } so WalstreamError codes
// survive the trip (structured clone keeps only name/message of an Error). multiGet reads all keys
// under one read latch (one consistent snapshot). Piscina's default atomics: 'sync' blocks this
// thread's event loop between tasks, which is fine: it only reads shared memory.

import { workerData } from 'piscina';
import { WalstreamError } from '../errors.js';
import { SharedStore, type ScanOptions, type StoreHandle } from './store.js';

export type ReaderTask =
  | { op: 'get'; table: string; key: string | Uint8Array; handle?: StoreHandle }
  | { op: 'scan'; table: string; opts?: ScanOptions; handle?: StoreHandle }
  | { op: 'multiGet'; table: string; keys: readonly (string | Uint8Array)[]; handle?: StoreHandle }
  | { op: 'count'; table?: string; handle?: StoreHandle };

export interface ReaderErrorInfo {
  code: string;
  sqlstate: string;
  message: string;
  detail?: string;
  hint?: string;
}

export type ReaderResult = { v: unknown } | { e: ReaderErrorInfo };

const stores = new Map<number, SharedStore>();

function storeFor(handle: StoreHandle | undefined): SharedStore {
  const h = handle ?? (workerData as { storeHandle?: StoreHandle } | undefined)?.storeHandle;
  if (h === undefined) throw new WalstreamError('WS_INVALID_OPTION', '22023', 'reader task without a store handle (pass handle or workerData.storeHandle)');
  let s = stores.get(h.id);
  if (s === undefined) {
    s = SharedStore.attach(h);
    stores.set(h.id, s);
  }
  return s;
}

export default function serve(task: ReaderTask): ReaderResult {
  try {
    const store = storeFor(task.handle);
    switch (task.op) {
      case 'get':
        return { v: store.get(task.table, task.key) };
      case 'scan':
        return { v: store.scan(task.table, task.opts) };
      case 'multiGet': {
        const keys = task.keys;
        return { v: store.readConsistent((view) => keys.map((k) => view.get(task.table, k))) };
      }
      case 'count':
        return { v: store.count(task.table) };
      default:
        throw new WalstreamError('WS_INVALID_OPTION', '22023', `unknown reader op ${String((task as { op: unknown }).op)}`);
    }
  } catch (err) {
    if (err instanceof WalstreamError) {
      const e: ReaderErrorInfo = { code: err.code, sqlstate: err.sqlstate, message: err.message };
      if (err.detail !== undefined) e.detail = err.detail;
      if (err.hint !== undefined) e.hint = err.hint;
      return { e };
    }
    throw err;
  }
}
