// Timeline history files (src/wal/timeline.ts) against real PostgreSQL 15: a primary, a standby
// made with pg_basebackup -R and promoted with pg_ctl promote (timeline 2), then a standby of that
// one promoted in turn (timeline 3, a history with two lines). Our parser reads the real
// 00000002.history and 00000003.history and finds the switch points the servers replayed to
// (pg_last_wal_replay_lsn before promotion; the END_OF_RECOVERY record pg_waldump finds there);
// our formatter, given the same parent file, switch point and reason, makes the same bytes;
// TIMELINE_HISTORY on a replication connection returns those bytes; the real server's errors for a
// timeline not in its history and for damaged history files are ours, word for word.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { WalstreamError } from '../src/errors.js';
import { type Lsn, lsnToString, parseLsn } from '../src/wal/lsn.js';
import { recordStartAt } from '../src/wal/segment.js';
import {
  findNewestTimeLine, formatTimeLineHistory, parseTimeLineHistory, readTimeLineHistory, REASON_NO_RECOVERY_TARGET,
  tliOfPoint, tliSwitchPoint, writeTimeLineHistory,
} from '../src/wal/timeline.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { failingPgStart, pgBaseBackup, pgControlData, pgTempRoot, pgTool, startPgNode, type PgNode } from './helpers/pgnode.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const dirs: string[] = [];
const nodes: Array<PgNode | PgCluster> = [];
after(async () => {
  for (const n of nodes) await n.stop();
  dirs.forEach(rmrf);
});

/** Waits for a standby's walreceiver to stream, then for it to replay everything it received once its primary is gone; returns that position. */
async function replayedEverything(node: PgNode): Promise<Lsn> {
  let last = '';
  let same = 0;
  await waitFor(() => {
    const [recv, replay] = node.psql('SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()').trim().split('|');
    const now = `${recv}|${replay}`;
    same = recv !== '' && recv === replay && now === last ? same + 1 : 0;
    last = now;
    return same >= 3;
  }, 30_000, 'the standby to replay all it received', 100);
  return parseLsn(last.split('|')[1]!);
}

async function streaming(node: PgNode): Promise<void> {
  await waitFor(() => node.psql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").trim() === '1', 30_000, 'the walreceiver to stream', 100);
}

/** The first record pg_waldump finds at or after `lsn` on timeline `tli`: its start and description. */
function firstRecordAfter(walDir: string, tli: number, lsn: Lsn): { lsn: Lsn; desc: string } {
  const out = pgTool('pg_waldump', ['-p', walDir, '-t', String(tli), '-s', lsnToString(lsn), '-n', '1']).stdout;
  const m = /lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (.*)$/m.exec(out);
  assert.ok(m, `pg_waldump printed: ${out}`);
  return { lsn: parseLsn(m[1]!), desc: m[2]!.trim() };
}

test('oracle: promotions of real PostgreSQL 15 standbys (timelines 2 and 3)', async () => {
  const primary = await startPgCluster({ hbaLines: ['host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'] });
  nodes.push(primary);
  primary.psql('CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 1000)');
  const root = pgTempRoot();
  dirs.push(root);

  // Timeline 2: a standby of the primary, promoted after the primary shut down.
  const s1Dir = path.join(root, 's1');
  pgBaseBackup(primary.port, s1Dir);
  const s1 = await startPgNode(s1Dir, root);
  nodes.push(s1);
  await streaming(s1);
  primary.psql('INSERT INTO t SELECT generate_series(1, 1000)');
  await primary.stop(); // fast shutdown: the walsender sends the shutdown checkpoint first
  const end1 = await replayedEverything(s1);
  s1.promote();
  assert.equal(s1.psql('SELECT pg_is_in_recovery()').trim(), 'f');

  const h2Bytes = fs.readFileSync(path.join(s1Dir, 'pg_wal', '00000002.history'));
  assert.equal(h2Bytes.toString('latin1'), `1\t${lsnToString(end1)}\tno recovery target specified\n`);
  assert.deepEqual(formatTimeLineHistory(null, 1, end1, REASON_NO_RECOVERY_TARGET), h2Bytes, 'our formatter makes the real file\'s bytes');
  const h2 = readTimeLineHistory(path.join(s1Dir, 'pg_wal'), 2);
  assert.deepEqual(h2, [{ tli: 2, begin: end1, end: 0 }, { tli: 1, begin: 0, end: end1 }]);
  assert.deepEqual(tliSwitchPoint(1, h2), { switchpoint: end1, nextTli: 2 });
  assert.equal(findNewestTimeLine(path.join(s1Dir, 'pg_wal')), 2);
  // Timeline 2 starts with END_OF_RECOVERY at the switch point.
  const eor = firstRecordAfter(path.join(s1Dir, 'pg_wal'), 2, end1);
  assert.equal(eor.lsn, recordStartAt(end1, 16 << 20));
  assert.match(eor.desc, /^END_OF_RECOVERY tli 2; prev tli 1;/);
  assert.equal(tliOfPoint(eor.lsn, h2), 2);
  assert.equal(tliOfPoint(end1 - 1, h2), 1);
  // The walsender serves the same bytes; IDENTIFY_SYSTEM reports timeline 2.
  const th = s1.replicationCommand('TIMELINE_HISTORY 2');
  assert.equal(th.status, 0, th.stderr);
  assert.equal(th.stdout, `00000002.history|${h2Bytes.toString('latin1')}\n`);
  assert.equal(s1.replicationCommand('IDENTIFY_SYSTEM').stdout.split('|')[1], '2');

  // Timeline 3: a standby of the promoted server, promoted in turn.
  const s2Dir = path.join(root, 's2');
  pgBaseBackup(s1.port, s2Dir);
  const s2 = await startPgNode(s2Dir, root);
  nodes.push(s2);
  await streaming(s2);
  s1.psql('INSERT INTO t SELECT generate_series(1, 1000)');
  await s1.stop();
  const end2 = await replayedEverything(s2);
  s2.promote();
  const s2Wal = path.join(s2Dir, 'pg_wal');
  const h3Bytes = fs.readFileSync(path.join(s2Wal, '00000003.history'));
  assert.equal(h3Bytes.toString('latin1'), `1\t${lsnToString(end1)}\tno recovery target specified\n\n2\t${lsnToString(end2)}\tno recovery target specified\n`);
  assert.deepEqual(formatTimeLineHistory(fs.readFileSync(path.join(s2Wal, '00000002.history')), 2, end2, REASON_NO_RECOVERY_TARGET), h3Bytes);
  // writeTimeLineHistory in a copy of pg_wal's history files makes the same file.
  const ours = tmpDir('walstream-tli-');
  dirs.push(ours);
  fs.copyFileSync(path.join(s2Wal, '00000002.history'), path.join(ours, '00000002.history'));
  assert.deepEqual(writeTimeLineHistory(ours, 3, 2, end2, REASON_NO_RECOVERY_TARGET), h3Bytes);
  assert.deepEqual(fs.readFileSync(path.join(ours, '00000003.history')), h3Bytes);
  const h3 = readTimeLineHistory(s2Wal, 3);
  assert.deepEqual(h3, [{ tli: 3, begin: end2, end: 0 }, { tli: 2, begin: end1, end: end2 }, { tli: 1, begin: 0, end: end1 }]);
  assert.deepEqual(tliSwitchPoint(2, h3), { switchpoint: end2, nextTli: 3 });
  assert.equal(findNewestTimeLine(s2Wal), 3);
  const eor3 = firstRecordAfter(s2Wal, 3, end2);
  assert.match(eor3.desc, /^END_OF_RECOVERY tli 3; prev tli 2;/);
  assert.equal(tliOfPoint(eor3.lsn, h3), 3);
  const th3 = s2.replicationCommand('TIMELINE_HISTORY 3');
  assert.equal(th3.stdout, `00000003.history|${h3Bytes.toString('latin1')}\n`);
  s2.psql('CHECKPOINT');
  assert.equal(pgControlData(s2Dir)["Latest checkpoint's TimeLineID"], '3');

  // The walsender's error for a timeline that is not in its history is tliSwitchPoint's.
  const notInHistory = s2.replicationCommand('START_REPLICATION 0/3000000 TIMELINE 7');
  assert.notEqual(notInHistory.status, 0);
  let ourError = '';
  try {
    tliSwitchPoint(7, h3);
  } catch (e) {
    ourError = (e as Error).message;
  }
  assert.ok(notInHistory.stderr.includes(`ERROR:  ${ourError}`), notInHistory.stderr);
  await s2.stop();

  // Damaged history files: the real startup process's FATAL and HINT are our parser's.
  fs.writeFileSync(path.join(s2Dir, 'standby.signal'), '');
  const damaged = ['x\t0/10\tr\n', '1\n', '1\t0/10\tr\n1\t0/20\tr\n', '1\t0/10\tr\n5\t0/20\tr\n'];
  for (const content of damaged) {
    fs.writeFileSync(path.join(s2Wal, '00000004.history'), content);
    let want: WalstreamError | null = null;
    try {
      parseTimeLineHistory(content, 4, 'pg_wal/00000004.history');
    } catch (e) {
      want = e as WalstreamError;
    }
    assert.ok(want, `our parser accepts ${JSON.stringify(content)}`);
    const log = await failingPgStart(s2Dir, root);
    assert.ok(log.includes(`FATAL:  ${want.message.replace(/\n/g, '\n\t')}\n`), `${JSON.stringify(content)}: ${log}`);
    assert.ok(log.includes(`HINT:  ${want.hint}\n`), log);
  }
});
