// `walstream bench sync` as users run it, in a tiny configuration (one walstream standby, one real
// PostgreSQL 15 primary + standby, two levels, one committer): its --json validates against the
// schema, its text report's headings match the snapshot, its --html report draws every chart
// (throughput per level against PostgreSQL and raw fdatasync, a latency CDF per synchronous_commit
// level) in headless Chromium; the JSON has the documented shape, every figure is positive,
// PostgreSQL's remote_receive is null, and the run leaves no directory or postmaster behind.
// Structure only, never a figure's size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { PG_STANDBY_DIR_PREFIX, type runSyncBench } from '../bench/sync.js';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

function postmastersUnder(dirPart: string): string[] {
  const r = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.includes('postgres') && l.includes(dirPart));
}

test('bench sync: --json valid, text headings, HTML charts in Chromium; JSON shape, positive figures, ratios, PostgreSQL remote_receive null, everything cleaned up', async (t) => {
  const tmp = tmpDir('walstream-report-sync-');
  t.after(() => rmrf(tmp));
  const standbyDirsBefore = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_STANDBY_DIR_PREFIX));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'sync', ['--seconds', '0.3', '--levels', 'on,remote_receive', '--committers', '1', '--standbys', '1']);
  assert.deepEqual(chartIds, ['sync-throughput', 'sync-cdf-on', 'sync-cdf-remote_receive']);
  const res = result as unknown as Awaited<ReturnType<typeof runSyncBench>>;
  assert.equal(res.bench, 'sync');
  assert.ok(res.rawFsync.opsPerSec > 0 && res.rawFsync.p50Ms > 0, JSON.stringify(res.rawFsync));
  assert.ok(res.elapsedSeconds > 0);
  assert.equal(res.walstream.length, 1);
  const ours = res.walstream[0]!;
  assert.equal(ours.standbys, 1);
  assert.equal(ours.synchronous_standby_names, 's1');
  assert.deepEqual(ours.points.map((p) => [p.synchronous_commit, p.committers]), [['on', 1], ['remote_receive', 1]]);
  for (const p of ours.points) {
    assert.ok(p.commitsPerSec! > 0, `ours ${p.synchronous_commit}: commits/s ${p.commitsPerSec}`);
    assert.ok(p.p50Ms! > 0 && p.p99Ms! >= p.p50Ms!, `ours ${p.synchronous_commit}: p50 ${p.p50Ms} p99 ${p.p99Ms}`);
  }
  // Latency mode (committerFlush) at 1 committer, same levels.
  assert.equal(res.walstreamLatencyMode.length, 1, 'one latency-mode configuration per standby count');
  const lm = res.walstreamLatencyMode[0]!;
  assert.equal(lm.committerFlush, true);
  assert.equal(lm.standbys, 1);
  assert.deepEqual(lm.points.map((p) => [p.synchronous_commit, p.committers]), [['on', 1], ['remote_receive', 1]]);
  for (const p of lm.points) assert.ok(p.commitsPerSec! > 0 && p.p50Ms! > 0, JSON.stringify(p));
  assert.ok(res.postgres);
  const [pgOn, pgRecv] = res.postgres.points;
  assert.equal(pgOn!.synchronous_commit, 'on');
  assert.ok(pgOn!.commitsPerSec! > 0 && pgOn!.p50Ms! > 0 && pgOn!.p99Ms! >= pgOn!.p50Ms!, JSON.stringify(pgOn));
  assert.deepEqual(pgRecv, { synchronous_commit: 'remote_receive', committers: 1, commitsPerSec: null, p50Ms: null, p99Ms: null, cdf: [] });
  assert.equal(res.ratios.length, 2);
  assert.ok(res.ratios[0]!.oursOverPostgres['1']! > 0);
  assert.equal(res.ratios[1]!.oursOverPostgres['1'], null);
  // Cleanup: the PostgreSQL standby's directory and postmaster are gone (the run's directory is
  // checked empty above).
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_STANDBY_DIR_PREFIX) && !standbyDirsBefore.includes(f)), []);
  assert.deepEqual(postmastersUnder(PG_STANDBY_DIR_PREFIX), []);
});
