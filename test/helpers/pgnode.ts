// Test helper: real PostgreSQL 15 servers on data directories made by pg_basebackup (standbys)
// and the client tools run against them (pg_basebackup -R, pg_ctl promote, pg_controldata,
// pg_waldump, psql on 127.0.0.1). As root, every server and tool runs as the `postgres` account
// (PostgreSQL refuses root) and the directories they write are created owned by it. A node owns
// one postmaster child process; `stop()` sends SIGINT (fast shutdown) and waits for it to exit
// (SIGKILL after a grace period); a process 'exit' hook kills it if a test dies first. The
// directories belong to the test, which removes them in its after() hook.

import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { chownSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, PG_BIN_DIR } from './pgcluster.js';
import { postgresAccount } from './pgcluster.js';

/** How long a server may take to start or to shut down, ms. */
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 15_000;
/** Bound on one client tool run, ms. */
const TOOL_TIMEOUT_MS = 60_000;

const account = postgresAccount();
const asPg = account ? { uid: account.uid, gid: account.gid } : {};
const env = { ...process.env, LC_ALL: 'C', PGCONNECT_TIMEOUT: '10' };

/** A new temp directory that the PostgreSQL account may write into. */
export function pgTempRoot(prefix = 'walstream-pgnode-'): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  if (account) chownSync(root, account.uid, account.gid);
  return root;
}

/** Runs a PostgreSQL 15 tool as the PostgreSQL account; returns stdout, throws with stderr on failure. */
export function pgTool(name: string, args: string[], opts: { allowFail?: boolean } = {}): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(join(PG_BIN_DIR, name), args, { ...asPg, encoding: 'utf8', env, timeout: TOOL_TIMEOUT_MS } as SpawnSyncOptions);
  const out = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), status: r.status };
  if (!opts.allowFail && r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.status}): ${out.stderr}`);
  return out;
}

/** pg_basebackup -R (standby.signal + primary_conninfo) of the server at 127.0.0.1:port into dataDir. */
export function pgBaseBackup(port: number, dataDir: string): void {
  pgTool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
}

/** pg_controldata's lines as label → value. */
export function pgControlData(dataDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of pgTool('pg_controldata', [dataDir]).stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export interface PgNode {
  port: number;
  dataDir: string;
  /** One SQL string through psql on 127.0.0.1 (trust) as `postgres`; stdout, unaligned, tuples only. */
  psql(sql: string): string;
  /** One command on a replication connection (`replication=true`); status, stdout and stderr. */
  replicationCommand(cmd: string): { stdout: string; stderr: string; status: number | null };
  /** pg_ctl promote -w. */
  promote(): void;
  /** The server's log so far. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts a postmaster on an existing data directory (a base backup, so pg_hba.conf must let
 * `postgres` in from 127.0.0.1) on a free port, its unix socket in `socketDir`, and waits until
 * it accepts connections (a standby: until it reached a consistent state).
 */
export async function startPgNode(dataDir: string, socketDir: string, settings: Record<string, string | number> = {}): Promise<PgNode> {
  const all: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    fsync: 'off',
    shared_buffers: '16MB',
    max_connections: 20,
    logging_collector: 'off',
    ...settings,
  };
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = ['-D', dataDir, '-p', String(port)];
    for (const [k, v] of Object.entries(all)) args.push('-c', `${k}=${v}`);
    const child: ChildProcess = spawn(join(PG_BIN_DIR, 'postgres'), args, { ...asPg, stdio: ['ignore', 'pipe', 'pipe'], env });
    let log = '';
    child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { log += d.toString(); if (log.length > 1 << 20) log = log.slice(-65536); });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let done = false;
    void exited.then(() => { done = true; });
    const deadline = Date.now() + START_TIMEOUT_MS;
    const ready = () => /database system is ready to accept (read-only )?connections/.test(log);
    while (!done && !ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!done && ready()) {
      const onExit = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
      process.once('exit', onExit);
      const psqlArgs = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'];
      return {
        port,
        dataDir,
        psql: (sql) => pgTool('psql', [...psqlArgs, '-d', 'postgres', '-c', sql]).stdout,
        replicationCommand: (cmd) => pgTool('psql', ['-X', '-A', '-t', `host=127.0.0.1 port=${port} user=postgres replication=true`, '-c', cmd], { allowFail: true }),
        promote: () => void pgTool('pg_ctl', ['promote', '-w', '-t', '60', '-D', dataDir]),
        log: () => log,
        async stop(): Promise<void> {
          process.removeListener('exit', onExit);
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGINT');
            const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
            await exited;
            clearTimeout(timer);
          }
        },
      };
    }
    lastLog = log;
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
    if (!/could not bind|Address already in use/.test(log)) break;
  }
  throw new Error(`postgres did not start on ${dataDir}:\n${lastLog}`);
}

/**
 * Starts a postmaster that is expected to fail during startup (a FATAL before it accepts
 * connections) and returns its log once it has exited.
 */
export async function failingPgStart(dataDir: string, socketDir: string): Promise<string> {
  const port = await freePort();
  const child = spawn(join(PG_BIN_DIR, 'postgres'), ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDir}`, '-c', 'logging_collector=off'], { ...asPg, stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
  await new Promise<void>((r) => child.once('exit', () => r()));
  clearTimeout(timer);
  return log;
}
