// `walstream profile live` against a REAL PostgreSQL 15 primary (initdb'd here, SCRAM-SHA-256 on
// 127.0.0.1) under psql inserts: the temporary standby is wal-only; the hops that exist there
// (network from the XLogData sendTime, write, fdatasync) are reported with every complete unit
// counted, and the ones it cannot see (send, replay, visible) are named with the reason, in the
// JSON and in the text report. The --json result validates against the schema and the temporary
// directory is removed. Counts and states only.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
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
