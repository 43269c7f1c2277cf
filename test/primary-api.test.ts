// The public API's edges: Primary.open checks its replication port before it initialises a data
// directory (a port in use is one error naming the option, and no directory is left behind, also
// when the port is taken between the check and the listener's bind); the system identifier is
// one decimal string on Primary, Standby, stats() and IDENTIFY_SYSTEM's column; an in-process
// standby's waitForReplay of a synchronousCommit 'off' commit asks the walwriter for the flush it
// needs (counted in stats().walFlushRequests) instead of waiting for wal_writer_delay; every LSN
// of the API is one number: transaction()'s, stats()', replicationStatus()', receiverStatus()'
// and the slots' compare without conversion, waitForReplay takes one (text converts with
// parseLsn, and is refused as an argument), and an LSN past 2^53 is refused, not rounded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { lsnToString, openReader, parseLsn, Primary, Standby, WalstreamError } from '../src/index.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

/** The longest wal_writer_delay (ms) Primary accepts: nothing is flushed by the delay while a test runs. */
const LONGEST_WAL_WRITER_DELAY_MS = 10_000;
/** Hang bound of a wait, ms (a failure bound, not a timing assertion). */
const HANG_MS = 30_000;

test('a port in use: one error naming the option, no data directory initialised', async (t) => {
  const dir = tmpDir('walstream-api-port-');
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    srv.close();
    rmrf(dir);
  });
  const port = (srv.address() as net.AddressInfo).port;
  const missing = path.join(dir, 'missing');
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  for (const dataDir of [missing, empty]) {
    const e = await Primary.open({ dataDir, port }).then(
      () => assert.fail('opened on a port in use'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof WalstreamError);
    assert.equal(e.code, 'WS_INVALID_OPTION');
    assert.equal(e.message, `invalid value for option "port": 127.0.0.1:${port} is already in use`);
  }
  assert.equal(fs.existsSync(missing), false);
  assert.deepEqual(fs.readdirSync(empty), []);
  // The port free again: the same directory initialises and opens.
  const p = await Primary.open({ dataDir: empty, port: 0 });
  assert.ok(fs.existsSync(path.join(empty, 'pg_wal')));
  await p.close();
});

test('systemIdentifier: one decimal string on Primary, Standby and stats()', async (t) => {
  const dir = tmpDir('walstream-api-sysid-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0 });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0 });
  t.after(async () => {
    await s.close();
    await p.close();
    rmrf(dir);
  });
  assert.equal(typeof p.systemIdentifier, 'string');
  assert.match(p.systemIdentifier, /^[1-9]\d*$/);
  assert.equal(s.systemIdentifier, p.systemIdentifier);
  assert.equal(p.stats().systemIdentifier, p.systemIdentifier);
});

test("waitForReplay of a synchronousCommit 'off' commit asks the walwriter for its flush", async (t) => {
  const dir = tmpDir('walstream-api-off-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0, walWriterDelayMs: LONGEST_WAL_WRITER_DELAY_MS });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0 });
  t.after(async () => {
    await s.close();
    await p.close();
    rmrf(dir);
  });
  await s.waitForReplay(await p.flush());
  const before = p.stats();
  const lsn = await p.transaction((tx) => tx.put('t', 'k', 'v'), { synchronousCommit: 'off' });
  assert.ok(p.flushLsn < lsn, 'the commit is not flushed yet');
  // Bounded below wal_writer_delay: only the flush request can have sent this WAL in time.
  await s.waitForReplay(lsn, LONGEST_WAL_WRITER_DELAY_MS / 2);
  assert.equal(s.get('t', 'k'), 'v');
  const after = p.stats();
  assert.equal(after.walFlushRequests - before.walFlushRequests, 1);
  assert.ok(after.walFsyncs > before.walFsyncs);
  // Already flushed WAL: nothing is asked.
  await s.waitForReplay(lsn);
  assert.equal(p.stats().walFlushRequests, after.walFlushRequests);
});

test('one LSN representation: numbers from transaction(), stats() and the status rows; waitForReplay takes a number', async (t) => {
  const dir = tmpDir('walstream-api-lsn-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0 });
  p.createReplicationSlot('s1');
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0, primarySlotName: 's1' });
  t.after(async () => {
    await s.close();
    await p.close();
    rmrf(dir);
  });
  const lsn = await p.transaction((tx) => tx.put('t', 'a', 1));
  assert.ok((await s.waitForReplay(lsn)) >= lsn);
  const st = p.stats();
  for (const v of [st.insertLsn, st.writeLsn, st.flushLsn, st.lastCheckpointLsn, st.redoLsn]) assert.equal(typeof v, 'number');
  assert.ok(st.redoLsn <= st.lastCheckpointLsn && st.lastCheckpointLsn < lsn && lsn <= st.flushLsn && st.flushLsn <= st.writeLsn);
  assert.ok((await s.waitForReplay(st.flushLsn)) >= st.flushLsn);
  // The standby's reports reach the primary: its row's positions are the numbers transaction() returned.
  await waitFor(() => (p.replicationStatus()[0]?.replay_lsn ?? 0) >= st.flushLsn, HANG_MS, 'the standby reports its replay');
  const row = p.replicationStatus()[0]!;
  assert.ok(row.replay_lsn! <= row.flush_lsn! && row.flush_lsn! <= row.write_lsn! && row.write_lsn! <= row.sent_lsn! && row.sent_lsn! <= p.flushLsn);
  assert.ok(lsn <= row.flush_lsn!);
  const slot = p.replicationSlots().find((r) => r.slot_name === 's1')!;
  assert.ok(slot.restart_lsn !== null && slot.restart_lsn <= p.flushLsn);
  const rcv = s.receiverStatus();
  assert.ok(rcv.replay_lsn! <= rcv.flushed_lsn && rcv.flushed_lsn <= rcv.written_lsn && rcv.receive_start_lsn <= rcv.written_lsn);
  assert.ok(lsn <= rcv.replay_lsn!);
  const ss = s.stats();
  assert.ok(typeof ss.redoLsn === 'number' && typeof ss.minRecoveryPoint === 'number');
  // Text converts both ways, exactly.
  assert.equal(parseLsn(lsnToString(lsn)), lsn);
  assert.equal(lsnToString(2 ** 53 - 1), '1FFFFF/FFFFFFFF');
  assert.equal(parseLsn('1FFFFF/FFFFFFFF'), 2 ** 53 - 1);
  assert.throws(() => parseLsn('200000/0'), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_SYNTAX_ERROR');
  // What is not an exact LSN number is refused with one error naming the argument.
  const bad = (e: unknown) => e instanceof WalstreamError && e.code === 'WS_INVALID_OPTION' && e.message.includes('"lsn"');
  await assert.rejects(s.waitForReplay(lsnToString(lsn) as unknown as number), (e: unknown) => bad(e) && /parseLsn/.test((e as Error).message));
  for (const v of [-1, 1.5, 2 ** 53, Number.NaN, Infinity]) await assert.rejects(s.waitForReplay(v), bad, String(v));
  const reader = openReader(s.readerHandle());
  t.after(() => reader.close());
  await assert.rejects(reader.waitForReplay(2 ** 53), bad);
});
