// `walstream bench stream` as users run it, in a tiny configuration (32 MiB per side, one run per
// pairing, two short live rounds with one standby over TCP, real PostgreSQL walsender and
// pg_receivewal): its --json validates against the schema, its text report's headings match the
// snapshot, its --html report draws every chart (catch-up bars per pairing against PostgreSQL and
// the limit, latency CDF, per-hop breakdown, lag over time) in headless Chromium; every pairing of
// the catch-up matrix ran and moved the whole volume, the ratios are those of the medians, the disk
// and TCP ceilings are there, the live round has latencies and its floor, and the run leaves
// nothing in the directory it was given and no postmaster behind. Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { runStreamBench } from '../bench/stream.js';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench stream: --json valid, text headings, HTML charts in Chromium; every pairing moves the volume, ratios of medians, ceilings, live rounds, cleanup', async (t) => {
  const tmp = tmpDir('walstream-report-stream-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'stream', [
    '--mib', '32', '--runs', '1', '--live-seconds', '0.3', '--live-rounds', '2', '--rate', '500', '--standbys', '1', '--transports', 'tcp',
  ]);
  assert.deepEqual(chartIds, ['stream-catchup', 'stream-cdf-1', 'stream-hops', 'stream-lag-1']);
  const res = result as unknown as Awaited<ReturnType<typeof runStreamBench>>;
  const c = res.catchup;
  const pairings = [
    c.walstream_walsender_to_walstream_walreceiver,
    c.postgresql_walsender_to_pg_receivewal,
    c.walstream_walsender_to_walstream_walreceiver_in_process_ring,
    c.warm_walstream_standby.flushed,
    c.warm_walstream_standby.replayed,
    c.walstream_walsender_to_pg_receivewal,
    c.postgresql_walsender_to_walstream_walreceiver,
    c.no_sync.walstream_walsender_to_pg_receivewal,
    c.no_sync.postgresql_walsender_to_pg_receivewal,
    c.discarding_client.walstream_walsender,
    c.discarding_client.postgresql_walsender,
  ];
  for (const p of pairings) {
    assert.equal(p!.runs.length, 1);
    assert.ok(p!.mbPerSec > 0, JSON.stringify(p));
    assert.ok(p!.bytes >= 32 * 1024 * 1024 - 16 * 1024 * 1024, `the whole volume moved: ${p!.bytes}`);
  }
  const r = c.ratios;
  assert.equal(r.ours_end_to_end_vs_postgresql_end_to_end, +(c.walstream_walsender_to_walstream_walreceiver!.mbPerSec / c.postgresql_walsender_to_pg_receivewal!.mbPerSec).toFixed(2));
  assert.equal(r.pg_receivewal_fed_by_ours_vs_by_postgresql, +(c.walstream_walsender_to_pg_receivewal!.mbPerSec / c.postgresql_walsender_to_pg_receivewal!.mbPerSec).toFixed(2));
  assert.ok(c.raw_loopback_tcp_node.mbPerSec > 0);
  const disk = c.raw_disk_segment_writes;
  assert.ok(disk.zeroFilledMbPerSec > 0 && disk.sparseMbPerSec > 0 && disk.allocatedMbPerSec > 0, JSON.stringify(disk));
  assert.equal(res.live.runs.length, 1);
  const live = res.live.runs[0]!;
  assert.equal(live.standbys, 1);
  assert.ok(live.floor.p50Ms > 0 && live.floor.p99Ms >= live.floor.p50Ms);
  assert.equal(live.runs.length, 1);
  assert.ok(live.runs[0]!.commits > 0 && live.runs[0]!.p50Ms > 0 && live.runs[0]!.p99Ms >= live.runs[0]!.p50Ms, JSON.stringify(live.runs[0]));
  // With one standby every hop is traced: six hops, in chain order, each with sane figures.
  const hops = live.runs[0]!.hops!;
  assert.deepEqual(hops.map((h) => h.hop), ['flushed → acknowledged', 'flushed → sent', 'sent → received', 'received → standbyFlushed', 'standbyFlushed → replayed', 'replayed → visible']);
  for (const h of hops) assert.ok(h.p50Ms >= 0 && h.p99Ms >= h.p50Ms && h.slowestPercentMeanMs >= 0, JSON.stringify(h));
  // The standby's write + fdatasync hop is measured (how long it takes depends on the disk).
  assert.ok(hops[3]!.p50Ms > 0, JSON.stringify(hops[3]));
  // Two interleaved rounds, each listed; the figures are medians of them (the lower of two).
  assert.equal(live.runs[0]!.rounds.length, 2);
  assert.equal(live.floor.rounds.length, 2);
  assert.equal(live.runs[0]!.p99Ms, Math.min(...live.runs[0]!.rounds.map((r) => r.p99Ms)));
  assert.equal(live.floor.p50Ms, Math.min(...live.floor.rounds.map((r) => r.p50Ms)));
  // The shape of the tail, ours and the floor's: the slowest 1 % grouped by 5 ms windows.
  for (const tail of [live.runs[0]!.tail, live.floor.tail]) {
    assert.equal(tail.windowMs, 5);
    assert.ok(tail.slowCommits >= 1 && tail.windows >= 1 && tail.windows <= tail.slowCommits && tail.mostInOneWindow >= 1, JSON.stringify(tail));
  }
  // No postmaster of the run's cluster is left (the run's directory is checked empty above).
  const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes('postgres') && l.includes(path.join(tmp, 'work')));
  assert.deepEqual(ps, []);
});
