// `walstream bench failover`: how long a synchronous pair is without a primary after the primary
// crashes, beside PostgreSQL 15 doing the same, in one run. Each round, for both:
//  - ours: a walstream primary in a child process (bench/failover-node.ts) with
//    synchronous_standby_names 's1' and `committers` committers at synchronous_commit=on, and a
//    walstream standby s1 in another child process (a base backup of the primary, streaming over
//    loopback TCP); PostgreSQL: a real primary (synchronous_standby_names '*') and a real standby
//    made with pg_basebackup -R, fsync on, the same number of connections INSERTing at
//    synchronous_commit=on (bench/failover-pg.ts);
//  - after a random 1–2 s of load, SIGKILL of the primary (the child process; the postmaster) and at
//    once the promote request an operator's script makes: ours the `promote` signal file + SIGUSR1
//    (what `walstream promote --no-wait` does), PostgreSQL `pg_ctl promote -W`;
//  - ours promotes with its replication listener (port 0), as a PostgreSQL standby listens;
//  - failover time: from just before the SIGKILL to the first commit the promoted node
//    acknowledges. Attempts every POLL_INTERVAL_MS: ours a commit sent to the standby's process
//    (answered at once while it is still a standby), PostgreSQL an INSERT on a fresh connection
//    (connect + startup + INSERT, refused while in recovery);
//  - then the promoted node is checked for every commit acknowledged before the kill (lost: 0).
// PostgreSQL runs once per wal_retrieve_retry_interval asked for (its default 5 s, and 50 ms), and
// each round runs ours, then each PostgreSQL configuration. Owns the run's directory (benchWorkDir), the child
// processes and the PostgreSQL template and postmasters; all are stopped and removed at the end,
// also on error. Returns a JSON-ready object (ms).

import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { quantileMs } from '../src/util/quantile.js';
import { writePromoteSignal } from '../src/standby/promote-signal.js';
import { FAILOVER_NODE_SCRIPT, FAILOVER_TABLE } from './failover-node.js';
import { loadInsert, makePgTemplate, pgMissing, SqlConn, SqlError, sqlOnce, startPgPair, type PgTemplate } from './failover-pg.js';
import { noProgress, type BenchProgress } from './report/progress.js';
import { benchWorkDir } from './report/workdir.js';

export interface FailoverBenchOptions {
  /** Rounds per side (default 10). */
  rounds?: number;
  /** Concurrent committers / connections of the load (default 8). */
  committers?: number;
  /**
   * The PostgreSQL standby's wal_retrieve_retry_interval, ms: one PostgreSQL configuration per
   * value (default PG_RETRY_INTERVALS_MS). PostgreSQL 15's startup process, when the promote
   * request finds it just after its walreceiver lost the primary, first sleeps out the rest of
   * this interval (xlogrecovery.c, WaitForWALToBecomeAvailable: "waiting for WAL to become
   * available"), 5 s at the default; whether it does depends on which of the two it sees first.
   * A short interval shows the rest of its promotion.
   */
  pgWalRetrieveRetryIntervalsMs?: readonly number[];
  dir?: string | undefined;
  keep?: boolean;
  progress?: BenchProgress;
}

/** Load before the kill: LOAD_MIN_MS plus a uniformly random part of LOAD_SPREAD_MS, ms. */
const LOAD_MIN_MS = 1000;
const LOAD_SPREAD_MS = 1000;
/** PostgreSQL's default wal_retrieve_retry_interval, and a short one (see pgWalRetrieveRetryIntervalsMs), ms. */
export const PG_RETRY_INTERVALS_MS: readonly number[] = [5000, 50];
/** Between a refused attempt and the next, on both sides, ms. */
export const POLL_INTERVAL_MS = 10;
/** Upper bound on one failover (a hang bound: the run fails past it), ms. */
const FAILOVER_TIMEOUT_MS = 120_000;
/** Upper bound on a child's expected line, ms. */
const LINE_TIMEOUT_MS = 120_000;
/** A line awaited is looked for at least this often (new output wakes the waiters at once), ms. */
const LINE_RECHECK_MS = 100;
/** A node that has not exited this long after SIGTERM is SIGKILLed, ms. */
const STOP_GRACE_MS = 30_000;
/** Output of a node kept for error messages (the last part of it), characters. */
const OUTPUT_KEEP_CHARS = 32_768;

export interface FailoverRound {
  round: number;
  /** SIGKILL → first commit acknowledged by the promoted node. */
  failoverMs: number;
  /** Load before the kill. */
  loadMs: number;
  /** Commits acknowledged to their client by the old primary (before the kill, or in the instant after it). */
  commitsAcknowledged: number;
  /** Of those, absent on the promoted node. */
  lostAcknowledged: number;
  /** Attempts until the first accepted one (that one included). */
  attempts: number;
  /** walstream: SIGKILL → the standby's process reported its promotion done (its "promoted" line). */
  promotedMs?: number;
}

export interface FailoverSide {
  rounds: FailoverRound[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadMs = () => LOAD_MIN_MS + Math.round(Math.random() * LOAD_SPREAD_MS);

/** A child node's stdout as lines, awaited by prefix. */
class NodeProc {
  readonly proc: ChildProcess;
  /** Lines not yet taken, with the time they arrived (performance.now()). */
  private lines: Array<{ text: string; at: number }> = [];
  private waiters: Array<() => void> = [];
  output = '';
  lastAcked: number[] = [];

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [FAILOVER_NODE_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (l.startsWith('acked ')) this.lastAcked = l.slice(6).split(' ').map(Number);
        else {
          this.lines.push({ text: l, at: performance.now() });
          this.output += `${l}\n`;
        }
      }
      this.poke();
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
      if (this.output.length > 2 * OUTPUT_KEEP_CHARS) this.output = this.output.slice(-OUTPUT_KEEP_CHARS);
    });
    // The bench process ending first (SIGINT: benchWorkDir exits) must not leave the node running.
    const orphan = () => this.proc.kill('SIGKILL');
    process.once('exit', orphan);
    this.proc.once('exit', () => {
      process.removeListener('exit', orphan);
      this.poke();
    });
    this.proc.stdin!.on('error', () => undefined);
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get gone(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** The next line starting with `prefix`, or matching it (fails if the child exits first). */
  async line(prefix: string | ((l: string) => boolean), timeoutMs = LINE_TIMEOUT_MS): Promise<string> {
    return (await this.lineAt(prefix, timeoutMs)).text;
  }

  /** line(), with the time it arrived. */
  async lineAt(prefix: string | ((l: string) => boolean), timeoutMs = LINE_TIMEOUT_MS): Promise<{ text: string; at: number }> {
    const deadline = performance.now() + timeoutMs;
    const match = typeof prefix === 'string' ? (l: string) => l.startsWith(prefix) : prefix;
    for (;;) {
      const i = this.lines.findIndex((l) => match(l.text));
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      if (this.gone || performance.now() > deadline) throw new Error(`failover node: no ${typeof prefix === 'string' ? `"${prefix}"` : 'awaited'} line ${this.gone ? 'before it exited' : `within ${timeoutMs} ms`}:\n${this.output}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, LINE_RECHECK_MS);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.gone) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(t);
  }
}

function summary(rounds: FailoverRound[]): FailoverSide {
  const sorted = Float64Array.from(rounds.map((r) => r.failoverMs)).sort();
  return { rounds, p50Ms: quantileMs(sorted, 0.5), p99Ms: quantileMs(sorted, 0.99), maxMs: quantileMs(sorted, 1) };
}

/** Attempts until one is accepted; the time of its acknowledgement. */
async function untilAccepted(attempt: () => Promise<boolean>, what: string, detail: () => string): Promise<{ at: number; attempts: number }> {
  const deadline = performance.now() + FAILOVER_TIMEOUT_MS;
  for (let attempts = 1; ; attempts++) {
    if (await attempt()) return { at: performance.now(), attempts };
    if (performance.now() > deadline) throw new Error(`${what}: no commit accepted within ${FAILOVER_TIMEOUT_MS} ms of the kill:\n${detail()}`);
    await sleep(POLL_INTERVAL_MS);
  }
}

async function oursRound(root: string, round: number, committers: number): Promise<FailoverRound> {
  const pdir = path.join(root, `r${round}-primary`);
  const sdir = path.join(root, `r${round}-s1`);
  const primary = new NodeProc(['primary', pdir, String(committers)]);
  let standby: NodeProc | null = null;
  try {
    const port = Number((await primary.line('listening ')).split(' ')[1]);
    const s = (standby = new NodeProc(['standby', sdir, String(port)]));
    await s.line('standby');
    await primary.line('loading');
    const load = loadMs();
    await sleep(load);
    // The clock starts just before the kill; the promote request follows at once.
    const t0 = performance.now();
    primary.proc.kill('SIGKILL');
    writePromoteSignal(sdir);
    s.proc.kill('SIGUSR1');
    let id = 0;
    const first = await untilAccepted(async () => {
      const me = ++id;
      s.send(`commit ${me}`);
      return (await s.line((l) => l === `ok ${me}` || l.startsWith(`err ${me} `), FAILOVER_TIMEOUT_MS)).startsWith('ok');
    }, 'walstream', () => s.output);
    // Every "acked" line the primary printed has been read once its stdout ended.
    const stdout = primary.proc.stdout!;
    if (!stdout.readableEnded) await new Promise((r) => stdout.once('end', r));
    const acked = primary.lastAcked;
    s.send(`check ${acked.join(' ')}`);
    const missing = Number((await s.line('missing ')).split(' ')[1]);
    // Printed before the first commit's "ok", so it has arrived (its arrival time, not now).
    const promoted = await s.lineAt('promoted ');
    return {
      round, failoverMs: +(first.at - t0).toFixed(3), loadMs: load, commitsAcknowledged: acked.reduce((a, n) => a + n + 1, 0), lostAcknowledged: missing, attempts: first.attempts,
      promotedMs: +(promoted.at - t0).toFixed(3),
    };
  } finally {
    await primary.stop('SIGKILL');
    await standby?.stop();
  }
}

async function pgRound(t: PgTemplate, round: number, committers: number, retryIntervalMs: number): Promise<FailoverRound> {
  const pair = await startPgPair(t, round, { wal_retrieve_retry_interval: `${retryIntervalMs}ms` });
  const conns: SqlConn[] = [];
  try {
    for (let c = 0; c < committers; c++) conns.push(await SqlConn.connect(pair.primary.port));
    const acked = new Array<number>(committers).fill(-1);
    // Each connection INSERTs until the server goes away.
    const load = conns.map(async (conn, c) => {
      for (let n = 0; ; n++) {
        try {
          await conn.query(loadInsert(c, n));
        } catch (e) {
          if (e instanceof SqlError) return;
          throw e;
        }
        acked[c] = n;
      }
    });
    const loadFor = loadMs();
    await sleep(loadFor);
    const t0 = performance.now();
    process.kill(pair.primaryPid, 'SIGKILL');
    pair.promote();
    const first = await untilAccepted(async () => {
      try {
        await sqlOnce(pair.standby.port, `INSERT INTO ${FAILOVER_TABLE} VALUES (-1, ${round}, 'probe')`);
        return true;
      } catch (e) {
        if (e instanceof SqlError) return false;
        throw e;
      }
    }, 'PostgreSQL', () => pair.standby.log().slice(-4000));
    // Every commit acknowledged, also in the instant between the kill and the backends' exit.
    await Promise.all(load);
    const missing = await pgMissing(pair.standby.port, acked);
    return { round, failoverMs: +(first.at - t0).toFixed(3), loadMs: loadFor, commitsAcknowledged: acked.reduce((a, n) => a + n + 1, 0), lostAcknowledged: missing, attempts: first.attempts };
  } finally {
    for (const c of conns) c.close();
    await pair.stop();
  }
}

export async function runFailoverBench(o: FailoverBenchOptions = {}) {
  const rounds = o.rounds ?? 10;
  const committers = o.committers ?? 8;
  const intervals = o.pgWalRetrieveRetryIntervalsMs ?? PG_RETRY_INTERVALS_MS;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('rounds must be an integer >= 1');
  if (!Number.isInteger(committers) || committers < 1) throw new Error('committers must be an integer >= 1');
  if (intervals.length === 0 || !intervals.every((x) => Number.isInteger(x) && x >= 1)) throw new Error('pgWalRetrieveRetryIntervalsMs must be integers >= 1');
  const progress = o.progress ?? noProgress;
  const t0 = performance.now();
  const work = benchWorkDir('failover', o);
  let template: PgTemplate | null = null;
  progress.plan(1 + (1 + intervals.length) * rounds);
  try {
    progress.step('PostgreSQL: initdb (template of every round\'s primary)');
    template = makePgTemplate();
    const ours: FailoverRound[] = [];
    const pg: FailoverRound[][] = intervals.map(() => []);
    for (let r = 1; r <= rounds; r++) {
      progress.step(`walstream: round ${r}/${rounds}`);
      ours.push(await oursRound(work.root, r, committers));
      for (const [i, ms] of intervals.entries()) {
        progress.step(`PostgreSQL (wal_retrieve_retry_interval ${ms} ms): round ${r}/${rounds}`);
        pg[i]!.push(await pgRound(template, r, committers, ms));
      }
    }
    const w = summary(ours);
    const ratio = (a: number, b: number) => (b === 0 ? null : +(a / b).toFixed(2));
    const postgres = intervals.map((ms, i) => ({ walRetrieveRetryIntervalMs: ms, ...summary(pg[i]!), promote: 'pg_ctl promote -W', firstCommit: 'an INSERT on a fresh connection (connect + startup + INSERT)' }));
    return {
      bench: 'failover' as const,
      units: { latency: 'ms' as const },
      host: { cpus: os.cpus().length, node: process.version },
      rounds,
      committers,
      synchronous_commit: 'on' as const,
      pollIntervalMs: POLL_INTERVAL_MS,
      walstream: { ...w, promote: 'signal file + SIGUSR1 (walstream promote --no-wait)', firstCommit: 'a commit sent to the standby\'s process over a pipe' },
      postgres,
      ratios: postgres.map((p) => ({ walRetrieveRetryIntervalMs: p.walRetrieveRetryIntervalMs, p50: ratio(w.p50Ms, p.p50Ms), p99: ratio(w.p99Ms, p.p99Ms), max: ratio(w.maxMs, p.maxMs) })),
      elapsedSeconds: +((performance.now() - t0) / 1000).toFixed(1),
    };
  } finally {
    template?.remove();
    work.cleanup();
  }
}
