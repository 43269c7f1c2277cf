#!/usr/bin/env node
// `npm test`: runs every compiled test file (dist/test/**/*.test.js) with Node's built-in runner,
// TEST_JOBS_DEFAULT files at a time (each file is its own process; tests inside a file run one after
// another), the longest-running files first so that the two lanes end together, each test limited
// to 10 minutes. Output is the readable `spec` reporter; a TAP copy goes to a temp file that is
// parsed for the final line `N passed, N failed` (failed includes cancelled, e.g. timed-out, tests)
// and then removed. Exit code: the runner's (1 if it was killed, or if a test source has no
// compiled file). Compiled files whose test/*.ts source is gone (stale dist/) are skipped, with a
// note.
//
// Arguments:
//   <name> ...           only the files whose path contains any of the names (`npm test -- crc32c`);
//   --tier=T             only one tier (repeatable): `unit` (the engine in this process and its
//                        threads, no PostgreSQL binaries), `integration` (real PostgreSQL 15 tools or
//                        servers as peers), `bench` (smoke runs of the bench scenario runners,
//                        test/bench-*); a file's tier follows from its source (see tierOf);
//   --jobs=N             N files at a time (default: 2, or 1 on a single core; WALSTREAM_TEST_JOBS
//                        sets it too); no test depends on the machine's speed, so files that run
//                        side by side only take longer;
//   --slow-disk[=SPEC]   every fdatasync/fsync of walstream sleeps SPEC microseconds more (N or
//                        MIN-MAX, default 300-3000: slower than the slowest disk day seen on our
//                        machines), through WALSTREAM_FSYNC_DELAY_US (src/util/fsync.ts).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const testTimeoutMs = 10 * 60 * 1000;
/** Test files run side by side by default (the suite's target machine has 2 cores). */
const TEST_JOBS_DEFAULT = Math.min(2, os.availableParallelism());
/**
 * The files that run longest (6 to 30 s each: bench smoke runs, SIGKILL rounds, real PostgreSQL
 * peers), started first so that the lanes finish together; every other file follows in name order.
 */
const LONG_FILES = [
  'bench-stream', 'primary-crash', 'syncrep-standby', 'bench-report-standby', 'standby', 'profile',
  'standby-directio', 'bench-failover', 'bench-sync', 'failover', 'bench-report-commit', 'connection-flood',
].map((name) => `${name}.test.js`);

/** Paths (relative to `dir`) of files under `dir` whose name ends with `suffix`. */
function walk(dir, suffix, rel = '') {
  const out = [];
  let entries;
  try {
    entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...walk(dir, suffix, r));
    else if (e.name.endsWith(suffix)) out.push(r);
  }
  return out;
}

const TIERS = ['unit', 'integration', 'bench'];
const SLOW_DISK_DEFAULT_US = '300-3000';
const filters = [];
const tiers = [];
let jobs = process.env.WALSTREAM_TEST_JOBS ?? String(TEST_JOBS_DEFAULT);
for (const arg of process.argv.slice(2)) {
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
  if (!m) filters.push(arg);
  else if (m[1] === 'tier' && TIERS.includes(m[2])) tiers.push(m[2]);
  else if (m[1] === 'jobs' && m[2] !== undefined) jobs = m[2];
  else if (m[1] === 'slow-disk' && (m[2] === undefined || /^\d+(-\d+)?$/.test(m[2]))) process.env.WALSTREAM_FSYNC_DELAY_US = m[2] ?? process.env.WALSTREAM_FSYNC_DELAY_US ?? SLOW_DISK_DEFAULT_US;
  else {
    console.error(`run-tests: unknown option ${arg} (accepted: --tier=${TIERS.join('|')}, --jobs=N, --slow-disk[=N|MIN-MAX microseconds], or file name parts)`);
    process.exit(2);
  }
}

if (!/^[1-9]\d*$/.test(jobs)) {
  console.error(`run-tests: --jobs (or WALSTREAM_TEST_JOBS) must be a whole number of files at a time, 1 or more; got ${JSON.stringify(jobs)}`);
  process.exit(2);
}

/** Code (not prose) that runs PostgreSQL's binaries: its helpers, its bin directory, a quoted binary name. */
const USES_POSTGRESQL = /helpers\/(pgcluster|pgnode|psql)\.js|startPgReceivewal\(|\bPG_BIN\b|\/usr\/lib\/postgresql|['"`\/](pg_receivewal|pg_waldump|pg_basebackup|pg_verifybackup|pg_ctl|pg_controldata|initdb|psql|postgres)['"` ]/;

/**
 * A test file's tier, from its source: bench smoke tests are test/bench-*; a file that runs
 * PostgreSQL 15's binaries (initdb/postgres through helpers/pgcluster, pg_receivewal, pg_waldump,
 * psql, pg_basebackup, ...) is an integration test; every other file is a unit test.
 */
function tierOf(rel) {
  if (path.basename(rel).startsWith('bench-')) return 'bench';
  const src = fs.readFileSync(path.join(root, 'test', rel.replace(/\.js$/, '.ts')), 'utf8');
  return USES_POSTGRESQL.test(src) ? 'integration' : 'unit';
}
const selected = (p) => (filters.length === 0 || filters.some((f) => p.includes(f))) && (tiers.length === 0 || tiers.includes(tierOf(p)));
const sources = new Set(walk(path.join(root, 'test'), '.test.ts').map((p) => p.replace(/\.ts$/, '.js')));
const compiled = walk(path.join(root, 'dist', 'test'), '.test.js');

let setupProblem = false;
for (const p of compiled) {
  if (!sources.has(p)) console.log(`run-tests: skipping dist/test/${p}: its source test/${p.replace(/\.js$/, '.ts')} no longer exists`);
}
for (const p of sources) {
  if (!compiled.includes(p) && selected(p)) {
    console.error(`run-tests: test/${p.replace(/\.js$/, '.ts')} has no compiled dist/test/${p}: run the build (npx tsc -p .)`);
    setupProblem = true;
  }
}
const files = compiled
  .filter((p) => sources.has(p) && selected(p))
  .sort()
  .map((p, i) => ({ p, rank: LONG_FILES.indexOf(path.basename(p)), i }))
  .sort((a, b) => (a.rank < 0 ? LONG_FILES.length : a.rank) - (b.rank < 0 ? LONG_FILES.length : b.rank) || a.i - b.i)
  .map(({ p }) => path.join('dist', 'test', p));
if (files.length === 0) {
  console.error(`run-tests: no test files${filters.length || tiers.length ? ` match ${[...filters, ...tiers.map((t) => `--tier=${t}`)].join(' ')}` : ''}`);
  console.log('0 passed, 0 failed');
  process.exit(1);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-run-tests-'));
const tapFile = path.join(tmp, 'report.tap');
const args = [
  '--test',
  ...(process.allowedNodeEnvironmentFlags.has('--test-concurrency') ? [`--test-concurrency=${jobs}`] : []),
  `--test-timeout=${testTimeoutMs}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tapFile}`,
  ...files,
];
console.log(`run-tests: ${files.length} files, ${jobs} at a time`);
if (process.env.WALSTREAM_FSYNC_DELAY_US) console.log(`run-tests: slow disk: every fdatasync/fsync sleeps ${process.env.WALSTREAM_FSYNC_DELAY_US} µs more`);
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
const forward = (sig) => child.kill(sig);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);

child.on('exit', (code, signal) => {
  let tap = '';
  try {
    tap = fs.readFileSync(tapFile, 'utf8');
  } catch {
    // the runner died before writing its report
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const count = (name) => {
    const all = [...tap.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))];
    return all.length ? Number(all[all.length - 1][1]) : 0;
  };
  const pass = count('pass');
  const fail = count('fail');
  const cancelled = count('cancelled');
  if (signal) console.error(`run-tests: the test runner was killed by ${signal}`);
  if (cancelled) console.log(`(${cancelled} cancelled, e.g. timed out after ${testTimeoutMs / 60000} min per test, counted as failed)`);
  console.log(`${pass} passed, ${fail + cancelled} failed`);
  process.exit(signal ? 1 : code || (setupProblem ? 1 : 0));
});
