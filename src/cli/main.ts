// walstream command line: one entry point, sub-commands built with commander.

import '../util/no-native.js'; // first: before anything loads msgpackr
import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { WalstreamError } from '../errors.js';
import { registerBenchCommands } from './bench.js';
import { conninfoArg, DEFAULT_METRICS_PORT, intArg, lsnArg, maxRateArg, numberArg, outputFileArg, portArg, urlArg } from './options.js';
import { MAX_LOAD_CLIENTS, MAX_LOAD_RATE, MAX_LOAD_VALUE_BYTES } from './load.js';
import { dumpWal } from './waldump.js';

/** Exit code of a usage error (bad option, unknown command); errors while running exit with 1. */
const USAGE_EXIT = 2;

/** The package's version, from its package.json (two levels above dist/src/cli or src/cli). */
function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'walstream' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next
    }
  }
  return 'unknown';
}

/** The sub-command names accepted where `unknown` was given on the command line (for an unknown command's error). */
function commandsBeside(unknown: string): string[] {
  let cmd: Command = program;
  for (const arg of process.argv.slice(2)) {
    if (arg === unknown) break;
    const sub = cmd.commands.find((c) => c.name() === arg);
    if (sub) cmd = sub;
  }
  return cmd.commands.map((c) => c.name()).filter((n) => n !== 'help');
}

/** Commander's error text as one line: "walstream: …" (its own "error: " prefix and any suggestion joined). */
function oneLine(str: string): string {
  let line = str.replace(/^error: /, '').replace(/\s*\n+\s*/g, ' ').trim();
  const unknown = /^unknown command '([^']*)'/.exec(line);
  if (unknown) line += ` (expected one of: ${commandsBeside(unknown[1]!).join(', ')})`;
  return `walstream: ${line}\n`;
}

const program = new Command();
// Before any sub-command is added: sub-commands inherit the output and exit settings.
program
  .name('walstream')
  .description('PostgreSQL 15 physical streaming replication, rebuilt in TypeScript')
  .version(packageVersion(), '-V, --version', 'print the version of walstream and exit')
  .configureOutput({ outputError: (str, write) => write(oneLine(str)) })
  .exitOverride((err: CommanderError) => {
    // --help and --version exit 0; help shown for a missing sub-command keeps commander's code;
    // usage errors exit USAGE_EXIT (their one line is already written).
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
    process.exit(err.code === 'commander.help' ? err.exitCode : USAGE_EXIT);
  })
  .showSuggestionAfterError(true);

program
  .command('waldump')
  .description('decode WAL from a data directory, a pg_wal directory or one segment file (like pg_waldump)')
  .argument('<target>', 'data directory, pg_wal directory or segment file')
  .option('--stats', 'print record counts per rmgr/record type instead of records')
  .option('--json', 'print the statistics as JSON')
  .option('-n, --limit <n>', 'stop after n records (integer >= 1)', intArg(1))
  .action((target: string, o: { stats?: boolean; json?: boolean; limit?: number }) => {
    const lines: string[] = [];
    const stats = dumpWal(target, { stats: !!o.stats || !!o.json, ...(o.limit !== undefined ? { limit: o.limit } : {}) }, o.json ? (l) => lines.push(l) : (l) => console.log(l));
    if (o.json) console.log(JSON.stringify(stats, null, 2));
  });

registerBenchCommands(program);

const profile = program
  .command('profile')
  .description('profile WAL apply latency: live (each hop of real traffic from the primary\'s flush to visible on a temporary standby) or replay (an offline WAL range)');

profile
  .command('live')
  .description('attach to a running primary as a temporary standby and report each hop from commit flush to visible, redo cost per record kind and size band, and lag over time')
  .requiredOption('--primary <conninfo>', "primary_conninfo of a walstream or PostgreSQL 15 primary, e.g. 'host=127.0.0.1 port=5433 user=rep password=secret'", conninfoArg)
  .option('--seconds <s>', 'how long to profile (> 0 and <= 3600)', numberArg(0, { exclusive: true, max: 3600 }), 10)
  .option('--dir <dir>', 'parent directory of the temporary standby (default: the temp directory); what the run creates there is removed at the end')
  .option('--keep', "keep the temporary standby's directory (its path is printed on stderr)")
  .option('--json', 'print the result as JSON (schema: bench/schemas/bench.schema.json, #/$defs/profile); no progress output')
  .option('--html <file>', 'also write a self-contained HTML report with charts to <file>', outputFileArg)
  .action(async (o: import('./profile.js').ProfileLiveCliOptions) => {
    const { runProfileLive } = await import('./profile.js');
    await runProfileLive(o);
  });

profile
  .command('replay')
  .description('replay a WAL range into a scratch store: apply time per record kind and size band, records/s and MB/s beside the CRC-32C limit of the same bytes')
  .argument('<target>', 'data directory, pg_wal directory or segment file')
  .option('--from <lsn>', 'start at the first record at or after this WAL location (X/X)', lsnArg)
  .option('--to <lsn>', 'stop before the first record at or after this WAL location (X/X)', lsnArg)
  .option('--json', 'print the result as JSON (schema: bench/schemas/bench.schema.json, #/$defs/profile); no progress output')
  .option('--html <file>', 'also write a self-contained HTML report with charts to <file>', outputFileArg)
  .action(async (target: string, o: import('./profile.js').ProfileReplayCliOptions) => {
    const { runProfileReplay } = await import('./profile.js');
    await runProfileReplay(target, o);
  });

program
  .command('demo')
  .description('run a primary with in-process standbys on an embedded default under load, showing live replication status')
  .option('--seconds <s>', 'how long to run (> 0)', numberArg(0, { exclusive: true }), 15)
  .option('--dir <dir>', 'data directory (default: a temp dir, removed at the end)')
  .option('--standbys <n>', 'in-process standbys (integer from 0 to 16)', intArg(0, 16), 2)
  .option('--load <rate>', `commits/s of the load (integer from 1 to ${MAX_LOAD_RATE}; default: as fast as the clients commit)`, intArg(1, MAX_LOAD_RATE))
  .option('--load-clients <n>', `concurrent committers, like pgbench -c (integer from 1 to ${MAX_LOAD_CLIENTS})`, intArg(1, MAX_LOAD_CLIENTS), 32)
  .action(async (o: import('./demo.js').DemoOptions) => {
    const { runDemo } = await import('./demo.js');
    await runDemo(o);
  });

program
  .command('primary')
  .description('run a primary that serves replication connections until SIGINT/SIGTERM')
  .requiredOption('--data <dir>', 'data directory (initialised if empty or missing)')
  .requiredOption('--port <port>', 'replication TCP port (0 to 65535; 0 = ephemeral)', portArg)
  .option('--host <host>', 'listen address', '127.0.0.1')
  .addOption(new Option('--auth <method>', 'authentication for replication connections').choices(['trust', 'scram-sha-256']).default('trust'))
  .option('--user <name>', 'replication user (with --auth scram-sha-256)')
  .option('--password <password>', 'its password (with --auth scram-sha-256)')
  .option('--max-wal-senders <n>', 'max_wal_senders (integer >= 0)', intArg(0))
  .option('--wal-sender-timeout-ms <ms>', 'wal_sender_timeout in ms (integer >= 0; 0 = none)', intArg(0))
  .option('--wal-segment-size <bytes>', 'segment size in bytes when initialising (a power of 2 from 1 MiB to 1 GiB)', intArg(1))
  .option('--synchronous-standby-names <list>', "synchronous_standby_names, e.g. 'FIRST 1 (s1, s2)'")
  .option('--sync-timeout-ms <ms>', 'bound on a commit\'s wait for synchronous standbys, in ms (integer >= 0)', intArg(0))
  .addOption(new Option('--sync-timeout-policy <policy>', 'what a commit does after --sync-timeout-ms').choices(['block', 'degrade', 'fail']))
  .option('--max-slot-wal-keep-size <bytes>', 'max_slot_wal_keep_size in bytes (integer >= -1; -1 = unlimited)', intArg(-1))
  .option('--metrics-port [port]', `serve Prometheus /metrics, /healthz and /status (for \`walstream status\`) on 127.0.0.1 (0 to 65535; 0 = ephemeral; no value: ${DEFAULT_METRICS_PORT})`, portArg)
  .option('--load <rate>', `run a pgbench-like write load in this process at this many commits/s (integer from 1 to ${MAX_LOAD_RATE}); walstream has no client protocol for transactions, so a load on a primary runs inside it`, intArg(1, MAX_LOAD_RATE))
  .option('--load-clients <n>', `concurrent committers of --load, like pgbench -c (integer from 1 to ${MAX_LOAD_CLIENTS})`, intArg(1, MAX_LOAD_CLIENTS), 8)
  .option('--load-value-bytes <bytes>', `size of the value each --load commit writes (integer from 0 to ${MAX_LOAD_VALUE_BYTES})`, intArg(0, MAX_LOAD_VALUE_BYTES), 100)
  .option('--status-every-ms <ms>', 'print a status line per standby on stderr this often, in ms (integer >= 0; 0 = never; default 1000 with --load, else 0)', intArg(0))
  .action(async (o: import('./primary.js').PrimaryCliOptions) => {
    const { runPrimary } = await import('./primary.js');
    await runPrimary(o);
  });

program
  .command('standby')
  .description('run a standby (hot standby, or wal-only like pg_receivewal) until SIGINT/SIGTERM')
  .requiredOption('--data <dir>', 'data directory (base backup from the primary if empty or missing)')
  .option('--primary <conninfo>', "primary_conninfo, e.g. 'host=127.0.0.1 port=5433 user=rep password=secret' (default: primary_conninfo of the directory's postgresql.auto.conf, as pg_basebackup -R writes it)", conninfoArg)
  .addOption(new Option('--mode <mode>', 'replica: replay and serve reads; wal-only: keep WAL only').choices(['replica', 'wal-only']).default('replica'))
  .option('--slot <name>', 'primary_slot_name')
  .option('--reader-threads <n>', 'hot-standby reader threads (integer >= 0)', intArg(0))
  .option('--status-interval-ms <ms>', 'wal_receiver_status_interval in ms (integer >= 0)', intArg(0))
  .option('--receiver-timeout-ms <ms>', 'wal_receiver_timeout in ms (integer >= 0)', intArg(0))
  .option('--retry-interval-ms <ms>', 'wal_retrieve_retry_interval in ms (integer >= 1)', intArg(1))
  .option('--status-every-ms <ms>', 'print a status line on stderr this often, in ms (integer >= 0; 0 = never)', intArg(0), 10_000)
  .option('--port <port>', 'serve replication (cascading walsenders, base backups) on this TCP port of 127.0.0.1, and once promoted (0 to 65535; 0 = ephemeral; replica mode)', portArg)
  .addOption(new Option('--auth <method>', 'authentication for replication connections (with --port)').choices(['trust', 'scram-sha-256']).default('trust'))
  .option('--user <name>', 'replication user (with --auth scram-sha-256)')
  .option('--password <password>', 'its password (with --auth scram-sha-256)')
  .option('--promote-port <port>', 'replication TCP port once promoted, when it differs from --port (0 to 65535)', portArg)
  .option('--promote-trigger-file <path>', 'promote_trigger_file: promote when this file appears (as when `walstream promote` signals)')
  .option('--metrics-port [port]', `serve Prometheus /metrics, /healthz and /status on 127.0.0.1 (0 to 65535; 0 = ephemeral; no value: ${DEFAULT_METRICS_PORT})`, portArg)
  .option('--healthz-max-lag-ms <ms>', '/healthz answers 503 when WAL has waited longer than this for replay (flush in wal-only mode), in ms (integer >= 0)', intArg(0))
  .option('--healthz-max-lag-bytes <bytes>', '/healthz answers 503 when replay (flush in wal-only mode) is more than this many bytes behind the upstream (integer >= 0)', intArg(0))
  .action(async (o: import('./standby.js').StandbyCliOptions) => {
    const { runStandby } = await import('./standby.js');
    await runStandby(o);
  });

program
  .command('promote')
  .description('promote the standby running in a data directory to a primary on a new timeline (like pg_ctl promote)')
  .requiredOption('--data <dir>', "the standby's data directory")
  .option('--no-wait', 'do not wait for the promotion to complete')
  .option('--timeout <seconds>', 'how long to wait (integer >= 1)', intArg(1), 60)
  .action(async (o: { data: string; wait: boolean; timeout: number }) => {
    const { runPromote } = await import('./promote.js');
    await runPromote({ data: o.data, wait: o.wait, timeoutSeconds: o.timeout });
  });

program
  .command('rejoin')
  .description("make an old primary's data directory a standby of the new primary after a failover (refused if it wrote past the fork point, unless rebuilt), then stop")
  .requiredOption('--data <dir>', "the old primary's (or a standby's) data directory")
  .requiredOption('--primary <conninfo>', "the new primary's conninfo, e.g. 'host=127.0.0.1 port=5433 user=rep password=secret'", conninfoArg)
  .option('--rebuild-if-diverged', 'if it diverged: move the directory aside (DIR.diverged-<time>) and take a base backup of the new primary')
  .action(async (o: import('./rejoin.js').RejoinCliOptions) => {
    const { runRejoin } = await import('./rejoin.js');
    await runRejoin(o);
  });

program
  .command('basebackup')
  .description('fill an empty directory with a base backup from a primary, checked against its manifest (like pg_basebackup -X fetch + pg_verifybackup)')
  .requiredOption('--primary <conninfo>', "primary_conninfo, e.g. 'host=127.0.0.1 port=5433 user=rep password=secret'", conninfoArg)
  .requiredOption('--data <dir>', 'data directory (empty or missing)')
  .option('--progress', 'show progress on stderr (a bar on a terminal, a line every 2 s otherwise)')
  .addOption(new Option('--quiet', 'print nothing but errors').conflicts('progress'))
  .option('--max-rate <rate>', 'MAX_RATE: kB/s, or with suffix k or M (32 kB/s to 1 GB/s)', maxRateArg)
  .addOption(new Option('--checkpoint <mode>', 'CHECKPOINT on the primary').choices(['fast', 'spread']).default('fast'))
  .addOption(new Option('--wal <method>', 'none: the standby streams WAL from the redo point; fetch: the WAL needed for consistency in the backup').choices(['fetch', 'none']).default('none'))
  .action(async (o: import('./basebackup.js').BaseBackupCliOptions) => {
    const { runBaseBackupCommand } = await import('./basebackup.js');
    await runBaseBackupCommand(o);
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
  .option('--url <url>', 'the primary\'s metrics endpoint (http:// or https:// URL)', urlArg, `http://127.0.0.1:${DEFAULT_METRICS_PORT}`)
  .option('--json', 'print JSON')
  .action(async (o: import('./status.js').StatusCliOptions) => {
    const { runStatus } = await import('./status.js');
    await runStatus(o);
  });

// Errors while a command runs: one line (PostgreSQL's DETAIL/HINT after it for walstream's own
// errors), exit code 1. WALSTREAM_DEBUG=1 prints the stack as well.
program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof WalstreamError) {
    console.error(`walstream: ${e.message}${e.detail ? `\nDETAIL: ${e.detail}` : ''}${e.hint ? `\nHINT: ${e.hint}` : ''}`);
  } else {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`walstream: ${msg.split('\n')[0]}`);
  }
  if (process.env.WALSTREAM_DEBUG === '1' && e instanceof Error) console.error(e.stack);
  process.exitCode = 1;
});
