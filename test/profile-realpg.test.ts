// `walstream profile live` against a REAL PostgreSQL 15 primary (initdb'd here, SCRAM-SHA-256 on
// 127.0.0.1) under psql inserts: the temporary standby is wal-only; the hops that exist there
// (network from the XLogData sendTime, write, fdatasync) are reported with every complete unit
// counted, and the ones it cannot see (send, replay, visible) are named with the reason, in the
// JSON and in the text report. The --json result validates against the schema and the temporary
// directory is removed. And `walstream profile replay` of a copy of the server's pg_wal counts
// every record per resource manager (and XLOG record type) as pg_waldump --stats does. Counts and
// states only.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ReplayProfileJson } from '../src/profile/result.js';
import type { LiveProfileJson } from '../src/profile/result.js';
import { schemaErrors, walstream } from './helpers/bench-report.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

let pg: PgCluster;
let dir: string;

before(async () => {
  pg = await startPgCluster({ hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256'] });
  dir = tmpDir('walstream-profile-pg-');
  pg.psql('create table t (id int, pad text)');
});

after(async () => {
  await pg?.stop();
  rmrf(dir);
});

/** Run `args` while psql inserts rows (one statement every few ms) until the command exits. */
async function underInserts(args: string[]) {
  let done = false;
  let inserted = 0;
  const load = (async () => {
    while (!done) {
      pg.psql(`insert into t select g, repeat('x', 100) from generate_series(1, 50) g`);
      inserted++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    return { run: await walstream(args), inserted: () => inserted };
  } finally {
    done = true;
    await load;
  }
}

test('profile live against PostgreSQL 15: wal-only; network (derived), write and fdatasync reported; send, replay and visible named as not visible, with why', async () => {
  const work = path.join(dir, 'work');
  fs.mkdirSync(work);
  const conninfo = `host=${pg.host} port=${pg.port} user=postgres password=${pg.superuserPassword}`;
  const { run, inserted } = await underInserts(['profile', 'live', '--primary', conninfo, '--seconds', '3', '--json', '--dir', work]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '', 'quiet with --json');
  assert.ok(inserted() > 0);
  const r = JSON.parse(run.stdout) as LiveProfileJson;
  assert.deepEqual(schemaErrors('profile', r), [], 'valid against bench/schemas/bench.schema.json');
  assert.deepEqual(fs.readdirSync(work), [], 'the temporary standby is removed');
  assert.equal(r.upstream.kind, 'postgresql');
  assert.match(r.upstream.serverVersion, /^15\./);
  assert.equal(r.mode, 'wal-only');
  assert.equal(r.lagFrom, 'send time');
  const by = Object.fromEntries(r.hops.map((h) => [h.hop, h]));
  assert.ok(r.window.units > 0, `XLogData messages in the window: ${JSON.stringify(r.window)}`);
  assert.equal(by.network!.source, 'derived');
  for (const h of ['network', 'write', 'fdatasync']) {
    assert.notEqual(by[h]!.source, 'not visible', h);
    assert.equal(by[h]!.count + by[h]!.unitsMissing, r.window.units, `${h}: every unit counted or missing`);
    assert.ok(by[h]!.count > 0 && by[h]!.unitsMissing <= r.window.unitsIncomplete, `${h}: ${by[h]!.count} units, ${by[h]!.unitsMissing} missing`);
  }
  for (const [h, why] of [['send', /walsender stamps each XLogData with its send time/], ['replay', /walstream replays only its own records/], ['visible', /nothing is replayed/]] as const) {
    assert.equal(by[h]!.source, 'not visible', h);
    assert.equal(by[h]!.count, 0);
    assert.equal(by[h]!.unitsMissing, r.window.units);
    assert.match(by[h]!.why!, why);
  }
  assert.equal(r.replay.recordsReplayed, 0);
  assert.deepEqual(r.replay.byKind, []);
  assert.ok(r.lag.length > 0 && r.lag.every((x) => x.replayLagMs === null));

  // The text report says the same: which hops it cannot see, and why.
  const saved = path.join(dir, 'pg.json');
  fs.writeFileSync(saved, run.stdout);
  const rep = await walstream(['bench', 'report', saved]);
  assert.equal(rep.code, 0, rep.stderr);
  assert.match(rep.stdout, /== Hops not measured on one clock, and why/);
  for (const h of ['send', 'replay', 'visible']) assert.match(rep.stdout, new RegExp(`│ ${h}\\s+│ not visible`));
});

/** pg_waldump --stats[=record] rows with a count: name → N. */
function waldumpStats(walDir: string, firstSegment: string, perRecord: boolean): Record<string, number> {
  // (pg_waldump reads to the end of valid WAL and then reports that end as an error: exit code 1.)
  const r = spawnSync(pg.bin('pg_waldump'), [perRecord ? '--stats=record' : '--stats', '-p', walDir, firstSegment], { encoding: 'utf8' });
  const out: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^(\S+)\s+(\d+) \(/gm)) if (Number(m[2]) > 0) out[m[1]!] = Number(m[2]);
  const total = /^Total\s+(\d+)\s/m.exec(r.stdout);
  if (total) out.Total = Number(total[1]);
  assert.ok(Object.keys(out).length > 0, `pg_waldump printed statistics: ${r.stdout}${r.stderr}`);
  return out;
}

test("profile replay of PostgreSQL 15's pg_wal: every record counted per resource manager and XLOG record type as pg_waldump --stats does", async () => {
  pg.psql(`insert into t select g, repeat('y', 300) from generate_series(1, 5000) g; checkpoint; update t set pad = 'z' where id < 500`);
  const walDir = path.join(dir, 'pg_wal_copy');
  fs.mkdirSync(walDir);
  const src = path.join(pg.dataDir, 'pg_wal');
  const segments = fs.readdirSync(src).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  for (const n of segments) fs.copyFileSync(path.join(src, n), path.join(walDir, n));

  const run = await walstream(['profile', 'replay', walDir, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout) as ReplayProfileJson;
  assert.deepEqual(schemaErrors('profile', r), []);
  const byRmgr: Record<string, number> = {};
  const xlog: Record<string, number> = {};
  for (const k of r.byKind) {
    const [rmgr, type] = k.kind.split('/');
    byRmgr[rmgr!] = (byRmgr[rmgr!] ?? 0) + k.records;
    if (rmgr === 'XLOG') xlog[`XLOG/${type}`] = (xlog[`XLOG/${type}`] ?? 0) + k.records;
  }
  const theirs = waldumpStats(walDir, segments[0]!, false);
  const total = theirs.Total;
  delete theirs.Total;
  assert.deepEqual(byRmgr, theirs, 'records per resource manager as pg_waldump --stats counts them');
  assert.equal(r.records, total);
  assert.equal(r.crc.bytes, r.bytes, 'the CRC-32C limit over the same bytes');
  const theirXlog = Object.fromEntries(Object.entries(waldumpStats(walDir, segments[0]!, true)).filter(([k]) => k.startsWith('XLOG/')));
  assert.deepEqual(xlog, theirXlog, 'XLOG records per record type');
});
