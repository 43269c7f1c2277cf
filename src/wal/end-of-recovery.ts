// XLOG_END_OF_RECOVERY (PostgreSQL's CreateEndOfRecoveryRecord, src/backend/access/transam/xlog.c):
// the first record a promoted standby writes on its new timeline, rmgr XLOG (0), info 0x90, main
// data xl_end_of_recovery { TimestampTz end_time; TimeLineID ThisTimeLineID; TimeLineID
// PrevTimeLineID } (16 bytes, PostgreSQL 15's layout). pg_waldump shows it as
// "END_OF_RECOVERY tli N; prev tli M; time …". Built by the promotion path (src/primary/promotion.ts)
// and decoded by tests; redo ignores it (it changes no store state).

import { assert } from '../util/assert.js';
import { RM_XLOG_ID } from './consts.js';
import type { Lsn } from './lsn.js';
import { beginMainDataRecord, finishRecord, mainDataRecordSize } from './record.js';

export const XLOG_END_OF_RECOVERY = 0x90;
/** sizeof(xl_end_of_recovery) in PostgreSQL 15. */
export const SIZE_OF_END_OF_RECOVERY = 16;

export interface EndOfRecovery {
  /** end_time: PostgreSQL microseconds since 2000-01-01. */
  endTimeUs: number;
  thisTli: number;
  prevTli: number;
}

/** The complete record (CRC set), xl_prev = `prev`, xid 0. */
export function buildEndOfRecoveryRecord(prev: Lsn, e: EndOfRecovery): Uint8Array {
  assert(e.thisTli > e.prevTli, `END_OF_RECOVERY: timeline ${e.thisTli} is not above ${e.prevTli}`);
  const totLen = mainDataRecordSize(SIZE_OF_END_OF_RECOVERY);
  const out = new Uint8Array(totLen);
  const p = beginMainDataRecord(out, 0, prev, RM_XLOG_ID, XLOG_END_OF_RECOVERY, SIZE_OF_END_OF_RECOVERY);
  const dv = new DataView(out.buffer, out.byteOffset, totLen);
  dv.setBigInt64(p, BigInt(e.endTimeUs), true);
  dv.setUint32(p + 8, e.thisTli, true);
  dv.setUint32(p + 12, e.prevTli, true);
  finishRecord(out, totLen);
  return out;
}

export function decodeEndOfRecovery(main: Uint8Array): EndOfRecovery {
  assert(main.length === SIZE_OF_END_OF_RECOVERY, `END_OF_RECOVERY main data is ${main.length} bytes`);
  const dv = new DataView(main.buffer, main.byteOffset, main.byteLength);
  return { endTimeUs: Number(dv.getBigInt64(0, true)), thisTli: dv.getUint32(8, true), prevTli: dv.getUint32(12, true) };
}
