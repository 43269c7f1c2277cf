// `walstream bench stream` as users run it (32 MiB per side, one run per pairing, one short live
// round with one standby over TCP, real PostgreSQL walsender and pg_receivewal): its --json
// validates against the schema, its text report's headings match the snapshot, its --html report
// draws every chart (catch-up bars per pairing against PostgreSQL and the limit, latency CDF,
// per-hop breakdown, lag over time) in headless Chromium. Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench stream: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-stream-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'stream', [
    '--mib', '32', '--runs', '1', '--live-seconds', '0.3', '--live-rounds', '1', '--rate', '500', '--standbys', '1', '--transports', 'tcp',
  ]);
  const live = (result.live as { runs: Array<{ standbys: number; runs: Array<{ hops?: unknown[] }> }> }).runs;
  assert.deepEqual(live.map((l) => l.standbys), [1]);
  assert.equal(live[0]!.runs[0]!.hops?.length, 6);
  assert.deepEqual(chartIds, ['stream-catchup', 'stream-cdf-1', 'stream-hops', 'stream-lag-1']);
});
