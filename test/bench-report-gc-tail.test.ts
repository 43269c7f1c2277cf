// `walstream bench gc-tail` as users run it: a short run's --json validates against the schema,
// its text report's headings match the snapshot, its --html report draws every chart (per-role
// bars, latency CDF, lag over time) in headless Chromium. Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GcTailResult } from '../bench/gc-tail.js';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench gc-tail: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-gctail-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'gc-tail', ['--seconds', '0.5', '--rate', '1000']);
  // How many commits fit, and whether V8 collects in the window, depend on the machine; what must
  // hold is that every thread of the chain reported through the preloaded observer and that the
  // figures are consistent (the analysis itself is checked with exact counts in bench-gc-tail).
  const r = result as unknown as GcTailResult;
  assert.ok(r.commits > 0, `commits counted: ${r.commits}`);
  for (const role of ['main', 'walwriter', 'walsender', 'walreceiver', 'startup']) {
    const x = r.roles[role];
    assert.ok((x?.threads ?? 0) >= 1, `a ${role} thread reported (${JSON.stringify(r.roles)})`);
    assert.ok(x!.collections >= 0 && x!.pauseMaxMs <= x!.pauseTotalMs + 0.01 && x!.slowCommitsOverlapping <= r.slowCommits, JSON.stringify(x));
  }
  assert.ok(r.slowCommits >= 1 && r.slowCommitsOverlappingGc <= r.slowCommits);
  assert.ok((result.timeline as unknown[]).length >= 1, 'lag over time');
  assert.deepEqual(chartIds, ['gc-roles', 'gc-cdf', 'gc-lag']);
});
