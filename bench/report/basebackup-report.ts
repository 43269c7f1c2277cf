// The report of `walstream bench basebackup` (bench/basebackup.ts): one table of the ways a copy
// of a primary is taken, each beside real PostgreSQL 15's pg_basebackup and beside the limit (cp -a
// + fsync of the same files) measured in the same run, and one bar chart of their MB/s.

import type { runBaseBackupBench } from '../basebackup.js';
import { ratio, type Report } from './model.js';

export type BaseBackupResult = Awaited<ReturnType<typeof runBaseBackupBench>>;

export function baseBackupReport(r: BaseBackupResult): Report {
  const pg = r.ways.find((w) => w.way === 'pg_basebackup from PostgreSQL 15') ?? null;
  const copy = r.ways.find((w) => w.way === 'cp -a + fsync of the files') ?? null;
  return {
    bench: 'basebackup',
    title: `base backups of about ${r.mib} MiB of data, median of ${r.rounds} interleaved round${r.rounds === 1 ? '' : 's'}, each copy made durable on the same disk`,
    tables: [
      {
        title: 'Base backup MB/s (references: pg_basebackup from PostgreSQL 15, and cp -a + fsync of the same files, same run)',
        columns: ['way', 'MB copied', 'median ms', 'MB/s', 'ratio to PostgreSQL', 'ratio to cp + fsync'],
        rows: r.ways.map((w) => [w.way, +(w.bytes / 1e6).toFixed(1), w.medianMs, w.mbPerSec, ratio(w.mbPerSec, pg?.mbPerSec), ratio(w.mbPerSec, copy?.mbPerSec)]),
        note: 'pg_basebackup runs with -X fetch -c fast and syncs its output; the bootstrap verifies the manifest and fsyncs; MB = bytes of the copy without the manifest.',
      },
    ],
    charts: [
      {
        id: 'basebackup-throughput', title: 'Base backup MB/s per way (median)', kind: 'bar', xLabel: 'way', yLabel: 'MB/s', horizontal: true,
        labels: r.ways.map((w) => w.way), series: [{ label: 'MB/s', data: r.ways.map((w) => w.mbPerSec) }],
      },
    ],
  };
}
