// pg_stat_wal_receiver for a walstream standby: the view's columns, built from one consistent
// WalRcvData snapshot (taken under its mutex), plus the replay position (pg_last_wal_replay_lsn),
// lag figures and the walreceiver's counters. Sans-I/O; Standby.receiverStatus() calls it.

import { pgTimestampToDate } from '../replication/protocol/messages.js';
import { nowPgMicros } from '../wal/consts.js';
import type { Lsn } from '../wal/lsn.js';
import { IN_PROCESS_HOST } from './options.js';
import type { WalRcvSnapshot, WalRcvStateName } from './walrcvdata.js';

/** pg_stat_wal_receiver's columns, plus replay position, lag figures and counters. Positions are `Lsn` numbers (lsnToString prints X/X). */
export interface WalReceiverStatus {
  pid: number | null;
  status: WalRcvStateName;
  receive_start_lsn: Lsn;
  receive_start_tli: number;
  written_lsn: Lsn;
  flushed_lsn: Lsn;
  received_tli: number;
  last_msg_send_time: Date | null;
  last_msg_receipt_time: Date | null;
  latest_end_lsn: Lsn;
  latest_end_time: Date | null;
  slot_name: string | null;
  sender_host: string | null;
  sender_port: number | null;
  conninfo: string;
  /** pg_last_wal_replay_lsn() (null in wal-only mode). */
  replay_lsn: Lsn | null;
  /** pg_last_xact_replay_timestamp(): commit time of the last replayed transaction. */
  last_xact_replay_timestamp: Date | null;
  /** Bytes the primary reported (latest_end_lsn) but not yet written / flushed here. */
  write_lag_bytes: number;
  flush_lag_bytes: number;
  /** Flushed here but not yet replayed. */
  replay_lag_bytes: number;
  /** now() - pg_last_xact_replay_timestamp(), in ms (null before any replayed commit). */
  replay_delay_ms: number | null;
  bytes_received: number;
  fsyncs: number;
  messages: number;
  records_replayed: number;
  replies_sent: number;
  connects: number;
  /** Of the WAL written, bytes written with O_DIRECT while catching up (walReceiverDirectIo). */
  bytes_written_direct: number;
  /** Apply reports put off by up to APPLY_REPORT_MAX_DELAY_MS because the primary asked for no prompt ones. */
  apply_reports_put_off: number;
}

/** What the row needs besides the snapshot. */
export interface WalReceiverStatusContext {
  /** The walreceiver worker's thread id (null while none runs). */
  pid: number | null;
  /** Replica mode (replay columns filled) or wal-only. */
  replica: boolean;
  slotName: string | null;
  /** The connection string with the password obfuscated. */
  conninfo: string;
}

/** One pg_stat_wal_receiver row. */
export function walReceiverStatusRow(s: WalRcvSnapshot, w: WalReceiverStatusContext): WalReceiverStatus {
  const date = (t: number) => (t > 0 ? pgTimestampToDate(t) : null);
  const replica = w.replica;
  const streaming = s.state !== 'stopped' && (s.senderPort > 0 || s.senderHost === IN_PROCESS_HOST);
  return {
    pid: w.pid,
    status: s.state,
    receive_start_lsn: s.receiveStart,
    receive_start_tli: s.receiveStartTli,
    written_lsn: s.written,
    flushed_lsn: s.flushed,
    received_tli: s.receivedTli,
    last_msg_send_time: date(s.lastSendTime),
    last_msg_receipt_time: date(s.lastReceiptTime),
    latest_end_lsn: s.latestWalEnd,
    latest_end_time: date(s.latestWalEndTime),
    slot_name: w.slotName,
    sender_host: streaming ? s.senderHost : null,
    sender_port: streaming ? s.senderPort : null,
    conninfo: w.conninfo,
    replay_lsn: replica ? s.replay : null,
    last_xact_replay_timestamp: replica ? date(s.lastCommitTime) : null,
    write_lag_bytes: Math.max(0, s.latestWalEnd - s.written),
    flush_lag_bytes: Math.max(0, s.latestWalEnd - s.flushed),
    replay_lag_bytes: replica ? Math.max(0, s.flushed - s.replay) : 0,
    replay_delay_ms: replica && s.lastCommitTime > 0 ? Math.max(0, (nowPgMicros() - s.lastCommitTime) / 1000) : null,
    bytes_received: s.bytesReceived,
    fsyncs: s.fsyncs,
    messages: s.messages,
    records_replayed: s.recordsReplayed,
    replies_sent: s.repliesSent,
    connects: s.connects,
    bytes_written_direct: s.bytesWrittenDirect,
    apply_reports_put_off: s.applyReportsPutOff,
  };
}
