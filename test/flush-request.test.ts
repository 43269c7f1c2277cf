// StandbyFlushRequest `F` (walstream's extension, src/replication/protocol/copy-messages.ts): a
// standby connected over TCP whose waitForReplay needs WAL the primary has not flushed yet (a
// synchronousCommit 'off' commit) asks the primary's walsender for the flush, as an in-process
// standby asks its primary directly, instead of waiting for wal_writer_delay. The request is
// agreed at startup (ParameterStatus walstream.flush_request); PostgreSQL never agrees, so it never
// gets one (its replication tests run our walreceiver against it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary, Standby } from '../src/index.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

/** The longest wal_writer_delay (ms) Primary accepts: nothing is flushed by the delay while a test runs. */
const LONGEST_WAL_WRITER_DELAY_MS = 10_000;

test("a TCP standby's waitForReplay of a synchronousCommit 'off' commit asks the primary's walsender for its flush", async (t) => {
  const dir = tmpDir('walstream-flush-request-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0, host: '127.0.0.1', walWriterDelayMs: LONGEST_WAL_WRITER_DELAY_MS });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'tester', applicationName: 's1' }, readerThreads: 0 });
  t.after(async () => {
    await s.close();
    await p.close();
    rmrf(dir);
  });
  await s.waitForReplay(await p.flush());
  for (let round = 0; round < 3; round++) {
    const before = p.stats();
    const lsn = await p.transaction((tx) => tx.put('t', `k${round}`, round), { synchronousCommit: 'off' });
    assert.ok(p.flushLsn < lsn, 'the commit is not flushed yet');
    // Bounded below wal_writer_delay: only the flush request can have sent this WAL in time.
    await s.waitForReplay(lsn, LONGEST_WAL_WRITER_DELAY_MS / 2);
    assert.equal(s.get('t', `k${round}`), round);
    const after = p.stats();
    assert.equal(after.walFlushRequests - before.walFlushRequests, 1, 'one request reached the walwriter');
    assert.ok(after.walFsyncs > before.walFsyncs);
  }
  // WAL the standby holds already: nothing is asked.
  const flushed = p.stats().walFlushRequests;
  await s.waitForReplay(p.flushLsn);
  assert.equal(p.stats().walFlushRequests, flushed);
});
