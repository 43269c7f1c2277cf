// walstream command line: one entry point, sub-commands built with commander.

import '../util/no-native.js'; // first: before anything loads msgpackr
import { Command, Option } from 'commander';
import { WalstreamError } from '../errors.js';
import { loadBench } from './bench-loader.js';
import { dumpWal } from './waldump.js';

const program = new Command();
program.name('walstream').description('PostgreSQL 15 physical streaming replication, rebuilt in TypeScript').showHelpAfterError();

program
  .command('waldump')
  .description('decode WAL from a data directory, a pg_wal directory or one segment file (like pg_waldump)')
  .argument('<target>', 'data directory, pg_wal directory or segment file')
  .option('--stats', 'print record counts per rmgr/record type instead of records')
  .option('--json', 'print the statistics as JSON')
  .option('-n, --limit <n>', 'stop after n records', (v) => parseInt(v, 10))
  .action((target: string, o: { stats?: boolean; json?: boolean; limit?: number }) => {
    const lines: string[] = [];
    const stats = dumpWal(target, { stats: !!o.stats || !!o.json, ...(o.limit !== undefined ? { limit: o.limit } : {}) }, o.json ? (l) => lines.push(l) : (l) => console.log(l));
    if (o.json) console.log(JSON.stringify(stats, null, 2));
  });

const bench = program.command('bench').description('benchmarks that print JSON (need the development packages, e.g. hdr-histogram-js)');
bench
  .command('commit')
  .description('commits/s and latency at 1/8/64/256 committers, synchronous_commit off and on, beside raw fdatasync')
  .option('--dir <dir>', 'directory for the data (default: a temp dir)')
  .option('--seconds <s>', 'seconds per measurement', (v) => parseFloat(v), 2)
  .addOption(new Option('--committers <list>', 'comma-separated committer counts').default('1,8,64,256'))
  .option('--record-bench', 'also measure 1 KiB inserts at synchronous_commit=off (WAL MB/s)', true)
  .action(async (o: { dir?: string; seconds: number; committers: string }) => {
    const { runCommitBench } = await loadBench();
    const res = await runCommitBench({ dir: o.dir, seconds: o.seconds, committers: o.committers.split(',').map((s) => parseInt(s, 10)) });
    console.log(JSON.stringify(res, null, 2));
  });

bench
  .command('stream')
  .description('catch-up MB/s for every pairing of walsender (walstream, PostgreSQL) and receiver (walstream walreceiver, pg_receivewal), raw loopback TCP, and live commit-to-visible latency with 1/2/4 standbys, same volume, same run')
  .option('--mib <n>', 'WAL volume in MiB per side', (v) => parseInt(v, 10), 1024)
  .option('--runs <n>', 'runs per pairing (interleaved)', (v) => parseInt(v, 10), 3)
  .option('--live-seconds <s>', 'seconds per live run (0: none)', (v) => parseFloat(v), 3)
  .option('--live-rounds <n>', 'interleaved rounds of live runs (ours and the floor); medians are reported', (v) => parseInt(v, 10), 3)
  .option('--rate <n>', 'paced commits/s in the live runs', (v) => parseInt(v, 10), 10_000)
  .option('--standbys <list>', 'standby counts for the live runs', '1,2,4')
  .option('--transports <list>', 'live runs over tcp, ring (in-process standby), or both', 'tcp,ring')
  .option('--dir <dir>', 'directory for the data (default: a temp dir)')
  .action(async (o: { mib: number; runs: number; liveSeconds: number; liveRounds: number; rate: number; standbys: string; transports: string; dir?: string }) => {
    const { runStreamBench } = await loadBench();
    const transports = o.transports.split(',').map((x) => x.trim());
    if (transports.some((t) => t !== 'tcp' && t !== 'ring')) throw new Error(`--transports: expected tcp and/or ring, got ${o.transports}`);
    const res = await runStreamBench({
      volumeMiB: o.mib, runs: o.runs, dir: o.dir, liveSeconds: o.liveSeconds, liveRounds: o.liveRounds, commitsPerSec: o.rate,
      standbys: o.standbys.split(',').map((x) => parseInt(x, 10)), liveTransports: transports as ('tcp' | 'ring')[],
    });
    console.log(JSON.stringify(res, null, 2));
  });

bench
  .command('standby')
  .description('standby catch-up MB/s (flushed, replayed), our walreceiver beside pg_receivewal on a real PostgreSQL, live commit-to-visible latency')
  .option('--mib <n>', 'WAL volume in MiB for the catch-up runs', (v) => parseInt(v, 10), 256)
  .option('--live-seconds <s>', 'seconds per live run', (v) => parseFloat(v), 3)
  .option('--rate <n>', 'paced commits/s in the live runs', (v) => parseInt(v, 10), 2000)
  .option('--standbys <list>', 'standby counts for the live runs', '1,2,4')
  .option('--transports <list>', 'tcp, ring (in-process standby through SharedArrayBuffer rings), or both', 'tcp,ring')
  .option('--no-real-pg', 'skip the comparison with a real PostgreSQL walsender and pg_receivewal')
  .option('--dir <dir>', 'directory for the data (default: a temp dir)')
  .action(async (o: { mib: number; liveSeconds: number; rate: number; standbys: string; transports: string; realPg: boolean; dir?: string }) => {
    const { runStandbyBench } = await loadBench();
    const transports = o.transports.split(',').map((x) => x.trim());
    if (transports.some((t) => t !== 'tcp' && t !== 'ring')) throw new Error(`--transports: expected tcp and/or ring, got ${o.transports}`);
    console.log(JSON.stringify(await runStandbyBench({ volumeMiB: o.mib, liveSeconds: o.liveSeconds, commitsPerSec: o.rate, standbys: o.standbys.split(',').map((x) => parseInt(x, 10)), transports: transports as ('tcp' | 'ring')[], realPg: o.realPg, dir: o.dir }), null, 2));
  });

bench
  .command('gc-tail')
  .description('one live run (commit acknowledged → replayed on every standby) whose threads record their garbage collections: how many of the slowest 1 % of commits overlap a collection, per thread role, beside the share of all commits')
  .option('--standbys <n>', 'standbys', (v) => parseInt(v, 10), 1)
  .option('--seconds <s>', 'seconds measured (after the warm-up)', (v) => parseFloat(v), 3)
  .option('--rate <n>', 'paced commits/s', (v) => parseInt(v, 10), 10000)
  .addOption(new Option('--transport <t>', 'tcp or ring (in-process standby)').choices(['tcp', 'ring']).default('tcp'))
  .action(async (o: { standbys: number; seconds: number; rate: number; transport: 'tcp' | 'ring' }) => {
    const { runGcTailBench } = await loadBench();
    console.log(JSON.stringify(await runGcTailBench(o), null, 2));
  });

bench
  .command('sync')
  .description('commit latency p50/p99 and commits/s per synchronous_commit level at 1 and 64 committers with 1 and 2 walstream standbys, beside pgbench -N on a real PostgreSQL 15 primary + standby; ratios')
  .option('--seconds <s>', 'seconds per measured point', (v) => parseFloat(v), 3)
  .option('--quick', 'one second per point')
  .option('--levels <list>', 'synchronous_commit levels (default: off,local,remote_receive,remote_write,on,remote_apply)')
  .option('--committers <list>', 'committer / pgbench client counts', '1,64')
  .option('--standbys <list>', 'walstream standby counts', '1,2')
  .option('--no-real-pg', 'skip the PostgreSQL comparison')
  .option('--dir <dir>', 'directory for the data (default: a temp dir)')
  .action(async (o: { seconds: number; quick?: boolean; levels?: string; committers: string; standbys: string; realPg: boolean; dir?: string }) => {
    const { runSyncBench, BENCH_SYNC_LEVELS } = await loadBench();
    const levels = o.levels === undefined ? BENCH_SYNC_LEVELS : o.levels.split(',').map((x) => x.trim());
    const bad = levels.filter((l) => !(BENCH_SYNC_LEVELS as readonly string[]).includes(l));
    if (bad.length > 0) throw new Error(`--levels: unknown level(s) ${bad.join(', ')}; expected ${BENCH_SYNC_LEVELS.join(', ')}`);
    const ints = (s: string) => s.split(',').map((x) => parseInt(x, 10));
    const res = await runSyncBench({ seconds: o.quick ? 1 : o.seconds, levels: levels as typeof BENCH_SYNC_LEVELS, committers: ints(o.committers), standbys: ints(o.standbys), realPg: o.realPg, dir: o.dir });
    console.log(JSON.stringify(res, null, 2));
  });

program
  .command('demo')
  .description('run a primary with in-process standbys on an embedded default under load, showing live replication status')
  .option('--seconds <s>', 'how long to run', (v) => parseFloat(v), 15)
  .option('--dir <dir>', 'data directory (default: a temp dir, removed at the end)')
  .option('--standbys <n>', 'in-process standbys', (v) => parseInt(v, 10), 2)
  .action(async (o: { seconds: number; dir?: string; standbys: number }) => {
    const { runDemo } = await import('./demo.js');
    await runDemo(o);
  });

program
  .command('primary')
  .description('run a primary that serves replication connections until SIGINT/SIGTERM')
  .requiredOption('--data <dir>', 'data directory (initialised if empty or missing)')
  .requiredOption('--port <port>', 'replication TCP port (0 = ephemeral)', (v) => parseInt(v, 10))
  .option('--host <host>', 'listen address', '127.0.0.1')
  .addOption(new Option('--auth <method>', 'authentication for replication connections').choices(['trust', 'scram-sha-256']).default('trust'))
  .option('--user <name>', 'replication user (with --auth scram-sha-256)')
  .option('--password <password>', 'its password (with --auth scram-sha-256)')
  .option('--max-wal-senders <n>', 'max_wal_senders', (v) => parseInt(v, 10))
  .option('--wal-sender-timeout-ms <ms>', 'wal_sender_timeout in ms', (v) => parseInt(v, 10))
  .option('--wal-segment-size <bytes>', 'segment size when initialising', (v) => parseInt(v, 10))
  .option('--synchronous-standby-names <list>', "synchronous_standby_names, e.g. 'FIRST 1 (s1, s2)'")
  .option('--sync-timeout-ms <ms>', 'bound on a commit\'s wait for synchronous standbys', (v) => parseInt(v, 10))
  .addOption(new Option('--sync-timeout-policy <policy>', 'what a commit does after --sync-timeout-ms').choices(['block', 'degrade', 'fail']))
  .option('--max-slot-wal-keep-size <bytes>', 'max_slot_wal_keep_size in bytes (-1 = unlimited)', (v) => parseInt(v, 10))
  .option('--metrics-port <port>', 'serve Prometheus /metrics and /status (for `walstream status`) on 127.0.0.1', (v) => parseInt(v, 10))
  .action(async (o: import('./primary.js').PrimaryCliOptions) => {
    const { runPrimary } = await import('./primary.js');
    await runPrimary(o);
  });

program
  .command('standby')
  .description('run a standby (hot standby, or wal-only like pg_receivewal) until SIGINT/SIGTERM')
  .requiredOption('--data <dir>', 'data directory (base backup from the primary if empty or missing)')
  .requiredOption('--primary <conninfo>', "primary_conninfo, e.g. 'host=127.0.0.1 port=5433 user=rep password=secret'")
  .addOption(new Option('--mode <mode>', 'replica: replay and serve reads; wal-only: keep WAL only').choices(['replica', 'wal-only']).default('replica'))
  .option('--slot <name>', 'primary_slot_name')
  .option('--reader-threads <n>', 'hot-standby reader threads', (v) => parseInt(v, 10))
  .option('--status-interval-ms <ms>', 'wal_receiver_status_interval in ms', (v) => parseInt(v, 10))
  .option('--receiver-timeout-ms <ms>', 'wal_receiver_timeout in ms', (v) => parseInt(v, 10))
  .option('--retry-interval-ms <ms>', 'wal_retrieve_retry_interval in ms', (v) => parseInt(v, 10))
  .option('--status-every-ms <ms>', 'print a status line on stderr this often (0 = never)', (v) => parseInt(v, 10), 10_000)
  .action(async (o: import('./standby.js').StandbyCliOptions) => {
    const { runStandby } = await import('./standby.js');
    await runStandby(o);
  });

program
  .command('controldata')
  .description("print a data directory's control file and the end of valid WAL in pg_wal (like pg_controldata); read-only")
  .argument('<dir>', 'data directory')
  .option('--json', 'print one JSON object')
  .action(async (dir: string, o: import('./controldata.js').ControlDataCliOptions) => {
    const { runControlData } = await import('./controldata.js');
    process.exitCode = runControlData(dir, o);
  });

program
  .command('status')
  .description("print a running primary's pg_stat_replication and replication slots (from its --metrics-port)")
  .option('--url <url>', 'the primary\'s metrics endpoint', 'http://127.0.0.1:9187')
  .option('--json', 'print JSON')
  .action(async (o: import('./status.js').StatusCliOptions) => {
    const { runStatus } = await import('./status.js');
    await runStatus(o);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof WalstreamError) {
    console.error(`walstream: ${e.message}${e.detail ? `\nDETAIL: ${e.detail}` : ''}${e.hint ? `\nHINT: ${e.hint}` : ''}`);
  } else {
    console.error(e);
  }
  process.exitCode = 1;
});
