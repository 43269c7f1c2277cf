// The report of a `walstream profile live|replay` result (src/profile/result.ts): the terminal
// tables and the `--html` charts (per-hop CDFs and percentiles, redo cost per record kind, lag
// over time; offline: apply time per kind beside the CRC-32C limit). A pure function of the JSON
// result, like the bench reports (bench/report/reports.ts), which dispatches here for
// `bench: 'profile'`.

import type { KindCost } from '../../src/profile/record-kind.js';
import type { LiveProfileJson, ProfileJson, ReplayProfileJson } from '../../src/profile/result.js';
import type { ChartSpec, Report, Table } from './model.js';

/** The units line of profile reports. */
const PROFILE_UNITS_LINE = 'Units: latency in ms (µs where a column says so); throughput in MB/s (1 MB/s = 10^6 bytes/s); rates in records/s; ratio = ours / reference';

const cdfPoints = (cdf: ReadonlyArray<{ p: number; ms: number }>) => cdf.map((c) => ({ x: c.ms, y: c.p }));

function kindTable(title: string, rows: KindCost[], note?: string): Table {
  return {
    title,
    columns: ['record kind', 'size band', 'records', 'total ms', 'mean µs', 'max µs'],
    rows: rows.map((k) => [k.kind, k.sizeBand, k.records, k.totalMs, k.meanUs, k.maxUs]),
    ...(note !== undefined ? { note } : {}),
  };
}

function kindChart(id: string, title: string, rows: KindCost[]): ChartSpec {
  return {
    id, title, kind: 'bar', xLabel: 'record kind, size band', yLabel: 'mean µs per record', horizontal: true,
    labels: rows.map((k) => `${k.kind}, ${k.sizeBand}`),
    series: [{ label: 'mean µs', data: rows.map((k) => k.meanUs) }, { label: 'max µs', data: rows.map((k) => k.maxUs) }],
    logY: true,
  };
}

export function liveProfileReport(r: LiveProfileJson): Report {
  const seen = r.hops.filter((h) => h.source !== 'not visible');
  const tables: Table[] = [
    {
      title: `Hops from the primary's flush to visible on the standby (a unit is one XLogData message)`,
      columns: ['hop', 'what', 'seen', 'units', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms'],
      rows: r.hops.map((h) => h.source === 'not visible'
        ? [h.hop, h.what, h.source, null, null, null, null, null, null]
        : [h.hop, h.what, h.source, h.count, h.p50Ms, h.p90Ms, h.p99Ms, h.p999Ms, h.maxMs]),
      note: `${r.window.units} units from ${r.window.startLsn} to ${r.window.endLsn} in ${r.seconds} s (${r.window.unitsIncomplete} not through every stage by the end); upstream: ${r.upstream.kind} ${r.upstream.serverVersion}, ${r.mode}.`,
    },
  ];
  const unseen = r.hops.filter((h) => h.source !== 'measured');
  if (unseen.length > 0) {
    tables.push({ title: 'Hops not measured on one clock, and why', columns: ['hop', 'seen', 'why'], rows: unseen.map((h) => [h.hop, h.source, h.why ?? '']) });
  }
  if (r.mode === 'replica') {
    tables.push(kindTable('Replay cost per record kind and size band (startup worker, redo only)', r.replay.byKind,
      `records replayed in the window: ${r.replay.recordsReplayed}; the rows add up to ${r.replay.recordsByKind}.`));
  }
  tables.push({
    title: `Write, flush and replay lag over time, from the ${r.lagFrom} (250 ms buckets, mean)`,
    columns: ['t s', 'units', 'write lag ms', 'flush lag ms', 'replay lag ms'],
    rows: r.lag.map((p) => [p.t, p.units, p.writeLagMs, p.flushLagMs, p.replayLagMs]),
  });
  const charts: ChartSpec[] = [];
  const withData = seen.filter((h) => h.count > 0);
  if (withData.length > 0) {
    charts.push({ id: 'profile-hop-cdf', title: 'Latency CDF per hop', kind: 'cdf', xLabel: 'ms (log scale)', yLabel: 'percent of units at or below', series: withData.map((h) => ({ label: `${h.hop} (${h.source})`, data: cdfPoints(h.cdf) })) });
    charts.push({
      id: 'profile-hop-percentiles', title: 'Per-hop percentiles', kind: 'bar', xLabel: 'hop', yLabel: 'ms', labels: withData.map((h) => h.hop), logY: true,
      series: (['p50Ms', 'p90Ms', 'p99Ms', 'p999Ms', 'maxMs'] as const).map((k) => ({ label: k.replace(/Ms$/, '').replace('p999', 'p99.9'), data: withData.map((h) => Math.max(h[k], 0.001)) })),
    });
  }
  if (r.replay.byKind.length > 0) charts.push(kindChart('profile-kinds', 'Redo cost per record kind and size band', r.replay.byKind));
  if (r.lag.length > 0) {
    charts.push({
      id: 'profile-lag', title: `Lag over time, from the ${r.lagFrom}`, kind: 'line', xLabel: 'seconds into the window', yLabel: 'ms',
      series: [
        { label: 'write lag', data: r.lag.map((p) => ({ x: p.t, y: p.writeLagMs })) },
        { label: 'flush lag', data: r.lag.map((p) => ({ x: p.t, y: p.flushLagMs })) },
        ...(r.mode === 'replica' ? [{ label: 'replay lag', data: r.lag.filter((p) => p.replayLagMs !== null).map((p) => ({ x: p.t, y: p.replayLagMs! })) }] : []),
      ],
    });
  }
  return {
    bench: 'profile', heading: 'walstream profile live', units: PROFILE_UNITS_LINE,
    title: "each hop of real traffic from the primary's commit flush to visible on the standby, redo cost per record kind, lag over time",
    tables, charts,
  };
}

export function replayProfileReport(r: ReplayProfileJson): Report {
  const tables: Table[] = [
    {
      title: 'Offline replay into a scratch store, beside the CRC-32C limit of the same bytes (same run)',
      columns: ['WAL range', 'records', 'MB', 'records/s', 'replay MB/s', 'CRC-32C MB/s', 'ratio'],
      rows: [[`${r.startLsn} – ${r.endLsn}`, r.records, +(r.bytes / 1e6).toFixed(3), r.recordsPerSec, r.replayMbPerSec, r.crc.mbPerSec, r.ratioToCrc]],
      note: `${r.target}: replay = read, check (CRC-32C included), decode and redo: ${r.replayMs} ms, of which redo ${r.applyMs} ms; CRC-32C (${r.crc.implementation}) of the same ${r.crc.bytes} bytes: ${r.crc.ms} ms. Stopped at ${r.endReason}.`,
    },
    kindTable('Apply time per record kind and size band (redo only)', r.byKind, `the rows add up to ${r.byKind.reduce((a, k) => a + k.records, 0)} of ${r.records} records.`),
    {
      title: 'Apply time per record kind, all sizes',
      columns: ['record kind', 'records', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms'],
      rows: r.kindLatency.map((k) => [k.kind, k.count, k.p50Ms, k.p90Ms, k.p99Ms, k.p999Ms, k.maxMs]),
    },
  ];
  const charts: ChartSpec[] = [
    {
      id: 'replay-throughput', title: 'Replay MB/s beside the CRC-32C limit of the same bytes', kind: 'bar', xLabel: 'measurement', yLabel: 'MB/s', logY: true,
      labels: ['replay (read, check, decode, redo)', 'CRC-32C of the same bytes'], series: [{ label: 'MB/s', data: [r.replayMbPerSec, r.crc.mbPerSec] }],
    },
  ];
  if (r.byKind.length > 0) charts.push(kindChart('replay-kinds', 'Apply time per record kind and size band', r.byKind));
  const withCdf = r.kindLatency.filter((k) => k.cdf.some((c) => c.ms > 0));
  if (withCdf.length > 0) charts.push({ id: 'replay-kind-cdf', title: 'Apply time CDF per record kind', kind: 'cdf', xLabel: 'ms (log scale)', yLabel: 'percent of records at or below', series: withCdf.map((k) => ({ label: k.kind, data: cdfPoints(k.cdf) })) });
  return {
    bench: 'profile', heading: 'walstream profile replay', units: PROFILE_UNITS_LINE,
    title: 'apply time per record kind and size band of an offline WAL range, records/s and MB/s beside the CRC-32C limit',
    tables, charts,
  };
}

export function profileReport(r: ProfileJson): Report {
  return r.profile === 'live' ? liveProfileReport(r) : replayProfileReport(r as ReplayProfileJson);
}
