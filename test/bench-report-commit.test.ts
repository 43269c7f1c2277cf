// `walstream bench commit` as users run it: a short run's --json validates against the schema, its
// text report's headings match the snapshot, its --html report draws every chart in headless
// Chromium; the default text run prints the table on stdout and plain progress lines on stderr
// (not a TTY), --keep keeps the run's directory, SIGINT removes it. Figures are never asserted,
// only structure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { benchReportSmoke, headingLines, ROOT, walstream } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench commit: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-commit-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'commit', ['--seconds', '0.2', '--committers', '1,4']);
  const points = result.results as Array<{ synchronous_commit: string; committers: number; cdf: unknown[] }>;
  assert.deepEqual(points.map((p) => `${p.synchronous_commit}/${p.committers}`), ['off/1', 'off/4', 'on/1', 'on/4']);
  for (const p of points) assert.equal(p.cdf.length, 19, 'a CDF per point');
  assert.deepEqual(chartIds, ['commit-throughput', 'commit-cdf-off', 'commit-cdf-on', 'commit-wal-insert']);
});

test('bench commit: the table on stdout, plain progress on stderr, --keep keeps the directory', async (t) => {
  const tmp = tmpDir('walstream-report-commit-text-');
  t.after(() => rmrf(tmp));
  const r = await walstream(['bench', 'commit', '--seconds', '0.1', '--committers', '1', '--dir', tmp, '--keep']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(headingLines(r.stdout).slice(1), [
    'Units: latency in ms; throughput in MB/s (1 MB/s = 10^6 bytes/s); rates in commits/s; ratio = ours / reference',
    '== Commits (reference: raw 8 KiB write + fdatasync of the same disk, same run)',
    '│ sync commit, committers │ commits/s │ p50 ms │ p99 ms │ commits/fdatasync │ raw fdatasync/s │ ratio │',
    '== 1 KiB inserts at synchronous_commit=off (WAL bandwidth)',
    '│ state │ WAL MB/s │ records/s │ avg record bytes │ waits for wal_buffers │ recycled segments │',
  ]);
  const progress = r.stderr.split('\n').filter((l) => /^walstream bench commit: step \d+\/\d+: /.test(l));
  assert.equal(progress.length, 6, `one line per step:\n${r.stderr}`);
  assert.match(progress[0]!, /step 1\/6: raw 8 KiB write \+ fdatasync/);
  assert.match(r.stderr, /walstream bench commit: finished in [\d.]+ s/);
  const kept = /data kept in (\S+)/.exec(r.stderr)?.[1];
  assert.ok(kept && fs.existsSync(path.join(kept, 'data')), `--keep: ${r.stderr}`);
  assert.equal(path.dirname(kept), tmp, 'inside --dir');
});

test('bench commit: SIGINT while it runs removes the run\'s directory (exit 130)', async (t) => {
  const tmp = tmpDir('walstream-report-commit-sigint-');
  t.after(() => rmrf(tmp));
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'walstream.js'), 'bench', 'commit', '--seconds', '5', '--committers', '1', '--dir', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // once the primary is committing, its data directory exists inside the run's directory
      if (/step 2\/\d+/.test(err) && !child.killed) child.kill('SIGINT');
    });
    child.once('exit', (c) => resolve(c));
  });
  assert.equal(code, 130, err);
  assert.deepEqual(fs.readdirSync(tmp), [], 'nothing left inside --dir');
});
