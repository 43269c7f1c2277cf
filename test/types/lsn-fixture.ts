// Type-level checks that the API has one LSN representation, compiled by test/lsn-types.test.ts
// (and by the build): every LSN field is an `Lsn` number, so transaction()'s LSN and a status
// row's compare with `<=` without conversion. Every `@ts-expect-error` line is a use that must not
// compile; the test also compiles this file with those directives removed and expects an error on
// each such line.

import { lsnToString, parseLsn } from '../../src/index.js';
import type { LiveProfileResult, Lsn, OfflineProfileResult, Primary, PrimaryStats, ReplicationSlotRow, ReplicationStatusRow, Standby, WalReceiverStatus } from '../../src/index.js';

export async function committedIsFlushedThere(p: Primary): Promise<boolean> {
  const lsn = await p.transaction((tx) => tx.put('t', 'k', 1));
  const row: ReplicationStatusRow | undefined = p.replicationStatus()[0];
  const flush: number | null = row?.flush_lsn ?? null;
  // transaction()'s LSN and a status row's LSN compare as they are.
  return flush !== null && lsn <= flush && row!.replay_lsn !== null && row!.replay_lsn <= flush;
}

export function everyLsnIsANumber(p: Primary, s: Standby, live: LiveProfileResult, offline: OfflineProfileResult): number {
  const row: ReplicationStatusRow = p.replicationStatus()[0]!;
  const positions: Array<Lsn | null> = [row.sent_lsn, row.write_lsn, row.flush_lsn, row.replay_lsn, row.receive_lsn];
  const slot: ReplicationSlotRow = p.replicationSlots()[0]!;
  const st: PrimaryStats = p.stats();
  const rcv: WalReceiverStatus = s.receiverStatus();
  const bytes: number =
    st.insertLsn - st.writeLsn + st.flushLsn - st.lastCheckpointLsn + st.redoLsn +
    (slot.restart_lsn ?? 0) +
    rcv.receive_start_lsn + rcv.written_lsn + rcv.flushed_lsn + rcv.latest_end_lsn + (rcv.replay_lsn ?? 0) +
    s.stats().redoLsn + s.stats().minRecoveryPoint +
    live.window.endLsn - live.window.startLsn + offline.endLsn - offline.startLsn;
  void s.waitForReplay(st.flushLsn);
  void s.waitForReplay(parseLsn('0/16B3748'));
  const shown: string = lsnToString(row.flush_lsn ?? 0);
  // @ts-expect-error a status row's LSN is a number, not X/X text
  const text: string | null = row.flush_lsn;
  // @ts-expect-error no text methods on a status row's LSN
  row.sent_lsn?.split('/');
  // @ts-expect-error stats() LSNs are numbers
  p.stats().flushLsn.split('/');
  // @ts-expect-error receiverStatus() LSNs are numbers
  const flushed: string = rcv.flushed_lsn;
  // @ts-expect-error a slot's restart_lsn is a number
  slot.restart_lsn?.padStart(8);
  // @ts-expect-error a standby's stats() LSNs are numbers
  s.stats().minRecoveryPoint.split('/');
  // @ts-expect-error profile results carry numbers
  const start: string = offline.startLsn;
  // @ts-expect-error waitForReplay takes a number: parseLsn converts X/X text
  void s.waitForReplay('0/16B3748');
  // @ts-expect-error lsnToString formats a number, not text
  lsnToString('0/16B3748');
  void [positions, shown, text, flushed, start, live.window.units];
  return bytes;
}
