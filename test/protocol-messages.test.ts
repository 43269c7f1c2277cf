// Wire messages (src/replication/protocol/messages.ts) against bytes captured from PostgreSQL 15
// and its tools (PostgreSQL's "Streaming Replication Protocol" and "Message Formats" chapters;
// src/backend/replication/walsender.c, walreceiver.c): encoders must reproduce them exactly
// and decoders must read them back. Also PostgreSQL timestamps and the zero-copy XLogData header.
// In-process only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errors, WalstreamError } from '../src/errors.js';
import { parseLsn } from '../src/wal/lsn.js';
import {
  ReplicationColumns,
  XLOGDATA_FRAME_HEADER_BYTES,
  decodeAuthentication,
  decodeCopyBothMessage,
  decodeDataRow,
  decodeErrorFields,
  decodeHotStandbyFeedback,
  decodePasswordMessage,
  decodePrimaryKeepalive,
  decodeQuery,
  decodeRowDescription,
  decodeSASLInitialResponse,
  decodeStandbyStatusUpdate,
  decodeXLogData,
  readInt64BE,
  writeInt64BE,
  encodeAuthenticationSASL,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeCopyBothResponse,
  encodeCopyDone,
  encodeCopyOutResponse,
  encodeDataRow,
  encodeErrorResponse,
  encodeHotStandbyFeedback,
  encodePrimaryKeepalive,
  encodeReadyForQuery,
  encodeResultSet,
  encodeRowDescription,
  encodeSASLInitialResponse,
  encodeStandbyStatusUpdate,
  encodeStartupMessage,
  encodeTerminate,
  encodeXLogData,
  errorFromFields,
  errorResponseFrom,
  pgTimestampNow,
  pgTimestampToDate,
  pgTimestampToUnixMs,
  textCell,
  unixMsToPgTimestamp,
  writeXLogDataFrameHeader,
} from '../src/replication/protocol/messages.js';

/** Hex with spaces and "quoted ASCII" segments, as the reference writes captures. */
function hex(s: string): Buffer {
  const parts: Buffer[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'(.)'|([0-9a-fA-F]+)|\\0/g;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (m[1] !== undefined) parts.push(Buffer.from(m[1].replace(/\\0/g, '\0'), 'latin1'));
    else if (m[2] !== undefined) parts.push(Buffer.from(m[2], 'latin1'));
    else if (m[3] !== undefined) parts.push(Buffer.from(m[3], 'hex'));
    else parts.push(Buffer.from([0]));
  }
  return Buffer.concat(parts);
}

test('IDENTIFY_SYSTEM reply is byte-identical to the captured one', () => {
  const captured = hex(`
    54 0000006f 0004
       73797374656d696400 00000000 0000 00000019 ffff ffffffff 0000
       74696d656c696e6500 00000000 0000 00000017 0004 ffffffff 0000
       786c6f67706f7300   00000000 0000 00000019 ffff ffffffff 0000
       64626e616d6500     00000000 0000 00000019 ffff ffffffff 0000
    44 00000033 0004 00000013 "7711262697068326132" 00000001 "1" 00000009 "0/1501760" ffffffff
    43 00000014 "IDENTIFY_SYSTEM" 00
    5a 00000005 49`);
  const ours = Buffer.concat([
    encodeResultSet(ReplicationColumns.identifySystem, [['7711262697068326132', '1', '0/1501760', null]], 'IDENTIFY_SYSTEM'),
    encodeReadyForQuery('I'),
  ]);
  assert.equal(ours.toString('hex'), captured.toString('hex'));
  // and back
  const t = decodeRowDescription(captured.subarray(5, 1 + 0x6f));
  assert.deepEqual(
    t.map((c) => [c.name, c.typeOid, c.typlen, c.typmod]),
    [
      ['systemid', 25, -1, -1],
      ['timeline', 23, 4, -1],
      ['xlogpos', 25, -1, -1],
      ['dbname', 25, -1, -1],
    ],
  );
  const dAt = 1 + 0x6f;
  const cells = decodeDataRow(captured.subarray(dAt + 5, dAt + 1 + 0x33)).map(textCell);
  assert.deepEqual(cells, ['7711262697068326132', '1', '0/1501760', null]);
});

test('result-set column quirks: typmod 0 for TIMELINE_HISTORY/BASE_BACKUP, int8 typlen -1 for BASE_BACKUP tli', () => {
  const cols = (c: readonly { name: string; typeOid: number; typlen: number; typmod: number }[]) => c.map((x) => `${x.name}:${x.typeOid},${x.typlen},${x.typmod}`);
  assert.deepEqual(cols(ReplicationColumns.timelineHistory), ['filename:25,-1,0', 'content:25,-1,0']);
  assert.deepEqual(cols(ReplicationColumns.baseBackupXlogRecPtr), ['recptr:25,-1,0', 'tli:20,-1,0']);
  assert.deepEqual(cols(ReplicationColumns.baseBackupTablespaces), ['spcoid:26,4,0', 'spclocation:25,-1,0', 'size:20,8,0']);
  assert.deepEqual(cols(ReplicationColumns.readReplicationSlot), ['slot_type:25,-1,-1', 'restart_lsn:25,-1,-1', 'restart_tli:20,8,-1']);
  assert.deepEqual(cols(ReplicationColumns.startReplicationNextTli), ['next_tli:20,8,-1', 'next_tli_startpos:25,-1,-1']);
  assert.deepEqual(cols(ReplicationColumns.createReplicationSlot), ['slot_name:25,-1,-1', 'consistent_point:25,-1,-1', 'snapshot_name:25,-1,-1', 'output_plugin:25,-1,-1']);
  assert.deepEqual(cols(ReplicationColumns.show('wal_segment_size')), ['wal_segment_size:25,-1,-1']);
  // the captured end-of-timeline DataRow
  assert.equal(encodeDataRow(['2', '0/3001D60']).toString('hex'), hex('44 00000018 0002 00000001 32 00000009 302f33303031443630').toString('hex'));
  assert.throws(() => encodeResultSet(ReplicationColumns.identifySystem, [['1']], 'X'), /width/);
});

test('small fixed messages match the captures', () => {
  assert.equal(encodeCopyBothResponse().toString('hex'), '5700000007000000');
  assert.equal(encodeCopyOutResponse().toString('hex'), '4800000007000000');
  assert.equal(encodeCopyDone().toString('hex'), '6300000004');
  assert.equal(encodeTerminate().toString('hex'), '5800000004');
  assert.equal(encodeReadyForQuery('I').toString('hex'), '5a0000000549');
  assert.equal(encodeBackendKeyData(0xd5e, 0xcc649fb0 | 0).toString('hex'), '4b0000000c00000d5ecc649fb0');
  assert.equal(encodeCommandComplete('COPY 0').toString('hex'), '430000000b434f50592030' + '00');
  assert.equal(encodeCommandComplete('START_STREAMING').toString('hex'), '4300000014' + Buffer.from('START_STREAMING\0').toString('hex'));
  assert.equal(
    encodeAuthenticationSASL(['SCRAM-SHA-256']).toString('hex'),
    hex('52 00000017 0000000a 53 43 52 41 4d 2d 53 48 41 2d 32 35 36 00 00').toString('hex'),
  );
  const walreceiverStartup = hex(
    '00 00 00 5a 00 03 00 00 "user\\0postgres\\0" "database\\0replication\\0" "replication\\0true\\0" "application_name\\0walreceiver\\0" 00',
  );
  assert.equal(
    encodeStartupMessage({ user: 'postgres', database: 'replication', replication: 'true', application_name: 'walreceiver' }).toString('hex'),
    walreceiverStartup.toString('hex'),
  );
  const sasl = encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=Cj0W/eGyfibb8RJEkOClMFUf'));
  assert.equal(sasl.readInt32BE(1), 54);
  const back = decodeSASLInitialResponse(sasl.subarray(5));
  assert.equal(back.mechanism, 'SCRAM-SHA-256');
  assert.equal(Buffer.from(back.data!).toString(), 'n,,n=,r=Cj0W/eGyfibb8RJEkOClMFUf');
  assert.equal(decodeSASLInitialResponse(encodeSASLInitialResponse('SCRAM-SHA-256', null).subarray(5)).data, null);
  assert.deepEqual(decodeAuthentication(hex('0000000a "SCRAM-SHA-256" 00 00')), { code: 10, mechanisms: ['SCRAM-SHA-256'] });
  assert.deepEqual(decodeAuthentication(hex('00000005 b4196e5b')), { code: 5, salt: hex('b4196e5b') });
});

test('ErrorResponse: the captured example, field order, and conversion to WalstreamError', () => {
  const captured = hex(`45 00000055 'S' "ERROR" 00 'V' "ERROR" 00 'C' "42601" 00 'M' "invalid timeline 0" 00 'F' "repl_gram.y" 00 'L' "301" 00 'R' "replication_yyparse" 00 00`);
  const ours = encodeErrorResponse({
    severity: 'ERROR',
    severityV: 'ERROR',
    code: '42601',
    message: 'invalid timeline 0',
    file: 'repl_gram.y',
    line: '301',
    routine: 'replication_yyparse',
  });
  assert.equal(ours.toString('hex'), captured.toString('hex'));
  const f = decodeErrorFields(captured.subarray(5));
  assert.equal(f.code, '42601');
  const e = errorFromFields(f);
  assert.ok(e instanceof WalstreamError);
  assert.equal(e.sqlstate, '42601');
  assert.equal(e.code, 'WS_REMOTE');
  assert.equal(e.message, 'invalid timeline 0');
  // from a WalstreamError: S V C M D H F R, in PostgreSQL's order
  const err = Errors.invalidSlotName('replication slot name "Bad" contains invalid character', 'Replication slot names may only contain lower case letters, numbers, and the underscore character.');
  const body = errorResponseFrom(err, 'ERROR').subarray(5);
  const codes: string[] = [];
  for (let i = 0; body[i] !== 0; ) {
    codes.push(String.fromCharCode(body[i]!));
    i = body.indexOf(0, i + 1) + 1;
  }
  assert.deepEqual(codes, ['S', 'V', 'C', 'M', 'H', 'F', 'R']);
  const back = decodeErrorFields(body);
  assert.equal(back.severity, 'ERROR');
  assert.equal(back.code, '42602');
  assert.equal(back.hint, err.hint);
  assert.equal(back.routine, 'WS_INVALID_SLOT_NAME');
});

test('CopyBoth sub-messages: captured k, r, h and the w header', () => {
  const k = hex('64 00000016 6b 00000000 0157e2b8 000303eb303a636e 01');
  assert.equal(encodePrimaryKeepalive({ walEnd: parseLsn('0/157E2B8'), sendTime: 0x000303eb303a636e, replyRequested: true }).toString('hex'), k.toString('hex'));
  assert.deepEqual(decodePrimaryKeepalive(k.subarray(5)), { walEnd: 0x157e2b8, sendTime: 0x000303eb303a636e, replyRequested: true });

  const r = hex('64 00000026 72 00000000 01578698 00000000 01578698 00000000 00000000 000303eb2f537a85 00');
  const rv = { write: 0x1578698, flush: 0x1578698, apply: 0, clientTime: 0x000303eb2f537a85, replyRequested: false };
  assert.equal(encodeStandbyStatusUpdate(rv).toString('hex'), r.toString('hex'));
  assert.deepEqual(decodeStandbyStatusUpdate(r.subarray(5)), rv);

  const h = hex('64 0000001d 68 000303eb34f67e04 000002e4 00000000 00000000 00000000');
  const hv = { clientTime: 0x000303eb34f67e04, xmin: 740, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 };
  assert.equal(encodeHotStandbyFeedback(hv).toString('hex'), h.toString('hex'));
  assert.deepEqual(decodeHotStandbyFeedback(h.subarray(5)), hv);

  const wal = Buffer.alloc(104, 0xab);
  const w = Buffer.concat([hex('64 00000085 77 00000000 03001c58 00000000 03001cc0 000303eb351458b0'), wal]);
  const hdr = { dataStart: parseLsn('0/3001C58'), walEnd: parseLsn('0/3001CC0'), sendTime: 0x000303eb351458b0 };
  assert.equal(encodeXLogData(hdr, wal).toString('hex'), w.toString('hex'));
  // zero-copy: header written in place, WAL already sitting after it
  const frame = Buffer.alloc(XLOGDATA_FRAME_HEADER_BYTES + 104, 0xab);
  writeXLogDataFrameHeader(frame, 0, hdr, 104);
  assert.equal(frame.toString('hex'), w.toString('hex'));
  const d = decodeXLogData(w.subarray(5));
  assert.equal(d.dataStart, hdr.dataStart);
  assert.equal(d.walEnd, hdr.walEnd);
  assert.equal(d.sendTime, hdr.sendTime);
  assert.equal(d.data.length, 104);
  assert.equal(d.data.buffer, w.buffer, 'payload is a view');
  const any = decodeCopyBothMessage(w.subarray(5));
  assert.equal(any.kind, 'w');
  assert.deepEqual(decodeCopyBothMessage(Buffer.from('z')), { kind: 'unknown', type: 0x7a });
  assert.deepEqual(decodeCopyBothMessage(Buffer.alloc(0)), { kind: 'unknown', type: -1 });
});

test('short or malformed bodies give pqformat.c errors, never crashes', () => {
  const e = (fn: () => unknown, msg: string) =>
    assert.throws(fn, (x: unknown) => x instanceof WalstreamError && x.sqlstate === '08P01' && x.message === msg);
  e(() => decodeStandbyStatusUpdate(Buffer.from('r\0\0')), 'insufficient data left in message');
  e(() => decodeHotStandbyFeedback(Buffer.from('h\0')), 'insufficient data left in message');
  e(() => decodeXLogData(Buffer.from('w\0\0\0')), 'insufficient data left in message');
  e(() => decodeQuery(Buffer.from('IDENTIFY_SYSTEM')), 'invalid string in message');
  e(() => decodeQuery(Buffer.from('IDENTIFY_SYSTEM\0x')), 'invalid message format');
  e(() => decodePasswordMessage(Buffer.from('abc\0def\0')), 'invalid password packet size');
  assert.throws(() => decodePasswordMessage(Buffer.from('\0')), (x: unknown) => x instanceof WalstreamError && x.sqlstate === '28P01' && x.message === 'empty password returned by client');
  e(() => decodeDataRow(hex('0001 00000010 41')), 'insufficient data left in message');
  e(() => decodeRowDescription(hex('0001 "abc"')), 'invalid string in message');
  // an 'r' with extra bytes is accepted (PostgreSQL does not call pq_getmsgend there)
  const r = encodeStandbyStatusUpdate({ write: 1, flush: 2, apply: 3, clientTime: 4, replyRequested: true });
  assert.equal(decodeStandbyStatusUpdate(Buffer.concat([r.subarray(5), Buffer.from('xx')])).apply, 3);
});

test('PostgreSQL timestamps', () => {
  // 00 03 03 eb 35 14 56 8f = 848 733 672 855 183 µs = 2026-11-23 07:21:12.855183 UTC
  const ts = hex('000303eb3514568f').readBigInt64BE(0);
  assert.equal(ts, 848_733_672_855_183n);
  assert.equal(pgTimestampToDate(Number(ts)).toISOString(), '2026-11-23T07:21:12.855Z');
  assert.equal(pgTimestampToUnixMs(Number(ts)), Date.parse('2026-11-23T07:21:12.855Z') + 0.183);
  assert.equal(unixMsToPgTimestamp(Date.parse('2000-01-01T00:00:00Z')), 0);
  assert.equal(unixMsToPgTimestamp(Date.parse('1999-12-31T23:59:59Z')), -1_000_000);
  const k = encodePrimaryKeepalive({ walEnd: 0, sendTime: -1_000_000, replyRequested: false });
  assert.equal(decodePrimaryKeepalive(k.subarray(5)).sendTime, -1_000_000, 'negative timestamps survive the wire');
  const now = pgTimestampNow();
  assert.ok(Math.abs(pgTimestampToUnixMs(now) - Date.now()) < 1000);
});

test('RowDescription/DataRow round trip with bytes and NULLs', () => {
  const cols = [
    { name: 'a', typeOid: 25, typlen: -1, typmod: -1 },
    { name: 'ü', typeOid: 20, typlen: 8, typmod: 0 },
  ];
  const t = encodeRowDescription(cols);
  assert.deepEqual(
    decodeRowDescription(t.subarray(5)).map((c) => [c.name, c.typeOid, c.typlen, c.typmod, c.format]),
    [
      ['a', 25, -1, -1, 0],
      ['ü', 20, 8, 0, 0],
    ],
  );
  const d = encodeDataRow([Buffer.from([0, 1, 2]), null]);
  const cells = decodeDataRow(d.subarray(5));
  assert.deepEqual([...cells[0]!], [0, 1, 2]);
  assert.equal(cells[1], null);
});

test('int64 fields: big-endian two\'s complement over the safe range, written without a DataView', () => {
  const values = [0, 1, -1, 255, 256, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, -(2 ** 32) - 7, 0x1_0000_0000_0000, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
  for (const v of values) {
    const b = Buffer.alloc(11, 0xee);
    writeInt64BE(b, 2, v);
    assert.equal(b.readBigInt64BE(2), BigInt(v), `value ${v}`);
    assert.equal(b[1], 0xee, 'the byte before is untouched');
    assert.equal(b[10], 0xee, 'the byte after is untouched');
    assert.equal(readInt64BE(new DataView(b.buffer, b.byteOffset, b.length), 2), v);
  }
  assert.throws(() => writeInt64BE(Buffer.alloc(8), 1, 1), /outside the buffer/);
  assert.throws(() => writeInt64BE(Buffer.alloc(8), 0, 2 ** 53), /safe integer/);
});
