// ReplicationServerConn and ReplicationClientConn talking to each other in memory, with no
// sockets: a deterministic link delivers bytes in chunks of a chosen size (1 byte at a time
// included) and a small fake walsender answers commands. Covers every authentication method,
// the command loop (SQL, extended protocol, pipelining while busy), COPY BOTH in both directions
// and its endings, and the protocol violations a client can commit. In-process only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errors, WalstreamError } from '../src/errors.js';
import { parseLsn } from '../src/wal/lsn.js';
import { ReplicationServerConn, type ServerConnEvent, type ServerConnOptions, type UserAuthInfo } from '../src/replication/protocol/server-conn.js';
import { ReplicationClientConn, type ClientConnEvent, type ClientConnOptions, type QueryResult } from '../src/replication/protocol/client-conn.js';
import type { HbaRule } from '../src/replication/protocol/hba.js';
import {
  ReplicationColumns,
  XLOGDATA_FRAME_HEADER_BYTES,
  decodeErrorFields,
  encodeCancelRequest,
  encodeCopyData,
  encodeQuery,
  encodeSSLRequest,
  encodeStartupMessage,
  writeXLogDataFrameHeader,
} from '../src/replication/protocol/messages.js';
import { makeScramVerifier, md5PasswordHash } from '../src/replication/protocol/scram.js';

const USERS: Record<string, UserAuthInfo> = {
  scram: { password: makeScramVerifier('scram-pw', { iterations: 64 }) },
  md5u: { password: md5PasswordHash('md5-pw', 'md5u') },
  trusted: { password: null },
  nologin: { password: null, canLogin: false },
  norepl: { password: null, replication: false },
  super: { password: null, replication: false, superuser: true },
};

const HBA: HbaRule[] = [
  { type: 'host', database: 'replication', user: 'trusted,nologin,norepl,super,ghost', address: '127.0.0.1/32', method: 'trust' },
  { type: 'host', database: 'replication', user: 'rejected', address: '0.0.0.0/0', method: 'reject' },
  { type: 'host', database: 'replication', user: 'all', address: '127.0.0.1/32', method: 'scram-sha-256' },
  { type: 'host', database: 'replication', user: 'all', address: '127.0.0.2/32', method: 'md5' },
  { type: 'host', database: 'replication', user: 'all', address: '127.0.0.3/32', method: 'password' },
];

type Walsender = (ev: ServerConnEvent, link: Link) => void;

/** A fake walsender: answers the simple commands synchronously, enters COPY BOTH for START_REPLICATION. */
const defaultWalsender: Walsender = (ev, link) => {
  if (ev.type !== 'command') return;
  const s = link.server;
  const c = ev.command;
  switch (c.kind) {
    case 'IDENTIFY_SYSTEM':
      s.sendResultSet(ReplicationColumns.identifySystem, [['7711262697068326132', '1', '0/1501760', null]], 'IDENTIFY_SYSTEM');
      break;
    case 'SHOW':
      if (c.name !== 'wal_segment_size') s.sendError(Errors.undefinedObject(`unrecognized configuration parameter "${c.name}"`));
      else s.sendResultSet(ReplicationColumns.show('wal_segment_size'), [['16MB']], 'SHOW');
      break;
    case 'TIMELINE_HISTORY':
      s.sendRowDescription(ReplicationColumns.timelineHistory);
      s.sendError(Errors.undefinedFile(`could not open file "pg_wal/0000000${c.timeline}.history": No such file or directory`));
      break;
    case 'CREATE_REPLICATION_SLOT':
      s.sendResultSet(ReplicationColumns.createReplicationSlot, [[c.slotName, '0/0', null, null]], 'CREATE_REPLICATION_SLOT');
      break;
    case 'START_REPLICATION':
      s.enterCopyBoth();
      return; // streaming: the test drives it
    default:
      s.sendError(Errors.featureNotSupported(`${c.kind} not supported here`));
  }
  s.sendReadyForQuery();
};

class Link {
  readonly server: ReplicationServerConn;
  readonly client: ReplicationClientConn;
  readonly serverEvents: ServerConnEvent[] = [];
  readonly clientEvents: ClientConnEvent[] = [];
  readonly toServer: Buffer[] = [];
  readonly toClient: Buffer[] = [];
  readonly serverOut: Buffer[] = [];
  results: QueryResult[] = [];
  walsender: Walsender;

  constructor(
    opts: { user: string; password?: string | null; remoteAddress?: string; chunk?: number; client?: Partial<ClientConnOptions>; server?: Partial<ServerConnOptions>; walsender?: Walsender } = { user: 'trusted' },
    private readonly chunk = opts.chunk ?? Infinity,
  ) {
    this.walsender = opts.walsender ?? defaultWalsender;
    this.server = new ReplicationServerConn({
      send: (b) => {
        this.toClient.push(Buffer.from(b));
        this.serverOut.push(Buffer.from(b));
      },
      onEvent: (ev) => {
        this.serverEvents.push(ev);
        this.walsender(ev, this);
      },
      hba: HBA,
      lookupUser: (u) => USERS[u],
      remoteAddress: opts.remoteAddress ?? '127.0.0.1',
      processId: 4242,
      secretKey: 99,
      randomBytes: (n) => Buffer.alloc(n, 7), // deterministic salts and nonces
      mockSaltKey: Buffer.alloc(32, 1),
      ...opts.server,
    });
    this.client = new ReplicationClientConn({
      send: (b) => this.toServer.push(Buffer.from(b)),
      onEvent: (ev) => {
        this.clientEvents.push(ev);
        if (ev.type === 'result') this.results.push(ev.result);
      },
      user: opts.user,
      password: opts.password ?? null,
      applicationName: 'conn-test',
      randomBytes: (n) => Buffer.alloc(n, 3),
      ...opts.client,
    });
  }

  /** Delivers queued bytes both ways, `chunk` bytes per feed, until nothing moves. */
  run(): void {
    for (let guard = 0; guard < 100_000; guard++) {
      if (this.toServer.length > 0) {
        const b = Buffer.concat(this.toServer.splice(0));
        for (let i = 0; i < b.length; i += this.chunk === Infinity ? b.length : this.chunk) {
          this.server.feed(b.subarray(i, i + (this.chunk === Infinity ? b.length : this.chunk)));
        }
        continue;
      }
      if (this.toClient.length > 0) {
        const b = Buffer.concat(this.toClient.splice(0));
        for (let i = 0; i < b.length; i += this.chunk === Infinity ? b.length : this.chunk) {
          this.client.feed(b.subarray(i, i + (this.chunk === Infinity ? b.length : this.chunk)));
        }
        continue;
      }
      return;
    }
    throw new Error('link did not settle');
  }

  connect(): this {
    this.client.start();
    this.run();
    return this;
  }

  query(text: string): QueryResult {
    const before = this.results.length;
    this.client.query(text);
    this.run();
    assert.equal(this.results.length, before + 1, `no result for ${text}`);
    return this.results[this.results.length - 1]!;
  }

  clientError(): WalstreamError | undefined {
    const e = this.clientEvents.find((x) => x.type === 'error');
    return e?.type === 'error' ? e.error : undefined;
  }
  serverEventTypes(): string[] {
    return this.serverEvents.map((e) => e.type);
  }
  /** Raw bytes into the server, bypassing the client state machine. */
  raw(b: Buffer): void {
    this.toServer.push(b);
    this.run();
  }
}

function serverMessages(link: Link): { type: string; body: Buffer }[] {
  const all = Buffer.concat(link.serverOut);
  const out: { type: string; body: Buffer }[] = [];
  for (let i = 0; i < all.length; ) {
    if (all[i] === 0x4e && out.length === 0 && all.length > i + 1 && all[i + 1] === 0x52) {
      out.push({ type: 'SSL:N', body: Buffer.alloc(0) }); // unframed SSL answer
      i += 1;
      continue;
    }
    const len = all.readInt32BE(i + 1);
    out.push({ type: String.fromCharCode(all[i]!), body: all.subarray(i + 5, i + 1 + len) });
    i += 1 + len;
  }
  return out;
}

test('trust login, parameters, IDENTIFY_SYSTEM and SHOW, identical bytes for every chunk size', () => {
  let reference: string | null = null;
  for (const chunk of [Infinity, 1, 2, 3, 7, 64]) {
    const l = new Link({ user: 'trusted', chunk }).connect();
    assert.equal(l.client.state, 'idle', `chunk ${chunk}`);
    assert.equal(l.client.parameters.get('integer_datetimes'), 'on');
    assert.equal(l.client.parameters.get('server_version'), '15.0 (walstream 0.1.0)');
    assert.equal(l.client.serverVersionNum, 150000);
    assert.equal(l.client.parameters.get('application_name'), 'conn-test');
    assert.equal(l.client.parameters.get('session_authorization'), 'trusted');
    assert.equal(l.client.parameters.size, 13);
    assert.equal(l.client.processId, 4242);
    assert.equal(l.client.secretKey, 99);
    const id = l.query('IDENTIFY_SYSTEM');
    assert.deepEqual(id.resultSets[0]!.rows, [['7711262697068326132', '1', '0/1501760', null]]);
    assert.deepEqual(id.commandTags, ['IDENTIFY_SYSTEM']);
    assert.equal(l.query('SHOW wal_segment_size').resultSets[0]!.rows[0]![0], '16MB');
    const bad = l.query('SHOW nosuch');
    assert.equal(bad.error?.sqlstate, '42704');
    const sql = l.query('select 1');
    assert.equal(sql.error?.sqlstate, '0A000');
    assert.equal(sql.error?.message, 'cannot execute SQL commands in WAL sender for physical replication');
    const tl = l.query('TIMELINE_HISTORY 2');
    assert.equal(tl.resultSets.length, 1, 'RowDescription first');
    assert.equal(tl.error?.sqlstate, '58P01');
    l.client.terminate();
    l.run();
    assert.equal(l.server.state, 'closed');
    assert.deepEqual(l.serverEvents.at(-1), { type: 'terminate', graceful: true });
    const bytes = Buffer.concat(l.serverOut).toString('hex');
    reference ??= bytes;
    assert.equal(bytes, reference, `server output differs with chunk ${chunk}`);
  }
  // the ParameterStatus order PostgreSQL uses
  const l = new Link({ user: 'trusted' }).connect();
  assert.deepEqual(
    serverMessages(l)
      .filter((m) => m.type === 'S')
      .map((m) => m.body.subarray(0, m.body.indexOf(0)).toString()),
    ['application_name', 'client_encoding', 'DateStyle', 'default_transaction_read_only', 'in_hot_standby', 'integer_datetimes', 'IntervalStyle', 'is_superuser', 'server_encoding', 'server_version', 'session_authorization', 'standard_conforming_strings', 'TimeZone'],
  );
  assert.deepEqual(serverMessages(l).map((m) => m.type), ['R', ...Array(13).fill('S'), 'K', 'Z']);
});

test('SCRAM-SHA-256: success, wrong password, unknown role (full exchange, then 28P01)', () => {
  for (const chunk of [Infinity, 1]) {
    const ok = new Link({ user: 'scram', password: 'scram-pw', chunk }).connect();
    assert.equal(ok.client.state, 'idle');
    assert.deepEqual(serverMessages(ok).slice(0, 4).map((m) => [m.type, m.body.readInt32BE(0)]), [
      ['R', 10],
      ['R', 11],
      ['R', 12],
      ['R', 0],
    ]);
    const ev = ok.serverEvents.find((e) => e.type === 'authenticated');
    assert.deepEqual(ev, { type: 'authenticated', user: 'scram', applicationName: 'conn-test', method: 'scram-sha-256' });
  }
  const wrong = new Link({ user: 'scram', password: 'nope' }).connect();
  assert.equal(wrong.client.state, 'closed');
  assert.equal(wrong.clientError()?.sqlstate, '28P01');
  assert.equal(wrong.clientError()?.message, 'password authentication failed for user "scram"');
  assert.deepEqual(serverMessages(wrong).map((m) => m.type), ['R', 'R', 'E'], 'the error replaces SASLFinal');
  const ghost = new Link({ user: 'nobody', password: 'x' }).connect();
  assert.deepEqual(serverMessages(ghost).map((m) => m.type), ['R', 'R', 'E']);
  assert.equal(ghost.clientError()?.sqlstate, '28P01');
  const srvErr = ghost.serverEvents.find((e) => e.type === 'error');
  assert.ok(srvErr?.type === 'error' && srvErr.sentToClient);
  // no password at hand: the client gives up without answering
  const nopw = new Link({ user: 'scram' }).connect();
  assert.match(nopw.clientError()!.message, /none was supplied/);
});

test('md5 rule: MD5 for MD5-stored roles, SCRAM for SCRAM-stored and unknown roles; password rule: cleartext', () => {
  const md5 = new Link({ user: 'md5u', password: 'md5-pw', remoteAddress: '127.0.0.2' }).connect();
  assert.equal(md5.client.state, 'idle');
  assert.deepEqual(serverMessages(md5).slice(0, 2).map((m) => [m.type, m.body.readInt32BE(0)]), [
    ['R', 5],
    ['R', 0],
  ]);
  const md5bad = new Link({ user: 'md5u', password: 'x', remoteAddress: '127.0.0.2' }).connect();
  assert.equal(md5bad.clientError()?.sqlstate, '28P01');
  const upgraded = new Link({ user: 'scram', password: 'scram-pw', remoteAddress: '127.0.0.2' }).connect();
  assert.equal(upgraded.client.state, 'idle');
  assert.equal(serverMessages(upgraded)[0]!.body.readInt32BE(0), 10, 'md5 with a SCRAM secret upgrades to SCRAM');
  const unknown = new Link({ user: 'ghost2', password: 'x', remoteAddress: '127.0.0.2' }).connect();
  assert.equal(serverMessages(unknown)[0]!.body.readInt32BE(0), 10);
  assert.equal(unknown.clientError()?.sqlstate, '28P01');
  // scram rule against an MD5-stored role: full SCRAM with a made-up salt, then 28P01
  const md5AsScram = new Link({ user: 'md5u', password: 'md5-pw' }).connect();
  assert.deepEqual(serverMessages(md5AsScram).map((m) => m.type), ['R', 'R', 'E']);
  assert.equal(md5AsScram.clientError()?.sqlstate, '28P01');
  for (const [user, pw] of [
    ['scram', 'scram-pw'],
    ['md5u', 'md5-pw'],
  ] as const) {
    const clear = new Link({ user, password: pw, remoteAddress: '127.0.0.3' }).connect();
    assert.equal(clear.client.state, 'idle', user);
    assert.equal(serverMessages(clear)[0]!.body.readInt32BE(0), 3);
  }
  const clearBad = new Link({ user: 'scram', password: 'x', remoteAddress: '127.0.0.3' }).connect();
  assert.equal(clearBad.clientError()?.sqlstate, '28P01');
  const empty = new Link({ user: 'scram', password: '', remoteAddress: '127.0.0.3' }).connect();
  assert.equal(empty.clientError()?.message, 'empty password returned by client');
});

test('role checks after AuthenticationOk, hba rejections, non-replication connections', () => {
  const cases: [string, string, string, string][] = [
    ['ghost', '127.0.0.1', '28000', 'role "ghost" does not exist'],
    ['nologin', '127.0.0.1', '28000', 'role "nologin" is not permitted to log in'],
    ['norepl', '127.0.0.1', '42501', 'must be superuser or replication role to start walsender'],
    ['rejected', '127.0.0.1', '28000', 'pg_hba.conf rejects replication connection for host "127.0.0.1", user "rejected", no encryption'],
    ['trusted', '10.0.0.1', '28000', 'no pg_hba.conf entry for replication connection from host "10.0.0.1", user "trusted", no encryption'],
  ];
  for (const [user, addr, state, msg] of cases) {
    const l = new Link({ user, remoteAddress: addr }).connect();
    assert.equal(l.client.state, 'closed', user);
    assert.equal(l.clientError()?.sqlstate, state, user);
    assert.equal(l.clientError()?.message, msg);
    assert.equal(l.server.state, 'closed');
  }
  const su = new Link({ user: 'super' }).connect();
  assert.equal(su.client.state, 'idle', 'a superuser needs no replication attribute');
  assert.equal(su.client.parameters.get('is_superuser'), 'on');
  const normal = new Link({ user: 'trusted', client: { extraParams: { replication: 'false' } } }).connect();
  assert.equal(normal.clientError()?.sqlstate, '0A000');
  // the owner refuses after authentication (e.g. max_wal_senders)
  const full = new Link({
    user: 'trusted',
    walsender: (ev, link) => {
      if (ev.type === 'authenticated') link.server.sendFatal(Errors.tooManyConnections('number of requested standby connections exceeds max_wal_senders (currently 0)'));
    },
  }).connect();
  assert.equal(full.clientError()?.sqlstate, '53300');
  assert.deepEqual(serverMessages(full).map((m) => m.type), ['R', 'E']);
});

test('streaming: XLogData (copied and zero-copy), keepalive, r/h replies, client CopyDone', () => {
  for (const chunk of [Infinity, 1, 5]) {
    const l = new Link({ user: 'trusted', chunk }).connect();
    l.client.query('START_REPLICATION SLOT "s1" 0/1000000 TIMELINE 1');
    l.run();
    assert.equal(l.client.state, 'copyBoth');
    assert.equal(l.server.state, 'copyBoth');
    const cmd = l.serverEvents.find((e) => e.type === 'command');
    assert.ok(cmd?.type === 'command' && cmd.command.kind === 'START_REPLICATION' && cmd.command.slotName === 's1');
    const wal = Buffer.alloc(8192, 0x5a);
    wal.writeUInt16LE(0xd110, 0);
    l.server.sendXLogData({ dataStart: 0x1000000, walEnd: 0x1002000, sendTime: 1234 }, wal);
    const frame = Buffer.alloc(XLOGDATA_FRAME_HEADER_BYTES + 100, 0x11);
    writeXLogDataFrameHeader(frame, 0, { dataStart: 0x1002000, walEnd: 0x1002064, sendTime: 1235 }, 100);
    l.server.sendXLogDataFrame(frame);
    l.server.sendKeepalive(0x1002064, true, 1236);
    l.run();
    const got = l.clientEvents.filter((e) => e.type === 'xlogData' || e.type === 'keepalive');
    assert.equal(got.length, 3);
    assert.ok(got[0]!.type === 'xlogData' && got[0].message.dataStart === 0x1000000 && got[0].message.data.length === 8192);
    assert.ok(got[0]!.type === 'xlogData' && got[0].message.data[0] === 0x10 && got[0].message.data[1] === 0xd1);
    assert.ok(got[1]!.type === 'xlogData' && got[1].message.walEnd === 0x1002064 && got[1].message.data.every((b) => b === 0x11));
    assert.deepEqual(got[2], { type: 'keepalive', message: { walEnd: 0x1002064, sendTime: 1236, replyRequested: true } });
    l.client.sendStandbyStatus({ write: 0x1002064, flush: 0x1002000, apply: 0, clientTime: 77, replyRequested: false });
    l.client.sendHotStandbyFeedback({ clientTime: 78, xmin: 740, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 });
    l.run();
    const replies = l.serverEvents.filter((e) => e.type === 'copyData');
    assert.deepEqual(replies, [
      { type: 'copyData', message: { kind: 'r', write: 0x1002064, flush: 0x1002000, apply: 0, clientTime: 77, replyRequested: false } },
      { type: 'copyData', message: { kind: 'h', clientTime: 78, xmin: 740, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 } },
    ]);
    // the client stops: CopyDone both ways, then the two CommandCompletes and ReadyForQuery
    l.walsender = (ev, link) => {
      if (ev.type === 'copyDone') {
        link.server.sendCommandComplete('START_STREAMING');
        link.server.sendCommandComplete('START_REPLICATION');
        link.server.sendReadyForQuery();
      }
    };
    l.client.sendCopyDone();
    l.run();
    assert.equal(l.results.length, 1);
    assert.deepEqual(l.results[0]!.commandTags, ['START_STREAMING', 'START_REPLICATION']);
    assert.equal(l.client.state, 'idle');
    assert.equal(l.server.state, 'ready');
    const tail = serverMessages(l).slice(-4).map((m) => m.type);
    assert.deepEqual(tail, ['c', 'C', 'C', 'Z']);
    l.walsender = defaultWalsender;
    assert.equal(l.query('IDENTIFY_SYSTEM').commandTags[0], 'IDENTIFY_SYSTEM', 'the connection goes on');
  }
});

test('streaming: end of a historic timeline (server CopyDone first, then next_tli)', () => {
  const l = new Link({ user: 'trusted' }).connect();
  l.client.query('START_REPLICATION 0/3000000 TIMELINE 1');
  l.run();
  l.walsender = (ev, link) => {
    if (ev.type === 'copyDone') {
      link.server.sendResultSet(ReplicationColumns.startReplicationNextTli, [['2', '0/3001D60']], 'START_STREAMING');
      link.server.sendCommandComplete('START_REPLICATION');
      link.server.sendReadyForQuery();
    }
  };
  l.server.sendXLogData({ dataStart: 0x3000000, walEnd: 0x3001d60, sendTime: 1 }, Buffer.alloc(0x1d60));
  l.server.endCopy();
  assert.equal(l.server.state, 'copyBoth', 'still waiting for the client CopyDone');
  l.run();
  assert.ok(l.clientEvents.some((e) => e.type === 'copyDone'));
  assert.equal(l.client.serverEndedCopy, true);
  l.client.sendStandbyStatus({ write: 0x3001d60, flush: 0x3001d60, apply: 0, clientTime: 1, replyRequested: false });
  l.client.sendCopyDone();
  l.run();
  const r = l.results[0]!;
  assert.deepEqual(r.resultSets[0]!.rows, [['2', '0/3001D60']]);
  assert.deepEqual(r.commandTags, ['START_STREAMING', 'START_REPLICATION']);
  // exactly one CopyDone from the server
  assert.equal(serverMessages(l).filter((m) => m.type === 'c').length, 1);
  assert.equal(parseLsn(r.resultSets[0]!.rows[0]![1]!), 0x3001d60);
});

test('streaming: shutdown sends COPY 0 inside COPY BOTH; an ERROR after W ends the copy without CopyDone', () => {
  const l = new Link({ user: 'trusted' }).connect();
  l.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  l.run();
  l.server.sendKeepalive(5, true, 1);
  l.server.sendCommandComplete('COPY 0');
  l.run();
  assert.ok(l.clientEvents.some((e) => e.type === 'commandComplete' && e.tag === 'COPY 0'));
  l.server.close();
  l.client.end();
  assert.equal(l.client.state, 'closed');

  const e = new Link({ user: 'trusted' }).connect();
  e.client.query('START_REPLICATION 0/9000000 TIMELINE 1');
  e.run();
  e.server.sendError(Errors.internal('requested starting point 0/9000000 is ahead of the WAL flush position of this server 0/64CE108'));
  e.server.sendReadyForQuery();
  e.run();
  assert.equal(e.results[0]!.error?.sqlstate, 'XX000');
  assert.equal(e.client.state, 'idle');
  assert.deepEqual(serverMessages(e).slice(-3).map((m) => m.type), ['W', 'E', 'Z']);
});

test('COPY OUT: a large CopyData spanning chunks comes in parts; after an ERROR ends the COPY OUT, XLogData in COPY BOTH is whole again', () => {
  const l = new Link({ user: 'trusted', chunk: 4096 }).connect();
  const archive = Buffer.alloc(20_000);
  for (let i = 0; i < archive.length; i++) archive[i] = (i * 7) & 0xff;
  l.walsender = (ev, link) => {
    if (ev.type !== 'command') return;
    link.server.enterCopyOut();
    link.server.sendCopyData(Buffer.concat([Buffer.from('d'), archive]));
    link.server.sendError(Errors.internal('the backup failed'));
    link.server.sendReadyForQuery();
  };
  l.client.query("BASE_BACKUP ( LABEL 'x', TARGET 'client' )");
  l.run();
  const parts = l.clientEvents.filter((e) => e.type === 'copyData');
  assert.ok(parts.length >= 2, 'in parts');
  assert.ok(parts.every((e) => e.type === 'copyData' && e.part !== null && e.data.length > 0));
  const body = Buffer.concat(parts.map((e) => (e.type === 'copyData' ? Buffer.from(e.data) : Buffer.alloc(0))));
  assert.ok(body.equals(Buffer.concat([Buffer.from('d'), archive])), 'the parts are the payload');
  assert.equal(l.results[0]!.error?.sqlstate, 'XX000');
  assert.equal(l.client.state, 'idle');
  // The same connection streams: a 20 kB XLogData spanning five chunks arrives whole.
  l.walsender = defaultWalsender;
  l.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  l.run();
  assert.equal(l.client.state, 'copyBoth');
  l.server.sendXLogData({ dataStart: 0x1000000, walEnd: 0x1005000, sendTime: 1 }, archive);
  l.run();
  const x = l.clientEvents.filter((e) => e.type === 'xlogData');
  assert.equal(x.length, 1);
  assert.ok(x[0]!.type === 'xlogData' && Buffer.from(x[0].message.data).equals(archive));
});

test('COPY BOTH protocol violations', () => {
  // unknown CopyData kind: closed without any ErrorResponse
  const z = new Link({ user: 'trusted' }).connect();
  z.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  z.run();
  const before = z.serverOut.length;
  z.raw(encodeCopyData(Buffer.from('z')));
  assert.equal(z.server.state, 'closed');
  assert.equal(z.serverOut.length, before, 'nothing sent');
  const ze = z.serverEvents.at(-1);
  assert.ok(ze?.type === 'error' && !ze.sentToClient && ze.error.message === 'unexpected message type "z"');
  // a short r: ERROR + ReadyForQuery, streaming aborted, the connection continues
  const s = new Link({ user: 'trusted' }).connect();
  s.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  s.run();
  s.raw(encodeCopyData(Buffer.from('r\0\0')));
  const ab = s.serverEvents.find((e) => e.type === 'streamAborted');
  assert.ok(ab?.type === 'streamAborted' && ab.error.message === 'insufficient data left in message');
  assert.equal(s.server.state, 'ready');
  assert.equal(s.results[0]!.error?.message, 'insufficient data left in message');
  assert.equal(s.query('IDENTIFY_SYSTEM').commandTags[0], 'IDENTIFY_SYSTEM');
  // a Query during COPY: FATAL 08P01 'invalid standby message type "Q"'
  const q = new Link({ user: 'trusted' }).connect();
  q.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  q.run();
  q.raw(encodeQuery('IDENTIFY_SYSTEM'));
  assert.equal(q.server.state, 'closed');
  const last = serverMessages(q).at(-1)!;
  const f = decodeErrorFields(last.body);
  assert.deepEqual([last.type, f.severity, f.code, f.message], ['E', 'FATAL', '08P01', 'invalid standby message type "Q"']);
  assert.equal(q.clientError()?.message, 'invalid standby message type "Q"');
  // CopyData after the server went back to command mode is ignored
  const after = new Link({ user: 'trusted' }).connect();
  after.raw(encodeCopyData(Buffer.from('z')));
  assert.equal(after.server.state, 'ready');
});

test('extended protocol: ERROR, messages skipped until Sync, then ReadyForQuery; fastpath; garbage type', () => {
  const l = new Link({ user: 'trusted' }).connect();
  const parseMsg = Buffer.from([0x50, 0, 0, 0, 16, 0, ...Buffer.from('SELECT 1'), 0, 0, 0]);
  const sync = Buffer.from([0x53, 0, 0, 0, 4]);
  const n0 = serverMessages(l).length;
  l.raw(Buffer.concat([parseMsg, encodeQuery('IDENTIFY_SYSTEM'), sync]));
  const msgs = serverMessages(l).slice(n0);
  assert.deepEqual(msgs.map((m) => m.type), ['E', 'Z'], 'the Query before Sync is skipped');
  assert.equal(decodeErrorFields(msgs[0]!.body).message, 'extended query protocol not supported in a replication connection');
  assert.equal(decodeErrorFields(msgs[0]!.body).severity, 'ERROR');
  l.raw(Buffer.from([0x46, 0, 0, 0, 8, 0, 0, 0, 0]));
  const fp = serverMessages(l).slice(-2);
  assert.deepEqual(fp.map((m) => m.type), ['E', 'Z']);
  assert.equal(decodeErrorFields(fp[0]!.body).message, 'fastpath function calls not supported in a replication connection');
  l.raw(Buffer.from([0x48, 0, 0, 0, 4])); // Flush: nothing
  assert.equal(serverMessages(l).at(-1)!.type, 'Z');
  l.raw(Buffer.from([0xce, 0, 0, 0, 4]));
  const g = decodeErrorFields(serverMessages(l).at(-1)!.body);
  assert.deepEqual([g.severity, g.code, g.message], ['FATAL', '08P01', 'invalid frontend message type 206']);
  assert.equal(l.server.state, 'closed');
});

test('input while a command runs is held (bounded) and processed in order after ReadyForQuery', () => {
  let pending: (() => void) | null = null;
  const l = new Link({
    user: 'trusted',
    server: { pauseInputAtBytes: 40, maxPendingInputBytes: 4096 },
    walsender: (ev, link) => {
      if (ev.type !== 'command') return;
      // answer later, as a real walsender doing I/O would
      pending = () => defaultWalsender(ev, link);
    },
  }).connect();
  l.raw(Buffer.concat([encodeQuery('IDENTIFY_SYSTEM'), encodeQuery('SHOW wal_segment_size'), encodeQuery('select 1')]));
  assert.equal(l.server.state, 'busy');
  assert.equal(l.serverEventTypes().filter((t) => t === 'command').length, 1);
  assert.ok(l.server.bufferedInputBytes > 40);
  assert.equal(l.server.wantsInput, false);
  const runPending = () => {
    const p = pending as unknown as () => void;
    pending = null;
    p();
  };
  runPending();
  assert.equal(l.serverEventTypes().filter((t) => t === 'command').length, 2, 'the second query ran right after ReadyForQuery');
  runPending();
  const types = serverMessages(l).slice(16).map((m) => m.type);
  assert.deepEqual(types, ['T', 'D', 'C', 'Z', 'T', 'D', 'C', 'Z', 'E', 'Z']);
  assert.equal(l.server.wantsInput, true);
  // a big message arriving in pieces never pauses input while nothing is held
  const big = new Link({ user: 'trusted', server: { pauseInputAtBytes: 40 } }).connect();
  const q = encodeQuery(`SHOW ${'x'.repeat(300)}`);
  big.server.feed(q.subarray(0, 200));
  assert.equal(big.server.state, 'ready');
  assert.ok(big.server.bufferedInputBytes > 40);
  assert.equal(big.server.wantsInput, true);
  big.server.feed(q.subarray(200));
  assert.equal(big.serverEventTypes().filter((t) => t === 'command').length, 1);
  // beyond maxPendingInputBytes: FATAL
  const flood = new Link({
    user: 'trusted',
    server: { maxPendingInputBytes: 1000 },
    walsender: () => undefined,
  }).connect();
  flood.raw(encodeQuery('IDENTIFY_SYSTEM'));
  flood.raw(encodeQuery('x'.repeat(1200)));
  assert.equal(flood.server.state, 'closed');
  assert.match(flood.clientError()!.message, /more than 1000 bytes while a command was running/);
});

test('startup: SSLRequest answered N, pipelined data after it refused, cancel requests, truncation NOTICE', () => {
  const ssl = new Link({ user: 'trusted', client: { sslRequest: true }, chunk: 1 }).connect();
  assert.equal(ssl.client.state, 'idle');
  assert.equal(ssl.serverOut[0]!.toString(), 'N');
  // SSLRequest and StartupMessage in one write: PostgreSQL refuses (data arrived before the answer)
  const pipe = new Link({ user: 'trusted' });
  pipe.raw(Buffer.concat([encodeSSLRequest(), encodeStartupMessage({ user: 'trusted', replication: 'true' })]));
  assert.equal(pipe.server.state, 'closed');
  const all = Buffer.concat(pipe.serverOut);
  assert.equal(all[0], 0x4e);
  const f = decodeErrorFields(all.subarray(6));
  assert.equal(f.message, 'received unencrypted data after SSL request');
  assert.equal(f.detail, 'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.');
  const cancel = new Link({ user: 'trusted' });
  cancel.raw(encodeCancelRequest(4242, 99));
  assert.deepEqual(cancel.serverEvents, [{ type: 'cancel', processId: 4242, secretKey: 99 }]);
  assert.equal(cancel.serverOut.length, 0);
  // garbage instead of a startup packet: FATAL (PostgreSQL would only log it) and close
  const garbage = new Link({ user: 'trusted' });
  garbage.raw(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  assert.equal(garbage.server.state, 'closed');
  assert.equal(decodeErrorFields(Buffer.concat(garbage.serverOut).subarray(5)).message, 'invalid length of startup packet');
  // a NOTICE precedes the result for a truncated identifier
  const n = new Link({ user: 'trusted' }).connect();
  const r = n.query(`CREATE_REPLICATION_SLOT ${'a'.repeat(70)} PHYSICAL`);
  assert.equal(r.notices.length, 1);
  assert.equal(r.notices[0]!.code, '42622');
  assert.equal(r.resultSets[0]!.rows[0]![0], 'a'.repeat(63));
  // end of input in the middle of a message
  const cut = new Link({ user: 'trusted' }).connect();
  cut.server.feed(encodeQuery('IDENTIFY_SYSTEM').subarray(0, 6));
  cut.server.end();
  const ce = cut.serverEvents.at(-1);
  assert.ok(ce?.type === 'error' && !ce.sentToClient && ce.error.message === 'incomplete message from client');
  assert.ok(new WalstreamError('X', '00000', 'x'));
});
