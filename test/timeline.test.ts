// Timeline history files (src/wal/timeline.ts). Unit tests: names, parsing (comments, blank
// lines, fgets pieces, sscanf's conversions), every error text and hint, the lookups, the bytes a
// new history file gets and its durable creation. Oracle tests against real PostgreSQL 15: a
// primary, a standby made with pg_basebackup -R and promoted with pg_ctl promote (timeline 2),
// then a standby of that one promoted in turn (timeline 3, a history with two lines). Our parser
// reads the real 00000002.history and 00000003.history and finds the switch points the servers
// replayed to (pg_last_wal_replay_lsn before promotion; the END_OF_RECOVERY record pg_waldump
// finds there); our formatter, given the same parent file, switch point and reason, makes the same
// bytes; TIMELINE_HISTORY on a replication connection returns those bytes; the real server's
// errors for a timeline not in its history and for damaged history files are ours, word for word.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WalstreamError } from '../src/errors.js';
import { flushCount } from '../src/util/fsync.js';
import { type Lsn, lsnToString, parseLsn } from '../src/wal/lsn.js';
import { recordStartAt } from '../src/wal/segment.js';
import {
  findNewestTimeLine, formatTimeLineHistory, IsTLHistoryFileName, MAXPGPATH, noParentsHistory, parseTimeLineHistory,
  parseTLHistoryFileName, readTimeLineHistory, REASON_NO_RECOVERY_TARGET, recoveryStopReason, TLHistoryFileName,
  tliInHistory, tliOfPoint, tliOfPointInHistory, tliSwitchPoint, writeTimeLineHistory, writeTimeLineHistoryFile,
  type TimeLineHistoryEntry,
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

/** The WalstreamError `fn` throws, checked for message and hint. */
function throwsPg(fn: () => unknown, message: string, hint?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WalstreamError, `expected a WalstreamError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.hint, hint);
    return true;
  });
}

// ---- unit ---------------------------------------------------------------------------------------

test('names: TLHistoryFileName, IsTLHistoryFileName and back', () => {
  assert.equal(TLHistoryFileName(2), '00000002.history');
  assert.equal(TLHistoryFileName(0x1a), '0000001A.history');
  assert.equal(TLHistoryFileName(0xffffffff), 'FFFFFFFF.history');
  for (const ok of ['00000002.history', '0000001A.history']) assert.ok(IsTLHistoryFileName(ok), ok);
  for (const bad of ['0000001a.history', '00000002.histor', '0000002.history', '00000002.history.partial', '000000010000000000000001', '00000002.backup']) {
    assert.ok(!IsTLHistoryFileName(bad), bad);
    assert.equal(parseTLHistoryFileName(bad), null);
  }
  assert.equal(parseTLHistoryFileName('0000001A.history'), 26);
  assert.throws(() => TLHistoryFileName(0), /bad timeline ID 0/);
});

test('parse: comments, blank lines and the reason are skipped; newest first with a tip entry', () => {
  const text = '# made by hand\n\n  \t\n1\t0/3000148\tno recovery target specified\n\n   # indented comment\n2\t0/5000000\tbefore LSN 0/5000000\n\n3\t1/A0\tat restore point "x"\n';
  const h = parseTimeLineHistory(text, 4, 'pg_wal/00000004.history');
  assert.deepEqual(h, [
    { tli: 4, begin: 0x1_0000_00a0, end: 0 },
    { tli: 3, begin: 0x5000000, end: 0x1_0000_00a0 },
    { tli: 2, begin: 0x3000148, end: 0x5000000 },
    { tli: 1, begin: 0, end: 0x3000148 },
  ]);
  // An empty (or comment-only) file: only the tip, no parents.
  assert.deepEqual(parseTimeLineHistory('# nothing\n', 7, 'f'), noParentsHistory(7));
  assert.deepEqual(parseTimeLineHistory('', 7, 'f'), [{ tli: 7, begin: 0, end: 0 }]);
  // Timeline 1 never has a file; a missing file means no parents.
  const d = tmpDir('walstream-tli-');
  dirs.push(d);
  assert.deepEqual(readTimeLineHistory(d, 1), noParentsHistory(1));
  assert.deepEqual(readTimeLineHistory(d, 5), noParentsHistory(5));
});

test('parse: every error text and hint is PostgreSQL\'s', () => {
  throwsPg(() => parseTimeLineHistory('1\t0/10\tr\nabc\t0/20\n', 3, 'f'), 'syntax error in history file: abc\t0/20\n', 'Expected a numeric timeline ID.');
  throwsPg(() => parseTimeLineHistory('1\n', 3, 'f'), 'syntax error in history file: 1\n', 'Expected a write-ahead log switchpoint location.');
  throwsPg(() => parseTimeLineHistory('1\t0-10\tr', 3, 'f'), 'syntax error in history file: 1\t0-10\tr', 'Expected a write-ahead log switchpoint location.');
  throwsPg(() => parseTimeLineHistory('2\t0/10\tr\n2\t0/20\tr\n', 3, 'f'), 'invalid data in history file: 2\t0/20\tr\n', 'Timeline IDs must be in increasing sequence.');
  throwsPg(() => parseTimeLineHistory('2\t0/10\tr\n1\t0/20\tr\n', 3, 'f'), 'invalid data in history file: 1\t0/20\tr\n', 'Timeline IDs must be in increasing sequence.');
  throwsPg(() => parseTimeLineHistory('1\t0/10\tr\n3\t0/20\tr\n', 3, 'pg_wal/00000003.history'), 'invalid data in history file "pg_wal/00000003.history"', "Timeline IDs must be less than child timeline's ID.");
  const h = parseTimeLineHistory('1\t0/10\tr\n', 2, 'f');
  throwsPg(() => tliSwitchPoint(7, h), "requested timeline 7 is not in this server's history");
  throwsPg(() => tliOfPointInHistory(0x10, [{ tli: 3, begin: 0x20, end: 0 }]), 'timeline history was not contiguous');
});

test("parse: sscanf(\"%u\\t%X/%X\") as glibc's (signs, overflow, 0x, white space) and fgets pieces of MAXPGPATH - 1 bytes", () => {
  // [line, timeline ID sscanf stores, switch point hi, lo] as glibc's sscanf converts them.
  const cases: Array<[string, number, number, number]> = [
    ['1 0/3', 1, 0, 3], // '\t' in the format matches any white space
    ['1\t 0x1A/ 0x2b', 1, 0x1a, 0x2b],
    ['+7\tFFFFFFFFF/1', 7, 0xffffffff, 1], // overflow saturates
    ['2\t0x/1', 2, 0, 1], // a bare 0x is 0
    ['3\t-1/-2', 3, 0xffffffff, 0xfffffffe],
    ['3\t0/0x', 3, 0, 0],
  ];
  for (const [line, tli, hi, lo] of cases) {
    const h = parseTimeLineHistory(`${line}\n`, 0xffffffff, 'f');
    assert.deepEqual(h[1], { tli, begin: 0, end: hi * 2 ** 32 + lo }, JSON.stringify(line));
  }
  // -1 and 99999999999999999999999 are stored as 4294967295; 99999999999 wraps to 1215752191.
  throwsPg(() => parseTimeLineHistory('-1\t0/1\n', 0xffffffff, 'f'), 'invalid data in history file "f"', "Timeline IDs must be less than child timeline's ID.");
  throwsPg(() => parseTimeLineHistory('99999999999999999999999\t0/1\n', 0xffffffff, 'f'), 'invalid data in history file "f"', "Timeline IDs must be less than child timeline's ID.");
  assert.equal(parseTimeLineHistory('99999999999\t0/1\n', 0xffffffff, 'f')[1]!.tli, 1215752191);
  throwsPg(() => parseTimeLineHistory('3\t1 /2\n', 4, 'f'), 'syntax error in history file: 3\t1 /2\n', 'Expected a write-ahead log switchpoint location.');
  // A line longer than MAXPGPATH - 1 bytes is read in pieces: its tail is a line of its own.
  const reason = 'r'.repeat(MAXPGPATH);
  const first = `1\t0/10\t${reason}`.slice(0, MAXPGPATH - 1);
  throwsPg(() => parseTimeLineHistory(`1\t0/10\t${reason}\n`, 2, 'f'), `syntax error in history file: ${`1\t0/10\t${reason}\n`.slice(first.length)}`, 'Expected a numeric timeline ID.');
  // ... unless the tail is blank or a comment.
  assert.equal(parseTimeLineHistory(`1\t0/10\t${'r'.repeat(MAXPGPATH - 1 - 7)}  \n`, 2, 'f').length, 2);
  // A NUL ends the line as C sees it.
  assert.equal(parseTimeLineHistory(Buffer.from('1\t0/10\0garbage\n'), 2, 'f')[1]!.end, 0x10);
});

test('lookups: tliOfPoint, tliSwitchPoint, tliInHistory', () => {
  const h: TimeLineHistoryEntry[] = parseTimeLineHistory('1\t0/3000148\tr\n\n2\t0/5000000\tr\n', 3, 'f');
  assert.equal(tliOfPoint(0, h), 1);
  assert.equal(tliOfPoint(0x3000147, h), 1);
  assert.equal(tliOfPoint(0x3000148, h), 2); // a switch point belongs to the new timeline
  assert.equal(tliOfPoint(0x4ffffff, h), 2);
  assert.equal(tliOfPoint(0x5000000, h), 3);
  assert.equal(tliOfPoint(2 ** 52, h), 3);
  assert.deepEqual(tliSwitchPoint(1, h), { switchpoint: 0x3000148, nextTli: 2 });
  assert.deepEqual(tliSwitchPoint(2, h), { switchpoint: 0x5000000, nextTli: 3 });
  assert.deepEqual(tliSwitchPoint(3, h), { switchpoint: 0, nextTli: 0 }); // the current timeline
  assert.ok(tliInHistory(2, h) && !tliInHistory(4, h));
});

test('format: the bytes writeTimeLineHistory appends, with getRecoveryStopReason texts', () => {
  const first = formatTimeLineHistory(null, 1, 0x3000148, REASON_NO_RECOVERY_TARGET);
  assert.equal(first.toString('latin1'), '1\t0/3000148\tno recovery target specified\n');
  // With a parent file: an extra newline first, in case the parent did not end with one.
  const second = formatTimeLineHistory(first, 2, 0x1_0000_0000, recoveryStopReason({ target: 'immediate' }));
  assert.equal(second.toString('latin1'), '1\t0/3000148\tno recovery target specified\n\n2\t1/0\treached consistency\n');
  assert.deepEqual(parseTimeLineHistory(second, 3, 'f').map((e) => e.tli), [3, 2, 1]);
  assert.equal(formatTimeLineHistory(Buffer.from('1\t0/10\tx'), 2, 0x20, 'y').toString(), '1\t0/10\tx\n2\t0/20\ty\n');
  assert.equal(recoveryStopReason({ target: 'none' }), 'no recovery target specified');
  assert.equal(recoveryStopReason({ target: 'xid', after: true, xid: 735 }), 'after transaction 735');
  assert.equal(recoveryStopReason({ target: 'xid', after: false, xid: 735 }), 'before transaction 735');
  assert.equal(recoveryStopReason({ target: 'lsn', after: false, lsn: 0x3000148 }), 'before LSN 0/3000148\n');
  assert.equal(recoveryStopReason({ target: 'time', after: true, time: '2026-12-07 19:00:00.123+00' }), 'after 2026-12-07 19:00:00.123+00\n');
  assert.equal(recoveryStopReason({ target: 'name', name: 'before upgrade' }), 'at restore point "before upgrade"');
  // Invariants: the parent's history must parse as the parent's, the switch point not go back.
  throwsPg(() => formatTimeLineHistory(Buffer.from('2\t0/10\tx\n'), 2, 0x20, 'y'), 'invalid data in history file "00000002.history"', "Timeline IDs must be less than child timeline's ID.");
  assert.throws(() => formatTimeLineHistory(Buffer.from('1\t0/100\tx\n'), 2, 0x20, 'y'), /precedes the start of timeline 2/);
});

test('write: durable creation through src/util/fsync.ts, never replacing a file; findNewestTimeLine', () => {
  const walDir = tmpDir('walstream-tli-');
  dirs.push(walDir);
  assert.equal(findNewestTimeLine(walDir), 1);
  const before = flushCount();
  const b2 = writeTimeLineHistory(walDir, 2, 1, 0x3000148, REASON_NO_RECOVERY_TARGET);
  assert.ok(flushCount() - before >= 2, 'the file and its directory are fsynced through src/util/fsync.ts');
  assert.deepEqual(fs.readFileSync(path.join(walDir, '00000002.history')), b2);
  const b3 = writeTimeLineHistory(walDir, 3, 2, 0x5000000, REASON_NO_RECOVERY_TARGET);
  assert.equal(b3.toString(), '1\t0/3000148\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n');
  assert.deepEqual(fs.readdirSync(walDir).sort(), ['00000002.history', '00000003.history'], 'no temp file left');
  assert.deepEqual(readTimeLineHistory(walDir, 3).map((e) => [e.tli, e.end]), [[3, 0], [2, 0x5000000], [1, 0x3000148]]);
  assert.equal(findNewestTimeLine(walDir), 3);
  assert.equal(findNewestTimeLine(walDir, 3), 3);
  // An existing history file is never replaced.
  assert.throws(() => writeTimeLineHistoryFile(walDir, 3, Buffer.from('x')), /EEXIST/);
  assert.equal(fs.readFileSync(path.join(walDir, '00000003.history')).toString(), b3.toString());
  assert.ok(!fs.readdirSync(walDir).some((n) => n.startsWith('xlogtemp.')));
  // findNewestTimeLine stops at the first gap, as PostgreSQL's does.
  writeTimeLineHistoryFile(walDir, 5, Buffer.from('1\t0/10\tr\n'));
  assert.equal(findNewestTimeLine(walDir), 3);
  assert.equal(findNewestTimeLine(walDir, 4), 5);
  assert.throws(() => writeTimeLineHistory(walDir, 2, 2, 0x10, 'r'), /not greater than its parent/);
});

// ---- oracle: real PostgreSQL 15 ---------------------------------------------------------------

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
