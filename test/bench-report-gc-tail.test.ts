// `walstream bench gc-tail` as users run it: a short run's --json validates against the schema,
// its text report's headings match the snapshot, its --html report draws every chart (per-role
// bars, latency CDF, lag over time) in headless Chromium. Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench gc-tail: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-gctail-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'gc-tail', ['--seconds', '0.5', '--rate', '1000']);
  assert.ok((result.commits as number) > 0);
  for (const role of ['main', 'walwriter', 'walsender', 'walreceiver', 'startup']) assert.ok(role in (result.roles as object), `role ${role} reported`);
  assert.ok((result.timeline as unknown[]).length >= 1, 'lag over time');
  assert.deepEqual(chartIds, ['gc-roles', 'gc-cdf', 'gc-lag']);
});
