// Each bench's JSON result as a Report (bench/report/model.ts): the tables printed by default
// (ours, the same-run reference — PostgreSQL 15 or the raw limit —, and their ratio) and the charts
// of `--html`. Pure functions of the result: `walstream bench report FILE` renders a saved result
// again (also a `walstream profile … --json` result: profile-report.ts).

import type { runCommitBench } from '../commit.js';
import { baseBackupReport, type BaseBackupResult } from './basebackup-report.js';
import type { CascadeResult } from '../cascade.js';
import type { GcTailResult } from '../gc-tail.js';
import type { runStandbyBench } from '../standby.js';
import type { runStreamBench } from '../stream.js';
import type { runSyncBench } from '../sync.js';
import type { ReadsResult } from '../reads.js';
import { failoverReport, type FailoverResult } from './failover.js';
import type { ProfileJson } from '../../src/profile/result.js';
import { profileReport } from './profile-report.js';
import { ratio, type ChartSeries, type ChartSpec, type Point, type Report, type Table } from './model.js';

export type CommitResult = Awaited<ReturnType<typeof runCommitBench>>;
export type SyncResult = Awaited<ReturnType<typeof runSyncBench>>;
export type StandbyResult = Awaited<ReturnType<typeof runStandbyBench>>;
export type StreamResult = Awaited<ReturnType<typeof runStreamBench>>;
export type { CascadeResult, GcTailResult, FailoverResult, ReadsResult };
export type BenchResult = CommitResult | SyncResult | StandbyResult | StreamResult | GcTailResult | BaseBackupResult | CascadeResult | FailoverResult | ReadsResult | ProfileJson;

/** The benches that have a report, by the `bench` field of their JSON. */
export const REPORTED_BENCHES = ['commit', 'stream', 'standby', 'sync', 'gc-tail', 'basebackup', 'cascade', 'failover', 'reads', 'profile'] as const;

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
const cdfPoints = (cdf: ReadonlyArray<{ p: number; ms: number }>): Point[] => cdf.map((c) => ({ x: c.ms, y: c.p }));
const cdfChart = (id: string, title: string, series: ChartSeries[]): ChartSpec => ({ id, title, kind: 'cdf', xLabel: 'latency, ms (log scale)', yLabel: 'percent of commits at or below', series });

interface Hop { hop: string; p50Ms: number; p99Ms: number; slowestPercentMeanMs: number }
interface TimelinePt { t: number; meanMs: number; maxMs: number }
interface LiveLike { transport: string; standbys: number; commits: number; p50Ms: number; p99Ms: number; maxMs: number; cdf: Array<{ p: number; ms: number }>; timeline: TimelinePt[]; hops?: Hop[] }

function hopsTable(runs: LiveLike[]): Table | null {
  const withHops = runs.filter((r) => r.hops && r.hops.length > 0);
  if (withHops.length === 0) return null;
  return {
    title: 'Live latency per hop (1 standby): where a commit spends its time',
    columns: ['hop', ...withHops.flatMap((r) => [`${r.transport} p50 ms`, `${r.transport} p99 ms`, `${r.transport} slowest 1 % mean ms`])],
    rows: withHops[0]!.hops!.map((h, i) => [h.hop, ...withHops.flatMap((r) => [r.hops![i]?.p50Ms ?? null, r.hops![i]?.p99Ms ?? null, r.hops![i]?.slowestPercentMeanMs ?? null])]),
  };
}

function hopsChart(runs: LiveLike[], id: string): ChartSpec | null {
  const withHops = runs.filter((r) => r.hops && r.hops.length > 0);
  if (withHops.length === 0) return null;
  return {
    id, title: 'Per-hop breakdown of the live latency, p50 per hop (1 standby)', kind: 'stacked', xLabel: 'transport', yLabel: 'ms',
    labels: withHops.map((r) => r.transport),
    series: withHops[0]!.hops!.map((h, i) => ({ label: h.hop, data: withHops.map((r) => r.hops![i]?.p50Ms ?? null) })),
  };
}

function timelineCharts(runs: LiveLike[], prefix: string): ChartSpec[] {
  const counts = [...new Set(runs.map((r) => r.standbys))];
  return counts
    .map((n): ChartSpec => ({
      id: `${prefix}-lag-${n}`, title: `Commit-to-visible lag over time, ${plural(n, 'standby')} (250 ms buckets)`, kind: 'line', xLabel: 'seconds into the measured window', yLabel: 'ms',
      series: runs.filter((r) => r.standbys === n && r.timeline.length > 0).flatMap((r) => [
        { label: `${r.transport} max`, data: r.timeline.map((t) => ({ x: t.t, y: t.maxMs })) },
        { label: `${r.transport} mean`, data: r.timeline.map((t) => ({ x: t.t, y: t.meanMs })) },
      ]),
    }))
    .filter((c) => c.series.length > 0);
}

// ---------------------------------------------------------------------------------------------

export function commitReport(r: CommitResult): Report {
  const raw = r.rawFsync;
  const levels = [...new Set(r.results.map((x) => x.synchronous_commit))];
  const committers = [...new Set(r.results.map((x) => x.committers))];
  const w = r.walInsert1KiB;
  return {
    bench: 'commit',
    title: `commits of 100-byte values at ${committers.join('/')} committers, synchronous_commit off and on, beside raw 8 KiB write + fdatasync on the same disk (${r.secondsPerPoint} s per point)`,
    tables: [
      {
        title: 'Commits (reference: raw 8 KiB write + fdatasync of the same disk, same run)',
        columns: ['sync commit, committers', 'commits/s', 'p50 ms', 'p99 ms', 'commits/fdatasync', 'raw fdatasync/s', 'ratio'],
        rows: r.results.map((x) => [`${x.synchronous_commit}, ${x.committers}`, x.commitsPerSec, x.p50Ms, x.p99Ms, x.commitsPerFsync, raw.opsPerSec, ratio(x.commitsPerSec, raw.opsPerSec)]),
        note: `raw 8 KiB write + fdatasync: p50 ${raw.p50Ms} ms, p99 ${raw.p99Ms} ms. At synchronous_commit=on each commit waits for an fdatasync; group commit lets one fdatasync carry many (ratio > 1).`,
      },
      {
        title: '1 KiB inserts at synchronous_commit=off (WAL bandwidth)',
        columns: ['state', 'WAL MB/s', 'records/s', 'avg record bytes', 'waits for wal_buffers', 'recycled segments'],
        rows: [
          ['cold (new segments)', w.cold.walMbPerSec, w.cold.recordsPerSec, w.cold.avgRecordBytes, w.cold.ringWaits, null],
          ['steady state (recycled segments)', w.steadyState.walMbPerSec, w.steadyState.recordsPerSec, w.steadyState.avgRecordBytes, w.steadyState.ringWaits, w.steadyState.recycledSegments],
        ],
      },
    ],
    charts: [
      {
        id: 'commit-throughput', title: 'Commits/s per committer count, beside raw fdatasync ops/s (the limit at synchronous_commit=on without group commit)', kind: 'bar',
        xLabel: 'committers', yLabel: 'commits/s', labels: committers.map(String),
        series: [
          ...levels.map((l) => ({ label: `synchronous_commit=${l}`, data: committers.map((c) => r.results.find((x) => x.synchronous_commit === l && x.committers === c)?.commitsPerSec ?? null) })),
          { label: 'raw 8 KiB write + fdatasync', data: committers.map(() => raw.opsPerSec) },
        ],
        logY: true,
      },
      ...levels.map((l) => cdfChart(`commit-cdf-${l}`, `Commit latency CDF, synchronous_commit=${l}`, r.results.filter((x) => x.synchronous_commit === l).map((x) => ({ label: plural(x.committers, 'committer'), data: cdfPoints(x.cdf) })))),
      {
        id: 'commit-wal-insert', title: 'WAL bandwidth of 1 KiB inserts (synchronous_commit=off)', kind: 'bar', xLabel: 'state', yLabel: 'MB/s',
        labels: ['cold', 'steady state'], series: [{ label: 'WAL MB/s', data: [w.cold.walMbPerSec, w.steadyState.walMbPerSec] }],
      },
    ],
  };
}

// ---------------------------------------------------------------------------------------------

export function syncReport(r: SyncResult): Report {
  const pg = r.postgres;
  const keys = r.ratios.map((x) => ({ level: x.synchronous_commit, c: x.committers }));
  const pgPoint = (level: string, c: number) => pg?.points.find((p) => p.synchronous_commit === level && p.committers === c) ?? null;
  const tables: Table[] = r.walstream.map((w) => ({
    title: `walstream with ${plural(w.standbys, 'standby')} (${w.synchronous_standby_names}) vs PostgreSQL 15 with 1 standby (pgbench -N)`,
    columns: ['synchronous_commit, committers', 'ours commits/s', 'ours p50 ms', 'ours p99 ms', 'PostgreSQL commits/s', 'PostgreSQL p50 ms', 'PostgreSQL p99 ms', 'ratio commits/s', 'ratio p50'],
    rows: w.points.map((p) => {
      const q = pgPoint(p.synchronous_commit, p.committers);
      return [`${p.synchronous_commit}, ${p.committers}`, p.commitsPerSec, p.p50Ms, p.p99Ms, q?.commitsPerSec ?? null, q?.p50Ms ?? null, q?.p99Ms ?? null, ratio(p.commitsPerSec, q?.commitsPerSec), ratio(p.p50Ms, q?.p50Ms)];
    }),
    note: pg === null ? 'PostgreSQL was not run (--no-real-pg).' : 'PostgreSQL has no remote_receive level: "—".',
  }));
  for (const lm of r.walstreamLatencyMode) {
    tables.push({
      title: `walstream latency mode (a lone commit fdatasyncs its own WAL), ${plural(lm.standbys, 'standby')}, vs PostgreSQL 15`,
      columns: ['synchronous_commit, committers', 'ours commits/s', 'ours p50 ms', 'ours p99 ms', 'PostgreSQL p50 ms', 'ratio p50'],
      rows: lm.points.map((p) => {
        const q = pgPoint(p.synchronous_commit, p.committers);
        return [`${p.synchronous_commit}, ${p.committers}`, p.commitsPerSec, p.p50Ms, p.p99Ms, q?.p50Ms ?? null, ratio(p.p50Ms, q?.p50Ms)];
      }),
    });
  }
  tables.push({
    title: 'The limit: raw 8 KiB write + fdatasync of the same disk (under every level but off)',
    columns: ['measurement', 'ops/s', 'p50 ms', 'p99 ms'],
    rows: [['8 KiB write + fdatasync', r.rawFsync.opsPerSec, r.rawFsync.p50Ms, r.rawFsync.p99Ms]],
  });
  const labels = keys.map((k) => `${k.level} ×${k.c}`);
  const levels = [...new Set(keys.map((k) => k.level))];
  const charts: ChartSpec[] = [{
    id: 'sync-throughput', title: 'Commits/s per synchronous_commit level and committer count: walstream, PostgreSQL 15, raw fdatasync', kind: 'bar',
    xLabel: 'synchronous_commit × committers', yLabel: 'commits/s', labels,
    series: [
      ...r.walstream.map((w) => ({ label: `walstream, ${plural(w.standbys, 'standby')}`, data: keys.map((k) => w.points.find((p) => p.synchronous_commit === k.level && p.committers === k.c)?.commitsPerSec ?? null) })),
      ...(pg ? [{ label: 'PostgreSQL 15, 1 standby', data: keys.map((k) => pgPoint(k.level, k.c)?.commitsPerSec ?? null) }] : []),
      { label: 'raw 8 KiB write + fdatasync', data: keys.map(() => r.rawFsync.opsPerSec) },
    ],
    logY: true,
  }];
  for (const level of levels) {
    const series: ChartSeries[] = [];
    for (const w of r.walstream) for (const p of w.points.filter((x) => x.synchronous_commit === level && x.cdf.length > 0)) series.push({ label: `walstream ${plural(w.standbys, 'standby')}, ${plural(p.committers, 'committer')}`, data: cdfPoints(p.cdf) });
    for (const p of pg?.points.filter((x) => x.synchronous_commit === level && x.cdf.length > 0) ?? []) series.push({ label: `PostgreSQL, ${plural(p.committers, 'client')}`, data: cdfPoints(p.cdf) });
    if (series.length > 0) charts.push(cdfChart(`sync-cdf-${level}`, `Commit latency CDF, synchronous_commit=${level}`, series));
  }
  return {
    bench: 'sync',
    title: `commit latency and commits/s per synchronous_commit level with walstream standbys, beside pgbench -N on a PostgreSQL 15 primary + standby (${r.secondsPerPoint} s per point)`,
    tables, charts,
  };
}

// ---------------------------------------------------------------------------------------------

function liveTable(title: string, rows: Array<{ run: LiveLike; floor: { p50Ms: number; p99Ms: number } }>): Table {
  return {
    title,
    columns: ['standbys, transport', 'commits', 'p50 ms', 'p99 ms', 'max ms', 'floor p50 ms', 'floor p99 ms', 'ratio p50', 'ratio p99'],
    rows: rows.map(({ run, floor }) => [`${run.standbys}, ${run.transport}`, run.commits, run.p50Ms, run.p99Ms, run.maxMs, floor.p50Ms, floor.p99Ms, ratio(run.p50Ms, floor.p50Ms), ratio(run.p99Ms, floor.p99Ms)]),
    note: 'floor = the same thread hand-offs, loopback TCP message and fdatasyncs with no walstream code, measured in the same run.',
  };
}

export function standbyReport(r: StandbyResult): Report {
  const pipeTcp = r.pipeWithoutDisk.tcp;
  const pipeRing = r.pipeWithoutDisk.ring;
  const rows: Array<[string, number | null, string, number | null]> = [];
  if (r.walOnlyFromRealPostgres) rows.push(['our walreceiver (wal-only) from PostgreSQL 15', r.walOnlyFromRealPostgres.walstreamWalreceiverMbPerSec, 'pg_receivewal, same server and WAL', r.walOnlyFromRealPostgres.pgReceivewalMbPerSec]);
  for (const [c, name, pipe] of [[r.catchupFromWalstreamPrimary, 'tcp', pipeTcp], [r.catchupThroughRing, 'ring', pipeRing]] as const) {
    if (!c) continue;
    rows.push([`standby catch-up over ${name}, flushed`, c.flushedMbPerSec, `byte pipe without disk (${name})`, pipe?.mbPerSec ?? null]);
    rows.push([`standby catch-up over ${name}, replayed`, c.replayedMbPerSec, `byte pipe without disk (${name})`, pipe?.mbPerSec ?? null]);
  }
  if (r.catchupWalInitZeroOff) rows.push(['standby catch-up, wal_init_zero off, flushed', r.catchupWalInitZeroOff.flushedMbPerSec, 'byte pipe without disk (tcp)', pipeTcp?.mbPerSec ?? null]);
  const live: Array<{ run: LiveLike; floor: { p50Ms: number; p99Ms: number } }> = [];
  for (const run of r.live as LiveLike[]) {
    const cmp = r.liveRingOverTcp.find((x) => x.standbys === run.standbys);
    if (cmp) live.push({ run, floor: cmp.floor });
  }
  const runs = r.live as LiveLike[];
  const counts = [...new Set(runs.map((x) => x.standbys))];
  const tables: Table[] = [
    { title: `Catch-up of ${r.volumeMiB} MiB of WAL (reference: PostgreSQL 15, or the limit)`, columns: ['measurement', 'ours MB/s', 'reference', 'reference MB/s', 'ratio'], rows: rows.map(([a, b, c, d]) => [a, b, c, d, ratio(b, d)]) },
    liveTable('Live commit-to-visible latency (reference: the chain floor)', live),
  ];
  const hops = hopsTable(runs);
  if (hops) tables.push(hops);
  const charts: ChartSpec[] = [
    {
      id: 'standby-catchup', title: 'Catch-up MB/s: ours beside PostgreSQL 15 or the limit', kind: 'bar', xLabel: 'measurement', yLabel: 'MB/s',
      labels: rows.map((x) => x[0]), series: [{ label: 'walstream', data: rows.map((x) => x[1]) }, { label: 'reference (PostgreSQL 15 or limit)', data: rows.map((x) => x[3]) }],
      horizontal: true,
    },
    ...counts.map((n) => cdfChart(`standby-cdf-${n}`, `Live latency CDF, ${plural(n, 'standby')}`, [
      ...runs.filter((x) => x.standbys === n).map((x) => ({ label: `walstream over ${x.transport}`, data: cdfPoints(x.cdf) })),
      ...r.liveRingOverTcp.filter((x) => x.standbys === n).map((x) => ({ label: 'floor (no walstream code)', data: cdfPoints(x.floor.cdf) })),
    ])),
  ];
  const hc = hopsChart(runs, 'standby-hops');
  if (hc) charts.push(hc);
  charts.push(...timelineCharts(runs, 'standby'));
  return {
    bench: 'standby',
    title: `standby catch-up MB/s (flushed, replayed) beside pg_receivewal on PostgreSQL 15, live commit-to-visible latency beside its floor`,
    tables, charts,
  };
}

// ---------------------------------------------------------------------------------------------

export function streamReport(r: StreamResult): Report {
  const c = r.catchup;
  const disk = c.raw_disk_segment_writes;
  const tcp = c.raw_loopback_tcp_node.mbPerSec;
  type Sum = { mbPerSec: number; best: number } | undefined;
  const pairs: Array<[string, Sum, string, Sum, string, number]> = [
    ['walstream walsender → walstream walreceiver (TCP)', c.walstream_walsender_to_walstream_walreceiver, 'PostgreSQL → pg_receivewal', c.postgresql_walsender_to_pg_receivewal, 'disk, sparse segments', disk.sparseMbPerSec],
    ['walstream walsender → walstream walreceiver (ring)', c.walstream_walsender_to_walstream_walreceiver_in_process_ring, 'PostgreSQL → pg_receivewal', c.postgresql_walsender_to_pg_receivewal, 'disk, sparse segments', disk.sparseMbPerSec],
    ['warm walstream standby, flushed', c.warm_walstream_standby.flushed, 'PostgreSQL → pg_receivewal', c.postgresql_walsender_to_pg_receivewal, 'disk, allocated segments', disk.allocatedMbPerSec],
    ['warm walstream standby, replayed', c.warm_walstream_standby.replayed, 'PostgreSQL → pg_receivewal', c.postgresql_walsender_to_pg_receivewal, 'disk, allocated segments', disk.allocatedMbPerSec],
    ['walstream walsender → pg_receivewal', c.walstream_walsender_to_pg_receivewal, 'PostgreSQL → pg_receivewal', c.postgresql_walsender_to_pg_receivewal, 'disk, zero-filled segments', disk.zeroFilledMbPerSec],
    ['PostgreSQL walsender → walstream walreceiver', c.postgresql_walsender_to_walstream_walreceiver, 'PostgreSQL → pg_receivewal', c.postgresql_walsender_to_pg_receivewal, 'disk, sparse segments', disk.sparseMbPerSec],
    ['walstream walsender → pg_receivewal --no-sync', c.no_sync.walstream_walsender_to_pg_receivewal, 'PostgreSQL → pg_receivewal --no-sync', c.no_sync.postgresql_walsender_to_pg_receivewal, 'loopback TCP', tcp],
    ['walstream walsender → discarding client', c.discarding_client.walstream_walsender, 'PostgreSQL → discarding client', c.discarding_client.postgresql_walsender, 'loopback TCP', tcp],
  ];
  const liveRows: Array<{ run: LiveLike; floor: { p50Ms: number; p99Ms: number } }> = [];
  const runs: LiveLike[] = [];
  for (const l of r.live.runs) {
    for (const run of l.runs as LiveLike[]) {
      liveRows.push({ run, floor: l.floor });
      runs.push(run);
    }
  }
  const tables: Table[] = [
    {
      title: `Catch-up of ${c.volumeMiB} MiB of WAL per pairing, median of runs (reference: PostgreSQL 15; limit: the disk or loopback TCP alone)`,
      columns: ['pairing', 'ours MB/s', 'PostgreSQL pairing', 'PostgreSQL MB/s', 'ratio', 'limit', 'limit MB/s', 'ratio to limit'],
      rows: pairs.map(([a, ours, b, pg, lim, limMb]) => [a, ours?.mbPerSec ?? null, b, pg?.mbPerSec ?? null, ratio(ours?.mbPerSec, pg?.mbPerSec), lim, limMb, ratio(ours?.mbPerSec, limMb)]),
      note: 'Every receiver writes and fdatasyncs its WAL unless marked --no-sync; the best of each pairing\'s runs is in the JSON (best).',
    },
    {
      title: 'The limits, measured in the same run',
      columns: ['limit', 'MB/s'],
      rows: [
        ['loopback TCP between two Node threads', tcp],
        ['disk: 16 MiB segments zero-filled first (as pg_receivewal)', disk.zeroFilledMbPerSec],
        ['disk: new sparse segments (as walstream catching up)', disk.sparseMbPerSec],
        ['disk: allocated (recycled) segments', disk.allocatedMbPerSec],
      ],
    },
  ];
  if (liveRows.length > 0) tables.push(liveTable('Live commit-to-visible latency, median of rounds (reference: the chain floor)', liveRows));
  const hops = hopsTable(runs);
  if (hops) tables.push(hops);
  const charts: ChartSpec[] = [{
    id: 'stream-catchup', title: 'Catch-up MB/s per pairing: walstream, PostgreSQL 15, and the limit', kind: 'bar', xLabel: 'pairing', yLabel: 'MB/s',
    labels: pairs.map((p) => p[0]),
    series: [
      { label: 'walstream', data: pairs.map((p) => p[1]?.mbPerSec ?? null) },
      { label: 'PostgreSQL 15', data: pairs.map((p) => p[3]?.mbPerSec ?? null) },
      { label: 'limit (disk or loopback TCP)', data: pairs.map((p) => p[5]) },
    ],
    horizontal: true,
  }];
  for (const l of r.live.runs) {
    charts.push(cdfChart(`stream-cdf-${l.standbys}`, `Live latency CDF, ${plural(l.standbys, 'standby')}`, [
      ...(l.runs as LiveLike[]).map((x) => ({ label: `walstream over ${x.transport}`, data: cdfPoints(x.cdf) })),
      { label: 'floor (no walstream code)', data: cdfPoints(l.floor.cdf) },
    ]));
  }
  const hc = hopsChart(runs, 'stream-hops');
  if (hc) charts.push(hc);
  charts.push(...timelineCharts(runs, 'stream'));
  return {
    bench: 'stream',
    title: 'catch-up MB/s for every walsender × receiver pairing beside PostgreSQL 15 and the raw limits; live commit-to-visible latency beside its floor',
    tables, charts,
  };
}

// ---------------------------------------------------------------------------------------------

export function gcTailReport(r: GcTailResult): Report {
  const roles = Object.entries(r.roles).sort((a, b) => a[0].localeCompare(b[0]));
  return {
    bench: 'gc-tail',
    title: `which of the slowest 1 % of live commits (${plural(r.standbys, 'standby')} over ${r.transport}, ${r.rate} commits/s) overlap a garbage collection, per thread role`,
    tables: [
      {
        title: 'Slow commits overlapping a collection (reference: the share of all commits, what chance gives)',
        columns: ['commits', 'p50 ms', 'p99 ms', 'slow commits (≥ p99)', 'slow overlapping a GC', 'share of slow', 'share of all', 'ratio'],
        rows: [[r.commits, r.p50Ms, r.p99Ms, r.slowCommits, r.slowCommitsOverlappingGc, r.slowShareOverlappingGc, r.allShareOverlappingGc, ratio(r.slowShareOverlappingGc, r.allShareOverlappingGc)]],
      },
      {
        title: 'Collections per thread role, inside the measured window',
        columns: ['role', 'threads', 'collections', 'pause total ms', 'pause max ms', 'slow commits overlapping'],
        rows: roles.map(([name, x]) => [name, x.threads, x.collections, x.pauseTotalMs, x.pauseMaxMs, x.slowCommitsOverlapping]),
      },
    ],
    charts: [
      {
        id: 'gc-roles', title: 'Collections and slow commits overlapping them, per thread role', kind: 'bar', xLabel: 'thread role', yLabel: 'count',
        labels: roles.map(([n]) => n), series: [{ label: 'collections', data: roles.map(([, x]) => x.collections) }, { label: 'slow commits overlapping', data: roles.map(([, x]) => x.slowCommitsOverlapping) }],
      },
      cdfChart('gc-cdf', 'Live latency CDF (commit acknowledged → visible on every standby)', [{ label: `${plural(r.standbys, 'standby')} over ${r.transport}`, data: cdfPoints(r.cdf) }]),
      {
        id: 'gc-lag', title: 'Commit-to-visible lag over time (250 ms buckets)', kind: 'line', xLabel: 'seconds into the measured window', yLabel: 'ms',
        series: [{ label: 'max', data: r.timeline.map((t) => ({ x: t.t, y: t.maxMs })) }, { label: 'mean', data: r.timeline.map((t) => ({ x: t.t, y: t.meanMs })) }],
      },
    ],
  };
}

export function cascadeReport(r: CascadeResult): Report {
  const [l1, l2] = r.levels as [CascadeResult['levels'][0], CascadeResult['levels'][0]];
  return {
    bench: 'cascade',
    title: `commit-to-visible latency one and two levels down a cascade (primary → s1 → s2, TCP, ${r.rate} commits/s)`,
    tables: [
      {
        title: 'Commit acknowledged → replayed, per level (the same commits; reference: level 1)',
        columns: ['level', 'standby', 'commits', 'p50 ms', 'p99 ms', 'max ms', 'ratio p50', 'ratio p99'],
        rows: r.levels.map((l) => [l.level, l.standby, r.commits, l.p50Ms, l.p99Ms, l.maxMs, ratio(l.p50Ms, l1.p50Ms), ratio(l.p99Ms, l1.p99Ms)]),
        note: `level 2 / level 1: p50 ${r.ratioP50}, p99 ${r.ratioP99}`,
      },
    ],
    charts: [
      {
        id: 'cascade-levels', title: 'p50 and p99 per level', kind: 'bar', xLabel: 'level', yLabel: 'ms',
        labels: r.levels.map((l) => `level ${l.level}: ${l.standby}`),
        series: [{ label: 'p50', data: [l1.p50Ms, l2.p50Ms] }, { label: 'p99', data: [l1.p99Ms, l2.p99Ms] }],
      },
      cdfChart('cascade-cdf', 'Commit-to-visible CDF per level', r.levels.map((l) => ({ label: `level ${l.level}: ${l.standby}`, data: cdfPoints(l.cdf) }))),
    ],
  };
}

// ---------------------------------------------------------------------------------------------

export function readsReport(r: ReadsResult): Report {
  const threads = [...new Set(r.points.map((x) => x.threads))];
  const pt = (target: string, n: number) => r.points.find((x) => x.target === target && x.threads === n);
  return {
    bench: 'reads',
    title: `point reads of ${r.keys} keys from ${threads.join('/')} application threads while the standby replays a write load (target ${r.targetCommitsPerSec} commits/s, ${r.secondsPerPoint} s per point)`,
    tables: [
      {
        title: 'Reads/s per application thread count (references: the same reads on the primary, and through a piscina pool)',
        columns: ['threads', 'standby reads/s', 'primary reads/s', 'piscina reads/s', 'ratio standby / primary', 'ratio standby / piscina', 'standby scaling vs 1 thread'],
        rows: r.ratios.map((x) => [x.threads, pt('standby', x.threads)?.readsPerSec ?? null, pt('primary', x.threads)?.readsPerSec ?? null, pt('piscina', x.threads)?.readsPerSec ?? null, x.standbyOverPrimary, x.standbyOverPiscina, x.standbyOverOneThread]),
        note: 'standby and primary: openReader(handle) in each thread, reads in place under the store\'s read latch; piscina: ReaderPool, one message each way per read.',
      },
      {
        title: 'Write load while reading (commits/s achieved against the target; replay lag at the end of each point)',
        columns: ['reads from', 'threads', 'commits/s', 'target commits/s', 'ratio', 'replay lag bytes'],
        rows: r.points.map((x) => [x.target, x.threads, x.commitsPerSec, r.targetCommitsPerSec, ratio(x.commitsPerSec, r.targetCommitsPerSec), x.replayLagBytes]),
        note: `over every point: ${r.commitsPerSec} commits/s achieved of ${r.targetCommitsPerSec} targeted.`,
      },
    ],
    charts: [
      {
        id: 'reads-throughput', title: 'Reads/s per application thread count: standby (openReader) beside the primary and a piscina pool', kind: 'bar',
        xLabel: 'application threads', yLabel: 'reads/s', labels: threads.map(String),
        series: ['standby', 'primary', 'piscina'].map((t) => ({ label: t === 'piscina' ? 'piscina pool (standby store)' : `${t} (openReader)`, data: threads.map((n) => pt(t, n)?.readsPerSec ?? null) })),
        logY: true,
      },
      {
        id: 'reads-commits', title: 'Commits/s the write load achieved during each point', kind: 'bar', xLabel: 'application threads', yLabel: 'commits/s', labels: threads.map(String),
        series: ['standby', 'primary', 'piscina'].map((t) => ({ label: `reading from ${t}`, data: threads.map((n) => pt(t, n)?.commitsPerSec ?? null) })),
      },
    ],
  };
}

/** The report of any bench result, by its `bench` field. */
export function reportOf(result: BenchResult): Report {
  switch (result.bench) {
    case 'commit': return commitReport(result);
    case 'sync': return syncReport(result);
    case 'standby': return standbyReport(result);
    case 'stream': return streamReport(result);
    case 'gc-tail': return gcTailReport(result);
    case 'basebackup': return baseBackupReport(result);
    case 'cascade': return cascadeReport(result);
    case 'failover': return failoverReport(result);
    case 'reads': return readsReport(result);
    case 'profile': return profileReport(result);
  }
}
