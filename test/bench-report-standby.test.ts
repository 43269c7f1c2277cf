// `walstream bench standby` as users run it (16 MiB catch-up over TCP, the real PostgreSQL 15
// comparison, one short live run with one standby): its --json validates against the schema, its
// text report's headings match the snapshot, its --html report draws every chart (catch-up against
// pg_receivewal and the limit, latency CDF, per-hop breakdown, lag over time) in headless Chromium.
// Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench standby: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-standby-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'standby', ['--mib', '16', '--live-seconds', '0.3', '--rate', '500', '--standbys', '1', '--transports', 'tcp']);
  const live = result.live as Array<{ hops?: unknown[]; timeline: unknown[] }>;
  assert.equal(live.length, 1);
  assert.equal(live[0]!.hops?.length, 6, 'every hop traced with one standby');
  assert.ok(result.walOnlyFromRealPostgres !== null, 'the PostgreSQL comparison ran');
  assert.deepEqual(chartIds, ['standby-catchup', 'standby-cdf-1', 'standby-hops', 'standby-lag-1']);
});
