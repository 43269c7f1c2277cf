// `walstream bench cascade` as users run it: a short run's --json validates against the schema,
// its text report's headings match the snapshot, its --html report draws every chart (p50/p99 per
// level, the CDF per level) in headless Chromium. Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CascadeResult } from '../bench/cascade.js';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench cascade: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-cascade-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'cascade', ['--seconds', '0.5', '--rate', '500']);
  const r = result as unknown as CascadeResult;
  assert.ok(r.commits > 0, `commits counted: ${r.commits}`);
  assert.deepEqual(r.levels.map((l) => l.level), [1, 2]);
  for (const l of r.levels) assert.ok(l.p50Ms <= l.p99Ms && l.p99Ms <= l.maxMs, JSON.stringify(l));
  assert.deepEqual(chartIds, ['cascade-levels', 'cascade-cdf']);
});
