// The client side against a REAL PostgreSQL 15: a throwaway cluster (initdb with SCRAM, pg_hba
// `host replication all 127.0.0.1/32 scram-sha-256`, wal_level=replica) is started in `before`
// and removed in `after`. The walreceiver's TCP transport (src/standby/transport.ts) logs in with
// SCRAM-SHA-256, runs IDENTIFY_SYSTEM and SHOW, streams WAL from a segment start (first page = long
// page header, magic 0xD110), and the result-set columns and parser errors of the real server are
// compared with ours.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WalstreamError } from '../src/errors.js';
import { lsnToString } from '../src/wal/lsn.js';
import { TcpTransport, type StreamMessage, type WalRcvConnection } from '../src/standby/transport.js';
import { ReplicationColumns } from '../src/replication/protocol/messages.js';
import { parseReplicationCommand } from '../src/replication/protocol/commands.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';

let pg: PgCluster;
const conns: WalRcvConnection[] = [];

before(async () => {
  // Every replication connection this file makes (six: three kept open until the end, two refused
  // logins, one more) fits under max_wal_senders at once, however late the server's backends of
  // closed or refused connections exit: a refused login's walsender backend holds its slot until
  // it has exited (InitProcess counts it), which on a busy machine is after the next test connects.
  pg = await startPgCluster({ hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256'], settings: { max_wal_senders: 8 } });
});

after(async () => {
  for (const c of conns) c.disconnect();
  await pg?.stop();
});

function transport(user: string, password: string): TcpTransport {
  return new TcpTransport(
    { host: pg.host, port: pg.port, user, password, passfile: null, applicationName: 'walstream-test' },
    // sslRequest: like libpq's sslmode=prefer, the server must answer 'N' here
    { connectTimeoutMs: 10_000, commandTimeoutMs: 30_000, maxMessageBytes: 1 << 30, maxBufferedBytes: 8 << 20, sslRequest: true },
  );
}

async function login(): Promise<WalRcvConnection> {
  const c = await transport('postgres', pg.superuserPassword).connect();
  conns.push(c);
  return c;
}

/** The next stream message (waiting up to 10 s for one). */
async function next(c: WalRcvConnection): Promise<StreamMessage> {
  for (;;) {
    const m = c.receive();
    if (m !== null) return m;
    if (!(await c.waitReadable(10_000))) throw new Error('no stream message within 10 s');
  }
}

test('SCRAM login, parameters, IDENTIFY_SYSTEM, SHOW wal_segment_size', async () => {
  const c = await login();
  assert.match(c.parameterStatus('server_version')!, /^15\./);
  assert.ok(c.serverVersion >= 150000 && c.serverVersion < 160000);
  assert.equal(c.parameterStatus('integer_datetimes'), 'on');
  assert.equal(c.parameterStatus('application_name'), 'walstream-test');
  assert.ok(c.backendPid > 0);
  const id = await c.identifySystem();
  assert.ok(BigInt(id.systemId) > 2n ** 53n, 'system identifiers exceed 2^53: kept as decimal text');
  assert.equal(id.timeline, 1);
  assert.ok(id.xlogpos > 0);
  assert.equal(id.dbname, null);
  assert.equal(await c.show('wal_segment_size'), '16MB');
  // the real server's result columns are ours, field for field
  const r = await c.exec('IDENTIFY_SYSTEM');
  assert.deepEqual(r.resultSets[0]!.columns, ReplicationColumns.identifySystem.map((x) => ({ ...x, tableOid: 0, columnNumber: 0, format: 0 })));
  const show = await c.exec('SHOW wal_segment_size');
  assert.deepEqual(show.resultSets[0]!.columns, ReplicationColumns.show('wal_segment_size').map((x) => ({ ...x, tableOid: 0, columnNumber: 0, format: 0 })));
  assert.deepEqual(show.commandTags, ['SHOW']);
});

test('slot commands: result columns and tags equal ours', async () => {
  const c = await login();
  const full = (cols: readonly { name: string; typeOid: number; typlen: number; typmod: number }[]) => cols.map((x) => ({ ...x, tableOid: 0, columnNumber: 0, format: 0 }));
  const created = await c.exec('CREATE_REPLICATION_SLOT "wtest" PHYSICAL ( RESERVE_WAL)');
  assert.deepEqual(created.resultSets[0]!.columns, full(ReplicationColumns.createReplicationSlot));
  assert.deepEqual(created.resultSets[0]!.rows, [['wtest', '0/0', null, null]]);
  assert.deepEqual(created.commandTags, ['CREATE_REPLICATION_SLOT']);
  const read = await c.exec('READ_REPLICATION_SLOT wtest');
  assert.deepEqual(read.resultSets[0]!.columns, full(ReplicationColumns.readReplicationSlot));
  assert.equal(read.resultSets[0]!.rows[0]![0], 'physical');
  const none = await c.exec('READ_REPLICATION_SLOT nosuch');
  assert.deepEqual(none.resultSets[0]!.rows, [[null, null, null]]);
  const dropped = await c.exec('DROP_REPLICATION_SLOT "wtest"');
  assert.deepEqual(dropped.resultSets, []);
  assert.deepEqual(dropped.commandTags, ['DROP_REPLICATION_SLOT']);
  await assert.rejects(c.exec('DROP_REPLICATION_SLOT "wtest"'), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '42704' && e.message === 'replication slot "wtest" does not exist');
  // errors leave the connection usable
  await assert.rejects(c.exec('TIMELINE_HISTORY 0'), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '42601' && e.message === 'invalid timeline 0');
  await assert.rejects(c.exec('select 1'), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '0A000');
  assert.equal(await c.show('wal_segment_size'), '16MB');
});

test('START_REPLICATION at the segment start of xlogpos: first XLogData starts with a long page header', async () => {
  const c = await login();
  const id = await c.identifySystem();
  const segBytes = 16 * 1024 * 1024;
  const start = Math.floor(id.xlogpos / segBytes) * segBytes;
  await c.startStreaming(start, id.timeline, null);
  const status = (lsn: number) => ({ write: lsn, flush: 0, apply: 0, clientTime: 0, replyRequested: false });
  c.send(status(0)); // like pg_receivewal right after W
  let first: { dataStart: number; header: Uint8Array } | null = null;
  let total = 0;
  for (;;) {
    const m = await next(c);
    assert.ok(m.kind === 'xlogData' || m.kind === 'keepalive', `stream message ${m.kind}`);
    if (m.kind !== 'xlogData') continue;
    if (first === null) first = { dataStart: m.dataStart, header: m.data.slice(0, 40) }; // the view is valid until the next receive()
    total += m.data.length;
    assert.ok(m.data.length <= 128 * 1024, 'PostgreSQL sends at most 128 KiB per message');
    if (m.dataStart + m.data.length >= id.xlogpos) break;
  }
  assert.ok(first, 'received XLogData');
  assert.equal(first.dataStart, start, `starts exactly at ${lsnToString(start)}`);
  const dv = new DataView(first.header.buffer, first.header.byteOffset, first.header.byteLength);
  assert.equal(dv.getUint16(0, true), 0xd110, 'XLOG_PAGE_MAGIC, little-endian');
  assert.ok((dv.getUint16(2, true) & 0x0002) !== 0, 'XLP_LONG_HEADER set on the first page of a segment');
  assert.equal(dv.getUint32(4, true), id.timeline, 'xlp_tli');
  assert.equal(dv.getBigUint64(24, true), BigInt(id.systemId), 'xlp_sysid in the long header equals IDENTIFY_SYSTEM.systemid');
  assert.ok(total >= id.xlogpos - start);
  c.send(status(start + total));
  await c.endStreaming(10_000);
  let end: StreamMessage;
  do end = await next(c);
  while (end.kind !== 'endOfStream' || !end.reason.startsWith('stream ended'));
  assert.equal(end.reason, 'stream ended: START_STREAMING, START_REPLICATION', 'no next timeline: only the command tags');
  assert.equal(await c.show('wal_segment_size'), '16MB', 'back in command mode');
  // an error after CopyBothResponse (start ahead of the flush position) ends the stream with that
  // error; the connection survives
  await c.startStreaming(start + 64 * segBytes, id.timeline, null);
  const refused = await next(c);
  assert.ok(refused.kind === 'error', `stream message ${refused.kind}`);
  assert.equal(refused.error.sqlstate, 'XX000');
  assert.match(refused.error.message, /is ahead of the WAL flush position/);
  assert.equal((await c.identifySystem()).timeline, 1);
});

test('wrong password: 28P01 from the real server', async () => {
  await assert.rejects(
    transport('postgres', 'not-the-password').connect(),
    (e: unknown) => e instanceof WalstreamError && e.sqlstate === '28P01' && e.message === 'password authentication failed for user "postgres"',
  );
  await assert.rejects(
    transport('nosuchrole', 'x').connect(),
    (e: unknown) => e instanceof WalstreamError && e.sqlstate === '28P01',
  );
});

test('parser errors equal the real walsender’s, string for string', async () => {
  const c = await login();
  const texts = [
    'identify_system',
    '',
    'IDENTIFY_SYSTEM; IDENTIFY_SYSTEM',
    'SHOW wal_segment_size;;',
    'SHOW WAIT',
    'CREATE_REPLICATION_SLOT "a""b" PHYSICAL',
    'CREATE_REPLICATION_SLOT "" PHYSICAL',
    'CREATE_REPLICATION_SLOT "Bad" PHYSICAL',
    'CREATE_REPLICATION_SLOT "abc PHYSICAL',
    'CREATE_REPLICATION_SLOT s1 PHYSICAL (RESERVE_WAL maybe)',
    'CREATE_REPLICATION_SLOT s1 PHYSICAL (FOO)',
    'CREATE_REPLICATION_SLOT s1 PHYSICAL (RESERVE_WAL, RESERVE_WAL)',
    'CREATE_REPLICATION_SLOT s1 PHYSICAL EXPORT_SNAPSHOT',
    "BASE_BACKUP LABEL 'x'",
    "BASE_BACKUP (LABEL 'x', LABEL 'y')",
    "BASE_BACKUP (CHECKPOINT 'slow')",
    "BASE_BACKUP (MANIFEST 'maybe')",
    "BASE_BACKUP (TARGET 'nowhere')",
    "BASE_BACKUP (TARGET 'client', TARGET_DETAIL 'x')",
    "BASE_BACKUP (COMPRESSION 'gzip', COMPRESSION_DETAIL '10')",
    "BASE_BACKUP (COMPRESSION 'zstd', COMPRESSION_DETAIL 'workers=2,level=30')",
    "BASE_BACKUP (COMPRESSION 'gzip', COMPRESSION_DETAIL 'level=5,')",
    "BASE_BACKUP (COMPRESSION_DETAIL 'x')",
    'BASE_BACKUP (MAX_RATE 99999999999)',
    "BASE_BACKUP (MANIFEST_CHECKSUMS 'sha256')",
    "BASE_BACKUP (TARGET 'server')",
    'BASE_BACKUP (FOO)',
    'TIMELINE_HISTORY 4294967296',
    'START_REPLICATION 0/0 TIMELINE 0 garbage',
    'START_REPLICATION SLOT 0/0',
    "SHOW 'abc",
  ];
  for (const text of texts) {
    let ours: WalstreamError | null = null;
    try {
      parseReplicationCommand(text);
    } catch (e) {
      ours = e as WalstreamError;
    }
    assert.ok(ours, `we accept ${JSON.stringify(text)}`);
    await assert.rejects(c.exec(text), (e: unknown) => {
      assert.ok(e instanceof WalstreamError);
      assert.deepEqual([e.sqlstate, e.message, e.hint], [ours!.sqlstate, ours!.message, ours!.hint], text);
      return true;
    });
  }
});
