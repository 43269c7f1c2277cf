// Monitoring of a standby: a prom-client registry with pg_stat_wal_receiver's positions (written,
// flushed, latest_end, receive_start) and the replay position, lag in bytes and seconds at each
// level, connected state, status, timeline, connections and reconnections, the walreceiver's and
// startup's counters, plus prom-client's default process and Node.js metrics. Runs on the
// standby's main thread and reads WalRcvData (one consistent snapshot per scrape). One per
// standby (`standbyMetrics(s)`, Standby.metricsRegistry()); its lag clock's timer is unref'd and
// stops at the standby's 'close'. /healthz (src/replication/health.ts) reads the same lag.
//
// Lag in seconds: the standby does not see the primary's clock for every position, so
// StandbyLagClock notes, every LAG_SAMPLE_INTERVAL_MS and at each read, when the end of WAL known
// here (the upstream's latest_end_lsn, or what was written if beyond) moved forward. The lag of a
// position is the age of the oldest note above it: how long WAL past it has been waiting here
// (0 when caught up; it keeps growing while, say, replay is paused). Resolution: the interval.

import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Lsn } from '../wal/lsn.js';
import { followCounter } from '../replication/metrics.js';
import { WALRCV_STATE_NAMES, type WalRcvData, type WalRcvSnapshot } from './walrcvdata.js';
import type { StandbyMode } from './options.js';

/** How often the lag clock notes the end of known WAL, in ms. */
export const LAG_SAMPLE_INTERVAL_MS = 100;
/** Notes kept; when full, pairs are merged (each keeps its older time: lag is never under-reported). */
export const LAG_SAMPLES_MAX = 4096;

/** What the standby metrics read (Standby satisfies it). */
export interface StandbyMetricsSubject {
  readonly mode: StandbyMode;
  readonly walrcv: WalRcvData;
  readonly timeline: number;
  readonly options: { readonly primaryConninfo: { readonly applicationName?: string }; readonly primarySlotName: string | null };
  readonly replayPauseState: string;
  readonly receiverEvents: { readonly connections: number };
  /** The primary this standby was promoted to, or null. */
  readonly promoted: object | null;
  stats(): { restartpoints: number };
  once(event: 'close', listener: () => void): unknown;
}

/** When the end of WAL known here passed each noted position (our clock, ms). */
export class StandbyLagClock {
  private lsns: Lsn[] = [];
  private times: number[] = [];

  /** Note that WAL up to `end` is known at `now` (ignored unless it moved forward). */
  note(end: Lsn, now: number): void {
    const last = this.lsns[this.lsns.length - 1];
    if (last !== undefined && end <= last) return;
    if (this.lsns.length >= LAG_SAMPLES_MAX) {
      // Merge pairs: the later position with the earlier time (a lag rounded up, never down).
      const lsns: Lsn[] = [];
      const times: number[] = [];
      for (let i = 0; i < this.lsns.length; i += 2) {
        lsns.push(this.lsns[Math.min(i + 1, this.lsns.length - 1)]!);
        times.push(this.times[i]!);
      }
      this.lsns = lsns;
      this.times = times;
    }
    this.lsns.push(end);
    this.times.push(now);
  }

  /** Seconds since WAL past `pos` became known (0 when none is). */
  lagSeconds(pos: Lsn, now: number): number {
    const i = this.lsns.findIndex((l) => l > pos);
    return i < 0 ? 0 : Math.max(0, now - this.times[i]!) / 1000;
  }

  /** Forget notes every position has passed. */
  trim(minPos: Lsn): void {
    let n = 0;
    while (n < this.lsns.length && this.lsns[n]! <= minPos) n++;
    if (n > 0) {
      this.lsns.splice(0, n);
      this.times.splice(0, n);
    }
  }
}

export type LagLevel = 'write' | 'flush' | 'replay';

/** A standby's lag at one moment; replay null in wal-only mode. */
export interface StandbyLag {
  /** The end of WAL known here: max(latest_end_lsn, written_lsn). */
  knownEnd: Lsn;
  bytes: Record<LagLevel, number | null>;
  seconds: Record<LagLevel, number | null>;
  snapshot: WalRcvSnapshot;
}

export class StandbyMetrics {
  readonly registry = new Registry();
  private readonly clock = new StandbyLagClock();
  private timer: NodeJS.Timeout | null;

  constructor(private readonly s: StandbyMetricsSubject) {
    this.timer = setInterval(() => this.lag(), LAG_SAMPLE_INTERVAL_MS);
    this.timer.unref();
    s.once('close', () => this.stop());
    this.define();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Lag now (also notes the known end for the lag clock). */
  lag(): StandbyLag {
    const snap = this.s.walrcv.snapshot();
    const now = performance.now();
    const knownEnd = Math.max(snap.latestWalEnd, snap.written);
    this.clock.note(knownEnd, now);
    const replica = this.s.mode === 'replica';
    const pos: Record<LagLevel, Lsn | null> = { write: snap.written, flush: snap.flushed, replay: replica ? snap.replay : null };
    const bytes = { write: null, flush: null, replay: null } as Record<LagLevel, number | null>;
    const seconds = { write: null, flush: null, replay: null } as Record<LagLevel, number | null>;
    for (const k of ['write', 'flush', 'replay'] as const) {
      const p = pos[k];
      if (p === null) continue;
      bytes[k] = Math.max(0, knownEnd - p);
      seconds[k] = this.clock.lagSeconds(p, now);
    }
    this.clock.trim(replica ? snap.replay : snap.flushed);
    return { knownEnd, bytes, seconds, snapshot: snap };
  }

  private define(): void {
    const reg = this.registry;
    const s = this.s;
    collectDefaultMetrics({ register: reg });
    let cur: StandbyLag | null = null;
    const snap = () => cur!.snapshot;
    new Gauge({
      name: 'walstream_in_recovery',
      help: 'pg_is_in_recovery(): 1 on a standby, 0 once promoted',
      registers: [reg],
      collect() {
        this.set(s.promoted === null ? 1 : 0);
      },
    });
    new Gauge({
      name: 'walstream_timeline',
      help: "The node's timeline ID (the control file's)",
      registers: [reg],
      collect() {
        this.set(s.timeline);
      },
    });
    const self = this;
    new Gauge({
      name: 'walstream_wal_receiver_lsn_bytes',
      help: "pg_stat_wal_receiver's receive_start_lsn, written_lsn, flushed_lsn and latest_end_lsn, and pg_last_wal_replay_lsn() (replay), as byte offsets",
      labelNames: ['position'] as const,
      registers: [reg],
      collect() {
        cur = self.lag(); // one snapshot per scrape: the gauges below read it
        const x = cur.snapshot;
        this.set({ position: 'receive_start' }, x.receiveStart);
        this.set({ position: 'written' }, x.written);
        this.set({ position: 'flushed' }, x.flushed);
        this.set({ position: 'latest_end' }, x.latestWalEnd);
        if (s.mode === 'replica') this.set({ position: 'replay' }, x.replay);
      },
    });
    for (const [name, help, field] of [
      ['walstream_wal_receiver_lag_bytes', 'Bytes between the end of WAL known here (latest_end_lsn) and the written, flushed and replayed positions', 'bytes'],
      ['walstream_wal_receiver_lag_seconds', 'How long WAL past the written, flushed and replayed positions has been known here (0 when caught up)', 'seconds'],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['position'] as const,
        registers: [reg],
        collect() {
          this.reset();
          for (const k of ['write', 'flush', 'replay'] as const) {
            const v = cur![field][k];
            if (v !== null) this.set({ position: k }, v);
          }
        },
      });
    }
    new Gauge({
      name: 'walstream_wal_receiver_connected',
      help: '1 while the walreceiver streams from its upstream (pg_stat_wal_receiver.status = streaming)',
      registers: [reg],
      collect() {
        this.set(snap().state === 'streaming' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'walstream_wal_receiver_status',
      help: "pg_stat_wal_receiver.status: 1 for the current one, 0 for the others",
      labelNames: ['status'] as const,
      registers: [reg],
      collect() {
        for (const st of WALRCV_STATE_NAMES) this.set({ status: st }, snap().state === st ? 1 : 0);
      },
    });
    new Gauge({
      name: 'walstream_wal_receiver_received_tli',
      help: "pg_stat_wal_receiver.received_tli: the timeline of the last WAL received",
      registers: [reg],
      collect() {
        this.set(snap().receivedTli);
      },
    });
    new Gauge({
      name: 'walstream_wal_receiver_info',
      help: "The standby's application_name (as the primary's pg_stat_replication shows it), slot_name and mode",
      labelNames: ['application_name', 'slot_name', 'mode'] as const,
      registers: [reg],
      collect() {
        this.set({ application_name: s.options.primaryConninfo.applicationName ?? '', slot_name: s.options.primarySlotName ?? '', mode: s.mode }, 1);
      },
    });
    new Gauge({
      name: 'walstream_replay_paused',
      help: "pg_get_wal_replay_pause_state(): 1 while replay is paused (or a pause is requested)",
      registers: [reg],
      collect() {
        this.set(s.replayPauseState === 'not paused' ? 0 : 1);
      },
    });
    new Gauge({
      name: 'walstream_last_xact_replay_timestamp_seconds',
      help: 'pg_last_xact_replay_timestamp(): commit time (Unix seconds, the primary\'s clock) of the last replayed transaction',
      registers: [reg],
      collect() {
        const t = snap().lastCommitTime;
        if (s.mode === 'replica' && t > 0) this.set(t / 1e6 + PG_EPOCH_UNIX_S);
      },
    });
    followCounter(reg, 'walstream_wal_receiver_connects_total', 'Connections of the walreceiver that reached streaming', () => s.receiverEvents.connections);
    followCounter(reg, 'walstream_wal_receiver_reconnects_total', 'Connections after the first (the upstream went away, or the standby was re-pointed)', () => Math.max(0, s.receiverEvents.connections - 1));
    followCounter(reg, 'walstream_wal_receiver_received_bytes_total', 'WAL bytes received', () => cur?.snapshot.bytesReceived);
    followCounter(reg, 'walstream_wal_receiver_fsyncs_total', 'fdatasync calls of the walreceiver', () => cur?.snapshot.fsyncs);
    followCounter(reg, 'walstream_wal_receiver_messages_total', 'Replication messages received', () => cur?.snapshot.messages);
    followCounter(reg, 'walstream_wal_receiver_replies_sent_total', 'Standby status updates sent', () => cur?.snapshot.repliesSent);
    followCounter(reg, 'walstream_replay_records_total', 'WAL records replayed', () => cur?.snapshot.recordsReplayed);
    followCounter(reg, 'walstream_restartpoints_total', 'Restartpoints completed', () => s.stats().restartpoints);
  }
}

/** Seconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH_UNIX_S = 946_684_800;

const perStandby = new WeakMap<StandbyMetricsSubject, StandbyMetrics>();

/** The metrics of a standby, made on first use and kept while it lives (Standby.metricsRegistry()). */
export function standbyMetrics(s: StandbyMetricsSubject): StandbyMetrics {
  let m = perStandby.get(s);
  if (m === undefined) {
    m = new StandbyMetrics(s);
    perStandby.set(s, m);
  }
  return m;
}
