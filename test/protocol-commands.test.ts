// The replication command parser (src/replication/protocol/commands.ts). Expected results and
// errors are what a real PostgreSQL 15.18 walsender answered to the same strings (checked with
// psql "replication=true"), plus the forms pg_receivewal, pg_basebackup and a standby send.
// In-process only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalstreamError } from '../src/errors.js';
import { parseLsn } from '../src/wal/lsn.js';
import {
  formatStartReplication,
  isReplicationCommand,
  parseReplicationCommand,
  validateSlotName,
  type ReplicationCommand,
} from '../src/replication/protocol/commands.js';

const parse = (s: string): ReplicationCommand => parseReplicationCommand(s).command;

function fails(text: string, sqlstate: string, message: string, hint?: string): void {
  let caught: unknown;
  try {
    parseReplicationCommand(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof WalstreamError, `${text}: expected an error`);
  assert.equal(caught.sqlstate, sqlstate, `${text}: ${caught.message}`);
  assert.equal(caught.message, message, text);
  if (hint !== undefined) assert.equal(caught.hint, hint);
}

test('commands the real tools send', () => {
  assert.deepEqual(parse('IDENTIFY_SYSTEM'), { kind: 'IDENTIFY_SYSTEM' });
  assert.deepEqual(parse('SHOW data_directory_mode'), { kind: 'SHOW', name: 'data_directory_mode' });
  assert.deepEqual(parse('SHOW wal_segment_size'), { kind: 'SHOW', name: 'wal_segment_size' });
  assert.deepEqual(parse('START_REPLICATION 0/1000000 TIMELINE 1'), {
    kind: 'START_REPLICATION',
    replicationKind: 'physical',
    slotName: null,
    startLsn: 0x1000000,
    timeline: 1,
  });
  assert.deepEqual(parse('START_REPLICATION SLOT "rs2" 0/1000000 TIMELINE 1'), {
    kind: 'START_REPLICATION',
    replicationKind: 'physical',
    slotName: 'rs2',
    startLsn: 0x1000000,
    timeline: 1,
  });
  assert.deepEqual(parse('READ_REPLICATION_SLOT rs2'), { kind: 'READ_REPLICATION_SLOT', slotName: 'rs2' });
  assert.deepEqual(parse('TIMELINE_HISTORY 2'), { kind: 'TIMELINE_HISTORY', timeline: 2 });
  const c1 = parse('CREATE_REPLICATION_SLOT "rs1" PHYSICAL');
  assert.equal(c1.kind, 'CREATE_REPLICATION_SLOT');
  assert.ok(c1.kind === 'CREATE_REPLICATION_SLOT' && c1.replicationKind === 'physical');
  assert.equal(c1.slotName, 'rs1');
  assert.equal(c1.reserveWal, false);
  assert.equal(c1.temporary, false);
  const c2 = parse('CREATE_REPLICATION_SLOT "sb1" PHYSICAL ( RESERVE_WAL)');
  assert.ok(c2.kind === 'CREATE_REPLICATION_SLOT' && c2.replicationKind === 'physical' && c2.reserveWal);
  for (const s of ['CREATE_REPLICATION_SLOT s PHYSICAL RESERVE_WAL', 'CREATE_REPLICATION_SLOT s PHYSICAL (RESERVE_WAL)', "CREATE_REPLICATION_SLOT s PHYSICAL (RESERVE_WAL 'on')", 'CREATE_REPLICATION_SLOT s PHYSICAL (RESERVE_WAL true)', 'CREATE_REPLICATION_SLOT s PHYSICAL (RESERVE_WAL 1)']) {
    const c = parse(s);
    assert.ok(c.kind === 'CREATE_REPLICATION_SLOT' && c.replicationKind === 'physical' && c.reserveWal, s);
  }
  const c3 = parse('CREATE_REPLICATION_SLOT s TEMPORARY PHYSICAL RESERVE_WAL');
  assert.ok(c3.kind === 'CREATE_REPLICATION_SLOT' && c3.temporary && c3.replicationKind === 'physical' && c3.reserveWal);
  const c4 = parse('CREATE_REPLICATION_SLOT zz PHYSICAL (RESERVE_WAL 0)');
  assert.ok(c4.kind === 'CREATE_REPLICATION_SLOT' && c4.replicationKind === 'physical' && !c4.reserveWal);
  assert.deepEqual(parse('DROP_REPLICATION_SLOT "rs1"'), { kind: 'DROP_REPLICATION_SLOT', slotName: 'rs1', wait: false });
  assert.deepEqual(parse('DROP_REPLICATION_SLOT rs1 WAIT'), { kind: 'DROP_REPLICATION_SLOT', slotName: 'rs1', wait: true });
  const bb = parse("BASE_BACKUP ( LABEL 'pg_basebackup base backup',  PROGRESS,  CHECKPOINT 'fast',  WAIT 0,  MANIFEST 'yes',  TARGET 'client')");
  assert.ok(bb.kind === 'BASE_BACKUP');
  assert.equal(bb.backup.label, 'pg_basebackup base backup');
  assert.equal(bb.backup.progress, true);
  assert.equal(bb.backup.fastCheckpoint, true);
  assert.equal(bb.backup.wait, false);
  assert.equal(bb.backup.manifest, 'yes');
  assert.equal(bb.backup.manifestChecksums, 'CRC32C');
  assert.equal(bb.backup.target, 'client');
  assert.deepEqual(
    bb.options.map((o) => o.name),
    ['label', 'progress', 'checkpoint', 'wait', 'manifest', 'target'],
  );
  const plain = parse('BASE_BACKUP');
  assert.ok(plain.kind === 'BASE_BACKUP');
  assert.equal(plain.backup.label, 'base backup');
  assert.equal(plain.backup.manifestChecksums, 'NONE');
});

test('lexical rules: case, identifiers, quoting, LSNs, one trailing semicolon', () => {
  // unquoted identifiers are lower-cased, quoted ones kept
  const c = parse('CREATE_REPLICATION_SLOT MySlot PHYSICAL');
  assert.ok(c.kind === 'CREATE_REPLICATION_SLOT');
  assert.equal(c.slotName, 'myslot');
  assert.deepEqual(parse('SHOW "Wal_Segment_Size"'), { kind: 'SHOW', name: 'Wal_Segment_Size' });
  assert.deepEqual(parse('SHOW DateStyle'), { kind: 'SHOW', name: 'datestyle' });
  assert.deepEqual(parse('SHOW a.b.c'), { kind: 'SHOW', name: 'a.b.c' });
  assert.deepEqual(parse('SHOW wal_segment_size;'), { kind: 'SHOW', name: 'wal_segment_size' });
  assert.deepEqual(parse(' \t\n IDENTIFY_SYSTEM \r\n ; '), { kind: 'IDENTIFY_SYSTEM' });
  // keywords that PostgreSQL 15 does not have are plain identifiers
  assert.deepEqual(parse('SHOW WAL'), { kind: 'SHOW', name: 'wal' });
  assert.deepEqual(parse('SHOW LABEL'), { kind: 'SHOW', name: 'label' });
  // LSN forms
  const s = parse('START_REPLICATION 1A/DEADBEEF');
  assert.ok(s.kind === 'START_REPLICATION' && s.replicationKind === 'physical');
  assert.equal(s.startLsn, parseLsn('1A/DEADBEEF'));
  assert.equal(s.timeline, null);
  const p = parse('START_REPLICATION PHYSICAL 0/0');
  assert.ok(p.kind === 'START_REPLICATION' && p.startLsn === 0);
  const lower = parse('START_REPLICATION abc/def');
  assert.ok(lower.kind === 'START_REPLICATION' && lower.startLsn === parseLsn('ABC/DEF'));
  // string constants with '' escapes
  const bb = parse("BASE_BACKUP (LABEL 'it''s')");
  assert.ok(bb.kind === 'BASE_BACKUP' && bb.backup.label === "it's");
  // integer option values are taken modulo 2^32, like PostgreSQL's uint32 token
  fails('BASE_BACKUP (MAX_RATE 99999999999)', '22003', '1215752191 is outside the valid range for parameter "MAX_RATE" (32 .. 1048576)');
  fails('TIMELINE_HISTORY 4294967296', '42601', 'invalid timeline 0');
  // truncation of identifiers longer than 63 bytes, with a NOTICE
  const long = 'a'.repeat(77);
  const r = parseReplicationCommand(`CREATE_REPLICATION_SLOT ${long} PHYSICAL`);
  assert.ok(r.command.kind === 'CREATE_REPLICATION_SLOT');
  assert.equal(r.command.slotName, 'a'.repeat(63));
  assert.equal(r.notices.length, 1);
  assert.equal(r.notices[0]!.sqlstate, '42622');
  assert.equal(r.notices[0]!.message, `identifier "${long}" will be truncated to "${'a'.repeat(63)}"`);
});

test('SQL, empty and wrong-case commands are 0A000 on a physical connection', () => {
  const msg = 'cannot execute SQL commands in WAL sender for physical replication';
  for (const s of ['select 1', '', '   ', 'identify_system', 'Identify_System', 'SHOW_ALL', '; IDENTIFY_SYSTEM', '(IDENTIFY_SYSTEM)', 'WAIT']) {
    fails(s, '0A000', msg);
    assert.equal(isReplicationCommand(s), false, s);
  }
  assert.equal(isReplicationCommand('IDENTIFY_SYSTEM'), true);
  assert.equal(isReplicationCommand('  SHOW x'), true);
  // the scanner runs on the first token even for SQL
  fails("'abc", '42601', 'unterminated quoted string');
});

test('syntax errors and the checks PostgreSQL makes while parsing', () => {
  const se = 'syntax error';
  for (const s of [
    'IDENTIFY_SYSTEM; IDENTIFY_SYSTEM',
    'IDENTIFY_SYSTEM extra',
    'SHOW wal_segment_size;;',
    'SHOW wal_segment_size extra',
    'SHOW WAIT',
    'SHOW TIMELINE',
    'SHOW @',
    'SHOW',
    'CREATE_REPLICATION_SLOT "a""b" PHYSICAL',
    'CREATE_REPLICATION_SLOT Bad-Name PHYSICAL',
    'CREATE_REPLICATION_SLOT $x PHYSICAL',
    'CREATE_REPLICATION_SLOT s',
    'CREATE_REPLICATION_SLOT s PHYSICAL FOO',
    "BASE_BACKUP LABEL 'x' PROGRESS", // PostgreSQL 15 has no legacy BASE_BACKUP syntax
    'BASE_BACKUP ()',
    'BASE_BACKUP (READ_REPLICATION_SLOT)',
    'BASE_BACKUP (LABEL',
    'START_REPLICATION',
    'START_REPLICATION 0/0 TIMELINE',
    'START_REPLICATION 0/0 TIMELINE x',
    'START_REPLICATION SLOT 0/0',
    'START_REPLICATION 12',
    'TIMELINE_HISTORY',
    'TIMELINE_HISTORY x',
    'DROP_REPLICATION_SLOT',
    'READ_REPLICATION_SLOT 5',
  ]) {
    fails(s, '42601', se);
  }
  fails('TIMELINE_HISTORY 0', '42601', 'invalid timeline 0');
  fails('START_REPLICATION 0/1 TIMELINE 0', '42601', 'invalid timeline 0');
  fails('START_REPLICATION 0/0 TIMELINE 0 garbage', '42601', 'invalid timeline 0');
  fails('CREATE_REPLICATION_SLOT "abc PHYSICAL', '42601', 'unterminated quoted string');
  fails("SHOW 'abc", '42601', 'unterminated quoted string');
});

test('CREATE_REPLICATION_SLOT options and slot-name validation', () => {
  fails('CREATE_REPLICATION_SLOT s1 PHYSICAL (RESERVE_WAL maybe)', '42601', 'reserve_wal requires a Boolean value');
  fails('CREATE_REPLICATION_SLOT zz PHYSICAL (RESERVE_WAL 2)', '42601', 'reserve_wal requires a Boolean value');
  fails('CREATE_REPLICATION_SLOT s1 PHYSICAL (FOO)', 'XX000', 'unrecognized option: foo');
  fails('CREATE_REPLICATION_SLOT s1 PHYSICAL (RESERVE_WAL, RESERVE_WAL)', '42601', 'conflicting or redundant options');
  fails("CREATE_REPLICATION_SLOT s1 PHYSICAL (snapshot 'x')", '42601', 'conflicting or redundant options');
  fails('CREATE_REPLICATION_SLOT s1 PHYSICAL EXPORT_SNAPSHOT', '42601', 'conflicting or redundant options');
  fails("CREATE_REPLICATION_SLOT x PHYSICAL (RESERVE_WAL 'TRUE', snapshot)", '42601', 'conflicting or redundant options');
  const hint = 'Replication slot names may only contain lower case letters, numbers, and the underscore character.';
  fails('CREATE_REPLICATION_SLOT "Bad" PHYSICAL', '42602', 'replication slot name "Bad" contains invalid character', hint);
  fails('CREATE_REPLICATION_SLOT x$y PHYSICAL', '42602', 'replication slot name "x$y" contains invalid character', hint);
  fails('CREATE_REPLICATION_SLOT "" PHYSICAL', '42602', 'replication slot name "" is too short');
  // logical slots parse (the walsender refuses them later)
  const l = parse("CREATE_REPLICATION_SLOT s TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing', TWO_PHASE)");
  assert.ok(l.kind === 'CREATE_REPLICATION_SLOT' && l.replicationKind === 'logical');
  assert.equal(l.plugin, 'pgoutput');
  assert.equal(l.snapshot, 'nothing');
  assert.equal(l.twoPhase, true);
  const legacy = parse('CREATE_REPLICATION_SLOT s LOGICAL test_decoding NOEXPORT_SNAPSHOT');
  assert.ok(legacy.kind === 'CREATE_REPLICATION_SLOT' && legacy.replicationKind === 'logical' && legacy.snapshot === 'nothing');
  fails("CREATE_REPLICATION_SLOT s TEMPORARY LOGICAL pgoutput (SNAPSHOT 'x')", '22023', 'unrecognized value for CREATE_REPLICATION_SLOT option "snapshot": "x"');
  fails('CREATE_REPLICATION_SLOT s LOGICAL p (RESERVE_WAL)', '42601', 'conflicting or redundant options');
  // lookups do not validate names (PostgreSQL answers 42704 / NULLs for them)
  assert.deepEqual(parse('START_REPLICATION SLOT "Bad" 0/0'), { kind: 'START_REPLICATION', replicationKind: 'physical', slotName: 'Bad', startLsn: 0, timeline: null });
  assert.deepEqual(parse('READ_REPLICATION_SLOT "Bad"'), { kind: 'READ_REPLICATION_SLOT', slotName: 'Bad' });
  assert.deepEqual(parse('DROP_REPLICATION_SLOT "Bad"'), { kind: 'DROP_REPLICATION_SLOT', slotName: 'Bad', wait: false });
  // validateSlotName directly
  validateSlotName('a_1');
  validateSlotName('x'.repeat(63));
  assert.throws(() => validateSlotName('x'.repeat(64)), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '42622' && /is too long/.test(e.message));
  assert.throws(() => validateSlotName('ümlaut'), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '42602');
});

test('START_REPLICATION LOGICAL parses with plugin options', () => {
  assert.deepEqual(parse("START_REPLICATION SLOT s LOGICAL 0/0 (a 'b', c)"), {
    kind: 'START_REPLICATION',
    replicationKind: 'logical',
    slotName: 's',
    startLsn: 0,
    pluginOptions: [
      { name: 'a', value: 'b' },
      { name: 'c', value: null },
    ],
  });
  assert.deepEqual(parse('START_REPLICATION SLOT s LOGICAL 0/0'), { kind: 'START_REPLICATION', replicationKind: 'logical', slotName: 's', startLsn: 0, pluginOptions: [] });
});

test('BASE_BACKUP option checks', () => {
  fails("BASE_BACKUP (LABEL 'x', LABEL 'y')", '42601', 'duplicate option "label"');
  fails("BASE_BACKUP (MANIFEST_CHECKSUMS 'crc32c', MANIFEST 'yes', LABEL 'a', LABEL 'b')", '42601', 'duplicate option "label"');
  fails('BASE_BACKUP (FOO)', '42601', 'unrecognized base backup option: "foo"');
  fails('BASE_BACKUP (WAIT, SHOW)', '42601', 'unrecognized base backup option: "show"');
  fails("BASE_BACKUP (CHECKPOINT 'slow')", '42601', 'unrecognized checkpoint type: "slow"');
  fails("BASE_BACKUP (LABEL 'x', MAX_RATE 1)", '22003', '1 is outside the valid range for parameter "MAX_RATE" (32 .. 1048576)');
  fails("BASE_BACKUP (MAX_RATE '1')", '42601', 'max_rate requires a numeric value');
  fails("BASE_BACKUP (MAX_RATE 'abc')", '42601', 'max_rate requires a numeric value');
  fails("BASE_BACKUP (MANIFEST 'maybe')", '42601', 'unrecognized manifest option: "maybe"');
  fails("BASE_BACKUP (MANIFEST_CHECKSUMS 'md5')", '42601', 'unrecognized checksum algorithm: "md5"');
  fails("BASE_BACKUP (MANIFEST_CHECKSUMS 'sha256')", '42601', 'manifest checksums require a backup manifest');
  fails("BASE_BACKUP (TARGET 'nowhere')", '0A000', 'unrecognized target: "nowhere"');
  fails("BASE_BACKUP (TARGET_DETAIL 'x')", '42601', 'target detail cannot be used without target');
  fails("BASE_BACKUP (TARGET 'client', TARGET_DETAIL 'x')", '42601', 'target "client" does not accept a target detail');
  fails("BASE_BACKUP (TARGET 'blackhole', TARGET_DETAIL 'x')", '42601', 'target "blackhole" does not accept a target detail');
  fails("BASE_BACKUP (TARGET 'server')", '42601', 'target "server" requires a target detail');
  fails("BASE_BACKUP (COMPRESSION 'rar')", '42601', 'unrecognized compression algorithm: "rar"');
  fails("BASE_BACKUP (COMPRESSION 'GZIP')", '42601', 'unrecognized compression algorithm: "GZIP"');
  fails("BASE_BACKUP (COMPRESSION_DETAIL 'x')", '42601', 'compression detail cannot be specified unless compression is enabled');
  fails('BASE_BACKUP (PROGRESS 2)', '42601', 'progress requires a Boolean value');
  const spec = (algo: string, detail: string, why: string) =>
    fails(`BASE_BACKUP (COMPRESSION '${algo}', COMPRESSION_DETAIL '${detail}')`, '42601', `invalid compression specification: ${why}`);
  spec('gzip', '0', 'compression algorithm "gzip" expects a compression level between 1 and 9 (default at -1)');
  spec('gzip', '10', 'compression algorithm "gzip" expects a compression level between 1 and 9 (default at -1)');
  spec('lz4', '13', 'compression algorithm "lz4" expects a compression level between 1 and 12 (default at 0)');
  spec('zstd', '-200000', 'compression algorithm "zstd" expects a compression level between -131072 and 22 (default at 3)');
  spec('zstd', 'workers=2,level=30', 'compression algorithm "zstd" expects a compression level between -131072 and 22 (default at 3)');
  spec('gzip', 'level', 'compression option "level" requires a value');
  spec('gzip', 'level=x', 'value for compression option "level" must be an integer');
  spec('gzip', 'level=', 'value for compression option "level" must be an integer');
  spec('gzip', 'workers=2', 'compression algorithm "gzip" does not accept a worker count');
  spec('gzip', ',', 'found empty string where a compression option was expected');
  spec('gzip', 'level=5,', 'found empty string where a compression option was expected');
  spec('gzip', 'foo=1', 'unrecognized compression option: "foo"');
  spec('gzip', '5 ', 'unrecognized compression option: "5 "');
  spec('none', '5', 'compression algorithm "none" does not accept a compression level');
  for (const [algo, detail] of [['gzip', '-1'], ['gzip', ' 5'], ['lz4', '0'], ['zstd', '-5'], ['zstd', 'level=19,workers=4']]) {
    const ok = parse(`BASE_BACKUP (COMPRESSION '${algo}', COMPRESSION_DETAIL '${detail}')`);
    assert.ok(ok.kind === 'BASE_BACKUP' && ok.backup.compressionDetail === detail);
  }
  fails('BASE_BACKUP (LABEL)', '42601', 'label requires a parameter');
  const five = parse('BASE_BACKUP (LABEL 5)');
  assert.ok(five.kind === 'BASE_BACKUP' && five.backup.label === '5');
  const full = parse("BASE_BACKUP (WAL, MAX_RATE 32, TABLESPACE_MAP, VERIFY_CHECKSUMS false, MANIFEST 'force-encode', MANIFEST_CHECKSUMS 'sha512', COMPRESSION 'gzip', COMPRESSION_DETAIL '9', TARGET 'server', TARGET_DETAIL '/tmp/x')");
  assert.ok(full.kind === 'BASE_BACKUP');
  assert.deepEqual(
    { ...full.backup },
    {
      label: 'base backup',
      progress: false,
      fastCheckpoint: false,
      wait: true,
      includeWal: true,
      maxRateKBps: 32,
      tablespaceMap: true,
      verifyChecksums: false,
      manifest: 'force-encode',
      manifestChecksums: 'SHA512',
      target: 'server',
      targetDetail: '/tmp/x',
      compression: 'gzip',
      compressionDetail: '9',
    },
  );
});

test('formatStartReplication builds what pg_receivewal sends, and parses back', () => {
  assert.equal(formatStartReplication(0x1000000, 1), 'START_REPLICATION 0/1000000 TIMELINE 1');
  assert.equal(formatStartReplication(0x3000000, 1, 'sb1'), 'START_REPLICATION SLOT "sb1" 0/3000000 TIMELINE 1');
  const c = parse(formatStartReplication(parseLsn('1/7FD0FA98'), 2, 'rs'));
  assert.deepEqual(c, { kind: 'START_REPLICATION', replicationKind: 'physical', slotName: 'rs', startLsn: parseLsn('1/7FD0FA98'), timeline: 2 });
});
