// Physical replication slots: PostgreSQL 15's state-file format, every error path with
// PostgreSQL's SQLSTATE and wording (and nothing else changing), persistence across reopen,
// temporary slots, DROP … WAIT, copy positions, a walsender thread advancing restart_lsn, and the
// WAL-retention rules (wal_status, safe_wal_size, invalidation) on figures taken from a PostgreSQL
// 15 server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WalstreamError } from '../src/errors.js';
import { crc32c } from '../src/wal/crc32c.js';
import {
  decodeSlotState, encodeSlotState, keepLogSeg, ReplicationSlots, SLOT_FILE_BYTES, slotWalStatus, walAvailability, type WalRetention,
} from '../src/replication/slots.js';

const MB = 1024 * 1024;

function tmpDir(t: { after: (fn: () => void) => void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-slots-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function pgError(fn: () => unknown, sqlstate: string, message: string, extra: { hint?: string; detail?: string } = {}): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WalstreamError, String(e));
    assert.equal(e.sqlstate, sqlstate);
    assert.equal(e.message, message);
    if (extra.hint !== undefined) assert.equal(e.hint, extra.hint);
    if (extra.detail !== undefined) assert.equal(e.detail, extra.detail);
    return true;
  });
}

async function pgErrorAsync(p: Promise<unknown>, sqlstate: string, message: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof WalstreamError, String(e));
    assert.equal(e.sqlstate, sqlstate);
    assert.equal(e.message, message);
    return true;
  });
}

// pg_replslot/s1/state written by PostgreSQL 15 for pg_create_physical_replication_slot('s1', true)
// (restart_lsn 0/1500718).
const PG15_S1_STATE = Buffer.alloc(200);
Buffer.from('a11c0501b881832702000000b80000007331', 'hex').copy(PG15_S1_STATE, 0);
Buffer.from('1807500100000000', 'hex').copy(PG15_S1_STATE, 0x60);

test('state files: byte-identical to PostgreSQL 15, and damaged files are refused with its messages', (t) => {
  const mine = encodeSlotState({ name: 's1', persistency: 0, xmin: 0, catalogXmin: 0, restartLsn: 0x1500718, invalidatedAt: 0 });
  assert.equal(mine.length, SLOT_FILE_BYTES);
  assert.deepEqual(mine, PG15_S1_STATE);
  const d = decodeSlotState(PG15_S1_STATE, 'pg_replslot/s1/state');
  assert.deepEqual(d, { name: 's1', database: 0, persistency: 0, xmin: 0, catalogXmin: 0, restartLsn: 0x1500718, invalidatedAt: 0 });

  // A data directory holding PostgreSQL's file opens, and the slot is there.
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'pg_replslot', 's1'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'pg_replslot', 's1', 'state'), PG15_S1_STATE);
  const rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4 });
  assert.equal(rs.get('s1')?.restartLsn, 0x1500718);

  const bad = Buffer.from(PG15_S1_STATE);
  bad[0x61] ^= 1;
  pgError(() => decodeSlotState(bad, 'pg_replslot/s1/state'), 'XX001', `checksum mismatch for replication slot file "pg_replslot/s1/state": is ${crc32c(bad, 8, 200) >>> 0}, should be ${0x278381b8}`);
  const magic = Buffer.from(PG15_S1_STATE);
  magic[0] = 0;
  pgError(() => decodeSlotState(magic, 'pg_replslot/s1/state'), 'XX001', `replication slot file "pg_replslot/s1/state" has wrong magic number: ${0x1051c00} instead of ${0x1051ca1}`);
  const ver = Buffer.from(PG15_S1_STATE);
  ver[8] = 3;
  pgError(() => decodeSlotState(ver, 'pg_replslot/s1/state'), 'XX001', 'replication slot file "pg_replslot/s1/state" has unsupported version 3');
  const len = Buffer.from(PG15_S1_STATE);
  len[12] = 0xb0;
  pgError(() => decodeSlotState(len, 'pg_replslot/s1/state'), 'XX001', 'replication slot file "pg_replslot/s1/state" has corrupted length 176');
  // …and a damaged file in a data directory stops it from opening.
  fs.writeFileSync(path.join(dir, 'pg_replslot', 's1', 'state'), bad);
  assert.throws(() => ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4 }), { code: 'WS_SLOT_FILE_CORRUPT', sqlstate: 'XX001' });
});

test('create, read, drop, persistence across reopen; every error is PostgreSQL\'s and changes nothing', async (t) => {
  const dir = tmpDir(t);
  let rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 3, redoLsn: 0x2000028 });
  const s1 = rs.create('s1', { reserveWal: true });
  assert.equal(s1.restartLsn, 0x2000028, 'RESERVE_WAL takes the last checkpoint redo');
  rs.create('s2');
  assert.deepEqual(rs.readRow('s1', 1), ['physical', '0/2000028', '1']);
  assert.deepEqual(rs.readRow('s2', 1), ['physical', null, null]);
  assert.deepEqual(rs.readRow('nope', 1), [null, null, null]);
  const before = JSON.stringify(rs.all());
  const dirs = () => fs.readdirSync(path.join(dir, 'pg_replslot')).sort();
  assert.deepEqual(dirs(), ['s1', 's2']);

  pgError(() => rs.create('s1'), '42710', 'replication slot "s1" already exists');
  pgError(() => rs.create('Bad'), '42602', 'replication slot name "Bad" contains invalid character', {
    hint: 'Replication slot names may only contain lower case letters, numbers, and the underscore character.',
  });
  pgError(() => rs.create(''), '42602', 'replication slot name "" is too short');
  pgError(() => rs.create('x'.repeat(64)), '42622', `replication slot name "${'x'.repeat(64)}" is too long`);
  await pgErrorAsync(rs.drop('nope'), '42704', 'replication slot "nope" does not exist');
  rs.create('s3');
  pgError(() => rs.create('s4'), '53400', 'all replication slots are in use', { hint: 'Free one or increase max_replication_slots.' });
  await rs.drop('s3');
  const idx = rs.acquire('s1', 4242);
  pgError(() => rs.acquire('s1', 77), '55006', 'replication slot "s1" is active for PID 4242');
  await pgErrorAsync(rs.drop('s1'), '55006', 'replication slot "s1" is active for PID 4242');
  pgError(() => rs.acquire('nope', 77), '42704', 'replication slot "nope" does not exist');
  pgError(() => rs.copy('s2', 'c1'), '55000', "cannot copy a replication slot that doesn't reserve WAL");
  pgError(() => rs.copy('nope', 'c1'), '42704', 'replication slot "nope" does not exist');
  pgError(() => rs.copy('s1', 's2'), '42710', 'replication slot "s2" already exists');
  pgError(() => rs.copy('s1', 'C1'), '42602', 'replication slot name "C1" contains invalid character');
  assert.equal(JSON.stringify(rs.all().map((s) => ({ ...s, activePid: 0 }))), before, 'failed commands changed nothing');
  assert.deepEqual(dirs(), ['s1', 's2']);

  // The walsender's standby flushes: restart_lsn follows (never backwards); a checkpoint writes it.
  assert.ok(rs.confirmFlush(idx, 4242, 0x2100000));
  assert.equal(rs.confirmFlush(idx, 4242, 0x2000100), false);
  assert.equal(rs.confirmFlush(idx, 99, 0x2200000), false, 'only the session holding the slot');
  assert.equal(rs.saveDirty(), 1);
  rs.release(idx, 4242);
  assert.equal(rs.get('s1')?.activePid, 0);

  // Reopen ("restart"): slots come back from disk; leftovers of interrupted operations are removed.
  fs.mkdirSync(path.join(dir, 'pg_replslot', 'half.tmp'));
  rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 3 });
  assert.deepEqual(rs.all().map((s) => [s.name, s.restartLsn, s.activePid, s.temporary]), [['s1', 0x2100000, 0, false], ['s2', 0, 0, false]]);
  assert.deepEqual(dirs(), ['s1', 's2']);
  // Too many slots for max_replication_slots.
  pgError(() => ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 1 }), '53400', 'too many replication slots active before shutdown');
  await rs.drop('s2');
  assert.deepEqual(dirs(), ['s1']);
  rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 3 });
  assert.deepEqual(rs.all().map((s) => s.name), ['s1']);
  // max_replication_slots = 0
  const none = ReplicationSlots.open({ dataDir: tmpDir(t), maxReplicationSlots: 0 });
  pgError(() => none.create('a'), '55000', 'replication slots can only be used if max_replication_slots > 0');
});

test('temporary slots belong to their session; DROP … WAIT waits for the holder', async (t) => {
  const dir = tmpDir(t);
  const rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4, redoLsn: 0x1000028 });
  const tmp = rs.create('tmp1', { temporary: true, reserveWal: true, pid: 11 });
  assert.equal(tmp.activePid, 11);
  assert.equal(tmp.temporary, true);
  await pgErrorAsync(rs.drop('tmp1', { pid: 12 }), '55006', 'replication slot "tmp1" is active for PID 11');
  rs.releaseSession(11);
  assert.equal(rs.get('tmp1'), null);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'pg_replslot')), []);
  // A temporary slot left behind by a crash is removed at the next start.
  rs.create('tmp2', { temporary: true, pid: 13 });
  assert.deepEqual(ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4 }).all(), []);

  rs.create('p1');
  const i = rs.acquire('p1', 21);
  let dropped = false;
  const d = rs.drop('p1', { pid: 22, wait: true }).then(() => (dropped = true));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(dropped, false, 'waits while active');
  rs.release(i, 21);
  await d;
  assert.equal(rs.get('p1'), null);
});

test('copy takes its positions from the source slot, never from current WAL', (t) => {
  const dir = tmpDir(t);
  const rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4, redoLsn: 0x1000028 });
  rs.create('src', { reserveWal: true });
  const i = rs.acquire('src', 5);
  rs.confirmFlush(i, 5, 0x1234568);
  rs.publishRedo(0x9000028); // WAL has moved on since
  const c = rs.copy('src', 'dst');
  assert.equal(c.restartLsn, 0x1234568);
  assert.equal(c.activePid, 0);
  const tc = rs.copy('src', 'dst_tmp', { temporary: true, pid: 5 });
  assert.equal(tc.temporary, true);
  assert.equal(tc.restartLsn, 0x1234568);
  // The copy is on disk with the source's position.
  const onDisk = decodeSlotState(fs.readFileSync(path.join(dir, 'pg_replslot', 'dst', 'state')), 'x');
  assert.equal(onDisk.restartLsn, 0x1234568);
  assert.equal(rs.requiredLsn(), 0x1234568);
});

test('a walsender thread advances restart_lsn in shared memory; the primary persists it at checkpoint', async (t) => {
  const dir = tmpDir(t);
  const rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4, redoLsn: 0x1000028 });
  rs.create('standby1', { reserveWal: true });
  const url = new URL('../src/replication/slots.js', import.meta.url).href;
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(${JSON.stringify(url)}).then(({ ReplicationSlots }) => {
       const rs = new ReplicationSlots(workerData);
       const i = rs.acquire('standby1', 31);
       try { rs.create('standby1'); } catch (e) { parentPort.postMessage({ dup: e.sqlstate }); }
       for (let lsn = 0x1000100; lsn <= 0x1800000; lsn += 0x100000) rs.confirmFlush(i, 31, lsn);
       parentPort.postMessage({ read: rs.readRow('standby1', 1) });
       rs.releaseSession(31);
       parentPort.postMessage({ done: true });
     });`,
    { eval: true, workerData: rs.handle },
  );
  t.after(() => w.terminate());
  const msgs: any[] = [];
  await new Promise<void>((resolve, reject) => {
    w.on('message', (m) => {
      msgs.push(m);
      if (m.done) resolve();
    });
    w.on('error', reject);
  });
  assert.deepEqual(msgs[0], { dup: '42710' });
  assert.deepEqual(msgs[1], { read: ['physical', '0/1700100', '1'] });
  assert.equal(rs.get('standby1')?.activePid, 0);
  assert.equal(rs.get('standby1')?.dirty, true);
  const r = rs.checkpoint({ redoLsn: 0x1800028, currentLsn: 0x1800100, retention: { segSize: MB, maxWalSizeBytes: 64 * MB, maxSlotWalKeepSizeBytes: -1, walKeepSizeBytes: 0 } });
  assert.equal(r.keepFromLsn, 0x1700000, 'WAL from the slot\'s segment is kept');
  assert.deepEqual(r.invalidated, []);
  assert.equal(ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4 }).get('standby1')?.restartLsn, 0x1700100);
});

test('retention: wal_status and safe_wal_size as a PostgreSQL 15 server reported them; invalidation at checkpoint', (t) => {
  // Server: 16 MB segments, max_wal_size 64MB, max_slot_wal_keep_size 32MB, wal_keep_size 0;
  // s1 reserved at 0/1500718, s2 without WAL. Rows observed as WAL advanced:
  const r: WalRetention = { segSize: 16 * MB, maxWalSizeBytes: 64 * MB, maxSlotWalKeepSizeBytes: 32 * MB, walKeepSizeBytes: 0 };
  const s1 = { restartLsn: 0x1500718, invalidatedAt: 0, activePid: 0 };
  const s2 = { restartLsn: 0, invalidatedAt: 0, activePid: 0 };
  const at = (currentLsn: number, oldestSegNo = 1) => ({ currentLsn, slotMinLsn: 0x1500718, oldestSegNo, retention: r });
  assert.deepEqual(slotWalStatus(s1, at(0x15008b0)), { walStatus: 'reserved', safeWalSize: 45086544 });
  assert.deepEqual(slotWalStatus(s2, at(0x15008b0)), { walStatus: null, safeWalSize: 28309328 });
  assert.deepEqual(slotWalStatus(s1, at(0x20001c0)), { walStatus: 'reserved', safeWalSize: 33553984 });
  assert.deepEqual(slotWalStatus(s1, at(0x3000050)), { walStatus: 'reserved', safeWalSize: 16777136 });
  assert.deepEqual(slotWalStatus(s1, at(0x4000050)), { walStatus: 'unreserved', safeWalSize: -80 });
  // Invalidated by a checkpoint: lost, no safe_wal_size; s2's quirky figure at the end.
  assert.deepEqual(slotWalStatus({ restartLsn: 0, invalidatedAt: 0x1500718, activePid: 0 }, at(0x70001b0, 7)), { walStatus: 'lost', safeWalSize: null });
  assert.deepEqual(slotWalStatus(s2, { ...at(0x70001b0, 7), slotMinLsn: null }), { walStatus: null, safeWalSize: -67109296 });
  // WAL gone but a walsender still streams from the slot: unreserved rather than lost.
  assert.deepEqual(slotWalStatus({ ...s1, activePid: 9 }, at(0x7000000, 5)).walStatus, 'unreserved');
  assert.deepEqual(slotWalStatus(s1, at(0x7000000, 5)).walStatus, 'lost');
  // Beyond max_wal_size but still kept by an unlimited slot: extended.
  const unlimited = { ...r, maxSlotWalKeepSizeBytes: -1 };
  assert.equal(walAvailability(0x1500718, { currentLsn: 0x9000000, slotMinLsn: 0x1500718, oldestSegNo: 1, retention: unlimited }), 'extended');
  assert.equal(slotWalStatus(s1, { currentLsn: 0x9000000, slotMinLsn: 0x1500718, oldestSegNo: 1, retention: unlimited }).safeWalSize, null);
  // KeepLogSeg: slots capped by max_slot_wal_keep_size, extended by wal_keep_size.
  assert.equal(keepLogSeg(0x9000000, 0x1500718, r, 9), 7);
  assert.equal(keepLogSeg(0x9000000, 0x1500718, unlimited, 9), 1);
  assert.equal(keepLogSeg(0x9000000, null, { ...r, walKeepSizeBytes: 48 * MB }, 9), 6);
  assert.equal(keepLogSeg(0x2000000, null, { ...r, walKeepSizeBytes: 48 * MB }, 2), 1);
  assert.equal(keepLogSeg(0x9000000, null, r, 9), 9);

  // The checkpoint step invalidates the slot that fell behind and stops pinning its WAL.
  const dir = tmpDir(t);
  const rs = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4, redoLsn: 0x1500718 });
  rs.create('s1', { reserveWal: true });
  rs.create('s2');
  const keepAll = rs.checkpoint({ redoLsn: 0x3000028, currentLsn: 0x3000100, retention: r });
  assert.deepEqual(keepAll, { keepFromLsn: 0x1000000, invalidated: [] });
  const res = rs.checkpoint({ redoLsn: 0x5000028, currentLsn: 0x5000138, retention: r });
  assert.deepEqual(res, { keepFromLsn: null, invalidated: [{ name: 's1', restartLsn: 0x1500718, activePid: 0 }] });
  const lost = rs.get('s1')!;
  assert.equal(lost.restartLsn, 0);
  assert.equal(lost.invalidatedAt, 0x1500718);
  assert.deepEqual(rs.readRow('s1', 1), ['physical', null, null]);
  pgError(() => rs.acquire('s1', 3), '55000', 'can no longer access replication slot "s1"', { detail: 'This replication slot has been invalidated due to "wal_removed".' });
  const rows = rs.rows({ currentLsn: 0x5000138, retention: r, oldestSegNo: 5 });
  assert.deepEqual(rows.map((x) => [x.slot_name, x.restart_lsn, x.wal_status, x.safe_wal_size]), [['s1', null, 'lost', null], ['s2', null, null, 0x3000000 - 0x5000138]]);
  // Persisted as lost.
  const again = ReplicationSlots.open({ dataDir: dir, maxReplicationSlots: 4 }).get('s1')!;
  assert.deepEqual([again.restartLsn, again.invalidatedAt], [0, 0x1500718]);
});
