// `walstream bench sync` in a tiny configuration (one level, one committer, one standby, real
// PostgreSQL primary + standby): the JSON has the documented shape, every figure is positive,
// PostgreSQL's remote_receive is null, and the run leaves no directory or postmaster behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { PG_STANDBY_DIR_PREFIX, runSyncBench } from '../bench/sync.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

function postmastersUnder(dirPart: string): string[] {
  const r = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.includes('postgres') && l.includes(dirPart));
}

test('bench sync: JSON shape, positive figures, ratios, PostgreSQL remote_receive null, everything cleaned up', async (t) => {
  const dir = tmpDir('walstream-benchsync-test-');
  t.after(() => rmrf(dir));
  const root = path.join(dir, 'run');
  const standbyDirsBefore = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_STANDBY_DIR_PREFIX));
  const res = await runSyncBench({ seconds: 0.3, levels: ['on', 'remote_receive'], committers: [1], standbys: [1], dir: root });
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
  assert.ok(JSON.parse(JSON.stringify(res)), 'serialisable');
  // Cleanup: the run's directory (pgbench logs included), the PostgreSQL standby's directory and
  // postmaster are gone.
  assert.equal(fs.existsSync(root), false, 'the --dir the run had to create is removed with it');
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_STANDBY_DIR_PREFIX) && !standbyDirsBefore.includes(f)), []);
  assert.deepEqual(postmastersUnder(PG_STANDBY_DIR_PREFIX), []);
});
