// Redo of walstream records into a store: the one function that both crash recovery (primary)
// and the startup thread (standby) use, so that the same WAL from the same checkpoint always
// yields the same store. Puts and deletes carry whole values, so redo is idempotent and a fuzzy
// checkpoint snapshot is repaired by replaying from its redo point.

import type { StoreOp } from './txn-ops.js';
import { RM_WALSTREAM_ID, RM_XLOG_ID, WS_CHECKPOINT_ONLINE, WS_CHECKPOINT_SHUTDOWN, WS_TXN, XLOG_SWITCH } from './consts.js';
import { type CheckpointData, decodeCheckpointMainData, decodeTxnMainData } from './record.js';
import type { WalRecord } from './reader.js';

export type RedoOutcome =
  | { kind: 'txn'; xid: number; ops: number; commitTimeUs: number }
  | { kind: 'checkpoint'; shutdown: boolean; data: CheckpointData }
  | { kind: 'switch' }
  | { kind: 'other' };

/** What redo writes into (the store: SharedStore). Declared here so that WAL does not depend on storage. */
export interface RedoTarget {
  /** Apply one transaction's operations atomically. */
  applyTransaction(ops: readonly StoreOp[]): void;
}

export function redoRecord(store: RedoTarget, rec: WalRecord): RedoOutcome {
  const h = rec.header;
  const info = h.info & 0xf0;
  if (h.rmid === RM_WALSTREAM_ID) {
    const main = rec.bytes.subarray(rec.body.mainDataOffset, rec.body.mainDataOffset + rec.body.mainDataLength);
    if (info === WS_TXN) {
      const txn = decodeTxnMainData(main, false);
      store.applyTransaction(txn.ops);
      return { kind: 'txn', xid: h.xid, ops: txn.ops.length, commitTimeUs: txn.commitTimeUs };
    }
    if (info === WS_CHECKPOINT_ONLINE || info === WS_CHECKPOINT_SHUTDOWN) {
      return { kind: 'checkpoint', shutdown: info === WS_CHECKPOINT_SHUTDOWN, data: decodeCheckpointMainData(main) };
    }
    return { kind: 'other' };
  }
  if (h.rmid === RM_XLOG_ID && info === XLOG_SWITCH) return { kind: 'switch' };
  return { kind: 'other' };
}
