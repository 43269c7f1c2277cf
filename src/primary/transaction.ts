// Transaction: the handle a Primary.transaction/commit callback fills. Runs on the primary's main
// thread, inside the callback; owns nothing but the TXN record being built (TxnRecordBuilder in
// src/wal/record.ts): keys and values are validated and encoded as they are added, straight into
// the WAL record, whose bytes the store then applies. Ends when the callback returns (detach()).

import { Errors } from '../errors.js';
import { keyBytes } from '../util/codec.js';
import { OP_DELETE, OP_PUT, TxnRecordBuilder } from '../wal/record.js';
import { MAX_KEY_BYTES } from '../wal/txn-ops.js';

/** Table names walstream accepts (ASCII, 1 to 63 bytes). */
const TABLE_RE = /^[A-Za-z0-9_.:\-/]{1,63}$/;

/**
 * Collects the operations of one transaction; keys and values are encoded as they are added,
 * straight into the WAL record being built (TxnRecordBuilder).
 */
export class Transaction {
  /** @internal */ bytes = 0;
  /** @internal */ constructor(
    private readonly limits: { maxValueBytes: number; maxTransactionBytes: number },
    private b: TxnRecordBuilder | null,
  ) {}

  put(table: string, key: string | Uint8Array, value: unknown): this {
    const tb = checkTable(table);
    const b = this.builder();
    b.openOp(OP_PUT, table, tb, key);
    const vlen = b.writeValue(value);
    if (vlen > this.limits.maxValueBytes) throw Errors.valueTooLarge(vlen, this.limits.maxValueBytes);
    this.add(b, table.length + b.pKeyLen + vlen);
    return this;
  }

  delete(table: string, key: string | Uint8Array): this {
    const tb = checkTable(table);
    const b = this.builder();
    b.openOp(OP_DELETE, table, tb, key);
    this.add(b, table.length + b.pKeyLen);
    return this;
  }

  /** @internal The transaction is over: later calls go to a builder nobody commits (as before). */
  detach(): void {
    this.b = null;
  }

  private builder(): TxnRecordBuilder {
    if (this.b === null) this.b = new TxnRecordBuilder(1024);
    return this.b;
  }

  private add(b: TxnRecordBuilder, n: number): void {
    const bytes = this.bytes + 16 + n;
    if (bytes > this.limits.maxTransactionBytes) throw Errors.transactionTooLarge(bytes, this.limits.maxTransactionBytes);
    this.bytes = bytes;
    b.closeOp();
  }
}

/** Validated table names and their bytes (TABLE_RE admits ASCII only). */
const tableNames = new Map<string, Uint8Array>();
const TABLE_NAMES_LIMIT = 10_000;

export function checkTable(t: string): Uint8Array {
  const known = tableNames.get(t);
  if (known !== undefined) return known;
  if (typeof t !== 'string' || !TABLE_RE.test(t)) throw Errors.invalidTable(String(t));
  const b = new Uint8Array(t.length);
  for (let i = 0; i < t.length; i++) b[i] = t.charCodeAt(i);
  if (tableNames.size >= TABLE_NAMES_LIMIT) tableNames.clear();
  tableNames.set(t, b);
  return b;
}

export function checkKey(key: string | Uint8Array): { bytes: Uint8Array; isString: boolean } {
  if (typeof key !== 'string' && !(key instanceof Uint8Array)) throw Errors.invalidKey('must be a string or Uint8Array');
  const k = keyBytes(key);
  if (k.bytes.length === 0) throw Errors.invalidKey('must not be empty');
  if (k.bytes.length > MAX_KEY_BYTES) throw Errors.invalidKey(`longer than ${MAX_KEY_BYTES} bytes (${k.bytes.length})`);
  return k;
}
