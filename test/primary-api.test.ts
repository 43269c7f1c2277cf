// The public API's edges: Primary.open checks its replication port before it initialises a data
// directory (a port in use is one error naming the option, and no directory is left behind, also
// when the port is taken between the check and the listener's bind); the system identifier is
// one decimal string on Primary, Standby, stats() and IDENTIFY_SYSTEM's column; an in-process
// standby's waitForReplay of a synchronousCommit 'off' commit asks the walwriter for the flush it
// needs (counted in stats().walFlushRequests) instead of waiting for wal_writer_delay; waitForReplay
// takes an LSN as a number or as PostgreSQL's X/X text (lsnToString / parseLsn convert).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { lsnToString, parseLsn, Primary, Standby, WalstreamError } from '../src/index.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

/** The longest wal_writer_delay (ms) Primary accepts: nothing is flushed by the delay while a test runs. */
const LONGEST_WAL_WRITER_DELAY_MS = 10_000;

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

test("waitForReplay takes an LSN as transaction() returns it or as PostgreSQL's X/X text", async (t) => {
  const dir = tmpDir('walstream-api-lsn-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0 });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0 });
  t.after(async () => {
    await s.close();
    await p.close();
    rmrf(dir);
  });
  const lsn = await p.transaction((tx) => tx.put('t', 'a', 1));
  assert.equal(await s.waitForReplay(lsnToString(lsn)) >= lsn, true);
  assert.equal(parseLsn(lsnToString(lsn)), lsn);
  const flushText = p.stats().flushLsn;
  assert.ok((await s.waitForReplay(flushText)) >= parseLsn(flushText));
  await assert.rejects(s.waitForReplay('12345'), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_INVALID_OPTION' && /0\/16B3748/.test(e.message));
});
