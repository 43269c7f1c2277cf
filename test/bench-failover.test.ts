// `walstream bench failover` as users run it, in a tiny configuration (2 rounds per side, 4
// committers): its --json validates against the schema, its text report's headings match the
// snapshot, its --html report draws both charts (per-round bars, CDF) in headless Chromium; every
// round of both sides failed over after acknowledged commits and lost none of them; p50 ≤ p99 ≤ max;
// the run leaves no directory and no postmaster behind; a bad --rounds is one line naming it.
// Structure and behaviour only, never a figure's size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { FailoverResult } from '../bench/report/failover.js';
import { PG_FAILOVER_DIR_PREFIX } from '../bench/failover-pg.js';
import { benchReportSmoke, STACK_FRAME, walstream } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const ROUNDS = 2;
const COMMITTERS = 4;

function postmastersUnder(dirPart: string): string[] {
  const r = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.includes('postgres') && l.includes(dirPart));
}

test('bench failover: --json valid, text headings, HTML charts in Chromium; every round fails over and loses no acknowledged commit; cleaned up', async (t) => {
  const tmp = tmpDir('walstream-report-failover-');
  t.after(() => rmrf(tmp));
  const pgDirsBefore = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_FAILOVER_DIR_PREFIX));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'failover', ['--rounds', String(ROUNDS), '--committers', String(COMMITTERS)]);
  assert.deepEqual(chartIds, ['failover-rounds', 'failover-cdf']);
  const res = result as unknown as FailoverResult;
  assert.equal(res.rounds, ROUNDS);
  assert.equal(res.committers, COMMITTERS);
  assert.equal(res.synchronous_commit, 'on');
  assert.deepEqual(res.postgres.map((p) => p.walRetrieveRetryIntervalMs), [5000, 50], 'PostgreSQL with its default wal_retrieve_retry_interval and a short one');
  assert.deepEqual(res.ratios.map((x) => x.walRetrieveRetryIntervalMs), [5000, 50]);
  for (const x of res.ratios) for (const k of ['p50', 'p99', 'max'] as const) assert.ok(x[k] !== null && x[k]! > 0, `ratio ${k}: ${JSON.stringify(x)}`);
  assert.ok(res.walstream.rounds.every((r) => r.promotedMs !== undefined && r.promotedMs <= r.failoverMs), 'ours: promoted before its first commit');
  const sides = [['walstream', res.walstream], ...res.postgres.map((p) => [`PostgreSQL ${p.walRetrieveRetryIntervalMs}`, p] as const)] as const;
  for (const [name, side] of sides) {
    assert.deepEqual(side.rounds.map((r) => r.round), [1, 2], `${name}: one entry per round`);
    for (const r of side.rounds) {
      assert.ok(r.commitsAcknowledged > 0, `${name} round ${r.round}: the load committed before the kill`);
      assert.equal(r.lostAcknowledged, 0, `${name} round ${r.round}: every acknowledged commit is on the promoted standby`);
      assert.ok(r.attempts >= 1 && r.failoverMs > 0, `${name} round ${r.round}: ${JSON.stringify(r)}`);
    }
    assert.ok(side.p50Ms <= side.p99Ms && side.p99Ms <= side.maxMs, `${name}: p50 ≤ p99 ≤ max: ${JSON.stringify(side)}`);
    assert.equal(side.maxMs, Math.max(...side.rounds.map((r) => r.failoverMs)), `${name}: max is the slowest round`);
  }
  t.diagnostic(`figures of this run, not asserted: ${JSON.stringify(sides.map(([name, side]) => [name, side.rounds.map((r) => r.failoverMs)]))}`);
  const pgDirsAfter = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_FAILOVER_DIR_PREFIX));
  assert.deepEqual(pgDirsAfter, pgDirsBefore, 'the PostgreSQL directories are removed');
  assert.deepEqual(postmastersUnder(PG_FAILOVER_DIR_PREFIX), [], 'no postmaster left running');
});

test('bench failover: a bad --rounds or --committers is one line naming the option', async () => {
  for (const args of [['--rounds', '0'], ['--rounds', 'x'], ['--committers', '33']]) {
    const r = await walstream(['bench', 'failover', ...args]);
    assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(args[0]!), args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, STACK_FRAME);
  }
});
