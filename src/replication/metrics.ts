// Monitoring: a prom-client registry for a primary (WAL positions, fsyncs, commits, checkpoints,
// per-walsender positions and lag in bytes and seconds, sync state, synchronous-commit wait
// outcomes) plus prom-client's default process and Node.js metrics. Runs on the thread that owns
// the primary: gauges are filled from a `MetricsSource` at scrape time (collect), sync waits are
// pushed as they end. The registry holds no handle; `primaryMetrics(p)` keeps one per primary
// (Primary.metricsRegistry()). Serving it over HTTP is src/cli/http-endpoint.ts's business; the
// standby's registry is src/standby/standby-metrics.ts.
//
// Names follow PostgreSQL's views: per-walsender series are pg_stat_replication's
// (`walstream_replication_*`, labelled by application_name: stable across reconnections, unlike
// the walsender's pid; two walsenders with one application_name show the one furthest behind).
// Time lag: see src/replication/lag.ts.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Lsn } from '../wal/lsn.js';
import type { SyncWaitResult } from './syncrep-queue.js';
import { SYNC_WAIT_OUTCOMES } from './syncrep-queue.js';

// ---------------------------------------------------------------------------------------------
// Registry

/** What one scrape reads from the primary. Absent parts export nothing. */
export interface MetricsSource {
  primary?: () => {
    insertLsn: Lsn;
    writeLsn: Lsn;
    flushLsn: Lsn;
    commits: number;
    walFsyncs: number;
    walWrites: number;
    walBytesWritten: number;
    checkpoints: number;
  };
  /** The primary's timeline (exported as walstream_timeline). */
  timeline?: () => number;
  /** One entry per walsender (pg_stat_replication-like; positions and lags null when unknown). */
  standbys?: () => Array<{
    applicationName: string;
    clientAddr: string | null;
    state: string;
    syncState: string;
    syncPriority: number;
    lsn: { sent: Lsn | null; write: Lsn | null; flush: Lsn | null; replay: Lsn | null };
    lagBytes: { sent: number | null; write: number | null; flush: number | null; replay: number | null };
    lagSeconds: { write: number | null; flush: number | null; replay: number | null };
  }>;
  slots?: () => Array<{ name: string; active: boolean; walStatus: string | null; retainedBytes: number | null }>;
  syncDegraded?: () => boolean;
}

const SYNC_WAIT_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A counter that follows a cumulative value read at scrape time. */
export function followCounter(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v === undefined) return;
      if (v < last) {
        this.reset();
        last = 0;
      }
      if (v > last) this.inc(v - last);
      last = v;
    },
  });
}

type StandbyRow = ReturnType<NonNullable<MetricsSource['standbys']>>[number];

/** One row per application_name: of several walsenders with one name, the one furthest behind (largest flush lag; unknown counts as largest). */
function byApplicationName(rows: StandbyRow[]): StandbyRow[] {
  const worst = new Map<string, StandbyRow>();
  const behind = (r: StandbyRow) => r.lagBytes.flush ?? Infinity;
  for (const r of rows) {
    const cur = worst.get(r.applicationName);
    if (cur === undefined || behind(r) > behind(cur)) worst.set(r.applicationName, r);
  }
  return [...worst.values()];
}

export class WalstreamMetrics {
  readonly registry: Registry;
  private readonly syncOutcomes: Counter<'outcome' | 'mode'>;
  private readonly syncWaitSeconds: Histogram<'mode'>;

  constructor(private readonly source: MetricsSource = {}, opts: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const reg = (this.registry = opts.registry ?? new Registry());
    const src = this.source;
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: reg });
    new Gauge({
      name: 'walstream_in_recovery',
      help: 'pg_is_in_recovery(): 0 on a primary',
      registers: [reg],
      collect() {
        this.set(0);
      },
    });
    new Gauge({
      name: 'walstream_timeline',
      help: "The node's timeline ID",
      registers: [reg],
      collect() {
        if (src.timeline) this.set(src.timeline());
      },
    });
    let cachedPrimary: ReturnType<NonNullable<MetricsSource['primary']>> | undefined;
    const primary = () => (cachedPrimary = src.primary?.());
    new Gauge({
      name: 'walstream_wal_lsn_bytes',
      help: 'WAL positions of the primary as byte offsets (insert, write, flush)',
      labelNames: ['position'] as const,
      registers: [reg],
      collect() {
        const p = primary();
        if (!p) return;
        this.set({ position: 'insert' }, p.insertLsn);
        this.set({ position: 'write' }, p.writeLsn);
        this.set({ position: 'flush' }, p.flushLsn);
      },
    });
    // The counters below read the snapshot taken by the gauge above in the same scrape.
    followCounter(reg, 'walstream_commits_total', 'Transactions committed', () => cachedPrimary?.commits);
    followCounter(reg, 'walstream_wal_fsyncs_total', 'WAL fdatasync calls', () => cachedPrimary?.walFsyncs);
    followCounter(reg, 'walstream_wal_writes_total', 'WAL write calls', () => cachedPrimary?.walWrites);
    followCounter(reg, 'walstream_wal_written_bytes_total', 'WAL bytes written', () => cachedPrimary?.walBytesWritten);
    followCounter(reg, 'walstream_checkpoints_total', 'Checkpoints completed', () => cachedPrimary?.checkpoints);

    let cachedStandbys: StandbyRow[] = [];
    let senders = 0;
    const labels = (s: StandbyRow, position: string) => ({ application_name: s.applicationName, position });
    new Gauge({
      name: 'walstream_replication_lsn_bytes',
      help: "pg_stat_replication's sent_lsn, write_lsn, flush_lsn and replay_lsn of each standby, as byte offsets",
      labelNames: ['application_name', 'position'] as const,
      registers: [reg],
      collect() {
        this.reset();
        const rows = src.standbys?.() ?? [];
        senders = rows.length;
        cachedStandbys = byApplicationName(rows);
        for (const s of cachedStandbys) {
          for (const k of ['sent', 'write', 'flush', 'replay'] as const) {
            const v = s.lsn[k];
            if (v !== null) this.set(labels(s, k), v);
          }
        }
      },
    });
    // The gauges below read the rows taken by the gauge above in the same scrape.
    new Gauge({
      name: 'walstream_replication_lag_bytes',
      help: "Bytes between the primary's flush position and a standby's position (sent, write, flush, replay)",
      labelNames: ['application_name', 'position'] as const,
      registers: [reg],
      collect() {
        this.reset();
        for (const s of cachedStandbys) {
          for (const k of ['sent', 'write', 'flush', 'replay'] as const) {
            const v = s.lagBytes[k];
            if (v !== null) this.set(labels(s, k), v);
          }
        }
      },
    });
    new Gauge({
      name: 'walstream_replication_lag_seconds',
      help: "pg_stat_replication's write_lag, flush_lag and replay_lag: age of the oldest WAL a standby has not confirmed at each level (0 when caught up)",
      labelNames: ['application_name', 'position'] as const,
      registers: [reg],
      collect() {
        this.reset();
        for (const s of cachedStandbys) {
          for (const k of ['write', 'flush', 'replay'] as const) {
            const v = s.lagSeconds[k];
            if (v !== null) this.set(labels(s, k), v);
          }
        }
      },
    });
    new Gauge({
      name: 'walstream_replication_info',
      help: "One series per standby: pg_stat_replication's client_addr, state and sync_state as labels, sync_priority as the value",
      labelNames: ['application_name', 'client_addr', 'state', 'sync_state'] as const,
      registers: [reg],
      collect() {
        this.reset();
        for (const s of cachedStandbys) this.set({ application_name: s.applicationName, client_addr: s.clientAddr ?? '', state: s.state, sync_state: s.syncState }, s.syncPriority);
      },
    });
    new Gauge({
      name: 'walstream_replication_senders',
      help: 'Walsenders running (rows of pg_stat_replication)',
      registers: [reg],
      collect() {
        if (src.standbys) this.set(senders);
      },
    });
    new Gauge({
      name: 'walstream_replication_slot_retained_bytes',
      help: 'WAL bytes a replication slot holds back (from restart_lsn to the flush position)',
      labelNames: ['slot_name', 'wal_status', 'active'] as const,
      registers: [reg],
      collect() {
        this.reset();
        for (const s of src.slots?.() ?? []) {
          if (s.retainedBytes !== null) this.set({ slot_name: s.name, wal_status: s.walStatus ?? '', active: String(s.active) }, s.retainedBytes);
        }
      },
    });
    new Gauge({
      name: 'walstream_sync_degraded',
      help: '1 while synchronous commit is degraded to local commits (syncTimeoutPolicy degrade)',
      registers: [reg],
      collect() {
        if (src.syncDegraded) this.set(src.syncDegraded() ? 1 : 0);
      },
    });
    this.syncOutcomes = new Counter({
      name: 'walstream_sync_wait_outcomes_total',
      help: 'Commits that waited for synchronous standbys, by outcome (confirmed, notRequired, timeout, degraded, cancelled)',
      labelNames: ['outcome', 'mode'] as const,
      registers: [reg],
    });
    this.syncWaitSeconds = new Histogram({
      name: 'walstream_sync_wait_seconds',
      help: 'Time commits waited for synchronous standbys',
      labelNames: ['mode'] as const,
      buckets: SYNC_WAIT_BUCKETS_S,
      registers: [reg],
    });
    for (const o of SYNC_WAIT_OUTCOMES) this.syncOutcomes.inc({ outcome: o, mode: 'remote_flush' }, 0);
  }

  /** Count one finished synchronous-commit wait. */
  recordSyncWait(r: SyncWaitResult): void {
    this.syncOutcomes.inc({ outcome: r.outcome, mode: r.mode });
    this.syncWaitSeconds.observe({ mode: r.mode }, r.waitedMs / 1000);
  }

  /** The exposition text (what the endpoint serves). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

// ---------------------------------------------------------------------------------------------
// A primary's metrics

/** What metricsForPrimary reads from a primary (Primary satisfies it). */
export interface PrimaryMetricsSubject {
  readonly insertLsn: Lsn;
  readonly flushLsn: Lsn;
  stats(): { writeLsn: Lsn; commits: number; walFsyncs: number; walWrites: number; walBytesWritten: number; checkpoints: number };
  /** pg_stat_replication-like rows (lags null when unknown). */
  readonly timeline: number;
  replicationStatus(): ReadonlyArray<{
    application_name: string;
    client_addr: string | null;
    sent_lsn: Lsn | null;
    write_lsn: Lsn | null;
    flush_lsn: Lsn | null;
    replay_lsn: Lsn | null;
    state: string;
    sync_state: string;
    sync_priority: number;
    sent_lag_bytes: number | null;
    write_lag_bytes: number | null;
    flush_lag_bytes: number | null;
    replay_lag_bytes: number | null;
    write_lag_ms: number | null;
    flush_lag_ms: number | null;
    replay_lag_ms: number | null;
  }>;
  /** pg_replication_slots-like rows. */
  replicationSlots(): ReadonlyArray<{ slot_name: string; active: boolean; wal_status: string | null; restart_lsn: Lsn | null }>;
  readonly syncRep: { readonly degraded: boolean };
  /** Emits 'syncWait' as each synchronous-commit wait ends. */
  on(event: 'syncWait', listener: (r: SyncWaitResult) => void): unknown;
}

const perPrimary = new WeakMap<PrimaryMetricsSubject, WalstreamMetrics>();

/** The registry of a primary, made on first use and kept while the primary lives (Primary.metricsRegistry()). */
export function metricsForPrimary(p: PrimaryMetricsSubject): WalstreamMetrics {
  let m = perPrimary.get(p);
  if (m === undefined) {
    m = newPrimaryMetrics(p);
    perPrimary.set(p, m);
  }
  return m;
}

/** A new registry for a primary: scrapes read it, and every synchronous-commit wait is counted as it ends. */
function newPrimaryMetrics(p: PrimaryMetricsSubject): WalstreamMetrics {
  const m = new WalstreamMetrics({
    primary: () => {
      const st = p.stats();
      return {
        insertLsn: p.insertLsn, writeLsn: st.writeLsn, flushLsn: p.flushLsn, commits: st.commits,
        walFsyncs: st.walFsyncs, walWrites: st.walWrites, walBytesWritten: st.walBytesWritten, checkpoints: st.checkpoints,
      };
    },
    timeline: () => p.timeline,
    standbys: () =>
      p.replicationStatus().map((r) => ({
        applicationName: r.application_name,
        clientAddr: r.client_addr,
        state: r.state,
        syncState: r.sync_state,
        syncPriority: r.sync_priority,
        lsn: { sent: r.sent_lsn, write: r.write_lsn, flush: r.flush_lsn, replay: r.replay_lsn },
        lagBytes: { sent: r.sent_lag_bytes, write: r.write_lag_bytes, flush: r.flush_lag_bytes, replay: r.replay_lag_bytes },
        lagSeconds: {
          write: r.write_lag_ms === null ? null : r.write_lag_ms / 1000,
          flush: r.flush_lag_ms === null ? null : r.flush_lag_ms / 1000,
          replay: r.replay_lag_ms === null ? null : r.replay_lag_ms / 1000,
        },
      })),
    slots: () => {
      const flush = p.flushLsn;
      return p.replicationSlots().map((s) => ({
        name: s.slot_name, active: s.active, walStatus: s.wal_status,
        retainedBytes: s.restart_lsn === null ? null : Math.max(0, flush - s.restart_lsn),
      }));
    },
    syncDegraded: () => p.syncRep.degraded,
  });
  p.on('syncWait', (r: SyncWaitResult) => m.recordSyncWait(r));
  return m;
}
