// The PostgreSQL 15 side of `walstream bench failover` (bench/failover.ts): a real primary and a
// real standby of it (pg_basebackup -R), both with fsync on, the primary with
// synchronous_standby_names '*'; an INSERT load from the bench process over the frontend protocol;
// SIGKILL of the primary postmaster, `pg_ctl promote` at once, and the first INSERT the promoted
// standby accepts, each attempt on a fresh connection (connect, startup, INSERT).
// The frontend-protocol client here is the smallest that does this: trust authentication, simple
// Query, one statement at a time (PostgreSQL's protocol-flow.sgml, "Simple Query").
// Owns: a template data directory made once (initdb, as the `postgres` account when root) and, per
// round, two copies of it and their postmasters; everything is stopped and removed by the pair's
// stop() and the template's remove().

import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BackendDecoder } from '../src/replication/protocol/frames.js';
import { decodeAuthentication, decodeDataRow, decodeErrorFields, encodeQuery, encodeStartupMessage, encodeTerminate } from '../src/replication/protocol/messages.js';
import { PG_BIN_DIR, postgresAccount } from '../test/helpers/pgcluster.js';
import { pgBaseBackup, pgTempRoot, pgTool, startPgNode, type PgNode } from '../test/helpers/pgnode.js';
import { FAILOVER_PAD_BYTES, FAILOVER_TABLE } from './failover-node.js';

/** Upper bound on one connection + statement, ms (a hang bound, not a measurement). */
const SQL_TIMEOUT_MS = 30_000;
/** Upper bound on waiting for the standby to become synchronous, and how often it is looked at, ms. */
const SYNC_WAIT_MS = 60_000;
const SYNC_CHECK_MS = 50;
const MSG_AUTH = 0x52; // 'R'
const MSG_ERROR = 0x45; // 'E'
const MSG_READY = 0x5a; // 'Z'
const MSG_DATA_ROW = 0x44; // 'D'

/** An ErrorResponse or a lost connection, with PostgreSQL's SQLSTATE when there was one. */
export class SqlError extends Error {
  constructor(message: string, readonly sqlstate: string | null) {
    super(message);
  }
}

/** One frontend-protocol connection as `postgres` to database `postgres` (trust). */
export class SqlConn {
  private readonly decoder = new BackendDecoder();
  private pending: { rows: string[][]; error: SqlError | null; resolve: (rows: string[][]) => void; reject: (e: Error) => void } | null = null;
  private closedError: SqlError | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const p = this.pending;
      this.pending = null;
      // A FATAL (e.g. "the database system is starting up") comes before the close.
      this.closedError = p?.error ?? new SqlError('server closed the connection', null);
      p?.reject(this.closedError);
    });
  }

  /** Connect and complete the startup (up to the first ReadyForQuery). */
  static async connect(port: number): Promise<SqlConn> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', (e) => reject(new SqlError(e.message, null)));
    });
    const c = new SqlConn(socket);
    try {
      await c.roundTrip(encodeStartupMessage({ user: 'postgres', database: 'postgres', application_name: 'walstream-bench' }));
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** One simple Query; resolves to its rows as text (null cells as ''), rejects with its ErrorResponse. */
  query(sql: string): Promise<string[][]> {
    return this.roundTrip(encodeQuery(sql));
  }

  close(): void {
    if (!this.socket.destroyed) this.socket.end(encodeTerminate());
    this.socket.destroy();
  }

  private roundTrip(msg: Uint8Array): Promise<string[][]> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending) return Promise.reject(new Error('one statement at a time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        reject(new SqlError(`no ReadyForQuery within ${SQL_TIMEOUT_MS} ms`, null));
        this.socket.destroy();
      }, SQL_TIMEOUT_MS);
      this.pending = {
        rows: [], error: null,
        resolve: (rows) => { clearTimeout(timer); resolve(rows); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.socket.write(msg);
    });
  }

  private onData(d: Buffer): void {
    this.decoder.push(d);
    for (;;) {
      let f;
      try {
        f = this.decoder.next();
      } catch (e) {
        // Not PostgreSQL's protocol: the connection is useless ('close' rejects what is pending).
        if (this.pending) this.pending.error ??= new SqlError(`protocol violation: ${(e as Error).message}`, '08P01');
        this.socket.destroy();
        return;
      }
      if (!f) return;
      const p = this.pending;
      if (!p) continue;
      if (f.type === MSG_AUTH) {
        const a = decodeAuthentication(f.body);
        if (a.code !== 0) p.error = new SqlError(`authentication request ${a.code}: the bench cluster trusts 127.0.0.1`, '28000');
      } else if (f.type === MSG_ERROR) {
        const e = decodeErrorFields(f.body);
        p.error ??= new SqlError(e.message, e.code);
        // A FATAL at startup ("the database system is starting up") ends the connection: no ReadyForQuery.
      } else if (f.type === MSG_DATA_ROW) {
        p.rows.push(decodeDataRow(f.body).map((c) => (c === null ? '' : Buffer.from(c).toString('utf8'))));
      } else if (f.type === MSG_READY) {
        this.pending = null;
        if (p.error) p.reject(p.error);
        else p.resolve(p.rows);
      }
    }
  }
}

/** One statement on a fresh connection (what a client retrying after a failover does). */
export async function sqlOnce(port: number, sql: string): Promise<string[][]> {
  const c = await SqlConn.connect(port);
  try {
    return await c.query(sql);
  } finally {
    c.close();
  }
}

const account = postgresAccount();
const asPg: SpawnSyncOptions = account ? { uid: account.uid, gid: account.gid } : {};

export interface PgTemplate {
  /** The directory holding the template data directory and the rounds' copies. */
  root: string;
  remove(): void;
}

/** Prefix of the PostgreSQL side's temp directory (in the temp directory, where the `postgres` account may write). */
export const PG_FAILOVER_DIR_PREFIX = 'walstream-bench-failover-pg-';

/** initdb once (trust on 127.0.0.1 for connections and replication), the load table created at the first round. */
export function makePgTemplate(): PgTemplate {
  const root = pgTempRoot(PG_FAILOVER_DIR_PREFIX);
  const data = path.join(root, 'template');
  try {
    pgTool('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const hba = path.join(data, 'pg_hba.conf');
    fs.writeFileSync(hba, 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n');
    if (account) fs.chownSync(hba, account.uid, account.gid);
  } catch (e) {
    fs.rmSync(root, { recursive: true, force: true });
    throw e;
  }
  // Also when the bench process exits without remove() (SIGINT); its postmasters are killed by
  // their own exit hooks (test/helpers/pgnode.ts).
  const onExit = () => {
    try {
      fs.rmSync(root, { recursive: true, force: true });
    } catch {
      // a postmaster still writing: nothing more to do in an exit hook
    }
  };
  process.once('exit', onExit);
  return {
    root,
    remove: () => {
      process.removeListener('exit', onExit);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Settings of both postmasters: durable commits (fsync on), as walstream's. */
const SETTINGS = { fsync: 'on', synchronous_commit: 'on', shared_buffers: '128MB', max_connections: 40, checkpoint_timeout: '1h', max_wal_size: '1GB' };

export interface PgPair {
  primary: PgNode;
  standby: PgNode;
  /** The primary postmaster's pid (postmaster.pid's first line). */
  primaryPid: number;
  /** pg_ctl promote, without waiting (-W): the request is made, the bench measures the rest. */
  promote(): void;
  stop(): Promise<void>;
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, SYNC_CHECK_MS));
  }
}

/** A primary (a copy of the template) and a synchronous standby of it (pg_basebackup -R, `standbySettings` on top), both started. */
export async function startPgPair(t: PgTemplate, round: number, standbySettings: Record<string, string | number> = {}): Promise<PgPair> {
  const dir = fs.mkdtempSync(path.join(t.root, `r${round}-`));
  const pdir = path.join(dir, 'primary');
  const sdir = path.join(dir, 'standby');
  let primary: PgNode | null = null;
  let standby: PgNode | null = null;
  const stop = async () => {
    await standby?.stop();
    await primary?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (account) fs.chownSync(dir, account.uid, account.gid);
    const cp = spawnSync('cp', ['-a', path.join(t.root, 'template'), pdir], { ...asPg, encoding: 'utf8' });
    if (cp.status !== 0) throw new Error(`cp -a of the template failed: ${String(cp.stderr)}`);
    primary = await startPgNode(pdir, dir, { ...SETTINGS, synchronous_standby_names: '*' });
    // Before the standby exists nothing can confirm a synchronous commit: this one is local.
    const setup = await SqlConn.connect(primary.port);
    try {
      await setup.query('SET synchronous_commit = local');
      await setup.query(`CREATE TABLE ${FAILOVER_TABLE} (c int, n int, pad text)`);
    } finally {
      setup.close();
    }
    pgBaseBackup(primary.port, sdir);
    standby = await startPgNode(sdir, dir, { ...SETTINGS, hot_standby: 'on', ...standbySettings });
    const p = primary;
    await until(() => p.psql("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'").trim() === 'sync', SYNC_WAIT_MS, 'the PostgreSQL standby to be synchronous');
    const primaryPid = Number(fs.readFileSync(path.join(pdir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return {
      primary, standby, primaryPid, stop,
      promote() {
        const c = spawn(path.join(PG_BIN_DIR, 'pg_ctl'), ['promote', '-W', '-D', sdir], { ...(account ? { uid: account.uid, gid: account.gid } : {}), stdio: 'ignore' });
        c.once('error', () => undefined);
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The INSERT one committer of the load makes. */
export const loadInsert = (c: number, n: number) => `INSERT INTO ${FAILOVER_TABLE} VALUES (${c}, ${n}, repeat('x', ${FAILOVER_PAD_BYTES}))`;

/** How many of the rows (c, 0 … acked[c]) are absent on the server at `port`. */
export async function pgMissing(port: number, acked: readonly number[]): Promise<number> {
  const want = acked.reduce((s, n) => s + n + 1, 0);
  if (want === 0) return 0;
  const values = acked.map((n, c) => `(${c}, ${n})`).join(', ');
  const rows = await sqlOnce(port, `SELECT count(DISTINCT (l.c, l.n)) FROM ${FAILOVER_TABLE} l JOIN (VALUES ${values}) v(c, a) ON l.c = v.c AND l.n BETWEEN 0 AND v.a`);
  return want - Number(rows[0]![0]);
}
