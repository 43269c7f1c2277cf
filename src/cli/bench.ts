// `walstream bench …`: the benchmark sub-commands. Every bench prints a readable table by default
// (ours, the same-run reference — PostgreSQL 15 or the raw limit — and their ratio), its JSON result
// with --json (bench/schemas/<bench>.schema.json), and writes one self-contained HTML report with
// charts with --html FILE. Progress goes to stderr while it runs (a bar on a TTY, plain lines
// otherwise, nothing with --json). Each run works in a directory of its own (inside --dir, or the
// temp directory) and removes it at the end unless --keep. The harness (bench/, development
// packages) is loaded only when a bench runs (bench-loader.ts).

import fs from 'node:fs';
import { Command, Option } from 'commander';
import { Errors } from '../errors.js';
import { loadBench, type BenchHarness } from './bench-loader.js';
import { choiceListArg, intArg, intListArg, numberArg, outputFileArg } from './options.js';

type BenchResult = Parameters<BenchHarness['reportOf']>[0];
type Progress = ReturnType<BenchHarness['progressReporter']>;

interface OutputOptions {
  json?: boolean;
  html?: string;
}

interface WorkOptions {
  dir?: string;
  keep?: boolean;
}

/** The options every bench has. */
function withCommon(c: Command): Command {
  return c
    .option('--json', 'print the result as JSON (schema: bench/schemas/<bench>.schema.json) instead of the table; no progress output')
    .option('--html <file>', 'also write a self-contained HTML report with charts to <file>', outputFileArg)
    .option('--dir <dir>', 'parent directory for the run\'s data (default: the temp directory); what the run creates there is removed at the end')
    .option('--keep', 'keep the run\'s data directory (its path is printed on stderr)');
}

/** Print / write the report of `res` as asked. */
function emit(h: BenchHarness, res: BenchResult, o: OutputOptions): void {
  const report = h.reportOf(res);
  if (o.html !== undefined) {
    fs.writeFileSync(o.html, h.renderHtml(report, res));
    if (!o.json) process.stderr.write(`walstream bench ${report.bench}: HTML report written to ${o.html}\n`);
  }
  if (o.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
  else process.stdout.write(`${h.renderText(report, process.stdout.isTTY === true)}\n`);
}

async function runBench(name: string, o: OutputOptions, run: (h: BenchHarness, progress: Progress) => Promise<BenchResult>): Promise<void> {
  const h = await loadBench();
  const progress = h.progressReporter(name, { quiet: o.json === true });
  let res: BenchResult;
  try {
    res = await run(h, progress);
  } finally {
    progress.done();
  }
  emit(h, res, o);
}

const TRANSPORTS = ['tcp', 'ring'] as const;
/** Standbys per live run: the chain floor (bench/chain-floor.ts) models at most 16. */
const MAX_LIVE_STANDBYS = 16;
/** Load connections in the failover bench: within the PostgreSQL side's max_connections (40) with room for the probes and psql. */
const MAX_FAILOVER_COMMITTERS = 32;

export function registerBenchCommands(program: Command): void {
  const bench = program
    .command('bench')
    .description('benchmarks: a table of ours beside the same-run reference (PostgreSQL 15 or the raw limit) and their ratio; --json, --html FILE (need the development packages, e.g. hdr-histogram-js)');

  withCommon(bench.command('commit'))
    .description('commits/s and latency at 1/8/64/256 committers, synchronous_commit off and on, beside raw fdatasync; 1 KiB inserts cold and in steady state (WAL MB/s)')
    .option('--seconds <s>', 'seconds per measurement (> 0)', numberArg(0, { exclusive: true }), 2)
    .option('--committers <list>', 'comma-separated committer counts (integers >= 1)', intListArg(1), [1, 8, 64, 256])
    .action(async (o: OutputOptions & WorkOptions & { seconds: number; committers: number[] }) => {
      await runBench('commit', o, (h, progress) => h.runCommitBench({ dir: o.dir, keep: o.keep === true, seconds: o.seconds, committers: o.committers, progress }));
    });

  withCommon(bench.command('stream'))
    .description('catch-up MB/s for every pairing of walsender (walstream, PostgreSQL) and receiver (walstream walreceiver, pg_receivewal) beside the raw limits, and live commit-to-visible latency with 1/2/4 standbys beside its floor, same volume, same run')
    .option('--mib <n>', 'WAL volume in MiB per side (integer >= 16)', intArg(16), 1024)
    .option('--runs <n>', 'runs per pairing, interleaved (integer >= 1)', intArg(1), 3)
    .option('--live-seconds <s>', 'seconds per live run (>= 0; 0: no live runs)', numberArg(0), 3)
    .option('--live-rounds <n>', 'interleaved rounds of live runs (ours and the floor); medians are reported (integer >= 1)', intArg(1), 3)
    .option('--rate <n>', 'paced commits/s in the live runs (integer >= 1)', intArg(1), 10_000)
    .option('--standbys <list>', `standby counts for the live runs (integers from 1 to ${MAX_LIVE_STANDBYS})`, intListArg(1, MAX_LIVE_STANDBYS), [1, 2, 4])
    .option('--transports <list>', 'live runs over tcp, ring (in-process standby), or both', choiceListArg(TRANSPORTS), ['tcp', 'ring'])
    .action(async (o: OutputOptions & WorkOptions & { mib: number; runs: number; liveSeconds: number; liveRounds: number; rate: number; standbys: number[]; transports: Array<'tcp' | 'ring'> }) => {
      await runBench('stream', o, (h, progress) => h.runStreamBench({
        volumeMiB: o.mib, runs: o.runs, dir: o.dir, keep: o.keep === true, liveSeconds: o.liveSeconds, liveRounds: o.liveRounds, commitsPerSec: o.rate,
        standbys: o.standbys, liveTransports: o.transports, progress,
      }));
    });

  withCommon(bench.command('standby'))
    .description('standby catch-up MB/s (flushed, replayed), our walreceiver beside pg_receivewal on a real PostgreSQL, live commit-to-visible latency beside its floor')
    .option('--mib <n>', 'WAL volume in MiB for the catch-up runs (integer >= 1)', intArg(1), 256)
    .option('--live-seconds <s>', 'seconds per live run (> 0)', numberArg(0, { exclusive: true }), 3)
    .option('--rate <n>', 'paced commits/s in the live runs (integer >= 1)', intArg(1), 2000)
    .option('--standbys <list>', `standby counts for the live runs (integers from 1 to ${MAX_LIVE_STANDBYS})`, intListArg(1, MAX_LIVE_STANDBYS), [1, 2, 4])
    .option('--transports <list>', 'tcp, ring (in-process standby through SharedArrayBuffer rings), or both', choiceListArg(TRANSPORTS), ['tcp', 'ring'])
    .option('--no-real-pg', 'skip the comparison with a real PostgreSQL walsender and pg_receivewal')
    .action(async (o: OutputOptions & WorkOptions & { mib: number; liveSeconds: number; rate: number; standbys: number[]; transports: Array<'tcp' | 'ring'>; realPg: boolean }) => {
      await runBench('standby', o, (h, progress) => h.runStandbyBench({
        volumeMiB: o.mib, liveSeconds: o.liveSeconds, commitsPerSec: o.rate, standbys: o.standbys, transports: o.transports, realPg: o.realPg, dir: o.dir, keep: o.keep === true, progress,
      }));
    });

  withCommon(bench.command('gc-tail'))
    .description('one live run (commit acknowledged → replayed on every standby) whose threads record their garbage collections: how many of the slowest 1 % of commits overlap a collection, per thread role, beside the share of all commits')
    .option('--standbys <n>', `standbys (integer from 1 to ${MAX_LIVE_STANDBYS})`, intArg(1, MAX_LIVE_STANDBYS), 1)
    .option('--seconds <s>', 'seconds measured, after the warm-up (> 0)', numberArg(0, { exclusive: true }), 3)
    .option('--rate <n>', 'paced commits/s (integer >= 1)', intArg(1), 10000)
    .addOption(new Option('--transport <t>', 'tcp or ring (in-process standby)').choices(TRANSPORTS).default('tcp'))
    .action(async (o: OutputOptions & WorkOptions & { standbys: number; seconds: number; rate: number; transport: 'tcp' | 'ring' }) => {
      await runBench('gc-tail', o, (h, progress) => h.runGcTailBench({ standbys: o.standbys, seconds: o.seconds, rate: o.rate, transport: o.transport, dir: o.dir, keep: o.keep === true, progress }));
    });

  withCommon(bench.command('cascade'))
    .description('commit-to-visible latency p50/p99 one and two levels down a cascade (primary → s1 → s2 over TCP, s1 serving replication), the same commits at both levels, and their ratio')
    .option('--seconds <s>', 'seconds measured, after the warm-up (> 0)', numberArg(0, { exclusive: true }), 3)
    .option('--rate <n>', 'paced commits/s (integer >= 1)', intArg(1), 10_000)
    .action(async (o: OutputOptions & WorkOptions & { seconds: number; rate: number }) => {
      await runBench('cascade', o, (h, progress) => h.runCascadeBench({ seconds: o.seconds, rate: o.rate, dir: o.dir, keep: o.keep === true, progress }));
    });

  withCommon(bench.command('reads'))
    .description('point reads/s from 1/2/4 application threads (openReader on a standby replaying a steady write load), beside the same reads on the primary and through a piscina pool; commits/s achieved')
    .option('--seconds <s>', 'seconds per measured point (> 0)', numberArg(0, { exclusive: true }), 2)
    .option('--threads <list>', 'application thread counts (integers from 1 to 64)', intListArg(1, 64), [1, 2, 4])
    .option('--rate <n>', 'target commits/s of the write load (integer >= 1)', intArg(1), 10_000)
    .option('--keys <n>', 'keys in the table read and written (integer >= 1)', intArg(1), 10_000)
    .action(async (o: OutputOptions & WorkOptions & { seconds: number; threads: number[]; rate: number; keys: number }) => {
      await runBench('reads', o, (h, progress) => h.runReadsBench({ seconds: o.seconds, threads: o.threads, rate: o.rate, keys: o.keys, dir: o.dir, keep: o.keep === true, progress }));
    });

  const SYNC_LEVELS = ['off', 'local', 'remote_receive', 'remote_write', 'on', 'remote_apply'] as const;
  withCommon(bench.command('sync'))
    .description('commit latency p50/p99 and commits/s per synchronous_commit level at 1 and 64 committers with 1 and 2 walstream standbys, beside pgbench -N on a real PostgreSQL 15 primary + standby; ratios')
    .option('--seconds <s>', 'seconds per measured point (> 0)', numberArg(0, { exclusive: true }), 3)
    .option('--quick', 'one second per point')
    .option('--levels <list>', `synchronous_commit levels (some of ${SYNC_LEVELS.join(', ')}; default: all)`, choiceListArg(SYNC_LEVELS))
    .option('--committers <list>', 'committer / pgbench client counts (integers >= 1)', intListArg(1), [1, 64])
    .option('--standbys <list>', 'walstream standby counts (integers >= 1)', intListArg(1), [1, 2])
    .option('--no-real-pg', 'skip the PostgreSQL comparison')
    .action(async (o: OutputOptions & WorkOptions & { seconds: number; quick?: boolean; levels?: Array<(typeof SYNC_LEVELS)[number]>; committers: number[]; standbys: number[]; realPg: boolean }) => {
      await runBench('sync', o, (h, progress) => h.runSyncBench({
        seconds: o.quick ? 1 : o.seconds, levels: o.levels ?? h.BENCH_SYNC_LEVELS, committers: o.committers, standbys: o.standbys, realPg: o.realPg, dir: o.dir, keep: o.keep === true, progress,
      }));
    });

  withCommon(bench.command('basebackup'))
    .description('base backup MB/s for the same amount of data: pg_basebackup from walstream, pg_basebackup from a real PostgreSQL 15 primary, walstream\'s own bootstrap, beside cp -a + fsync of the same files; interleaved rounds, medians')
    .option('--mib <n>', 'data per primary in MiB (integer >= 1)', intArg(1), 256)
    .option('--runs <n>', 'interleaved rounds, one copy of each way per round (integer >= 1)', intArg(1), 3)
    .option('--no-real-pg', 'skip the real PostgreSQL 15 primary')
    .action(async (o: OutputOptions & WorkOptions & { mib: number; runs: number; realPg: boolean }) => {
      await runBench('basebackup', o, (h, progress) => h.runBaseBackupBench({ mib: o.mib, runs: o.runs, realPg: o.realPg, dir: o.dir, keep: o.keep === true, progress }));
    });

  withCommon(bench.command('failover'))
    .description('failover time (SIGKILL of the primary → first commit accepted by the promoted standby, synchronous_commit=on) p50/p99/max over rounds, beside PostgreSQL 15 (pg_basebackup -R standby, pg_ctl promote) in the same run; ratio')
    .option('--rounds <n>', 'failovers per side (integer >= 1)', intArg(1), 10)
    .option('--committers <n>', `concurrent committers / connections of the load (integer from 1 to ${MAX_FAILOVER_COMMITTERS})`, intArg(1, MAX_FAILOVER_COMMITTERS), 8)
    .option('--pg-retry-intervals <list>', 'the PostgreSQL standby\'s wal_retrieve_retry_interval in ms, one PostgreSQL configuration each (distinct integers >= 1; default: 5000 (PostgreSQL\'s default),50)', intListArg(1))
    .action(async (o: OutputOptions & WorkOptions & { rounds: number; committers: number; pgRetryIntervals?: number[] }) => {
      await runBench('failover', o, (h, progress) => h.runFailoverBench({
        rounds: o.rounds, committers: o.committers, pgWalRetrieveRetryIntervalsMs: o.pgRetryIntervals, dir: o.dir, keep: o.keep === true, progress,
      }));
    });

  bench
    .command('report')
    .description('print a result saved with --json as the table again, or write its HTML report')
    .argument('<file>', 'a JSON result of walstream bench … --json or walstream profile … --json')
    .option('--html <file>', 'write the self-contained HTML report with charts to <file> instead of printing the table', outputFileArg)
    .action(async (file: string, o: { html?: string }) => {
      const h = await loadBench();
      let res: unknown;
      try {
        res = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        throw Errors.invalidOption('<file>', `cannot read a JSON result from ${file}: ${(e as Error).message.split('\n')[0]}`);
      }
      const name = (res as { bench?: unknown } | null)?.bench;
      if (typeof name !== 'string' || !(h.REPORTED_BENCHES as readonly string[]).includes(name)) {
        const benches = h.REPORTED_BENCHES.filter((b) => b !== 'profile').join('|');
        throw Errors.invalidOption('<file>', `${file} is not a result of walstream bench ${benches} --json or walstream profile live|replay --json (its "bench" field is ${JSON.stringify(name)})`);
      }
      if (o.html !== undefined) {
        fs.writeFileSync(o.html, h.renderHtml(h.reportOf(res as BenchResult), res));
        process.stderr.write(`walstream bench report: HTML report written to ${o.html}\n`);
      } else {
        emit(h, res as BenchResult, {});
      }
    });
}
