// `walstream bench sync` as users run it (one walstream standby, one real PostgreSQL 15 primary +
// standby, two levels, one committer): its --json validates against the schema, its text report's
// headings match the snapshot, its --html report draws every chart (throughput per level against
// PostgreSQL and raw fdatasync, a latency CDF per synchronous_commit level) in headless Chromium.
// Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench sync: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-sync-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'sync', ['--seconds', '0.3', '--levels', 'on,remote_receive', '--committers', '1', '--standbys', '1']);
  const pg = result.postgres as { points: Array<{ synchronous_commit: string; cdf: unknown[] }> };
  assert.deepEqual(pg.points.map((p) => [p.synchronous_commit, p.cdf.length > 0]), [['on', true], ['remote_receive', false]], 'PostgreSQL has no remote_receive');
  assert.deepEqual(chartIds, ['sync-throughput', 'sync-cdf-on', 'sync-cdf-remote_receive']);
});
