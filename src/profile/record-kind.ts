// Record kinds and size bands of the WAL profiler (`walstream profile`): which slot of the replay
// cost table a record counts in. Used by the startup worker (live profile: it times each redo
// while a stage trace is present, src/util/stage-trace.ts) and by the offline replay
// (src/profile/offline.ts), so both name kinds alike. Pure functions; no state.
//
// A kind is what pg_waldump --stats=record calls a record type: walstream's own records by their
// info (TXN, CHECKPOINT_ONLINE, ...), XLOG records by theirs (SWITCH, END_OF_RECOVERY, ...,
// PostgreSQL's xlog_identify in src/backend/access/rmgrdesc/xlogdesc.c), and any other resource
// manager (a PostgreSQL primary's Heap, Btree, ...) by its name.

import { RM_WALSTREAM_ID, RM_XLOG_ID, WALSTREAM_RECORD_NAMES } from '../wal/consts.js';

/** Slots: 16 walstream infos, 16 XLOG infos, then one per other resource manager id (0..255). */
const WALSTREAM_SLOTS = 16;
const XLOG_SLOTS = 16;
const RMGR_SLOTS = 256;
export const RECORD_KIND_SLOTS = WALSTREAM_SLOTS + XLOG_SLOTS + RMGR_SLOTS;

/** Size bands by a record's total length (xl_tot_len), bytes: a record is in the first band whose limit it does not exceed. */
export const SIZE_BANDS = [
  { label: '≤ 128 B', maxBytes: 128 },
  { label: '129 B – 1 KiB', maxBytes: 1024 },
  { label: '1 – 8 KiB', maxBytes: 8192 },
  { label: '8 – 64 KiB', maxBytes: 65_536 },
  { label: '> 64 KiB', maxBytes: Infinity },
] as const;

export function sizeBandOf(totLen: number): number {
  for (let i = 0; i < SIZE_BANDS.length - 1; i++) if (totLen <= SIZE_BANDS[i]!.maxBytes) return i;
  return SIZE_BANDS.length - 1;
}

/** PostgreSQL 15's XLOG record types by info >> 4 (src/include/catalog/pg_control.h, xlog_identify; 0xC0 is unused since 12). */
const XLOG_INFO_NAMES: Record<number, string> = {
  0x0: 'CHECKPOINT_SHUTDOWN', 0x1: 'CHECKPOINT_ONLINE', 0x2: 'NOOP', 0x3: 'NEXTOID', 0x4: 'SWITCH', 0x5: 'BACKUP_END', 0x6: 'PARAMETER_CHANGE',
  0x7: 'RESTORE_POINT', 0x8: 'FPW_CHANGE', 0x9: 'END_OF_RECOVERY', 0xa: 'FPI_FOR_HINT', 0xb: 'FPI', 0xd: 'OVERWRITE_CONTRECORD',
};

/** PostgreSQL 15's built-in resource managers by id (src/include/access/rmgrlist.h). */
const BUILTIN_RMGRS = [
  'XLOG', 'Transaction', 'Storage', 'CLOG', 'Database', 'Tablespace', 'MultiXact', 'RelMap', 'Standby', 'Heap2', 'Heap',
  'Btree', 'Hash', 'Gin', 'Gist', 'Sequence', 'SPGist', 'BRIN', 'CommitTs', 'ReplicationOrigin', 'Generic', 'LogicalMessage',
];

/** The cost-table slot of a record with resource manager `rmid` and `info`. */
export function recordKindSlot(rmid: number, info: number): number {
  const hi = (info & 0xf0) >> 4;
  if (rmid === RM_WALSTREAM_ID) return hi;
  if (rmid === RM_XLOG_ID) return WALSTREAM_SLOTS + hi;
  return WALSTREAM_SLOTS + XLOG_SLOTS + (rmid & 0xff);
}

/** A slot's name, as reports print it: `walstream/TXN`, `XLOG/SWITCH`, `Heap`, `custom131`. */
export function recordKindName(slot: number): string {
  if (slot < WALSTREAM_SLOTS) return `walstream/${WALSTREAM_RECORD_NAMES[slot << 4] ?? `UNKNOWN (info ${(slot << 4).toString(16)})`}`;
  if (slot < WALSTREAM_SLOTS + XLOG_SLOTS) {
    const i = slot - WALSTREAM_SLOTS;
    return `XLOG/${XLOG_INFO_NAMES[i] ?? `UNKNOWN (info ${(i << 4).toString(16)})`}`;
  }
  const rmid = slot - WALSTREAM_SLOTS - XLOG_SLOTS;
  return BUILTIN_RMGRS[rmid] ?? `custom${String(rmid).padStart(3, '0')}`;
}

/** One row of a replay cost table. */
export interface KindCost {
  kind: string;
  sizeBand: string;
  records: number;
  /** Redo time of these records, summed. */
  totalMs: number;
  meanUs: number;
  maxUs: number;
}

/**
 * Rows of a cost table (count, total ms, max ms per slot × band, as StageTrace.replayCosts() returns
 * it), minus `before` (the table at the window's start; null: nothing). Empty cells are left out;
 * rows in slot order, then band order. Maxima are `after`'s (the live profile zeroes them at its
 * window's start).
 */
export function costRows(after: Float64Array, before: Float64Array | null): KindCost[] {
  const out: KindCost[] = [];
  const B = SIZE_BANDS.length;
  for (let slot = 0; slot < RECORD_KIND_SLOTS; slot++) {
    for (let b = 0; b < B; b++) {
      const o = (slot * B + b) * 3;
      const n = after[o]! - (before?.[o] ?? 0);
      if (n <= 0) continue;
      const ms = after[o + 1]! - (before?.[o + 1] ?? 0);
      out.push({ kind: recordKindName(slot), sizeBand: SIZE_BANDS[b]!.label, records: n, totalMs: +ms.toFixed(3), meanUs: +((ms * 1000) / n).toFixed(3), maxUs: +(after[o + 2]! * 1000).toFixed(3) });
    }
  }
  return out;
}
