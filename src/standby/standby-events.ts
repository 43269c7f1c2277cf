// The events a Standby emits, as one typed map (src/util/typed-events.ts), and WalReceiverEvents,
// which turns the walreceiver worker's messages into the walreceiver's connect / disconnect /
// reconnect and state-change events. Runs on the standby's main thread; holds no handle. README's
// "Monitoring" section has the table.

import type { WalstreamError } from '../errors.js';
import type { EndOfWalReason } from '../wal/reader.js';
import type { Lsn } from '../wal/lsn.js';
import type { WalRcvData, WalRcvStateName } from './walrcvdata.js';
import type { WalReceiverMessage } from './walreceiver.js';
import { WALRCV_STATE_NAMES } from './walrcvdata.js';
import type { TypedEventEmitter } from '../util/typed-events.js';
import type { LogEvent, WalSenderEvent } from '../primary/primary-events.js';
import type { SlotInvalidation } from '../replication/slots.js';

/** A restartpoint finished (the standby's checkpoint: snapshot, control file, old WAL removed). */
export interface RestartpointInfo {
  checkpointLsn: Lsn;
  redoLsn: Lsn;
  minRecoveryPoint: Lsn;
  snapshotName: string;
  segmentsRemoved: number;
  /** Segments renamed to future names for the walreceiver to overwrite (min_wal_size). */
  segmentsRecycled: number;
}

/** A walreceiver connection began streaming (pg_stat_wal_receiver's sender and start columns). */
export interface WalReceiverConnectedEvent {
  senderHost: string;
  senderPort: number;
  /** receive_start_lsn / receive_start_tli. */
  start: Lsn;
  tli: number;
  /** Connections that reached streaming since the standby opened, this one included. */
  connects: number;
}

/** A walreceiver connection ended. */
export interface WalReceiverDisconnectedEvent {
  /** Why (the error's message and SQLSTATE); null when the standby ended it (close, re-pointing, promotion). */
  message: string | null;
  sqlstate: string | null;
  /** flushed_lsn when it ended. */
  flushedLsn: Lsn;
}

/** Event name → listener arguments. */
export interface StandbyEvents {
  /** Local WAL replayed at open (where it ends and why). */
  localEnd: [{ lsn: Lsn; records: number; reason: string; reasonCode: EndOfWalReason | null }];
  /** Replay passed minRecoveryPoint: reads are consistent (PostgreSQL's "ready to accept read-only connections"). */
  consistent: [{ lsn: Lsn }];
  /** The upstream's identity was adopted (an empty wal-only directory). */
  identified: [{ sysid: string; tli: number; segSize: number }];
  /** START_REPLICATION succeeded (each timeline streamed, including one followed on the same connection). */
  streaming: [{ start: Lsn; tli: number }];
  /** The walreceiver connected and streams (every connection). */
  walreceiverConnected: [WalReceiverConnectedEvent];
  /** A connection after an earlier one ended (also emitted as walreceiverConnected). */
  walreceiverReconnected: [WalReceiverConnectedEvent];
  /** A streaming connection ended. */
  walreceiverDisconnected: [WalReceiverDisconnectedEvent];
  /** pg_stat_wal_receiver.status changed (starting, streaming, waiting, stopped). */
  walreceiverStateChanged: [{ state: WalRcvStateName; previousState: WalRcvStateName }];
  /** The walreceiver followed the upstream onto a new timeline. */
  timeline: [{ tli: number; prevTli: number; switchpoint: Lsn }];
  /** Replay moved onto a new timeline (the control file records it: a restart stays on it). */
  replayTimeline: [{ tli: number; prevTli: number; switchpoint: Lsn }];
  /** Cascading walsenders (option `port`, cascade.ts): as the primary's events of the same names. */
  walsenderConnected: [WalSenderEvent];
  walsenderStateChanged: [WalSenderEvent];
  walsenderCaughtUp: [WalSenderEvent];
  syncStateChanged: [WalSenderEvent];
  walsenderDisconnected: [WalSenderEvent];
  /** A slot on this standby lost its WAL (max_slot_wal_keep_size). */
  slotInvalidated: [SlotInvalidation];
  /** A log line of the cascading walsenders' server. */
  log: [LogEvent];
  /** A restartpoint finished. */
  restartpoint: [RestartpointInfo];
  /** promote() began / finished (the new timeline and where it forked). */
  promoting: [];
  promoted: [{ tli: number; switchpoint: Lsn }];
  /** Something to tell an operator (the upstream's warnings, failed connection attempts, restartpoint failures). */
  warning: [WalstreamError];
  /** Streaming or replay stopped for good (reads go on). */
  error: [WalstreamError];
  /** close() finished. */
  close: [];
}

/** Turns walreceiver messages into walreceiver* events on `emitter`. */
export class WalReceiverEvents {
  private connected = false;
  private connects = 0;
  private state: WalRcvStateName;

  constructor(private readonly emitter: TypedEventEmitter<StandbyEvents>, private readonly walrcv: WalRcvData) {
    this.state = WALRCV_STATE_NAMES[walrcv.state] ?? 'stopped';
  }

  /** Connections that reached streaming (a timeline followed on one does not count). */
  get connections(): number {
    return this.connects;
  }

  /** Every walreceiver message, before the standby's own handling. */
  onMessage(m: WalReceiverMessage): void {
    this.noteState();
    if (m.type === 'streaming' && !this.connected) {
      this.connected = true;
      this.connects++;
      const snap = this.walrcv.snapshot();
      const e: WalReceiverConnectedEvent = { senderHost: snap.senderHost, senderPort: snap.senderPort, start: m.start, tli: m.tli, connects: this.connects };
      this.emitter.emit('walreceiverConnected', e);
      if (this.connects > 1) this.emitter.emit('walreceiverReconnected', e);
    } else if (m.type === 'disconnected' && this.connected) {
      this.connected = false;
      this.emitter.emit('walreceiverDisconnected', { message: m.message, sqlstate: m.sqlstate, flushedLsn: this.walrcv.flushed });
    }
  }

  private noteState(): void {
    const state = WALRCV_STATE_NAMES[this.walrcv.state] ?? 'stopped';
    if (state === this.state) return;
    const previousState = this.state;
    this.state = state;
    this.emitter.emit('walreceiverStateChanged', { state, previousState });
  }
}
