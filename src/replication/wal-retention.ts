// WAL retention for replication slots, pure (PostgreSQL 15's KeepLogSeg and GetWALAvailability in
// src/backend/access/transam/xlog.c, and the wal_status/safe_wal_size columns of
// pg_get_replication_slots in src/backend/replication/slotfuncs.c): which segment the oldest WAL
// to keep is in, and how available a slot's WAL is under max_wal_size, wal_keep_size and
// max_slot_wal_keep_size. No state; used by ReplicationSlots (slots.ts) at checkpoints and rows().

import type { Lsn } from '../wal/lsn.js';
import { segNo, segStart } from '../wal/segment.js';
import type { SlotData } from './slot-table.js';

/** WAL retention settings (PostgreSQL's max_wal_size, max_slot_wal_keep_size, wal_keep_size). */
export interface WalRetention {
  segSize: number;
  maxWalSizeBytes: number;
  /** -1 = unlimited (PostgreSQL's default). */
  maxSlotWalKeepSizeBytes: number;
  walKeepSizeBytes: number;
}

export type WalStatus = 'reserved' | 'extended' | 'unreserved' | 'lost';
export type WalAvailability = 'invalid' | 'reserved' | 'extended' | 'unreserved' | 'removed';

/** ConvertToXSegs: whole segments in a size (PostgreSQL computes it from MB; same result for whole MB). */
function segsOf(bytes: number, segSize: number): number {
  return Math.floor(bytes / segSize);
}

/**
 * KeepLogSeg: the oldest segment to keep given the current position `recptr` and the slots'
 * minimum restart_lsn, capped by max_slot_wal_keep_size and extended to wal_keep_size. Returns
 * min(`from`, that segment).
 */
export function keepLogSeg(recptr: Lsn, slotMinLsn: Lsn | null, r: WalRetention, from: number): number {
  const currSeg = segNo(recptr, r.segSize);
  let seg = currSeg;
  if (slotMinLsn !== null && slotMinLsn !== 0 && slotMinLsn < recptr) {
    seg = segNo(slotMinLsn, r.segSize);
    if (r.maxSlotWalKeepSizeBytes >= 0) {
      const slotKeepSegs = segsOf(r.maxSlotWalKeepSizeBytes, r.segSize);
      if (currSeg - seg > slotKeepSegs) seg = currSeg - slotKeepSegs;
    }
  }
  if (r.walKeepSizeBytes > 0) {
    const keepSegs = segsOf(r.walKeepSizeBytes, r.segSize);
    if (currSeg - seg < keepSegs) seg = currSeg <= keepSegs ? 1 : currSeg - keepSegs;
  }
  return Math.min(seg, from);
}

/** GetWALAvailability for a slot's restart_lsn. `oldestSegNo` is the oldest segment still on disk. */
export function walAvailability(targetLsn: Lsn, ctx: { currentLsn: Lsn; slotMinLsn: Lsn | null; oldestSegNo: number; retention: WalRetention }): WalAvailability {
  if (targetLsn === 0) return 'invalid';
  const r = ctx.retention;
  const currSeg = segNo(ctx.currentLsn, r.segSize);
  const oldestSlotSeg = keepLogSeg(ctx.currentLsn, ctx.slotMinLsn, r, currSeg);
  const keepSegs = segsOf(r.maxWalSizeBytes, r.segSize) + 1;
  const oldestSegMaxWalSize = currSeg > keepSegs ? currSeg - keepSegs : 1;
  const targetSeg = segNo(targetLsn, r.segSize);
  if (targetSeg >= oldestSlotSeg) return targetSeg >= oldestSegMaxWalSize ? 'reserved' : 'extended';
  if (targetSeg >= ctx.oldestSegNo) return 'unreserved';
  return 'removed';
}

/** pg_get_replication_slots' wal_status and safe_wal_size for one slot. */
export function slotWalStatus(
  s: Pick<SlotData, 'restartLsn' | 'invalidatedAt' | 'activePid'>,
  ctx: { currentLsn: Lsn; slotMinLsn: Lsn | null; oldestSegNo: number; retention: WalRetention },
): { walStatus: WalStatus | null; safeWalSize: number | null } {
  let avail: WalAvailability;
  if (s.restartLsn === 0) avail = s.invalidatedAt !== 0 ? 'removed' : walAvailability(0, ctx);
  else avail = walAvailability(s.restartLsn, ctx);
  let walStatus: WalStatus | null;
  switch (avail) {
    case 'invalid':
      walStatus = null;
      break;
    case 'removed':
      // Still streaming (a live walsender may have moved past the removed file): unreserved.
      if (s.restartLsn !== 0 && s.activePid !== 0) {
        walStatus = 'unreserved';
        avail = 'unreserved';
      } else walStatus = 'lost';
      break;
    default:
      walStatus = avail;
  }
  const r = ctx.retention;
  let safeWalSize: number | null = null;
  if (avail !== 'removed' && r.maxSlotWalKeepSizeBytes >= 0) {
    // PostgreSQL computes this even without a restart_lsn (target segment 0).
    const targetSeg = segNo(s.restartLsn, r.segSize);
    const failSeg = targetSeg + Math.max(segsOf(r.maxSlotWalKeepSizeBytes, r.segSize), segsOf(r.walKeepSizeBytes, r.segSize)) + 1;
    safeWalSize = segStart(failSeg, r.segSize) - ctx.currentLsn;
  }
  return { walStatus, safeWalSize };
}
