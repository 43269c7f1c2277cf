// A REAL PostgreSQL 15 primary whose synchronous_standby_names names walstream's walreceiver
// (by application_name): PostgreSQL reports it as the synchronous standby, pgbench at
// synchronous_commit=on makes progress while it is connected, stalls while it is stopped, and
// resumes when it comes back (its flush reports release PostgreSQL's waiting commits).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Standby } from '../src/standby/standby.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

let pg: PgCluster;
let dir: string;
const children: ChildProcess[] = [];

before(async () => {
  pg = await startPgCluster({
    hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256'],
    settings: { synchronous_standby_names: 'ours', wal_receiver_status_interval: '1s' },
  });
  dir = tmpDir('walstream-syncpg-');
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await pg?.stop();
  rmrf(dir);
});

function pgbenchArgs(extra: string[]): string[] {
  return ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', ...extra, 'postgres'];
}

test('PostgreSQL 15 with synchronous_standby_names = ours: pgbench progresses while our walreceiver streams, stalls while it is stopped', async () => {
  const conninfo = `host=${pg.host} port=${pg.port} user=postgres password=${pg.superuserPassword} application_name=ours`;
  const open = () => Standby.open({ dataDir: path.join(dir, 'ours'), mode: 'wal-only', primaryConninfo: conninfo, walRetrieveRetryIntervalMs: 200 });
  let s = await open();
  try {
    await waitFor(() => s.receiverStatus().status === 'streaming', 15_000, 'our walreceiver streaming');
    const row = () => pg.psql("select application_name || '|' || sync_priority || '|' || sync_state from pg_stat_replication").trim();
    await waitFor(() => row() === 'ours|1|sync', 15_000, 'PostgreSQL reports us as the synchronous standby').catch((e: Error) => {
      throw new Error(`${e.message}: pg_stat_replication says ${JSON.stringify(row())}; ${pg.psql('select * from pg_stat_replication')}`);
    });
    // pgbench -i commits at synchronous_commit=on too: it needs us connected.
    const init = spawnSync(pg.bin('pgbench'), pgbenchArgs(['-i', '-s', '1', '-q']), { env: pg.clientEnv(), encoding: 'utf8', timeout: 60_000 });
    assert.equal(init.status, 0, init.stderr);
    // Connected: commits at synchronous_commit=on are released by our flush reports.
    const run = spawnSync(pg.bin('pgbench'), pgbenchArgs(['-n', '-N', '-c', '2', '-T', '2']), { env: pg.clientEnv(), encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    const done = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1] ?? '0');
    assert.ok(done >= 50, `pgbench made progress: ${done} transactions\n${run.stdout}`);

    // Stopped: PostgreSQL's commits wait for us; pgbench stalls (each client stuck in one commit).
    await s.close();
    await waitFor(() => pg.psql('select count(*) from pg_stat_replication').trim() === '0', 10_000, 'walsender gone');
    const before = Number(pg.psql('select count(*) from pgbench_history'));
    const bench = spawn(pg.bin('pgbench'), pgbenchArgs(['-n', '-N', '-c', '2', '-T', '1']), { env: pg.clientEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(bench);
    let out = '';
    bench.stdout!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => bench.once('exit', (c) => r(c)));
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(bench.exitCode, null, 'pgbench -T 1 is still stuck after 2.5 s');
    const during = Number(pg.psql('select count(*) from pgbench_history'));
    assert.ok(during - before <= 2, `at most one commit per client went through locally (${during - before})`);
    // Back: our walreceiver's flush reports release the waiting commits; pgbench finishes.
    s = await open();
    assert.equal(await exited, 0, out);
    assert.match(out, /number of transactions actually processed: \d+/);
  } finally {
    await s.close();
  }
});
