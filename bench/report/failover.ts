// The report of `walstream bench failover` (bench/failover.ts): the failover time, ours beside
// PostgreSQL 15, at p50/p99/max with their ratio, every round's figures, and two charts (per-round
// bars, CDF). A pure function of the JSON result (reports.ts dispatches to it).

import type { runFailoverBench } from '../failover.js';
import { ratio, type Report } from './model.js';

export type FailoverResult = Awaited<ReturnType<typeof runFailoverBench>>;

/** Nearest-rank CDF points of the rounds' failover times: (ms, percent of rounds at or below). */
function cdf(ms: number[]): Array<{ x: number; y: number }> {
  const s = [...ms].sort((a, b) => a - b);
  return s.map((x, i) => ({ x, y: +(((i + 1) / s.length) * 100).toFixed(2) }));
}

export function failoverReport(r: FailoverResult): Report {
  const w = r.walstream;
  const p = r.postgres;
  const n = Math.max(w.rounds.length, p.rounds.length);
  const rounds = Array.from({ length: n }, (_, i) => i + 1);
  const at = (side: typeof w, i: number) => side.rounds.find((x) => x.round === i) ?? null;
  return {
    bench: 'failover',
    title: `failover time: SIGKILL of the primary → first commit accepted by the promoted standby (${r.committers} committers at synchronous_commit=${r.synchronous_commit}, 1 synchronous standby, ${r.rounds} rounds each), beside PostgreSQL 15`,
    tables: [
      {
        title: 'Failover time (reference: PostgreSQL 15 primary + pg_basebackup -R standby, same run)',
        columns: ['statistic', 'ours ms', 'PostgreSQL ms', 'ratio'],
        rows: [
          ['p50', w.p50Ms, p.p50Ms, ratio(w.p50Ms, p.p50Ms)],
          ['p99', w.p99Ms, p.p99Ms, ratio(w.p99Ms, p.p99Ms)],
          ['max', w.maxMs, p.maxMs, ratio(w.maxMs, p.maxMs)],
        ],
        note: `Promote request — ours: ${w.promote}; PostgreSQL: ${p.promote}. First commit — ours: ${w.firstCommit}; PostgreSQL: ${p.firstCommit}; a refused attempt is retried after ${r.pollIntervalMs} ms.`,
      },
      {
        title: 'Rounds (load before the kill; commits acknowledged before it and lost after the failover)',
        columns: ['round', 'ours ms', 'ours load ms', 'ours acknowledged', 'ours lost', 'PostgreSQL ms', 'PostgreSQL load ms', 'PostgreSQL acknowledged', 'PostgreSQL lost'],
        rows: rounds.map((i) => {
          const a = at(w, i);
          const b = at(p, i);
          return [i, a?.failoverMs ?? null, a?.loadMs ?? null, a?.commitsAcknowledged ?? null, a?.lostAcknowledged ?? null, b?.failoverMs ?? null, b?.loadMs ?? null, b?.commitsAcknowledged ?? null, b?.lostAcknowledged ?? null];
        }),
      },
    ],
    charts: [
      {
        id: 'failover-rounds', title: 'Failover time per round: walstream beside PostgreSQL 15', kind: 'bar', xLabel: 'round', yLabel: 'ms',
        labels: rounds.map(String),
        series: [
          { label: 'walstream', data: rounds.map((i) => at(w, i)?.failoverMs ?? null) },
          { label: 'PostgreSQL 15', data: rounds.map((i) => at(p, i)?.failoverMs ?? null) },
        ],
      },
      {
        id: 'failover-cdf', title: 'Failover time CDF over the rounds', kind: 'cdf', xLabel: 'failover time, ms (log scale)', yLabel: 'percent of rounds at or below',
        series: [
          { label: 'walstream', data: cdf(w.rounds.map((x) => x.failoverMs)) },
          { label: 'PostgreSQL 15', data: cdf(p.rounds.map((x) => x.failoverMs)) },
        ],
      },
    ],
  };
}
