// WalSource on a standby (src/replication/wal-source.ts): the cascading walsender's view of the
// standby's WalRcvData. Its timeline is the one word WalRcvData TIMELINE (the control file's at
// open, then each startStreaming's); a wait for WAL past `sent` is woken by the walreceiver's
// flush publish only while it counts in FLUSH_WAITERS, and leaves no count behind, whether it
// ends by a flush or by release() (end of streaming), even when a newer wait was armed meanwhile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StandbyWalSource } from '../src/replication/wal-source.js';
import { WalRcvData, WI_FLUSH_WAITERS } from '../src/standby/walrcvdata.js';

const SEG = 1 << 20;
const waiters = (w: WalRcvData) => Atomics.load(w.i32, WI_FLUSH_WAITERS);

test('standby WalSource: timeline from WalRcvData TIMELINE; flushed; waits woken by publishFlushed; waiter count balanced', async () => {
  const w = WalRcvData.create();
  const src = new StandbyWalSource(w.handle, SEG);
  assert.throws(() => src.timeline(), /timeline not set/);
  w.setTimeline(1);
  assert.equal(src.timeline(), 1);
  w.startStreaming(0x2000000, 2, '127.0.0.1', 5432); // the walreceiver streams timeline 2 now
  assert.equal(src.timeline(), 2, 'startStreaming moves the timeline every reader sees');
  assert.equal(src.cascading, true);
  assert.equal(src.copyFromMemory(), false, 'no WAL in shared memory: segment files only');

  w.publishWritten(0x2000100);
  w.publishFlushed(0x2000100);
  assert.equal(src.flushed(), 0x2000100);
  assert.equal(src.waitForFlushPast(0x2000000), null, 'already past: no wait');
  assert.equal(waiters(w), 0);

  // A wait past the flush position: counted, woken by the next publish, uncounted after.
  const p1 = src.waitForFlushPast(0x2000100);
  assert.ok(p1 !== null);
  assert.equal(waiters(w), 1);
  w.publishWritten(0x2000200);
  w.publishFlushed(0x2000200);
  await p1;
  assert.equal(waiters(w), 0);
  assert.ok(src.flushed() > 0x2000100);

  // End of streaming while waiting: release() drops the count; the stale wait ending later does not
  // drop the count of a newer wait.
  const p2 = src.waitForFlushPast(0x2000200)!;
  src.release();
  assert.equal(waiters(w), 0);
  src.release();
  assert.equal(waiters(w), 0, 'release is idempotent');
  const p3 = src.waitForFlushPast(0x2000200)!;
  assert.equal(waiters(w), 1);
  w.publishWritten(0x2000300);
  w.publishFlushed(0x2000300);
  await Promise.all([p2, p3]);
  assert.equal(waiters(w), 0);
});

test('standby WalSource: a new timeline wakes a wait on the old one; flushedOn reads FLUSHED, then TIMELINE', async () => {
  const w = WalRcvData.create();
  const src = new StandbyWalSource(w.handle, SEG);
  w.setTimeline(1);
  w.startStreaming(0x1000000, 1, '127.0.0.1', 5432);
  w.publishWritten(0x1000100);
  w.publishFlushed(0x1000100);
  assert.deepEqual(src.flushedOn(), { flushed: 0x1000100, tli: 1 });

  // Caught up on timeline 1: the wait is woken by the walreceiver starting timeline 2, with no flush.
  const p = src.waitForFlushPast(0x1000100, 1);
  assert.ok(p !== null);
  assert.equal(waiters(w), 1);
  w.startStreaming(0x1000000, 2, '127.0.0.1', 5433); // the followed timeline restarts at its segment start
  await p;
  assert.equal(waiters(w), 0);
  // FLUSHED did not go back to the segment start; the timeline is 2.
  assert.deepEqual(src.flushedOn(), { flushed: 0x1000100, tli: 2 });
  assert.equal(src.waitForFlushPast(0x1000100, 1), null, 'timeline 1 is not current: no wait');
  assert.equal(waiters(w), 0);
  const q = src.waitForFlushPast(0x1000100, 2);
  assert.ok(q !== null, 'timeline 2 is current: a wait for its WAL');
  src.release();
  // The same timeline again (a reconnect) does not wake anyone; timelines never go back.
  w.startStreaming(0x1000000, 2, '127.0.0.1', 5433);
  assert.throws(() => w.startStreaming(0x1000000, 1, '127.0.0.1', 5432), /timeline 1 after 2/);
  assert.equal(src.timeline(), 2, 'refused before anything changed');
});
