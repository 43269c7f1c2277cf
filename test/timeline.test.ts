// Timeline history files (src/wal/timeline.ts), unit tests: names, parsing (comments, blank
// lines, fgets pieces, sscanf's conversions as glibc's), every error text and hint, the lookups,
// the bytes a new history file gets and its durable creation. test/timeline-realpg.test.ts checks
// the same module against real PostgreSQL 15 promotions.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WalstreamError } from '../src/errors.js';
import { flushCount } from '../src/util/fsync.js';
import {
  findNewestTimeLine, formatTimeLineHistory, IsTLHistoryFileName, MAXPGPATH, noParentsHistory, parseTimeLineHistory,
  parseTLHistoryFileName, readTimeLineHistory, REASON_NO_RECOVERY_TARGET, recoveryStopReason, TLHistoryFileName,
  tliInHistory, tliOfPoint, tliOfPointInHistory, tliSwitchPoint, writeTimeLineHistory, writeTimeLineHistoryFile,
  type TimeLineHistoryEntry,
} from '../src/wal/timeline.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

/** The WalstreamError `fn` throws, checked for message and hint. */
function throwsPg(fn: () => unknown, message: string, hint?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WalstreamError, `expected a WalstreamError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.hint, hint);
    return true;
  });
}

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
