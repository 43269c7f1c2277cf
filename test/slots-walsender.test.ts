// Replication slots and synchronous commit through our walsender, driven by PostgreSQL 15's own
// clients: pg_receivewal --create-slot / --slot / --drop-slot, psql in replication mode
// (CREATE/READ/DROP_REPLICATION_SLOT, errors as PostgreSQL words them), a slot that holds WAL
// across a client outage (the client resumes without a gap), a slot past max_slot_wal_keep_size
// that is marked lost (its client gets a clear error), and pg_receivewal --synchronous as the
// synchronous standby (sync_state, commits released by its replies, bounded wait).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { WalstreamError } from '../src/errors.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { psql } from './helpers/psql.js';
import { startPgReceivewal, waitFor } from './helpers/rawpg.js';

const SEG = 1 << 20;


async function fill(p: Primary, bytes: number, tag: string): Promise<void> {
  const target = p.insertLsn + bytes;
  let i = 0;
  const pending: Promise<unknown>[] = [];
  while (p.insertLsn < target) {
    const n = i++;
    pending.push(p.transaction((tx) => tx.put('t', `${tag}-${n}`, 'x'.repeat(900)), { synchronousCommit: 'off' }));
    if (pending.length >= 64) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await p.flush();
}

test('pg_receivewal --create-slot/--slot: slot commands, errors, restart_lsn, WAL held across an outage', async (t) => {
  const dir = tmpDir('walstream-slotws-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0 });
  let rw: ReturnType<typeof startPgReceivewal> | null = null;
  t.after(async () => {
    await rw?.stop();
    await p.close();
    rmrf(dir);
  });
  const port = p.port!;
  await fill(p, SEG / 2, 'a');

  const create = startPgReceivewal(port, path.join(dir, 'rw'), ['--create-slot', '--slot', 's1']);
  assert.equal(await create.exited, 0, create.output());
  assert.deepEqual(p.replicationSlots().map((r) => [r.slot_name, r.restart_lsn, r.active, r.wal_status]), [['s1', null, false, null]]);
  assert.deepEqual(await psql(port, 'READ_REPLICATION_SLOT s1'), { stdout: 'physical||', stderr: '', status: 0 });
  assert.deepEqual((await psql(port, 'READ_REPLICATION_SLOT nope')).stdout, '||');

  // Errors, as PostgreSQL words them; nothing changes.
  const dup = await psql(port, 'CREATE_REPLICATION_SLOT s1 PHYSICAL');
  assert.match(dup.stderr, /ERROR: {2}replication slot "s1" already exists/);
  const badName = await psql(port, 'CREATE_REPLICATION_SLOT "S1" PHYSICAL');
  assert.match(badName.stderr, /ERROR: {2}replication slot name "S1" contains invalid character/);
  const missing = await psql(port, 'DROP_REPLICATION_SLOT nope');
  assert.match(missing.stderr, /ERROR: {2}replication slot "nope" does not exist/);
  const startMissing = await psql(port, 'START_REPLICATION SLOT nope PHYSICAL 0/0');
  assert.match(startMissing.stderr, /ERROR: {2}replication slot "nope" does not exist/);
  assert.deepEqual(p.replicationSlots().map((r) => r.slot_name), ['s1']);

  // A RESERVE_WAL slot starts at the last checkpoint's redo point; consistent_point is 0/0.
  const res = await psql(port, 'CREATE_REPLICATION_SLOT r1 PHYSICAL RESERVE_WAL');
  assert.equal(res.stdout, 'r1|0/0||');
  assert.equal(p.slots.get('r1')?.restartLsn, p.checkpointInfo().redoLsn);
  assert.equal((await psql(port, 'DROP_REPLICATION_SLOT r1')).status, 0);
  // A temporary slot vanishes with its session.
  const tmp = await psql(port, 'CREATE_REPLICATION_SLOT t1 TEMPORARY PHYSICAL');
  assert.equal(tmp.stdout, 't1|0/0||');
  await waitFor(() => p.slots.get('t1') === null, 5000, 'temporary slot dropped at session end');

  // Stream through the slot; --synchronous makes pg_receivewal report its flush after each fsync.
  rw = startPgReceivewal(port, path.join(dir, 'rw'), ['--slot', 's1', '--synchronous']);
  await waitFor(() => p.replicationSlots()[0]?.active === true, 10_000, 'slot active');
  await fill(p, SEG / 4, 'b');
  const target = p.flushLsn;
  await waitFor(() => (p.slots.get('s1')?.restartLsn ?? 0) >= target, 10_000, 'restart_lsn follows the flush');
  const row = p.replicationSlots()[0]!;
  const ws = p.replicationStatus()[0]!;
  assert.equal(row.active_pid, ws.pid);
  assert.equal(row.wal_status, 'reserved');
  const busy = await psql(port, 'DROP_REPLICATION_SLOT s1');
  assert.match(busy.stderr, new RegExp(`ERROR: {2}replication slot "s1" is active for PID ${ws.pid}`));

  // Outage: the client stops; WAL moves on over several segments and a checkpoint runs.
  await rw.stop();
  rw = null;
  await waitFor(() => p.replicationSlots()[0]?.active === false, 5000, 'slot released');
  const held = p.slots.get('s1')!.restartLsn;
  await fill(p, 3 * SEG, 'c');
  await p.checkpoint();
  assert.ok(segNo(p.checkpointInfo().redoLsn, SEG) > segNo(held, SEG) + 1, 'the redo point moved past the slot');
  assert.ok(fs.existsSync(path.join(p.walDir, segmentFileName(1, segNo(held, SEG), SEG))), 'the slot kept its segment');
  // The client resumes where it stopped, without a gap: its segments equal the primary's.
  rw = startPgReceivewal(port, path.join(dir, 'rw'), ['--slot', 's1', '--synchronous']);
  const end = p.flushLsn;
  await waitFor(() => (p.slots.get('s1')?.restartLsn ?? 0) >= end, 15_000, 'caught up through the slot');
  for (let seg = segNo(held, SEG); seg < segNo(end, SEG); seg++) {
    const name = segmentFileName(1, seg, SEG);
    assert.ok(fs.readFileSync(path.join(dir, 'rw', name)).equals(fs.readFileSync(path.join(p.walDir, name))), `segment ${name} identical`);
  }
  await rw.stop();
  rw = null;
  // The slot survives a restart of the primary (PostgreSQL's state file in pg_replslot/).
  assert.ok(fs.existsSync(path.join(p.dataDir, 'pg_replslot', 's1', 'state')));
  const drop = startPgReceivewal(port, path.join(dir, 'rw'), ['--drop-slot', '--slot', 's1']);
  assert.equal(await drop.exited, 0, drop.output());
  assert.deepEqual(p.replicationSlots(), []);
});

test('a slot past max_slot_wal_keep_size is lost: its WAL is released and its client gets a clear error', async (t) => {
  const dir = tmpDir('walstream-slotlost-');
  const p = await Primary.open({
    dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0,
    maxSlotWalKeepSizeBytes: 2 * SEG, maxWalSizeBytes: 64 * SEG,
  });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  const port = p.port!;
  assert.equal((await psql(port, 'CREATE_REPLICATION_SLOT keep1 PHYSICAL RESERVE_WAL')).status, 0);
  const restart = p.slots.get('keep1')!.restartLsn;
  const invalidated: unknown[] = [];
  p.on('slotInvalidated', (e) => invalidated.push(e));
  await fill(p, 1.2 * SEG, 'a');
  await p.checkpoint();
  assert.equal(p.replicationSlots()[0]!.wal_status, 'reserved');
  assert.ok(fs.existsSync(path.join(p.walDir, segmentFileName(1, segNo(restart, SEG), SEG))));
  await fill(p, 3.5 * SEG, 'b');
  await p.checkpoint();
  assert.deepEqual(invalidated, [{ name: 'keep1', restartLsn: restart, activePid: 0 }]);
  const row = p.replicationSlots()[0]!;
  assert.deepEqual([row.restart_lsn, row.wal_status, row.safe_wal_size], [null, 'lost', null]);
  assert.ok(!fs.existsSync(path.join(p.walDir, segmentFileName(1, segNo(restart, SEG), SEG))), 'its WAL is recycled');
  assert.equal((await psql(port, 'READ_REPLICATION_SLOT keep1')).stdout, 'physical||');
  const rw = startPgReceivewal(port, path.join(dir, 'rw'), ['--slot', 'keep1']);
  const code = await rw.exited;
  assert.notEqual(code, 0);
  assert.match(rw.output(), /can no longer access replication slot "keep1"/);
  assert.match(rw.output(), /invalidated due to "wal_removed"/);

  // An active slot whose client stalls is invalidated too, and its walsender is terminated.
  assert.equal((await psql(port, 'CREATE_REPLICATION_SLOT keep2 PHYSICAL RESERVE_WAL')).status, 0);
  const rw2 = startPgReceivewal(port, path.join(dir, 'rw2'), ['--slot', 'keep2']);
  t.after(() => rw2.stop());
  await waitFor(() => p.replicationSlots().some((r) => r.slot_name === 'keep2' && r.active), 10_000, 'keep2 active');
  const pid = p.replicationSlots().find((r) => r.slot_name === 'keep2')!.active_pid;
  rw2.child.kill('SIGSTOP');
  await fill(p, 4 * SEG, 'c');
  await p.checkpoint();
  assert.deepEqual(invalidated.at(-1), { name: 'keep2', restartLsn: (invalidated.at(-1) as { restartLsn: number }).restartLsn, activePid: pid });
  await waitFor(() => p.replicationStatus().length === 0, 10_000, 'its walsender terminated');
  rw2.child.kill('SIGCONT');
  assert.notEqual(await rw2.exited, 0);
  // As PostgreSQL signals the walsender of a slot it invalidates: FATAL 57P01 reaches the client.
  assert.match(rw2.output(), /terminating connection due to administrator command/);
  const lost2 = p.replicationSlots().find((r) => r.slot_name === 'keep2')!;
  assert.deepEqual([lost2.active, lost2.wal_status], [false, 'lost']);
});

test('pg_receivewal --synchronous as the synchronous standby: sync_state, commits released by its replies, bounded waits', async (t) => {
  const dir = tmpDir('walstream-syncws-');
  const p = await Primary.open({
    dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0,
    synchronousStandbyNames: 'FIRST 1 (pg_receivewal)', syncTimeoutMs: 3000, syncTimeoutPolicy: 'fail',
  });
  let rw: ReturnType<typeof startPgReceivewal> | null = null;
  t.after(async () => {
    await rw?.stop();
    await p.close();
    rmrf(dir);
  });
  // A bad setting is refused with PostgreSQL's error and changes nothing.
  assert.throws(() => p.setSynchronousStandbyNames('FIRST 1 (pg_receivewal'), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '42601' && e.detail === 'syntax error at end of input');
  assert.equal(p.synchronousStandbyNames, 'FIRST 1 (pg_receivewal)');

  const events: Array<[string, string, string]> = [];
  for (const ev of ['walsenderConnected', 'walsenderCaughtUp', 'syncStateChanged', 'walsenderDisconnected'] as const) {
    p.on(ev, (e) => events.push([ev, e.applicationName, e.syncState]));
  }
  // No standby yet: a remote commit waits…
  const lonely = p.commit((tx) => tx.put('t', 'k0', 0), { synchronousCommit: 'on' });
  rw = startPgReceivewal(p.port!, path.join(dir, 'rw'), ['--synchronous']);
  // …until pg_receivewal connects, catches up and reports its flush: then it is released.
  const r0 = await lonely;
  assert.equal(r0.sync?.outcome, 'confirmed');
  await waitFor(() => p.replicationStatus()[0]?.sync_state === 'sync', 10_000, 'sync state');
  const st = p.replicationStatus()[0]!;
  assert.equal(st.application_name, 'pg_receivewal');
  assert.equal(st.sync_priority, 1);
  // Events: connected first, caught up, and sync_state reaching 'sync' (via 'potential' when the
  // first flush report arrives while it still catches up).
  assert.deepEqual(events[0], ['walsenderConnected', 'pg_receivewal', 'async']);
  assert.ok(events.some((e) => e[0] === 'walsenderCaughtUp'));
  assert.deepEqual(events.filter((e) => e[0] === 'syncStateChanged').at(-1), ['syncStateChanged', 'pg_receivewal', 'sync']);
  // Time lag: flush confirmed (0 once caught up), replay never reported by pg_receivewal (null).
  await waitFor(() => p.replicationStatus()[0]?.flush_lag_ms === 0, 5000, 'flush lag 0 when caught up');
  assert.equal(p.replicationStatus()[0]!.replay_lag_ms, null);
  for (let i = 0; i < 20; i++) {
    const r = await p.commit((tx) => tx.put('t', `k${i}`, i), { synchronousCommit: i % 2 === 0 ? 'on' : 'remote_write' });
    assert.equal(r.confirmed, true);
    assert.ok((p.replicationStatus()[0]!.flush_lsn ?? 0) >= (i % 2 === 0 ? r.lsn : 0));
  }
  // pg_receivewal never applies: remote_apply is not confirmed within syncTimeoutMs → WS_SYNC_NOT_CONFIRMED.
  await assert.rejects(p.transaction((tx) => tx.put('t', 'apply', 1), { synchronousCommit: 'remote_apply' }), (e: unknown) => {
    assert.ok(e instanceof WalstreamError);
    assert.equal(e.code, 'WS_SYNC_NOT_CONFIRMED');
    assert.match(e.detail ?? '', /already committed locally/);
    return true;
  });
  assert.equal(p.get('t', 'apply'), 1, 'committed locally, never rolled back');
  // Another name: pg_receivewal becomes async and commits do not need it.
  p.setSynchronousStandbyNames('ANY 1 (other)');
  assert.equal(p.replicationStatus()[0]!.sync_state, 'async');
  assert.deepEqual(events.at(-1), ['syncStateChanged', 'pg_receivewal', 'async']);
  // A stuck standby while the primary is idle: its time lag keeps growing (PostgreSQL: NULL).
  rw.child.kill('SIGSTOP');
  await p.transaction((tx) => tx.put('t', 'stuck', 1), { synchronousCommit: 'local' });
  await new Promise((r) => setTimeout(r, 150));
  const l1 = p.replicationStatus()[0]!.flush_lag_ms!;
  await new Promise((r) => setTimeout(r, 150));
  const l2 = p.replicationStatus()[0]!.flush_lag_ms!;
  assert.ok(l1 >= 100 && l2 >= l1 + 100, `lag grows while idle: ${l1} then ${l2}`);
  rw.child.kill('SIGCONT');
  await waitFor(() => p.replicationStatus()[0]?.flush_lag_ms === 0, 5000, 'lag back to 0 after catching up');
  p.setSynchronousStandbyNames('');
  const free = await p.commit((tx) => tx.put('t', 'free', 1), { synchronousCommit: 'remote_apply' });
  assert.deepEqual([free.confirmed, free.sync], [true, null]);
  assert.ok(p.syncWaitCounts().confirmed >= 21);
  assert.equal(p.syncWaitCounts().timeout, 1);
  await rw.stop();
  rw = null;
  await waitFor(() => events.at(-1)?.[0] === 'walsenderDisconnected', 5000, 'disconnect event');
});
