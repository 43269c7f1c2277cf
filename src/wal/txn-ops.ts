// The operations of one transaction, as a TXN WAL record carries them and a store applies them:
// StoreOp (one object per put/delete: redo decodes a record into these) and StoreOpBatch (ops as
// ranges of byte buffers: the primary's record builder is one, so a commit applies the very bytes
// it logs), with the limits the record format and the store share. Pure types and constants; the
// WAL layer owns them, and the store (src/storage/) depends on them, never the other way.

export interface StoreOp {
  kind: 'put' | 'delete';
  table: string;
  key: Uint8Array;
  keyIsString: boolean;
  value?: Uint8Array;
}

/** StoreOpBatch kinds (the WAL's op codes). */
export const BATCH_PUT = 1;
export const BATCH_DELETE = 2;

/**
 * The operations of one transaction as ranges of byte buffers, op i = (kind[i], table[i],
 * key keyBuf[i][keyOff[i], +keyLen[i]), value valBuf[i][valOff[i], +valLen[i]) for puts). The
 * primary's WAL record builder is one (keys and values inside the record being built), so a
 * commit applies exactly the bytes it logs. tableBytes[i] = UTF-8 of table[i].
 */
export interface StoreOpBatch {
  readonly n: number;
  readonly kind: ArrayLike<number>;
  readonly table: readonly string[];
  readonly tableBytes: readonly Uint8Array[];
  readonly keyBuf: readonly Uint8Array[];
  readonly keyOff: ArrayLike<number>;
  readonly keyLen: ArrayLike<number>;
  readonly keyIsString: readonly boolean[];
  readonly valBuf: readonly Uint8Array[];
  readonly valOff: ArrayLike<number>;
  readonly valLen: ArrayLike<number>;
}

/** Longest key, in bytes. */
export const MAX_KEY_BYTES = 4096;
/** Table names: 1..MAX_TABLE_NAME_BYTES bytes of UTF-8. */
export const MAX_TABLE_NAME_BYTES = 63;
