// Test helper: a throwaway real PostgreSQL 15 cluster. Tests start one in `before` and stop it in
// `after`; it owns a temp directory (data dir + unix socket) and one postmaster child process.
// As root, initdb/postgres refuse to run, so they are spawned with the uid/gid of the `postgres`
// account (the Debian package creates it) and the temp directory is chowned to it.
// `stop()` sends SIGINT (fast shutdown), waits for the postmaster to exit (SIGKILL after a grace
// period) and deletes the temp directory.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PG_BIN_DIR = '/usr/lib/postgresql/15/bin';

export interface PgClusterOptions {
  /** Password of the `postgres` superuser (stored as SCRAM-SHA-256). Default 'postgres-test'. */
  superuserPassword?: string;
  /** pg_hba.conf lines written after the default `local all all scram-sha-256` line. */
  hbaLines?: string[];
  /** Extra `-c name=value` settings for the postmaster. */
  settings?: Record<string, string | number>;
  /** How long to wait for the server to accept connections. Default 30 000 ms. */
  startTimeoutMs?: number;
}

export interface PgCluster {
  host: '127.0.0.1';
  port: number;
  dataDir: string;
  /** Directory holding the unix socket. */
  socketDir: string;
  superuser: 'postgres';
  superuserPassword: string;
  /** Runs one SQL string through psql over the unix socket as `postgres`; returns stdout (unaligned, tuples only). */
  psql(sql: string): string;
  /** Absolute path of a PostgreSQL 15 binary, e.g. bin('pg_receivewal'). */
  bin(name: string): string;
  /** Options for spawning a client binary (env with PGPASSWORD etc.). */
  clientEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export interface Account { uid: number; gid: number }

/** As root, the `postgres` OS account PostgreSQL runs as (it refuses to run as root); else undefined. */
export function postgresAccount(): Account | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no "postgres" account to run PostgreSQL as');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const account = postgresAccount();
  const asPg: SpawnOptions = account ? { uid: account.uid, gid: account.gid } : {};
  const password = opts.superuserPassword ?? 'postgres-test';
  const root = mkdtempSync(join(tmpdir(), 'walstream-pg-'));
  const dataDir = join(root, 'data');
  const pwFile = join(root, 'pwfile');
  let child: ChildProcess | undefined;
  const cleanupDir = () => rmSync(root, { recursive: true, force: true });
  try {
    writeFileSync(pwFile, password + '\n', { mode: 0o600 });
    if (account) {
      chownSync(root, account.uid, account.gid);
      chownSync(pwFile, account.uid, account.gid);
    }
    const init = spawnSync(
      join(PG_BIN_DIR, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '--no-sync', '-E', 'UTF8', '--locale=C'],
      { ...asPg, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } } as Parameters<typeof spawnSync>[2],
    );
    if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${String(init.stderr)}`);
    writeFileSync(join(dataDir, 'pg_hba.conf'), ['local all all scram-sha-256', ...(opts.hbaLines ?? [])].join('\n') + '\n');
    appendFileSync(join(dataDir, 'postgresql.conf'), '\npassword_encryption = scram-sha-256\n');
    if (account) chownSync(join(dataDir, 'pg_hba.conf'), account.uid, account.gid);

    const settings: Record<string, string | number> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: root,
      wal_level: 'replica',
      // room for a test's replication connections plus the backends of closed or refused ones that
      // have not exited yet (each holds a walsender slot until it has; slow on a busy machine)
      max_wal_senders: 10,
      max_replication_slots: 4,
      fsync: 'off',
      shared_buffers: '16MB',
      max_connections: 20,
      logging_collector: 'off',
      ...opts.settings,
    };
    let lastErr = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const args = ['-D', dataDir, '-p', String(port)];
      for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
      let log = '';
      child = spawn(join(PG_BIN_DIR, 'postgres'), args, { ...asPg, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
      child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
      child.stderr!.on('data', (d: Buffer) => { log += d.toString(); if (log.length > 1 << 20) log = log.slice(-65536); });
      const exited = new Promise<void>((r) => child!.once('exit', () => r()));
      let done = false;
      void exited.then(() => { done = true; });
      const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
      while (!done && Date.now() < deadline) {
        if (log.includes('database system is ready to accept connections')) break;
        await sleep(50);
      }
      if (!done && log.includes('database system is ready to accept connections')) {
        const proc = child;
        // Last resort if the test process dies without calling stop(): no orphaned postmaster.
        const onExit = () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
          cleanupDir();
        };
        process.once('exit', onExit);
        const cluster: PgCluster = {
          host: '127.0.0.1',
          port,
          dataDir,
          socketDir: root,
          superuser: 'postgres',
          superuserPassword: password,
          bin: (name) => join(PG_BIN_DIR, name),
          clientEnv: (extra = {}) => ({ ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10', ...extra }),
          psql(sql: string): string {
            const r = spawnSync(join(PG_BIN_DIR, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', root, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql], {
              encoding: 'utf8',
              env: { ...process.env, PGPASSWORD: password },
              timeout: 30_000,
            });
            if (r.status !== 0) throw new Error(`psql failed (${r.status}): ${r.stderr}`);
            return r.stdout;
          },
          async stop(): Promise<void> {
            process.removeListener('exit', onExit);
            if (proc.exitCode === null && proc.signalCode === null) {
              proc.kill('SIGINT');
              const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
              await exited;
              clearTimeout(timer);
            }
            cleanupDir();
          },
        };
        return cluster;
      }
      lastErr = log;
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
      child = undefined;
      if (!/could not bind|Address already in use/.test(log)) break;
    }
    throw new Error(`postgres did not start:\n${lastErr}`);
  } catch (e) {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    cleanupDir();
    throw e;
  }
}
