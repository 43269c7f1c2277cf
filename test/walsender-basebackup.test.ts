// BASE_BACKUP as the standby side uses it: the exact command, the PostgreSQL 15 reply sequence
// (start LSN result set with the int8 typlen -1 quirk, tablespace row NULL|NULL|NULL without
// PROGRESS, CopyOut with 'n' base.tar then 'd' ustar chunks, CopyDone, end LSN result set,
// BASE_BACKUP, ReadyForQuery), the archive's directories and files (the data files byte-equal to
// the primary's), WAL pinned from the redo point while the backup runs and released when it ends,
// and streaming from the redo's segment. (pg_basebackup 15 itself: basebackup-realpg.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { decodeCopyBothMessage, decodeDataRow, decodeRowDescription, encodeQuery, encodeStandbyStatusUpdate, textCell } from '../src/replication/protocol/messages.js';
import { parseTar } from '../src/replication/tar.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { rmrf, tmpDir } from './helpers/tmp.js';
import { errorOf, RawClient, typeOf, waitFor } from './helpers/rawpg.js';

const SEG = 1 << 20;
const BACKUP_CMD = "BASE_BACKUP ( LABEL 'walstream', CHECKPOINT 'fast', WAIT 0, MANIFEST 'no', TARGET 'client' )";

async function load(p: Primary, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => p.transaction((tx) => tx.put('t', `${tag}-${i + j}`, { i: i + j, s: 'z'.repeat(700) }), { synchronousCommit: 'off' })));
  }
  await p.flush();
}

test('BASE_BACKUP: PostgreSQL 15 reply shape, archive contents, WAL pinned from the redo point', async (t) => {
  const dir = tmpDir('walstream-bb-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, port: 0 });
  const clients: RawClient[] = [];
  // The snapshot fd is opened by the primary's thread and must be closed by it: Node warns
  // "File descriptor N closed but not opened in unmanaged mode" (on the walsender's stderr, which
  // the main thread writes out) when another thread closes it.
  const warnings: string[] = [];
  const stderrWrite = process.stderr.write;
  process.stderr.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
    warnings.push(String(chunk));
    return (stderrWrite as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof process.stderr.write;
  t.after(async () => {
    process.stderr.write = stderrWrite;
    clients.forEach((c) => c.close());
    await p.close();
    rmrf(dir);
  });
  await load(p, 1500, 'pre');
  const c = await RawClient.connect(p.port!);
  clients.push(c);
  await c.startup('tester', 'standby1');

  const got = await c.query(BACKUP_CMD);
  assert.equal(errorOf(got), null, errorOf(got)?.message);
  const kinds = got.map(typeOf);
  const firstData = kinds.indexOf('d');
  const lastData = kinds.lastIndexOf('d');
  assert.deepEqual(kinds.slice(0, firstData), ['T', 'D', 'C', 'T', 'D', 'C', 'H']);
  assert.deepEqual(kinds.slice(lastData + 1), ['c', 'T', 'D', 'C', 'C', 'Z']);
  assert.ok(kinds.slice(firstData, lastData + 1).every((k) => k === 'd'));

  // 1. start position: recptr text (typmod 0), tli int8 with typlen -1 (PostgreSQL's quirk)
  const cols1 = decodeRowDescription(got[0]!.body);
  assert.deepEqual(cols1.map((x) => [x.name, x.typeOid, x.typlen, x.typmod]), [['recptr', 25, -1, 0], ['tli', 20, -1, 0]]);
  const [recptr, tli] = decodeDataRow(got[1]!.body).map(textCell);
  const info = p.checkpointInfo();
  assert.equal(recptr, lsnToString(info.redoLsn));
  assert.equal(tli, '1');
  assert.equal(Buffer.from(got[2]!.body).toString('latin1'), 'SELECT\0');
  // 2. tablespaces: one row NULL | NULL | size in kB
  const cols2 = decodeRowDescription(got[3]!.body);
  assert.deepEqual(cols2.map((x) => [x.name, x.typeOid, x.typlen, x.typmod]), [['spcoid', 26, 4, 0], ['spclocation', 25, -1, 0], ['size', 20, 8, 0]]);
  const row2 = decodeDataRow(got[4]!.body).map(textCell);
  assert.equal(row2[0], null);
  assert.equal(row2[1], null);
  // 3. the archive
  const copies = got.slice(firstData, lastData + 1).map((f) => Buffer.from(f.body));
  assert.equal(copies[0]!.toString('latin1'), 'nbase.tar\0\0');
  assert.ok(copies.slice(1).every((b) => b[0] === 0x64));
  const tar = Buffer.concat(copies.slice(1).map((b) => b.subarray(1)));
  assert.equal(tar.length % 512, 0);
  assert.equal(row2[2], null, 'no size without PROGRESS');
  const all = parseTar(tar);
  assert.deepEqual(all.filter((e) => e.type === '5').map((e) => [e.name, e.mode]), [
    ['checkpoints/', 0o700], ['pg_replslot/', 0o700], ['pg_tblspc/', 0o700], ['pg_wal/', 0o700], ['pg_wal/archive_status/', 0o700],
  ]);
  assert.ok(all.filter((e) => e.type === '0').every((e) => e.mode === 0o600));
  assert.equal(all[0]!.name, 'backup_label');
  const label = Buffer.from(all[0]!.data).toString('utf8');
  assert.match(label, new RegExp(`^START WAL LOCATION: ${lsnToString(info.redoLsn)} \\(file ${segmentFileName(1, segNo(info.redoLsn, SEG), SEG)}\\)\nCHECKPOINT LOCATION: ${lsnToString(info.checkpointLsn)}\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: .* UTC\nLABEL: walstream\nSTART TIMELINE: 1\n$`));
  const entries = all.filter((e) => e.type === '0' && e.name !== 'backup_label');
  assert.deepEqual(entries.map((e) => e.name), ['WALSTREAM_VERSION', 'walstream.control', `checkpoints/${info.snapshotName}`]);
  for (const e of entries) {
    assert.ok(Buffer.from(e.data).equals(fs.readFileSync(path.join(p.dataDir, e.name))), `${e.name} differs from the primary's`);
  }
  // 5. end position
  const endLsn = parseLsn(textCell(decodeDataRow(got[lastData + 3]!.body)[0]!)!);
  assert.ok(endLsn >= info.redoLsn && endLsn <= p.flushLsn);
  const tags = got.filter((f) => typeOf(f) === 'C').map((f) => Buffer.from(f.body).toString('latin1'));
  assert.deepEqual(tags, ['SELECT\0', 'SELECT\0', 'SELECT\0', 'BASE_BACKUP\0']);
  // The snapshot fd is closed once the archive is sent (the connection stays open).
  const snapPath = path.join(p.dataDir, 'checkpoints', info.snapshotName);
  const openOnSnapshot = () => fs.readdirSync('/proc/self/fd').some((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === snapPath;
    } catch {
      return false;
    }
  });
  await waitFor(() => !openOnSnapshot(), 5000, 'snapshot fd closed after the backup');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(warnings.filter((w) => w.includes('File descriptor')), []);

  // The backup has ended (its WAL stays pinned while this connection lasts); the standby streams from the redo's segment (same connection here).
  await waitFor(() => p.backupsInProgress().length === 0, 5000, 'backup ended');
  const redoSeg = segmentFileName(1, segNo(info.redoLsn, SEG), SEG);
  await load(p, 3000, 'post'); // fills the redo's segment (no checkpoint runs meanwhile)
  const start = segNo(info.redoLsn, SEG) * SEG;
  c.send(encodeQuery(`START_REPLICATION ${lsnToString(start)} TIMELINE 1`));
  assert.equal(typeOf((await c.next())!), 'W');
  const want = fs.readFileSync(path.join(p.walDir, redoSeg));
  const recv = Buffer.alloc(SEG);
  let pos = start;
  while (pos < start + SEG) {
    const f = (await c.next())!;
    assert.equal(typeOf(f), 'd');
    const m = decodeCopyBothMessage(f.body);
    if (m.kind !== 'w') continue;
    assert.equal(m.dataStart, pos, 'contiguous XLogData');
    assert.ok(m.data.length <= 1024 * 1024, 'at most maxSendBytes (1 MiB by default)');
    const n = Math.min(m.data.length, start + SEG - pos);
    recv.set(m.data.subarray(0, n), pos - start);
    pos += m.data.length;
  }
  assert.ok(recv.equals(want), 'streamed WAL equals the segment file');
  c.send(Buffer.from(encodeStandbyStatusUpdate({ write: pos, flush: pos, apply: 0, clientTime: 0, replyRequested: false })));
  await waitFor(() => p.replicationStatus()[0]?.flush_lsn === pos, 5000, 'status update recorded');
  const row = p.replicationStatus()[0]!;
  assert.equal(row.application_name, 'standby1');
  assert.equal(row.write_lsn, pos);
  assert.equal(row.replay_lsn, null);

  c.close();
  await waitFor(() => p.replicationStatus().length === 0, 5000, 'walsender exit');
});

for (const how of ['FIN', 'RST'] as const) {
  test(`BASE_BACKUP at MAX_RATE: a client whose connection ends (${how}) mid-archive ends the backup at once`, async (t) => {
    // A client killed with nothing unread ends the connection with a FIN (the walsender sees the end
    // of input, then the socket close), with unread bytes with a RST (the socket closes without an
    // end of input). Either way the throttled send loop must stop there, not go on "sending" the
    // rest of the archive at 32 kB/s (about a minute for these 2 MB) with the WAL still pinned.
    const dir = tmpDir('walstream-bb-end-');
    const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, port: 0 });
    t.after(async () => {
      await p.close();
      rmrf(dir);
    });
    await load(p, 3000, 'pre');
    const c = await RawClient.connect(p.port!);
    await c.startup('tester', 'ended-backup');
    c.send(encodeQuery("BASE_BACKUP ( LABEL 'walstream', CHECKPOINT 'fast', WAIT 0, MANIFEST 'no', MAX_RATE 32, TARGET 'client' )"));
    await waitFor(() => p.backupsInProgress().length === 1 && c.bytesReceived > 64 * 1024, 30_000, 'the archive to be streaming');
    const sock = c.socket as import('node:net').Socket;
    if (how === 'FIN') sock.end();
    else sock.resetAndDestroy();
    await waitFor(() => p.backupsInProgress().length === 0, 20_000, `the backup to end after the client's ${how}`);
    await waitFor(() => p.replicationStatus().length === 0, 20_000, 'its walsender to exit');
  });
}

test('BASE_BACKUP with WAL through a small ring: every chunk fits a frame of it, files byte-equal, a segment file shorter than the segment size arrives zero-padded', async (t) => {
  // A 64 KiB outgoing ring (the smallest maxSendBytes and queue) wraps many times while the
  // snapshot goes out, so the ring memory a short WAL segment is read into held archive bytes
  // before: what the file lacks must arrive as zeros, not as those bytes.
  const dir = tmpDir('walstream-bb-wal-');
  const p = await Primary.open({ dataDir: path.join(dir, 'data'), walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, port: 0, maxSendBytes: 8192, walSenderMaxQueuedBytes: 8192 });
  const clients: RawClient[] = [];
  t.after(async () => {
    clients.forEach((c) => c.close());
    await p.close();
    rmrf(dir);
  });
  await load(p, 1500, 'pre');
  while (p.flushLsn % SEG > (SEG * 3) / 4) await load(p, 50, `more${p.flushLsn}`);
  // The end's segment: cut after the page holding the flush position (the backup's checkpoint
  // record goes after it, so the file stays shorter than a segment).
  const endSeg = path.join(p.walDir, segmentFileName(1, segNo(p.flushLsn, SEG), SEG));
  fs.truncateSync(endSeg, Math.ceil((p.flushLsn % SEG) / 8192) * 8192);
  const c = await RawClient.connect(p.port!);
  clients.push(c);
  await c.startup('tester', 'standby1');
  const got = await c.query("BASE_BACKUP ( LABEL 'walstream', CHECKPOINT 'fast', WAIT 0, WAL, MANIFEST 'no', TARGET 'client' )");
  assert.equal(errorOf(got), null, errorOf(got)?.message);
  const copies = got.filter((f) => typeOf(f) === 'd').map((f) => Buffer.from(f.body));
  // The ring's largest frame is an XLogData of maxSendBytes (8 kB, its 30-byte header, 2 of pad).
  const largest = Math.max(...copies.slice(1).map((b) => b.length - 1));
  assert.ok(largest > 4096 && largest <= 8192 + 32, `archive chunks fit one frame of the ring (largest ${largest})`);
  const all = parseTar(Buffer.concat(copies.slice(1).map((b) => b.subarray(1))));
  const files = all.filter((e) => e.type === '0' && e.name !== 'backup_label');
  const wal = files.filter((e) => e.name.startsWith('pg_wal/'));
  assert.ok(wal.length >= 1, 'WAL segments in the archive');
  let short = 0;
  for (const e of files) {
    const onDisk = fs.readFileSync(path.join(p.dataDir, e.name));
    if (e.name.startsWith('pg_wal/')) {
      assert.equal(e.data.length, SEG, `${e.name}: a whole segment`);
      if (onDisk.length < SEG) short++;
      const want = Buffer.alloc(SEG);
      onDisk.copy(want, 0, 0, Math.min(onDisk.length, SEG));
      assert.ok(Buffer.from(e.data).equals(want), `${e.name}: the file's bytes, then zeros`);
    } else {
      assert.ok(Buffer.from(e.data).equals(onDisk), `${e.name} differs from the primary's`);
    }
  }
  assert.equal(short, 1, 'the end\'s segment file is shorter than a segment');
});
