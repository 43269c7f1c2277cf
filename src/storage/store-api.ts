// The shared store's public types and limits: the handle passed between threads, options, scan
// options and their one validation (checkScanOptions), read views, stats and export cursors.
// Types and pure functions only; SharedStore (store.ts) implements them.

import { Errors } from '../errors.js';
import { isInt } from './store-layout.js';

/** Structured-cloneable: postMessage it to a worker and SharedStore.attach() it there. */
export interface StoreHandle {
  readonly buffer: SharedArrayBuffer;
  readonly id: number;
  readonly layoutVersion: number;
}

export interface ScanOptions {
  gte?: string | Uint8Array;
  gt?: string | Uint8Array;
  lt?: string | Uint8Array;
  lte?: string | Uint8Array;
  limit?: number;
  reverse?: boolean;
}

export interface StoreOptions {
  /** initial buffer size in bytes (default 4 MiB) */
  initialBytes?: number;
  /** hard limit on the buffer in bytes (default 1 GiB, at most 4 GiB) */
  maxStoreBytes?: number;
  /** largest value in bytes (default 16 MiB, at most 1 GiB) */
  maxValueBytes?: number;
}

export interface ScanEntry {
  key: string | Uint8Array;
  value: unknown;
}

export interface StoreReadView {
  get(table: string, key: string | Uint8Array): unknown;
  getRaw(table: string, key: string | Uint8Array): Uint8Array | undefined;
  scan(table: string, opts?: ScanOptions): ScanEntry[];
  count(table?: string): number;
}

export interface StoreStats {
  bytesUsed: number;
  bytesReserved: number;
  entries: number;
  tables: number;
}

/** Where a batched export stopped: the next batch starts after (table, key). */
export interface StoreCursor {
  table: string;
  key: Uint8Array;
}

export type EntryVisitor = (table: string, key: Uint8Array, keyIsString: boolean, value: Uint8Array) => void;

export const DEFAULT_INITIAL_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_STORE_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024;
/** Upper bound for maxValueBytes (the value length shares a word with the key-is-string bit). */
export const MAX_MAX_VALUE_BYTES = 1024 * 1024 * 1024;
/** Smallest buffer, in bytes. */
export const MIN_STORE_BYTES = 64 * 1024;

export interface CheckedScan {
  lo: string | Uint8Array | undefined;
  loExclusive: boolean;
  hi: string | Uint8Array | undefined;
  hiExclusive: boolean;
  limit: number;
  reverse: boolean;
}

/** Validate ScanOptions once (precise errors). */
export function checkScanOptions(opts: ScanOptions | undefined): CheckedScan {
  if (opts === undefined) return { lo: undefined, loExclusive: false, hi: undefined, hiExclusive: false, limit: Infinity, reverse: false };
  if (opts === null || typeof opts !== 'object') throw Errors.invalidOption('scan options', 'must be an object');
  if (opts.gt !== undefined && opts.gte !== undefined) throw Errors.invalidOption('gt', 'give gt or gte, not both');
  if (opts.lt !== undefined && opts.lte !== undefined) throw Errors.invalidOption('lt', 'give lt or lte, not both');
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = opts[k];
    if (v !== undefined && typeof v !== 'string' && !(v instanceof Uint8Array)) throw Errors.invalidOption(k, 'must be a string or Uint8Array');
  }
  const limit = opts.limit ?? Infinity;
  if (limit !== Infinity && (!isInt(limit) || limit < 0)) throw Errors.invalidOption('limit', `must be a non-negative integer, got ${String(opts.limit)}`);
  if (opts.reverse !== undefined && typeof opts.reverse !== 'boolean') throw Errors.invalidOption('reverse', 'must be a boolean');
  return {
    lo: opts.gt ?? opts.gte,
    loExclusive: opts.gt !== undefined,
    hi: opts.lt ?? opts.lte,
    hiExclusive: opts.lt !== undefined,
    limit,
    reverse: opts.reverse === true,
  };
}
