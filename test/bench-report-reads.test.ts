// `walstream bench reads` as users run it (two thread counts, a short point each, a light write
// load): its --json validates against the schema, its text report's headings match the snapshot,
// its --html report draws both charts (reads/s per thread count beside the primary and piscina;
// commits/s achieved) in headless Chromium. Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReadsResult } from '../bench/reads.js';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench reads: --json valid, text headings, HTML charts in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-reads-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'reads', ['--seconds', '0.3', '--threads', '1,2', '--rate', '500', '--keys', '500']);
  const r = result as unknown as ReadsResult;
  // every target at every thread count, in the order run; every point read something
  assert.deepEqual(r.points.map((x) => `${x.target}/${x.threads}`), ['standby/1', 'primary/1', 'piscina/1', 'standby/2', 'primary/2', 'piscina/2']);
  for (const x of r.points) assert.ok(x.reads > 0, `${x.target}/${x.threads} read`);
  assert.deepEqual(r.ratios.map((x) => x.threads), [1, 2]);
  assert.equal(r.targetCommitsPerSec, 500);
  assert.deepEqual(chartIds, ['reads-throughput', 'reads-commits']);
});
