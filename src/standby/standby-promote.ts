// The end of a standby's promotion (pg_promote), once streaming and replay have stopped: replay the
// rest of pg_wal (finishRecovery), start the new timeline (history file, the new timeline's first
// segment: initNewTimeline), and open the Primary over the same data directory and the same shared
// store (Primary.fromPromotion: END_OF_RECOVERY, control file in production, the end-of-recovery
// checkpoint requested in the background). Each step
// is crash-safe on its own (src/primary/promotion.ts). Runs on the standby's thread.

import type { ControlData } from '../storage/control.js';
import type { SharedStore } from '../storage/store.js';
import type { Lsn } from '../wal/lsn.js';
import { Primary, type RecoveryInfo } from '../primary/primary.js';
import type { PrimaryOptions } from '../primary/options.js';
import { PromotionListener } from '../primary/promotion-listener.js';
import { resolvePrimaryOptions } from '../primary/options.js';
import { finishRecovery, initNewTimeline, promoteStep, type ReplayResume } from '../primary/promotion.js';

export interface BecomePrimaryInput {
  dataDir: string;
  walDir: string;
  control: ControlData;
  store: SharedStore;
  /** Where the startup thread stopped. */
  resume: ReplayResume;
  /** The new Primary's options (its data directory is the standby's). */
  options: PrimaryOptions;
  /** Its replication listener, already started (options.port set), or null. */
  listener: PromotionListener | null;
}

/**
 * The new primary's replication listener, started before the standby's workers stop (its threads
 * boot meanwhile), or null without `port`. Checks the options first: a bad one stops nothing.
 */
export function startPromotionListener(options: PrimaryOptions, walDir: string): PromotionListener | null {
  const resolved = resolvePrimaryOptions(options);
  return resolved.port !== null ? new PromotionListener({ ...resolved, dataDir: options.dataDir }, walDir) : null;
}

export async function becomePrimary(a: BecomePrimaryInput): Promise<{ primary: Primary; tli: number; switchpoint: Lsn }> {
  promoteStep('stopped');
  const end = finishRecovery(a.walDir, a.control, a.store, a.resume);
  promoteStep('replayed');
  const tli = initNewTimeline(a.walDir, a.control, end.endOfLog);
  const recovery: RecoveryInfo = {
    redoLsn: a.control.redoLsn, endLsn: end.endOfLog, recordsReplayed: end.records, endReason: 'promotion', endReasonCode: null, tornTail: false, wasCleanShutdown: false,
  };
  const primary = await Primary.fromPromotion({
    options: { ...a.options, dataDir: a.dataDir }, store: a.store, control: { ...a.control, tli, minRecoveryPoint: 0 }, prevTli: a.control.tli, end, recovery, listener: a.listener,
  });
  return { primary, tli, switchpoint: end.endOfLog };
}
