// One owner per socket: the replication I/O thread (src/replication/tcp-bridge.ts) accepts and
// owns every TCP connection and feeds each walsender through its rings, so no descriptor is shared
// between threads and nothing is left to release on the primary's thread. Checked with a flood of
// connections (quick closes, garbage, full handshakes) while a standby streams under load: the
// primary's thread holds no handle per connection (its active handles return to their count
// before the flood), the process holds no socket descriptor per connection (the sockets in
// /proc/self/fd return to theirs), only the standby's walsender is left, and the standby's store
// digest equals the primary's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { encodeQuery } from '../src/replication/protocol/messages.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { RawClient, waitFor } from './helpers/rawpg.js';

const SEG = 1 << 20;
/** Connections in the flood (each costs a walsender thread start). */
const FLOOD_CONNECTIONS = 90;

function activeHandles(): number {
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
}

/** Socket descriptors of this process (every thread's). */
function socketFds(): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      /* closed meanwhile (readdir's own descriptor) */
    }
  }
  return n;
}

test('a connection flood while a standby streams leaves nothing behind on the primary; the standby still matches', async (t) => {
  const dir = tmpDir('walstream-flood-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, maxWalSenders: 4, authenticationTimeoutMs: 2000 });
  let s: Standby | null = null;
  t.after(async () => {
    await s?.close();
    await p.close();
    rmrf(dir);
  });
  s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'standby' }, readerThreads: 0 });
  await waitFor(() => p.replicationStatus().some((r) => r.state === 'streaming'), 10_000, 'the standby to stream');
  await s.waitForReplay(await p.flush(), 10_000);
  const baseHandles = activeHandles();
  const baseSockets = socketFds();

  let stop = false;
  let n = 0;
  const load = (async () => {
    while (!stop) {
      await Promise.all(Array.from({ length: 20 }, () => p.transaction((tx) => tx.put('t', `k${n++ % 500}`, 'v'.repeat(200)), { synchronousCommit: 'local' })));
    }
  })();

  let handshakes = 0;
  for (let i = 0; i < FLOOD_CONNECTIONS; i++) {
    const c = await RawClient.connect(p.port!);
    if (i % 3 === 1) {
      c.send(Buffer.from('garbage that is no startup packet at all'));
    } else if (i % 3 === 2) {
      await c.startup('flood', 'flood');
      c.send(encodeQuery('IDENTIFY_SYSTEM'));
      await c.untilReady();
      handshakes++;
    }
    c.close();
    while (!c.closed) await new Promise((r) => setTimeout(r, 2));
  }
  stop = true;
  await load;
  const end = await p.flush();
  assert.equal(handshakes, FLOOD_CONNECTIONS / 3);

  // Each flood connection's walsender exits and the I/O thread closes its socket; nothing is
  // released later or retried: the counts go back to exactly what they were.
  await waitFor(() => p.replicationStatus().length === 1 && activeHandles() === baseHandles && socketFds() === baseSockets, 20_000, 'the flood to leave nothing behind');
  assert.equal(activeHandles(), baseHandles, 'active handles on the primary thread');
  assert.equal(socketFds(), baseSockets, 'socket descriptors of the process');

  await s.waitForReplay(end, 30_000);
  assert.equal(s.store!.digest(), p.store.digest(), 'the standby matches the primary');
  const rows = p.replicationStatus();
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.state, 'streaming', 'the standby still streams');
  assert.equal(rows[0]!.client_addr, '127.0.0.1');
});
