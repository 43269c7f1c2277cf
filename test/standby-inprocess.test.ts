// A standby in the primary's own process (Standby.open({ primary })): the walsender and the
// walreceiver speak the same protocol through two SharedArrayBuffer rings instead of TCP.
// Checked: base backup, catch-up and live streaming under a concurrent workload end with the
// primary's digest (one standby with the default 8 MiB ring, whose XLogData are built in place,
// and one with a 128 KiB ring, where 128 KiB messages do not fit a record and take the copy path);
// replicationStatus rows (client_addr NULL, client_port -1), receiverStatus, max_wal_senders
// (53300 as over TCP), stop and restart of a standby; bad input in the rings (garbage protocol
// bytes, damaged record headers, a record longer than what was published, a 1 GiB length word, a
// client thread that vanishes) fails only that connection, while the primary keeps streaming; a
// damaged record from the primary's side fails the standby's connection attempt.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { WalstreamError } from '../src/errors.js';
import { Primary } from '../src/primary/primary.js';
import { encodeQuery } from '../src/replication/protocol/messages.js';
import { ByteRing, RECORD_HEADER_BYTES, RECORD_MAGIC, RG_HEAD, RING_CTRL_BYTES } from '../src/replication/ring.js';
import type { InProcessConnectRequest } from '../src/replication/in-process-connect.js';
import { Standby } from '../src/standby/standby.js';
import { RingTransport } from '../src/standby/transport.js';
import { lsnToString } from '../src/wal/lsn.js';
import { errorOf, RawClient, typeOf, waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
function newDir(): string {
  const d = tmpDir('walstream-inproc-');
  dirs.push(d);
  return d;
}

/** `n` transactions of mixed sizes (some 64 KiB values: XLogData of 128 KiB during catch-up). */
async function workload(p: Primary, tag: string, n: number): Promise<number> {
  let lsn = 0;
  const pending: Promise<number>[] = [];
  for (let i = 0; i < n; i++) {
    const big = i % 97 === 0 ? 64 * 1024 : i % 5 === 0 ? 9000 : 100;
    pending.push(p.transaction((tx) => {
      tx.put('t', `${tag}${i % 700}`, { i, pad: 'z'.repeat(big) });
      if (i % 3 === 0) tx.put('u', `${tag}${i % 50}`, i);
    }, { synchronousCommit: 'off' }));
    if (pending.length >= 32) lsn = Math.max(lsn, ...(await Promise.all(pending.splice(0))));
  }
  lsn = Math.max(lsn, ...(await Promise.all(pending)));
  return lsn;
}

test('in-process standbys: base backup, streaming under a workload, digests, status rows, max_wal_senders, restart', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, maxWalSenders: 2, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG });
  const standbys: Standby[] = [];
  try {
    await workload(p, 'a', 400);
    const open = (name: string, extra: object = {}) =>
      Standby.open({ dataDir: path.join(dir, name), primaryConninfo: { inProcess: p, applicationName: name }, readerThreads: 0, walReceiverStatusIntervalMs: 100, ...extra });
    const s1 = await open('s1');
    standbys.push(s1);
    assert.ok(s1.baseBackup, 'an empty directory gets a base backup through the rings');
    // The second standby's ring is too small for a 128 KiB XLogData record: the copy path.
    const s2 = await open('s2', { walReceiverRingBytes: 128 * 1024 });
    standbys.push(s2);
    // Workload while both stream (live), with a checkpoint in the middle.
    const live = workload(p, 'b', 2500);
    await new Promise((r) => setTimeout(r, 100));
    await p.checkpoint();
    await live;
    const end = await p.flush();
    await Promise.all([s1.waitForReplay(end, 30_000), s2.waitForReplay(end, 30_000)]);
    assert.equal(s1.store!.digest(), p.store.digest(), 's1 matches the primary');
    assert.equal(s2.store!.digest(), p.store.digest(), 's2 (small ring) matches the primary');

    // pg_stat_replication: like a unix-socket client.
    await waitFor(() => p.replicationStatus().filter((r) => r.flush_lsn === end).length === 2, 5000, 'both report their flush');
    const rows = p.replicationStatus().sort((a, b) => a.application_name.localeCompare(b.application_name));
    assert.deepEqual(rows.map((r) => [r.application_name, r.client_addr, r.client_port, r.state]), [['s1', null, -1, 'streaming'], ['s2', null, -1, 'streaming']]);
    const st = s1.receiverStatus();
    assert.equal(st.status, 'streaming');
    assert.equal(st.sender_host, '[in-process]');
    assert.match(st.conninfo, /in_process=true application_name=s1/);
    assert.equal(st.flushed_lsn, end);

    // max_wal_senders = 2 are taken: one more is refused as over TCP (FATAL 53300).
    const extra = RawClient.inProcess(p);
    const got = await extra.startup('x', 'third');
    assert.equal(errorOf(got)?.code, '53300');
    assert.equal(errorOf(got)?.severity, 'FATAL');
    await extra.untilClosed();
    const t = new RingTransport(p.inProcessListener(), { host: '[in-process]', port: 0, user: 'x', password: null, passfile: null, applicationName: 'third' }, {
      connectTimeoutMs: 5000, commandTimeoutMs: 5000, maxMessageBytes: 1 << 26, maxBufferedBytes: 1 << 25, ringBytes: 1 << 16, spinIterations: 0,
    });
    await assert.rejects(t.connect(), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '53300');

    // Stop s1: its walsender and WalSndCtl slot go; the primary goes on; restart catches up.
    await s1.close();
    standbys.splice(standbys.indexOf(s1), 1);
    await waitFor(() => p.replicationStatus().length === 1, 5000, "s1's walsender exits");
    await workload(p, 'c', 800);
    const s1b = await open('s1');
    standbys.push(s1b);
    assert.equal(s1b.baseBackup, null, 'a restart resumes from its own WAL');
    const end2 = await p.flush();
    await Promise.all([s1b.waitForReplay(end2, 30_000), s2.waitForReplay(end2, 30_000)]);
    assert.equal(s1b.store!.digest(), p.store.digest(), 's1 after restart matches');
    assert.equal(s2.store!.digest(), p.store.digest());
  } finally {
    for (const s of standbys) await s.close();
    await p.close();
  }
  // After the primary closed: its listener is gone, a new in-process standby fails at once.
  await assert.rejects(Standby.open({ dataDir: path.join(dir, 's9'), primary: p, readerThreads: 0 }));
});

/** Publish one raw 8-byte record header (and `len` bytes of nothing) in a ring, as a broken peer would. */
function publishRawHeader(ring: ByteRing, len: number, meta: number, advance: number): void {
  const i32 = new Int32Array(ring.sab);
  const head = Atomics.load(i32, RG_HEAD);
  const w = (RING_CTRL_BYTES + (head & (ring.capacity - 1))) >> 2;
  i32[w] = len;
  i32[w + 1] = meta;
  Atomics.store(i32, RG_HEAD, (head + advance) | 0);
  Atomics.notify(i32, RG_HEAD);
}

test('bad input in the rings: the connection gets FATAL 08P01 and closes, the primary keeps streaming', async (t) => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, maxWalSenders: 4, checkpointTimeoutMs: 0 });
  const clients: RawClient[] = [];
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0 });
  t.after(async () => {
    clients.forEach((c) => c.close());
    await s.close();
    await p.close();
  });
  const raw = () => {
    const c = RawClient.inProcess(p);
    clients.push(c);
    return c;
  };
  const toServer = (c: RawClient) => new ByteRing(c.rings!.toServer);

  await t.test('garbage instead of a startup packet', async () => {
    const c = raw();
    c.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
    assert.equal(errorOf(got)?.severity, 'FATAL');
  });

  await t.test('a message claiming 1 GiB', async () => {
    const c = raw();
    await c.startup();
    const hdr = Buffer.alloc(5);
    hdr.write('Q', 0, 'latin1');
    hdr.writeUInt32BE(1 << 30, 1);
    c.send(hdr);
    const got = await c.untilClosed();
    assert.match(errorOf(got)!.message, /invalid message length/);
  });

  await t.test('a record header without the record marker', async () => {
    const c = raw();
    await c.startup();
    publishRawHeader(toServer(c), 8, 0x1234_0000, 16);
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
    assert.equal(errorOf(got)?.severity, 'FATAL');
    assert.match(errorOf(got)!.message, /invalid record in the in-process replication ring/);
  });

  await t.test('a record longer than what was published, while streaming', async () => {
    const c = raw();
    await c.startup();
    c.send(encodeQuery(`START_REPLICATION ${lsnToString(Math.floor(p.flushLsn / SEG) * SEG)} TIMELINE 1`));
    assert.equal(typeOf((await c.next())!), 'W');
    publishRawHeader(toServer(c), 60_000, RECORD_MAGIC << 16, 64);
    const got = await c.untilClosed();
    assert.match(errorOf(got)?.detail ?? '', /runs past the published data/);
    assert.ok(got.some((f) => typeOf(f) === 'd'), 'WAL was streamed before the error');
  });

  await t.test('a head position outside the ring', async () => {
    const c = raw();
    await c.startup();
    const i32 = new Int32Array(toServer(c).sab);
    Atomics.store(i32, RG_HEAD, (Atomics.load(i32, RG_HEAD) + 0x4000_0000) | 0);
    Atomics.notify(i32, RG_HEAD);
    const got = await c.untilClosed();
    assert.equal(errorOf(got)?.code, '08P01');
  });

  await t.test('a client whose thread vanishes (its port closes, the rings stay open)', async () => {
    const c = raw();
    await c.startup('tester', 'vanishing');
    assert.ok(p.replicationStatus().some((r) => r.application_name === 'vanishing'));
    // What a terminated thread leaves: the MessageChannel end closes, nothing else.
    (c.socket as unknown as { peer: { close(): void } }).peer.close();
    await waitFor(() => !p.replicationStatus().some((r) => r.application_name === 'vanishing'), 5000, 'walsender exits, slot released');
  });

  await t.test('the standby streamed all along', async () => {
    const end = await workload(p, 'x', 300);
    await s.waitForReplay(end, 20_000);
    assert.equal(s.store!.digest(), p.store.digest());
    assert.equal(s.receiverStatus().connects, 1, 'the standby never reconnected');
    assert.deepEqual(p.replicationStatus().map((r) => r.state), ['streaming']);
  });
});

test('a damaged record from the primary side fails the connection attempt with 08P01', async () => {
  const { port1: listener, port2 } = new MessageChannel();
  // A fake primary: answers every connect with a record header that is not one.
  port2.on('message', (m: InProcessConnectRequest) => {
    const ring = new ByteRing(m.rings.toClient);
    publishRawHeader(ring, 1 << 20, (RECORD_MAGIC << 16) | 0x7700, RECORD_HEADER_BYTES);
    setTimeout(() => m.peer.close(), 2000).unref();
  });
  const t = new RingTransport(listener, { host: '[in-process]', port: 0, user: 'x', password: null, passfile: null, applicationName: 'a' }, {
    connectTimeoutMs: 5000, commandTimeoutMs: 5000, maxMessageBytes: 1 << 26, maxBufferedBytes: 1 << 25, ringBytes: 1 << 16, spinIterations: 0,
  });
  await assert.rejects(t.connect(), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '08P01' && /in-process replication ring/.test(e.message));
  listener.close();
  port2.close();
});

test('in-process options: clear errors', async () => {
  const dir = newDir();
  const noServer = await Primary.open({ dataDir: path.join(dir, 'p0'), walSegmentSize: SEG });
  try {
    await assert.rejects(Standby.open({ dataDir: path.join(dir, 's0'), primary: noServer, readerThreads: 0 }), /in-process standby needs the primary to serve replication/);
  } finally {
    await noServer.close();
  }
  const p = await Primary.open({ dataDir: path.join(dir, 'p1'), walSegmentSize: SEG, port: 0 });
  try {
    const base = { dataDir: path.join(dir, 's1'), readerThreads: 0 };
    await assert.rejects(Standby.open({ ...base, primary: p, primaryConninfo: 'host=127.0.0.1' }), /either primary or primaryConninfo/);
    await assert.rejects(Standby.open({ ...base, primaryConninfo: { inProcess: p, host: 'x' } as never }), /does not apply to an in-process primary/);
    await assert.rejects(Standby.open({ ...base, primary: p, walReceiverRingBytes: 3 << 20 }), /power of two/);
    await assert.rejects(Standby.open({ ...base, primaryConninfo: { inProcess: {} as never } }), /must be a Primary/);
  } finally {
    await p.close();
  }
});

test('waitForReplay: many waiters under one timer; each times out on its own deadline, the rest resolve in LSN order', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0 });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0 });
  try {
    const base = p.insertLsn + 1_000_000; // far ahead: nothing reaches it for now
    const t0 = performance.now();
    const outcomes: string[] = [];
    const track = (name: string, w: Promise<number>) =>
      w.then(
        () => outcomes.push(`${name} ok`),
        (e: unknown) => outcomes.push(`${name} ${e instanceof WalstreamError ? e.code : String(e)} ${Math.round(performance.now() - t0)}`),
      );
    const all = [
      track('a', s.waitForReplay(base, 300)),
      track('b', s.waitForReplay(base, 60)),
      track('c', s.waitForReplay(base, 150)),
    ];
    // Many short waits on commits that do arrive: resolved by replay, never by the timer.
    const lsns: number[] = [];
    for (let i = 0; i < 200; i++) lsns.push(await p.transaction((tx) => tx.put('t', `k${i}`, i), { synchronousCommit: 'off' }));
    const got = await Promise.all(lsns.map((l) => s.waitForReplay(l, 10_000)));
    got.forEach((r, i) => assert.ok(r >= lsns[i]!));
    await Promise.all(all);
    const timed = outcomes.map((o) => o.split(' ')).map(([n, code, ms]) => ({ n, code, ms: Number(ms) }));
    assert.deepEqual(timed.map((x) => `${x.n} ${x.code}`), ['b WS_WAIT_TIMEOUT', 'c WS_WAIT_TIMEOUT', 'a WS_WAIT_TIMEOUT'], 'each on its own deadline, shortest first');
    assert.ok(timed[0]!.ms >= 55 && timed[1]!.ms >= 145 && timed[2]!.ms >= 295, `not before its deadline: ${outcomes.join(', ')}`);
    // A wait that replay satisfies after a timer was armed still resolves.
    const late = s.waitForReplay(p.insertLsn + 1, 5_000);
    await p.transaction((tx) => tx.put('t', 'late', 1));
    assert.ok((await late) > 0);
  } finally {
    await s.close();
    await p.close();
  }
});
