// `walstream bench failover` as users run it, in a tiny configuration (2 rounds per side, 4
// committers): its --json validates against the schema, its text report's headings match the
// snapshot, its --html report draws both charts (per-round bars, CDF) in headless Chromium; every
// round of both sides failed over after acknowledged commits and lost none of them; p50 ≤ p99 ≤ max;
// the run leaves no directory and no postmaster behind, also when SIGINT stops it; a bad option is
// one line naming it.
// Structure and behaviour only, never a figure's size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FailoverResult } from '../bench/report/failover.js';
import { PG_FAILOVER_DIR_PREFIX } from '../bench/failover-pg.js';
import { benchReportSmoke, ROOT, STACK_FRAME, walstream } from './helpers/bench-report.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const ROUNDS = 1;
const COMMITTERS = 4;

function processesWith(...parts: string[]): string[] {
  const r = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => parts.every((p) => l.includes(p)));
}
const postmastersUnder = (dirPart: string) => processesWith('postgres', dirPart);

test('bench failover: --json valid, text headings, HTML charts in Chromium; every round fails over and loses no acknowledged commit; cleaned up', async (t) => {
  const tmp = tmpDir('walstream-report-failover-');
  t.after(() => rmrf(tmp));
  const pgDirsBefore = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_FAILOVER_DIR_PREFIX));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'failover', ['--rounds', String(ROUNDS), '--committers', String(COMMITTERS), '--pg-retry-intervals', '50']);
  assert.deepEqual(chartIds, ['failover-rounds', 'failover-cdf']);
  const res = result as unknown as FailoverResult;
  assert.equal(res.rounds, ROUNDS);
  assert.equal(res.committers, COMMITTERS);
  assert.equal(res.synchronous_commit, 'on');
  assert.deepEqual(res.postgres.map((p) => p.walRetrieveRetryIntervalMs), [50], 'PostgreSQL with the wal_retrieve_retry_interval asked for');
  assert.deepEqual(res.ratios.map((x) => x.walRetrieveRetryIntervalMs), [50]);
  for (const x of res.ratios) for (const k of ['p50', 'p99', 'max'] as const) assert.ok(x[k] !== null && x[k]! > 0, `ratio ${k}: ${JSON.stringify(x)}`);
  assert.ok(res.walstream.rounds.every((r) => r.promotedMs !== undefined && r.promotedMs <= r.failoverMs), 'ours: promoted before its first commit');
  const sides = [['walstream', res.walstream], ...res.postgres.map((p) => [`PostgreSQL ${p.walRetrieveRetryIntervalMs}`, p] as const)] as const;
  for (const [name, side] of sides) {
    assert.deepEqual(side.rounds.map((r) => r.round), [1], `${name}: one entry per round`);
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

test('bench failover: SIGINT while our nodes run removes the run\'s directories and leaves no process (exit 130)', async (t) => {
  const tmp = tmpDir('walstream-report-failover-sigint-');
  t.after(() => rmrf(tmp));
  const pgDirsBefore = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_FAILOVER_DIR_PREFIX));
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'walstream.js'), 'bench', 'failover', '--rounds', '1', '--dir', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let armed = false;
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // step 2 is our round: once both nodes are up, their data directories are inside --dir
      if (/step 2\/\d+/.test(err) && !armed) {
        armed = true;
        const interrupt = () => child.kill('SIGINT');
        void waitFor(() => processesWith('failover-node', tmp).length >= 2, 60_000, 'our primary and standby processes', 50).then(interrupt, interrupt);
      }
    });
    child.once('exit', (c) => resolve(c));
  });
  assert.equal(code, 130, err);
  assert.deepEqual(fs.readdirSync(tmp), [], 'nothing left inside --dir');
  await waitFor(() => processesWith('failover-node', tmp).length === 0, 30_000, `our node processes to end: ${processesWith('failover-node', tmp).join('; ')}`, 100);
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(PG_FAILOVER_DIR_PREFIX)), pgDirsBefore, 'the PostgreSQL template is removed');
  await waitFor(() => postmastersUnder(PG_FAILOVER_DIR_PREFIX).length === 0, 30_000, 'no postmaster left', 100);
});
