// `walstream bench basebackup` as users run it (8 MiB per primary, one round, the real PostgreSQL 15
// primary included): its --json validates against the schema and holds one copy of each way, with
// the copy sizes the ways must have (the two walstream backups hold the same files); its text
// report's headings match the snapshot; its --html report draws its chart in headless Chromium.
// Structure only, never a figure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchReportSmoke } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('bench basebackup: --json valid, text headings, HTML chart in Chromium, --dir cleaned', async (t) => {
  const tmp = tmpDir('walstream-report-basebackup-');
  t.after(() => rmrf(tmp));
  const { result, chartIds } = await benchReportSmoke(assert, tmp, 'basebackup', ['--mib', '8', '--runs', '1']);
  const runs = result.runs as Array<{ way: string; bytes: number }>;
  assert.deepEqual(runs.map((r) => r.way), ['pg_basebackup from walstream', 'pg_basebackup from PostgreSQL 15', 'walstream bootstrap from walstream', 'cp -a + fsync of the files']);
  for (const r of runs) assert.ok(r.bytes > 8 * 1024 * 1024, `${r.way} copied the data (${r.bytes} bytes)`);
  // pg_basebackup and the bootstrap copy the same archive from the same primary (the bootstrap moves
  // the manifest aside and writes its own control file; WAL of the same span).
  assert.ok(Math.abs(runs[0]!.bytes - runs[2]!.bytes) <= 1024 * 1024, `same archive: ${runs[0]!.bytes} vs ${runs[2]!.bytes}`);
  assert.deepEqual(chartIds, ['basebackup-throughput']);
});
