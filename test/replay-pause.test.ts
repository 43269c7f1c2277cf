// pg_wal_replay_pause() on a walstream standby: replay stops between records while the walreceiver
// goes on flushing, so hot-standby reads keep seeing the state at the pause; resume replays the
// rest; a promotion while paused ends the pause and loses nothing (as PostgreSQL's promotion
// does). States only; waits are bounded for hangs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const HANG_MS = 60_000;

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + HANG_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${HANG_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('replay pause: reads keep the paused state while WAL is flushed; resume; promotion ends the pause', async () => {
  const dir = tmpDir('walstream-pause-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: 1 << 20, port: 0 });
  let promoted: Primary | null = null;
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p });
  try {
    const first = await p.transaction((tx) => tx.put('t', 'k0', 0));
    await s.waitForReplay(first);
    assert.equal(s.replayPauseState, 'not paused');
    s.pauseReplay();
    s.pauseReplay(); // twice: still one pause
    await until(() => s.replayPauseState === 'paused', 'paused');
    const paused = s.replayLsn;
    let lsn = 0;
    for (let i = 1; i <= 50; i++) lsn = await p.transaction((tx) => tx.put('t', `k${i}`, i));
    await until(() => s.flushLsn >= lsn, 'flushed while paused');
    assert.equal(s.replayLsn, paused);
    assert.equal(s.get('t', 'k1'), undefined, 'reads see the state at the pause');
    assert.equal(s.scan('t').length, 1);
    assert.equal(s.receiverStatus().status, 'streaming');

    s.resumeReplay();
    assert.equal(s.replayPauseState, 'not paused');
    await s.waitForReplay(lsn, HANG_MS);
    assert.equal(s.scan('t').length, 51);

    // Paused again, then promoted: everything flushed is replayed first.
    s.pauseReplay();
    await until(() => s.replayPauseState === 'paused', 'paused again');
    for (let i = 51; i <= 80; i++) lsn = await p.transaction((tx) => tx.put('t', `k${i}`, i));
    await until(() => s.flushLsn >= lsn, 'flushed while paused again');
    assert.equal(s.scan('t').length, 51);
    promoted = await s.promote();
    assert.equal(s.scan('t').length, 81, 'the promotion replayed what was flushed');
    assert.equal(s.replayPauseState, 'not paused');
    assert.equal(promoted.get('t', 'k80'), 80);
  } finally {
    await s.close();
    await promoted?.close();
    await p.close();
    rmrf(dir);
  }
});
