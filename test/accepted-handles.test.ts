// The primary's thread hands each accepted replication socket's fd to a walsender worker and must
// later release its own handle of that socket without closing a descriptor that by then belongs to
// another file (src/util/fd-park.ts). Checked: the parking primitive refuses a number in use and
// leaves that file intact; a reconnect flood (quick closes, garbage, full handshakes) while a
// standby streams under load leaves no handle per connection behind on the primary's thread, and
// the standby still matches the primary (no descriptor of the primary, the walwriter or a
// walsender was closed under it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { encodeQuery } from '../src/replication/protocol/messages.js';
import { closeHandleOnParkedFd } from '../src/util/fd-park.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { RawClient } from './helpers/rawpg.js';

const SEG = 1 << 20;
/** Connections in the flood (each costs a walsender thread start, ~0.1 s here). */
const FLOOD_CONNECTIONS = 90;
/**
 * Handles whose fd number a file that stays open took before the release (seen: 0–5; once the load
 * stops, the segments open on the primary and standby stay open until the next segment switch).
 */
const PENDING_SLACK = 8;

function socketHandles(): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h instanceof net.Socket).length;
}

test('fd parking closes a handle only while its number is a placeholder of ours', (t) => {
  const dir = tmpDir('walstream-fdpark-');
  t.after(() => rmrf(dir));
  // A number in use by another file: refused, nothing closed, the file still reads.
  const a = fs.openSync(path.join(dir, 'a'), 'w+');
  fs.writeSync(a, 'still here');
  let closed = 0;
  assert.equal(closeHandleOnParkedFd(a, () => closed++), false);
  assert.equal(closed, 0);
  const buf = Buffer.alloc(10);
  fs.readSync(a, buf, 0, 10, 0);
  assert.equal(buf.toString(), 'still here');
  // A free number (the file was closed by "another owner"): parked, and the handle's close closes
  // exactly the placeholder, so no descriptor is left open and none of ours was touched.
  fs.closeSync(a);
  const before = fs.readdirSync('/proc/self/fd').length;
  assert.equal(
    closeHandleOnParkedFd(a, () => {
      closed++;
      assert.equal(fs.readlinkSync(`/proc/self/fd/${a}`), '/dev/null', 'the number is a placeholder when the handle closes');
      fs.closeSync(a);
    }),
    true,
  );
  assert.equal(closed, 1);
  assert.equal(fs.readdirSync('/proc/self/fd').length, before, 'every placeholder was closed');
  assert.equal(closeHandleOnParkedFd(-1, () => closed++), false);
});

test('a reconnect flood leaves no handle per connection on the primary thread; the standby still matches', async (t) => {
  const dir = tmpDir('walstream-accepted-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, maxWalSenders: 4, authenticationTimeoutMs: 2000 });
  let s: Standby | null = null;
  t.after(async () => {
    await s?.close();
    await p.close();
    rmrf(dir);
  });
  s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'standby' }, readerThreads: 0 });
  const baseline = socketHandles();

  let stop = false;
  let n = 0;
  const load = (async () => {
    while (!stop) {
      // ~1.5 MB/s of WAL: the walwriter opens a new 1 MiB segment every second or so during the flood.
      await Promise.all(Array.from({ length: 20 }, () => p.transaction((tx) => tx.put('t', `k${n++ % 500}`, 'v'.repeat(200)), { synchronousCommit: 'local' })));
    }
  })();

  for (let i = 0; i < FLOOD_CONNECTIONS; i++) {
    const c = await RawClient.connect(p.port!);
    if (i % 3 === 1) {
      c.send(Buffer.from('garbage that is no startup packet at all'));
    } else if (i % 3 === 2) {
      await c.startup('flood', 'flood');
      c.send(encodeQuery('IDENTIFY_SYSTEM'));
      await c.untilReady();
    }
    c.close();
    while (!c.closed) await new Promise((r) => setTimeout(r, 2));
  }
  stop = true;
  await load;
  const end = await p.flush();

  // Every flood connection's walsender exits and its handle on this thread is released, unless
  // its fd number has meanwhile gone to a file that stays open (a segment, a store file): such a
  // handle waits for that number (retried every 250 ms). So what is held is bounded by the numbers
  // in use, not by the connections ever accepted (90 without the release).
  const deadline = Date.now() + 20_000;
  while ((socketHandles() > baseline || p.acceptedHandlesHeld > 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const held = socketHandles();
  assert.ok(held <= baseline + PENDING_SLACK, `socket handles on the primary thread: ${held} after ${FLOOD_CONNECTIONS} connections (baseline ${baseline})`);
  assert.ok(p.acceptedHandlesHeld <= 1 + PENDING_SLACK, `accepted handles held: ${p.acceptedHandlesHeld} (1 streaming)`);

  await s.waitForReplay(end, 30_000);
  assert.equal(s.store!.digest(), p.store.digest(), 'the standby matches the primary');
  assert.equal(p.replicationStatus().filter((r) => r.state === 'streaming').length, 1, 'the standby still streams');
});
