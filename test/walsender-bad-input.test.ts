// Walsender robustness: max_wal_senders refusal (FATAL 53300), replication timeout (keepalive at
// half of walSenderTimeoutMs, then a silent close), and malformed, truncated, oversized and
// out-of-order client messages (ErrorResponse, then the connection closes) — all while a
// pg_receivewal keeps streaming from the same primary and the primary's memory stays bounded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { decodeCopyBothMessage, encodeQuery, encodeStartupMessage, encodeStandbyStatusUpdate, encodeCopyDone } from '../src/replication/protocol/messages.js';
import { type Lsn, lsnToString } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { errorOf, RawClient, startPgReceivewal, typeOf, waitFor } from './helpers/rawpg.js';

const SEG = 1 << 20;
const TIMEOUT_MS = 1200;
/** How long a test waits for something that must happen before calling it a hang (not a speed bound). */
const HANG_MS = 60_000;

async function load(p: Primary, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => p.transaction((tx) => tx.put('t', `${tag}-${i + j}`, 'y'.repeat(900)), { synchronousCommit: 'off' })));
  }
  await p.flush();
}

function typed(type: string, body: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'latin1');
  b.writeUInt32BE(4 + body.length, 1);
  b.set(body, 5);
  return b;
}

test('bad clients get ErrorResponse + close while pg_receivewal keeps streaming', async (t) => {
  const dir = tmpDir('walstream-bad-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, maxWalSenders: 3, walSenderTimeoutMs: TIMEOUT_MS, authenticationTimeoutMs: 1000 });
  const port = p.port!;
  const clients: RawClient[] = [];
  let rw: ReturnType<typeof startPgReceivewal> | null = null;
  t.after(async () => {
    clients.forEach((c) => c.close());
    await rw?.stop();
    await p.close();
    rmrf(dir);
  });
  const raw = async () => {
    const c = await RawClient.connect(port);
    clients.push(c);
    return c;
  };

  // A real client streams through everything below (it answers keepalives, so it never times out).
  const startSeg = segNo(p.flushLsn, SEG);
  const recv = startPgReceivewal(port, path.join(dir, 'rw'));
  rw = recv;
  await waitFor(() => p.replicationStatus().some((r) => r.application_name === 'pg_receivewal' && r.state === 'streaming'), 10_000, 'pg_receivewal streaming');
  const rss0 = process.memoryUsage().rss;

  await t.test('garbage instead of a startup packet: FATAL 08P01, closed', async () => {
    const c = await raw();
    c.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
    assert.equal(errorOf(got)?.severity, 'FATAL');
    assert.ok(c.closed);
  });

  await t.test('a message claiming 1 GiB: FATAL 08P01 at once, nothing allocated', async () => {
    const c = await raw();
    await c.startup();
    const hdr = Buffer.alloc(5);
    hdr.write('Q', 0, 'latin1');
    hdr.writeUInt32BE(1 << 30, 1);
    c.send(hdr);
    c.send(Buffer.alloc(1000, 0x41));
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
    assert.match(errorOf(got)!.message, /invalid message length/);
  });

  await t.test('an oversized query (over maxClientMessageBytes): FATAL 08P01', async () => {
    const c = await raw();
    await c.startup();
    c.send(encodeQuery('IDENTIFY_SYSTEM' + ' '.repeat(100 * 1024)));
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
  });

  await t.test('a lying length inside the startup packet: FATAL 08P01', async () => {
    const c = await raw();
    const b = Buffer.alloc(8);
    b.writeUInt32BE(0x7fffffff, 0);
    b.writeUInt32BE(0x00030000, 4);
    c.send(b);
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
    assert.match(errorOf(got)!.message, /invalid length of startup packet/);
  });

  await t.test('out of order: a query during COPY BOTH gets FATAL 08P01 "invalid standby message type"', async () => {
    const c = await raw();
    await c.startup();
    c.send(encodeQuery(`START_REPLICATION ${lsnToString(Math.floor(p.flushLsn / SEG) * SEG)} TIMELINE 1`));
    assert.equal(typeOf((await c.next())!), 'W');
    c.send(encodeQuery('IDENTIFY_SYSTEM'));
    const got = await c.untilClosed();
    const e = errorOf(got);
    assert.equal(e?.code, '08P01');
    assert.equal(e?.message, 'invalid standby message type "Q"');
    assert.ok(got.some((f) => typeOf(f) === 'd'), 'WAL was streamed before the error');
  });

  await t.test('truncated status update in COPY BOTH: ERROR 08P01 then close', async () => {
    const c = await raw();
    await c.startup();
    c.send(encodeQuery(`START_REPLICATION ${lsnToString(p.flushLsn)} TIMELINE 1`));
    assert.equal(typeOf((await c.next())!), 'W');
    const full = encodeStandbyStatusUpdate({ write: 0, flush: 0, apply: 0, clientTime: 0, replyRequested: false });
    c.send(typed('d', full.subarray(5, 5 + 12))); // 'r' + 11 bytes: far too short
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
    assert.match(errorOf(got)!.message, /insufficient data left in message/);
  });

  await t.test('unknown CopyData kind: the connection is dropped (PostgreSQL sends nothing)', async () => {
    const c = await raw();
    await c.startup();
    c.send(encodeQuery(`START_REPLICATION ${lsnToString(p.flushLsn)} TIMELINE 1`));
    assert.equal(typeOf((await c.next())!), 'W');
    c.send(typed('d', Buffer.from('z')));
    await c.untilClosed();
    assert.ok(c.closed);
  });

  await t.test('out of order: a query instead of the password: FATAL 08P01', async () => {
    const p2 = await Primary.open({ dataDir: path.join(dir, 'data2'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, users: { tester: 'pw' } });
    try {
      const c = await RawClient.connect(p2.port!);
      clients.push(c);
      c.send(encodeStartupMessage({ user: 'tester', database: 'replication', replication: 'true' }));
      const r = await c.next();
      assert.equal(typeOf(r!), 'R'); // AuthenticationSASL
      c.send(encodeQuery('IDENTIFY_SYSTEM'));
      const got = await c.untilClosed();
      assert.equal(errorOf(got)?.code, '08P01');
      assert.match(errorOf(got)!.message, /expected SASL response/);
    } finally {
      await p2.close();
    }
  });

  await t.test('client CopyDone ends streaming cleanly (§4.4a)', async () => {
    const c = await raw();
    await c.startup();
    c.send(encodeQuery(`START_REPLICATION ${lsnToString(p.flushLsn)} TIMELINE 1`));
    assert.equal(typeOf((await c.next())!), 'W');
    c.send(encodeCopyDone());
    const got = await c.untilReady();
    const kinds = got.map(typeOf).filter((k) => k !== 'd');
    assert.deepEqual(kinds, ['c', 'C', 'C', 'Z']);
    const tags = got.filter((f) => typeOf(f) === 'C').map((f) => f.body.subarray(0, f.body.length - 1).toString());
    assert.deepEqual(tags, ['START_STREAMING', 'START_REPLICATION']);
    assert.ok(!c.closed);
    c.close();
  });

  await t.test('START_REPLICATION errors: slot, timeline, ahead of flush, removed segment', async () => {
    const c = await raw();
    await c.startup();
    let got = await c.query('START_REPLICATION SLOT "s1" PHYSICAL 0/1000000 TIMELINE 1');
    assert.deepEqual([errorOf(got)?.code, errorOf(got)?.message], ['42704', 'replication slot "s1" does not exist']);
    got = await c.query('START_REPLICATION 0/1000000 TIMELINE 2');
    assert.deepEqual([errorOf(got)?.code, errorOf(got)?.message], ['XX000', "requested timeline 2 is not in this server's history"]);
    got = await c.query('START_REPLICATION 9/0 TIMELINE 1');
    assert.equal(typeOf(got[0]!), 'W');
    assert.equal(errorOf(got)?.code, 'XX000');
    assert.equal(errorOf(got)?.message, `requested starting point 9/0 is ahead of the WAL flush position of this server ${lsnToString(p.flushLsn)}`);
    got = await c.query('START_REPLICATION 0/80000 TIMELINE 1'); // segment 0 never existed
    assert.equal(typeOf(got[0]!), 'W');
    assert.deepEqual([errorOf(got)?.code, errorOf(got)?.message], ['58P01', `requested WAL segment ${segmentFileName(1, 0, SEG)} has already been removed`]);
    got = await c.query('TIMELINE_HISTORY 1');
    assert.deepEqual(got.map(typeOf), ['T', 'E', 'Z']);
    assert.equal(errorOf(got)?.code, '58P01');
    got = await c.query('SHOW data_directory_mode');
    assert.ok(got.some((f) => typeOf(f) === 'D' && Buffer.from(f.body).includes('0700')));
    got = await c.query('SHOW no_such_thing');
    assert.equal(errorOf(got)?.code, '42704');
    got = await c.query('SELECT 1');
    assert.equal(errorOf(got)?.code, '0A000');
    c.close();
  });

  await t.test('max_wal_senders: one connection too many gets FATAL 53300', async () => {
    // pg_receivewal holds one slot; two idle raw connections take the rest.
    const a = await raw();
    await a.startup();
    const b = await raw();
    await b.startup();
    await waitFor(() => p.replicationStatus().length === 3, 5000, 'three walsenders');
    const c = await raw();
    c.send(encodeStartupMessage({ user: 'tester', database: 'replication', replication: 'true' }));
    const got = await c.untilClosed();
    const e = errorOf(got);
    assert.equal(e?.severity, 'FATAL');
    assert.equal(e?.code, '53300');
    assert.equal(e?.message, 'number of requested standby connections exceeds max_wal_senders (currently 3)');
    a.close();
    b.close();
    await waitFor(() => p.replicationStatus().length === 1, 5000, 'slots released');
  });

  await t.test('a connection that never sends a startup packet is closed after authenticationTimeoutMs', async () => {
    const c = await raw();
    // Not before the timeout (timers never fire early); closed at all (60 s bounds a hang).
    const t0 = Date.now();
    await c.untilClosed(HANG_MS);
    const ms = Date.now() - t0;
    assert.ok(ms >= 900, `closed after ${ms} ms, before authenticationTimeoutMs`);
  });

  await t.test('a client silent for walSenderTimeoutMs gets a keepalive at half of it, then is dropped', async () => {
    const c = await raw();
    await c.startup();
    c.send(encodeQuery(`START_REPLICATION ${lsnToString(p.flushLsn)} TIMELINE 1`));
    const t0 = Date.now();
    assert.equal(typeOf((await c.next())!), 'W');
    let pingAt = -1;
    for (;;) {
      const f = await c.next(HANG_MS);
      if (f === null) break;
      if (typeOf(f) === 'd' && f.body[0] === 0x6b) {
        const k = decodeCopyBothMessage(f.body);
        assert.equal(k.kind, 'k');
        if (k.kind === 'k' && k.replyRequested && pingAt < 0) pingAt = Date.now() - t0;
      }
    }
    const closedAt = Date.now() - t0;
    // Orderings and lower bounds only: the keepalive no earlier than half the timeout, the drop no
    // earlier than the timeout, and the keepalive before the drop.
    assert.ok(pingAt >= TIMEOUT_MS / 2 - 50, `keepalive with replyRequested at ${pingAt} ms`);
    assert.ok(closedAt >= TIMEOUT_MS - 50, `dropped at ${closedAt} ms`);
    assert.ok(pingAt < closedAt, `the keepalive (${pingAt} ms) came before the drop (${closedAt} ms)`);
  });

  // The real client was never disturbed: it still streams, byte-identical.
  await load(p, 3000, 'after');
  const endSeg = segNo(p.flushLsn, SEG);
  assert.ok(endSeg > startSeg, 'at least one complete segment streamed');
  await waitFor(() => fs.existsSync(path.join(recv.dir, segmentFileName(1, endSeg - 1, SEG))), 10_000, 'pg_receivewal to finish the last complete segment');
  for (let s = startSeg; s < endSeg; s++) {
    const n = segmentFileName(1, s, SEG);
    assert.ok(fs.readFileSync(path.join(recv.dir, n)).equals(fs.readFileSync(path.join(p.walDir, n))), `segment ${n} differs`);
  }
  const row = p.replicationStatus().find((r) => r.application_name === 'pg_receivewal');
  assert.equal(row?.state, 'streaming');
  assert.equal(recv.child.exitCode, null, 'pg_receivewal still running');
  const grew = process.memoryUsage().rss - rss0;
  assert.ok(grew < 256 * 1024 * 1024, `primary memory grew by ${grew} bytes`);
});

test('WAL that disappears under a catching-up client: ERROR 58P01, then close', async (t) => {
  const dir = tmpDir('walstream-gone-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, walBuffersBytes: 64 * 1024, checkpointTimeoutMs: 0, port: 0, walSenderMaxQueuedBytes: 128 * 1024 });
  const c = await RawClient.connect(p.port!);
  t.after(async () => {
    c.close();
    await p.close();
    rmrf(dir);
  });
  await load(p, 16000, 'gone');
  await c.startup();
  c.socket.pause(); // a slow reader: the walsender stops at walSenderMaxQueuedBytes + the socket buffers
  c.send(encodeQuery(`START_REPLICATION ${lsnToString(SEG)} TIMELINE 1`));
  // Wait until the walsender is blocked (sent stops moving), then remove a segment it has not opened.
  let last: Lsn | null = null;
  await waitFor(() => {
    const now = p.replicationStatus()[0]?.sent_lsn ?? null;
    const still = now !== null && now === last;
    last = now;
    return still;
  }, 10_000, 'the walsender to block on the paused client', 200);
  const sentSeg = segNo(last!, SEG);
  assert.ok(sentSeg + 1 < segNo(p.flushLsn, SEG), `enough WAL ahead of the blocked walsender (sent ${lsnToString(last!)})`);
  const victim = segmentFileName(1, sentSeg + 1, SEG);
  fs.rmSync(path.join(p.walDir, victim)); // as if removed behind the walsender's back
  c.socket.resume();
  const got = await c.untilClosed(10_000);
  const e = errorOf(got);
  assert.equal(e?.code, '58P01');
  assert.equal(e?.message, `requested WAL segment ${victim} has already been removed`);
});
