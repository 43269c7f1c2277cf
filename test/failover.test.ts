// Failover acceptance: a primary (a child process, so it can be SIGKILLed) with two replica
// standbys in this process, s1 synchronous (synchronous_standby_names 'FIRST 1 (s1)', commits at
// synchronous_commit=on) and s2 asynchronous. Each round: concurrent committers run, the primary
// is killed with SIGKILL at a moment drawn from a seeded PRNG (the seed is printed; set
// WALSTREAM_FAILOVER_SEED to replay a run), s1 is promoted, s2 is re-pointed to it. Checked:
// every commit acknowledged before the kill is on s1 and on s2 (key and value); s2 follows
// timeline 2 (walreceiver and replay, control file); s2's store digest equals s1's once s2 has
// replayed s1's flush; commits made on s1 after the promotion reach s2.
// When the asynchronous s2 happens to hold WAL the synchronous s1 never got (possible: the kill
// lands between the two walsenders' sends), s2 has diverged from the new timeline: it refuses to
// follow (PostgreSQL's "forked off" refusal, nothing of timeline 2 written) and is rebuilt from a
// base backup of s1 (`rebuildIfDiverged`, the old directory moved aside); the same checks follow.
// Rounds: WALSTREAM_FAILOVER_ROUNDS (default 5; `npm run soak:failover` runs 50).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Primary } from '../src/primary/primary.js';
import { readControl } from '../src/storage/control.js';
import { Standby } from '../src/standby/standby.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { FailoverPrimary, killFailoverChildren } from './helpers/failover-proc.js';
import { prng } from './helpers/prng.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const ROUNDS = Number(process.env.WALSTREAM_FAILOVER_ROUNDS ?? '5');
const SEED = Number(process.env.WALSTREAM_FAILOVER_SEED ?? String(Date.now() % 1_000_000));
/** Committers in the primary child. */
const COMMITTERS = 4;
/** The kill comes this long after the first acknowledged commit: [MIN, MIN + SPAN) ms. */
const KILL_MIN_MS = 20;
const KILL_SPAN_MS = 400;
/** Commits on the new primary after the promotion. */
const NEW_COMMITS = 200;
/** Hang bound for each wait. */
const WAIT_MS = 60_000;

const dirs: string[] = [];
after(() => {
  killFailoverChildren();
  dirs.forEach(rmrf);
});

const conninfo = (port: number, name: string) => ({ host: '127.0.0.1', port, user: 'rep', applicationName: name });

function switchpointOf(walDir: string): number {
  const m = /^1\t([0-9A-F]+\/[0-9A-F]+)\t/.exec(fs.readFileSync(path.join(walDir, '00000002.history'), 'latin1'));
  assert.ok(m, 'history file of timeline 2');
  return parseLsn(m[1]!);
}

interface RoundResult {
  acked: number;
  diverged: boolean;
}

async function round(r: number, rand: () => number): Promise<RoundResult> {
  const root = tmpDir(`walstream-failover-${r}-`);
  dirs.push(root);
  const prim = new FailoverPrimary(path.join(root, 'p'), r, COMMITTERS);
  let s1: Standby | null = null;
  let s2: Standby | null = null;
  let np: Primary | null = null;
  try {
    const port = Number((await prim.line('ready ')).split(' ')[1]);
    const opts = { readerThreads: 0, walRetrieveRetryIntervalMs: 100 };
    s1 = await Standby.open({ dataDir: path.join(root, 's1'), primaryConninfo: conninfo(port, 's1'), ...opts });
    s2 = await Standby.open({ dataDir: path.join(root, 's2'), primaryConninfo: conninfo(port, 's2'), ...opts });
    const warnings: string[] = [];
    const timelines: number[] = [];
    const onWarning = (e: Error) => warnings.push(e.message);
    s2.on('warning', onWarning);
    s2.on('replayTimeline', (m: { tli: number }) => timelines.push(m.tli));

    prim.send('go');
    await prim.until(() => prim.acks.length > 0, 'a first acknowledged commit');
    const killAfter = KILL_MIN_MS + Math.floor(rand() * KILL_SPAN_MS);
    await new Promise((res) => setTimeout(res, killAfter));
    await prim.kill();
    const acked = [...prim.acks];
    assert.ok(acked.length > 0);

    // Both walreceivers lose the primary; s2's flush is final then.
    await waitFor(() => s1!.receiverStatus().status !== 'streaming' && s2!.receiverStatus().status !== 'streaming', WAIT_MS, 'the standbys to lose the primary');
    np = await s1.promote({ port: 0, checkpointTimeoutMs: 0 });
    assert.equal(np.timeline, 2);
    for (const a of acked) assert.deepEqual((s1.get('t', a.key) as { n: number } | undefined)?.n, a.n, `round ${r}: acknowledged ${a.key} (${lsnToString(a.lsn)}) on s1`);
    const switchpoint = switchpointOf(path.join(root, 's1', 'pg_wal'));
    const s2Flush = s2.flushLsn;
    const diverged = s2Flush > switchpoint;

    s2.setPrimaryConninfo(conninfo(np.port!, 's2'));
    if (diverged) {
      const want = `new timeline 2 forked off current database system timeline 1 before current recovery point ${lsnToString(s2Flush)}`;
      await waitFor(() => warnings.includes(want), WAIT_MS, `s2's refusal (${warnings.join(' | ')})`);
      assert.ok(!fs.existsSync(path.join(root, 's2', 'pg_wal', '00000002.history')), 'nothing of timeline 2 written');
      await s2.close();
      s2 = null;
      s2 = await Standby.open({ dataDir: path.join(root, 's2'), primaryConninfo: conninfo(np.port!, 's2'), rebuildIfDiverged: true, ...opts });
      assert.ok(s2.rejoin?.movedAside, 'the diverged directory was moved aside');
      assert.ok(fs.existsSync(s2.rejoin.movedAside));
      s2.on('warning', onWarning);
    } else {
      await waitFor(() => timelines.includes(2), WAIT_MS, `s2 to replay onto timeline 2 (${warnings.join(' | ')})`);
    }

    // New commits on s1 reach s2.
    let end = 0;
    for (let i = 0; i < NEW_COMMITS; i++) end = await np.transaction((tx) => tx.put('t', `after-${i}`, { n: i }), { synchronousCommit: 'local' });
    await s2.waitForReplay(np.flushLsn, WAIT_MS);
    assert.ok(s2.replayLsn >= end);
    assert.equal(s2.timeline, 2, 's2 replays timeline 2');
    assert.equal(s2.receiverStatus().received_tli, 2, 's2 streams timeline 2');
    assert.equal(readControl(path.join(root, 's2'))!.tli, 2, "s2's control file names timeline 2");
    assert.equal(s2.store!.digest(), np.store.digest(), `round ${r}: s2's store digest is s1's`);
    for (const a of acked) assert.deepEqual((s2.get('t', a.key) as { n: number } | undefined)?.n, a.n, `round ${r}: acknowledged ${a.key} on s2`);
    assert.deepEqual((s2.get('t', `after-${NEW_COMMITS - 1}`) as { n: number }).n, NEW_COMMITS - 1);
    return { acked: acked.length, diverged };
  } finally {
    await prim.kill();
    await s2?.close().catch(() => undefined);
    await np?.close().catch(() => undefined);
    await s1?.close().catch(() => undefined);
    rmrf(root);
  }
}

test(`failover under load: SIGKILL the primary, promote the synchronous standby, the other follows (${ROUNDS} rounds, seed ${SEED})`, async (t) => {
  t.diagnostic(`seed ${SEED} (WALSTREAM_FAILOVER_SEED=${SEED} replays this run)`);
  console.log(`failover: seed ${SEED}, ${ROUNDS} rounds`);
  const rand = prng(SEED);
  let acked = 0;
  let diverged = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const res = await round(r, rand);
    acked += res.acked;
    if (res.diverged) diverged++;
  }
  t.diagnostic(`${acked} acknowledged commits checked on both standbys; ${diverged} of ${ROUNDS} rounds had s2 ahead of s1 (rebuilt)`);
});
