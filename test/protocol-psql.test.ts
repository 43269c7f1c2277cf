// The server side against the REAL psql 15 and pg_receivewal 15: a test TCP server (node:net on
// 127.0.0.1, ephemeral port) runs one ReplicationServerConn per socket with trust and scram-sha-256
// rules and a tiny fake walsender (fixed IDENTIFY_SYSTEM/SHOW values, a few WAL bytes on
// START_REPLICATION). psql (sslmode=prefer: SSLRequest first) must print them, fail with the
// 28P01 message on a wrong password, show our ERRORs; pg_receivewal must stream, stop at --endpos
// through the CopyDone exchange and write our bytes; the server must survive garbage on a raw
// socket. The server, its sockets and the temp directory are removed in `after`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errors } from '../src/errors.js';
import { ReplicationServerConn, type ServerConnEvent } from '../src/replication/protocol/server-conn.js';
import { ReplicationColumns, decodeErrorFields, pgTimestampNow } from '../src/replication/protocol/messages.js';
import { makeScramVerifier } from '../src/replication/protocol/scram.js';
import { parseHbaConf } from '../src/replication/protocol/hba.js';
import { PG_BIN_DIR } from './helpers/pgcluster.js';

const SYSTEM_ID = '7711262697068326132';
/** What START_REPLICATION streams: 512 bytes from 0/1000000, a recognisable pattern. */
const WAL = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7 + 3) & 0xff));
const tempDirs: string[] = [];
const HBA = parseHbaConf(`
host replication trusty 127.0.0.1/32 trust
host replication all    127.0.0.1/32 scram-sha-256
`);
const USERS = {
  trusty: { password: null },
  u: { password: makeScramVerifier('s3cret') },
};

let server: Server;
let port = 0;
const sockets = new Set<Socket>();
const events: ServerConnEvent[] = [];

before(async () => {
  server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.setNoDelay(true);
    const conn: ReplicationServerConn = new ReplicationServerConn({
      send: (b) => {
        if (!sock.destroyed) sock.write(b);
      },
      onEvent: (ev) => {
        events.push(ev);
        switch (ev.type) {
          case 'command': {
            const c = ev.command;
            if (c.kind === 'IDENTIFY_SYSTEM') conn.sendResultSet(ReplicationColumns.identifySystem, [[SYSTEM_ID, '1', '0/1501760', null]], 'IDENTIFY_SYSTEM');
            else if (c.kind === 'SHOW' && c.name === 'wal_segment_size') conn.sendResultSet(ReplicationColumns.show('wal_segment_size'), [['16MB']], 'SHOW');
            else if (c.kind === 'SHOW' && c.name === 'data_directory_mode') conn.sendResultSet(ReplicationColumns.show('data_directory_mode'), [['0700']], 'SHOW');
            else if (c.kind === 'START_REPLICATION' && c.replicationKind === 'physical' && c.startLsn === 0x1000000) {
              conn.enterCopyBoth();
              setImmediate(() => {
                if (conn.state !== 'copyBoth') return;
                conn.sendXLogData({ dataStart: 0x1000000, walEnd: 0x1000000 + WAL.length, sendTime: pgTimestampNow() }, WAL);
                conn.sendKeepalive(0x1000000 + WAL.length, false);
              });
              return;
            }
            else if (c.kind === 'SHOW') conn.sendError(Errors.undefinedParameter(c.name));
            else conn.sendError(Errors.featureNotSupported(`${c.kind} is not available in this test server`));
            // answer asynchronously, as a real walsender doing I/O would
            setImmediate(() => {
              conn.sendReadyForQuery();
              if (conn.wantsInput) sock.resume();
            });
            return;
          }
          case 'copyDone':
            // the client stopped streaming: our CopyDone went back already
            conn.sendCommandComplete('START_STREAMING');
            conn.sendCommandComplete('START_REPLICATION');
            conn.sendReadyForQuery();
            if (conn.wantsInput) sock.resume();
            return;
          case 'error':
          case 'terminate':
          case 'cancel':
            sock.end();
            return;
          default:
            return;
        }
      },
      hba: HBA,
      lookupUser: (u) => USERS[u as keyof typeof USERS],
      remoteAddress: sock.remoteAddress ?? '',
    });
    sock.on('data', (d: Buffer) => {
      conn.feed(d);
      if (conn.closed) sock.end();
      else if (!conn.wantsInput) sock.pause();
    });
    sock.on('end', () => conn.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  port = typeof a === 'object' && a ? a.port : 0;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function psql(conninfo: string, command: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const baseEnv = { ...process.env };
    delete baseEnv.PGPASSWORD;
    const child = spawn(join(PG_BIN_DIR, 'psql'), ['-X', '-A', '-t', conninfo, '-c', command], {
      env: { ...baseEnv, PGCONNECT_TIMEOUT: '10', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

const ci = (user: string) => `host=127.0.0.1 port=${port} user=${user} replication=true`;

test('psql with trust prints our IDENTIFY_SYSTEM values', async () => {
  const r = await psql(ci('trusty'), 'IDENTIFY_SYSTEM');
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${SYSTEM_ID}|1|0/1501760|\n`);
  const auth = events.find((e) => e.type === 'authenticated' && e.user === 'trusty');
  assert.ok(auth?.type === 'authenticated' && auth.applicationName === 'psql' && auth.method === 'trust');
});

test('psql with SCRAM-SHA-256 (PGPASSWORD) logs in and runs commands', async () => {
  const r = await psql(ci('u'), 'IDENTIFY_SYSTEM', { PGPASSWORD: 's3cret' });
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${SYSTEM_ID}|1|0/1501760|\n`);
  const show = await psql(ci('u'), 'SHOW wal_segment_size', { PGPASSWORD: 's3cret' });
  assert.equal(show.stdout, '16MB\n');
  const auth = events.find((e) => e.type === 'authenticated' && e.user === 'u');
  assert.ok(auth?.type === 'authenticated' && auth.method === 'scram-sha-256');
});

test('psql with a wrong password fails with the 28P01 message', async () => {
  const r = await psql(ci('u'), 'IDENTIFY_SYSTEM', { PGPASSWORD: 'wrong' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /FATAL: {2}password authentication failed for user "u"/);
  const unknown = await psql(ci('nobody'), 'IDENTIFY_SYSTEM', { PGPASSWORD: 'x' });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /FATAL: {2}password authentication failed for user "nobody"/);
});

test('psql shows our ERRORs: SQL, unknown SHOW, syntax error', async () => {
  const sql = await psql(ci('trusty'), 'select 1');
  assert.equal(sql.code, 1);
  assert.match(sql.stderr, /ERROR: {2}cannot execute SQL commands in WAL sender for physical replication/);
  const show = await psql(ci('trusty'), 'SHOW nosuch');
  assert.match(show.stderr, /ERROR: {2}unrecognized configuration parameter "nosuch"/);
  const syn = await psql(ci('trusty'), 'IDENTIFY_SYSTEM; IDENTIFY_SYSTEM');
  assert.match(syn.stderr, /ERROR: {2}syntax error/);
  const hba = await psql(`host=127.0.0.1 port=${port} user=trusty dbname=postgres`, 'IDENTIFY_SYSTEM');
  assert.equal(hba.code, 2);
  assert.match(hba.stderr, /FATAL: {2}walstream accepts only physical replication connections/);
});

function rawExchange(bytes: Buffer): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data, closed: false });
    }, 5000);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data, closed: true });
    });
  });
}

test('garbage on a raw socket gets an ErrorResponse and a close; the server keeps accepting', async () => {
  const g = await rawExchange(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(g.closed, true);
  assert.equal(g.data[0], 0x45, 'ErrorResponse');
  const f = decodeErrorFields(g.data.subarray(5, 1 + g.data.readInt32BE(1)));
  assert.deepEqual([f.severity, f.code, f.message], ['FATAL', '08P01', 'invalid length of startup packet']);
  // random bytes after a valid login: FATAL invalid frontend message type, like PostgreSQL
  const startup = Buffer.concat([Buffer.from('user\0trusty\0replication\0true\0\0')]);
  const pkt = Buffer.alloc(8 + startup.length);
  pkt.writeInt32BE(pkt.length, 0);
  pkt.writeInt32BE(0x30000, 4);
  startup.copy(pkt, 8);
  const g2 = await rawExchange(Buffer.concat([pkt, Buffer.from([0xfe, 0x01, 0x02, 0x03, 0x04, 0x05])]));
  assert.equal(g2.closed, true);
  const lastE = g2.data.lastIndexOf(Buffer.from('SFATAL'));
  assert.ok(lastE > 0);
  assert.match(g2.data.subarray(lastE).toString('latin1'), /invalid frontend message type 254/);
  const again = await psql(ci('trusty'), 'IDENTIFY_SYSTEM');
  assert.equal(again.code, 0);
  assert.equal(again.stdout, `${SYSTEM_ID}|1|0/1501760|\n`);
});

test('pg_receivewal streams from our server and stops at --endpos through the CopyDone exchange', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'walstream-receivewal-'));
  tempDirs.push(dir);
  const r = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
    const child = spawn(
      join(PG_BIN_DIR, 'pg_receivewal'),
      ['-D', dir, '-h', '127.0.0.1', '-p', String(port), '-U', 'trusty', '--endpos=0/1000100', '--no-loop', '--no-sync', '-w', '-v'],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr });
    });
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /starting log streaming at 0\/1000000 \(timeline 1\)/);
  assert.match(r.stderr, /stopped log streaming at 0\/1000200 \(timeline 1\)/);
  assert.deepEqual(readdirSync(dir), ['000000010000000000000001.partial']);
  const seg = readFileSync(join(dir, '000000010000000000000001.partial'));
  assert.equal(seg.length, 16 * 1024 * 1024, 'pg_receivewal pads the segment');
  assert.deepEqual(seg.subarray(0, WAL.length), WAL);
  // its status updates arrived as decoded `r` messages
  const replies = events.filter((e) => e.type === 'copyData');
  assert.ok(replies.length >= 1);
  // pg_receivewal without --slot reports write = its start, flush and apply 0/0, right after W
  const r0 = replies[0]!;
  assert.ok(r0.type === 'copyData' && r0.message.kind === 'r');
  assert.deepEqual([r0.message.write, r0.message.flush, r0.message.apply, r0.message.replyRequested], [0x1000000, 0, 0, false]);
  assert.ok(Math.abs(r0.message.clientTime - pgTimestampNow()) < 60e6, 'client clock in PostgreSQL microseconds');
  const cmds = events.filter((e) => e.type === 'command' && e.text.startsWith('START_REPLICATION'));
  assert.ok(cmds.length === 1 && cmds[0]!.type === 'command' && cmds[0]!.text === 'START_REPLICATION 0/1000000 TIMELINE 1');
});
