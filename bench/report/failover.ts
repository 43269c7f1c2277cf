// The report of `walstream bench failover` (bench/failover.ts): the failover time, ours beside
// PostgreSQL 15 (one column pair per wal_retrieve_retry_interval measured) at p50/p99/max with
// their ratio, every round's figures, and two charts (per-round bars, CDF). A pure function of the
// JSON result (reports.ts dispatches to it).

import type { runFailoverBench } from '../failover.js';
import { ratio, type Cell, type Report } from './model.js';

export type FailoverResult = Awaited<ReturnType<typeof runFailoverBench>>;

/** Nearest-rank CDF points of the rounds' failover times: (ms, percent of rounds at or below). */
function cdf(ms: number[]): Array<{ x: number; y: number }> {
  const s = [...ms].sort((a, b) => a - b);
  return s.map((x, i) => ({ x, y: +(((i + 1) / s.length) * 100).toFixed(2) }));
}

export function failoverReport(r: FailoverResult): Report {
  const w = r.walstream;
  const pgs = r.postgres;
  const name = (p: (typeof pgs)[number]) => `PostgreSQL (retry ${p.walRetrieveRetryIntervalMs} ms)`;
  const n = Math.max(w.rounds.length, ...pgs.map((p) => p.rounds.length));
  const rounds = Array.from({ length: n }, (_, i) => i + 1);
  const at = (side: { rounds: typeof w.rounds }, i: number) => side.rounds.find((x) => x.round === i) ?? null;
  const stat = (k: 'p50Ms' | 'p99Ms' | 'maxMs', label: string): Cell[] => [label, w[k], ...pgs.flatMap((p) => [p[k], ratio(w[k], p[k])])];
  const pg0 = pgs[0]!;
  return {
    bench: 'failover',
    title: `failover time: SIGKILL of the primary → first commit accepted by the promoted standby (${r.committers} committers at synchronous_commit=${r.synchronous_commit}, 1 synchronous standby, ${r.rounds} round${r.rounds === 1 ? "" : "s"} each), beside PostgreSQL 15`,
    tables: [
      {
        title: 'Failover time (reference: PostgreSQL 15 primary + pg_basebackup -R standby, same run; retry = the standby\'s wal_retrieve_retry_interval)',
        columns: ['statistic', 'ours ms', ...pgs.flatMap((p) => [`${name(p)} ms`, 'ratio'])],
        rows: [stat('p50Ms', 'p50'), stat('p99Ms', 'p99'), stat('maxMs', 'max')],
        note: `Promote request — ours: ${w.promote}; PostgreSQL: ${pg0.promote}. First commit — ours: ${w.firstCommit}; PostgreSQL: ${pg0.firstCommit}; a refused attempt is retried after ${r.pollIntervalMs} ms.`
          + ' PostgreSQL 15 promoted just after its walreceiver lost the primary first sleeps out the rest of wal_retrieve_retry_interval (default 5000 ms).',
      },
      {
        title: 'Rounds (commits acknowledged before the kill, and of those lost after the failover)',
        columns: ['round', 'ours ms', 'ours promoted ms', 'ours acknowledged', 'ours lost', ...pgs.flatMap((p) => [`${name(p)} ms`, 'acknowledged', 'lost'])],
        rows: rounds.map((i) => {
          const a = at(w, i);
          return [i, a?.failoverMs ?? null, a?.promotedMs ?? null, a?.commitsAcknowledged ?? null, a?.lostAcknowledged ?? null, ...pgs.flatMap((p) => {
            const b = at(p, i);
            return [b?.failoverMs ?? null, b?.commitsAcknowledged ?? null, b?.lostAcknowledged ?? null];
          })];
        }),
        note: 'ours promoted: SIGKILL → the standby\'s process reported its promotion done; ms: → the first commit it acknowledged.',
      },
    ],
    charts: [
      {
        id: 'failover-rounds', title: 'Failover time per round: walstream beside PostgreSQL 15', kind: 'bar', xLabel: 'round', yLabel: 'ms', logY: true,
        labels: rounds.map(String),
        series: [
          { label: 'walstream', data: rounds.map((i) => at(w, i)?.failoverMs ?? null) },
          ...pgs.map((p) => ({ label: name(p), data: rounds.map((i) => at(p, i)?.failoverMs ?? null) })),
        ],
      },
      {
        id: 'failover-cdf', title: 'Failover time CDF over the rounds', kind: 'cdf', xLabel: 'failover time, ms (log scale)', yLabel: 'percent of rounds at or below',
        series: [
          { label: 'walstream', data: cdf(w.rounds.map((x) => x.failoverMs)) },
          ...pgs.map((p) => ({ label: name(p), data: cdf(p.rounds.map((x) => x.failoverMs)) })),
        ],
      },
    ],
  };
}
