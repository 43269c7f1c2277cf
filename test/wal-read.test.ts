// The walsender's WAL reads (src/replication/wal-read.ts) never send bytes of a recycled
// wal_buffers slot. First with the ring recycled under a reader on purpose, in the way a weakly
// ordered CPU may show it (bytes of the next lap copied while RING_VALID_FROM still reads as
// before): the copy must be refused by its page addresses and the bytes come from the segment
// file. Then end to end: a tiny ring, heavy inserts, and pg_receivewal stopped (SIGSTOP) while the
// ring laps many times under its walsender; every segment it receives equals the primary's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { copyFromWalBuffers, WalSendReader } from '../src/replication/wal-read.js';
import { PrimaryWalSource } from '../src/replication/wal-source.js';
import { Primary } from '../src/primary/primary.js';
import { XLOG_BLCKSZ } from '../src/wal/consts.js';
import { writePageHeader } from '../src/wal/insert.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { XC_FLUSHED, XC_INSERTED_UPTO, XC_RING_VALID_FROM, XC_WRITTEN, XLogCtl } from '../src/wal/xlogctl.js';
import { startPgReceivewal, waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const RING_PAGES = 4;
const RING_BYTES = RING_PAGES * XLOG_BLCKSZ;
const SYSID = 7_000_000_000_000_000_001n;

/** One WAL page at `pageLsn` whose body bytes say which lap of the ring wrote it. */
function page(pageLsn: number, lap: number): Uint8Array {
  const b = new Uint8Array(XLOG_BLCKSZ);
  const h = writePageHeader(b, 0, pageLsn, 1, SEG, SYSID, false, 0);
  for (let i = h; i < b.length; i++) b[i] = (pageLsn / XLOG_BLCKSZ + i * 7 + lap * 101) & 0xff;
  return b;
}

/** A ring of RING_PAGES pages and one segment file holding lap 1 (pages from the segment's start). */
function setup(dir: string): { ctl: XLogCtl; lap1: Uint8Array; base: number } {
  const base = SEG; // segment 1
  const ctl = XLogCtl.create(RING_BYTES, SEG, SYSID, 1, base);
  const lap1 = new Uint8Array(3 * RING_BYTES);
  for (let i = 0; i < lap1.length / XLOG_BLCKSZ; i++) lap1.set(page(base + i * XLOG_BLCKSZ, 1), i * XLOG_BLCKSZ);
  const file = new Uint8Array(SEG);
  file.set(lap1, 0);
  fs.writeFileSync(path.join(dir, segmentFileName(1, 1, SEG)), file);
  // The ring holds the first RING_PAGES pages; everything up to the end of lap 1 is written and flushed.
  ctl.ring.set(lap1.subarray(0, RING_BYTES), 0);
  for (const slot of [XC_INSERTED_UPTO, XC_WRITTEN, XC_FLUSHED]) ctl.store(slot, base + lap1.length);
  return { ctl, lap1, base };
}

/** What a reader may see on a weakly ordered CPU: slots already rewritten by the next lap, RING_VALID_FROM as before. */
function recycleUnseen(ctl: XLogCtl, base: number, slots: number[]): void {
  for (const s of slots) ctl.ring.set(page(base + (RING_PAGES + s) * XLOG_BLCKSZ, 2), s * XLOG_BLCKSZ);
}

test('a copy from wal_buffers is used only while every page in it names its own address', (t) => {
  const dir = tmpDir('walstream-walread-');
  t.after(() => rmrf(dir));
  const { ctl, lap1, base } = setup(dir);
  const reader = new WalSendReader(new PrimaryWalSource(ctl), dir);
  t.after(() => reader.close());
  const from = base + 100;
  const to = base + 3 * XLOG_BLCKSZ + 50;
  const want = lap1.subarray(from - base, to - base);

  // Not recycled: served from the ring.
  const buf = new Uint8Array(to - from + 16);
  reader.read(buf, 16, from, to);
  assert.deepEqual(buf.subarray(16), want);
  assert.equal(reader.ringReads, 1);
  assert.equal(reader.fileReads, 0);

  // A slot whose header is inside the copy was rewritten (slot 2: its header at base + 2 pages).
  recycleUnseen(ctl, base, [2]);
  assert.equal(Atomics.load(ctl.big, XC_RING_VALID_FROM), BigInt(base), 'the reader still sees the old RING_VALID_FROM');
  assert.equal(copyFromWalBuffers(ctl, new Uint8Array(to - from), 0, from, to), false);
  buf.fill(0);
  reader.read(buf, 16, from, to);
  assert.deepEqual(buf.subarray(16), want, 'the bytes come from the segment file');
  assert.equal(reader.fileReads, 1);

  // The first page, whose header lies before `from` (not copied): the ring's own header is checked.
  ctl.ring.set(lap1.subarray(0, RING_BYTES), 0);
  recycleUnseen(ctl, base, [0]);
  assert.equal(copyFromWalBuffers(ctl, new Uint8Array(to - from), 0, from, to), false);
  buf.fill(0);
  reader.read(buf, 16, from, to);
  assert.deepEqual(buf.subarray(16), want);
  assert.equal(reader.fileReads, 2);

  // A partial last page (to inside page 3): the copy of its first bytes is validated too.
  ctl.ring.set(lap1.subarray(0, RING_BYTES), 0);
  recycleUnseen(ctl, base, [3]);
  assert.equal(copyFromWalBuffers(ctl, new Uint8Array(to - from), 0, from, to), false);

  // Recycled and published (RING_VALID_FROM moved): the re-check refuses the copy as before.
  ctl.ring.set(lap1.subarray(0, RING_BYTES), 0);
  assert.equal(copyFromWalBuffers(ctl, new Uint8Array(to - from), 0, from, to), true);
  ctl.store(XC_RING_VALID_FROM, base + XLOG_BLCKSZ);
  assert.equal(copyFromWalBuffers(ctl, new Uint8Array(to - from), 0, from, to), false);
});

test('a walsender whose ring laps under a stopped pg_receivewal sends exactly the WAL on disk', async (t) => {
  const dir = tmpDir('walstream-walread-e2e-');
  const p = await Primary.open({
    dataDir: path.join(dir, 'data'),
    walSegmentSize: SEG,
    walBuffersBytes: RING_BYTES, // the smallest ring: it laps every 32 KiB of WAL
    checkpointTimeoutMs: 0,
    port: 0,
  });
  const recv = startPgReceivewal(p.port!, path.join(dir, 'rw'));
  let closed = false;
  t.after(async () => {
    if (recv.child.exitCode === null && recv.child.signalCode === null) recv.child.kill('SIGCONT');
    await recv.stop();
    if (!closed) await p.close();
    rmrf(dir);
  });
  await waitFor(() => p.replicationStatus().some((r) => r.state === 'streaming'), 10_000, 'walsender to reach streaming');
  const startSeg = segNo(p.flushLsn, SEG);

  /** Inserts of mixed sizes (some crossing pages), flushed in groups: the ring laps many times. */
  async function inserts(bytes: number, tag: string): Promise<void> {
    const target = p.insertLsn + bytes;
    const pending: Promise<unknown>[] = [];
    for (let n = 0; p.insertLsn < target; n++) {
      pending.push(p.transaction((tx) => tx.put('t', `${tag}-${n}`, { n, pad: 'y'.repeat(100 + (n % 11) * 900) }), { synchronousCommit: n % 40 === 0 ? 'on' : 'off' }));
      if (pending.length >= 32) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    await p.flush();
  }

  // Live: the walsender copies from a ring the inserter is lapping.
  await inserts(0.6 * SEG, 'a');
  // Stopped reader: more WAL than the loopback socket buffers hold, so the walsender stops
  // mid-stream on a full socket while the ring laps under its position many times.
  recv.child.kill('SIGSTOP');
  await inserts(8 * SEG, 'b');
  recv.child.kill('SIGCONT');
  // Catching up and live again, with inserts still lapping the ring.
  await inserts(1.0 * SEG, 'c');

  const endSeg = segNo(p.flushLsn, SEG);
  assert.ok(endSeg - startSeg >= 2, 'several segments streamed');
  const complete: string[] = [];
  for (let s = startSeg; s < endSeg; s++) complete.push(segmentFileName(1, s, SEG));
  await waitFor(() => complete.every((n) => fs.existsSync(path.join(recv.dir, n))), 20_000, 'pg_receivewal to complete its segments');
  for (const n of complete) {
    assert.ok(fs.readFileSync(path.join(recv.dir, n)).equals(fs.readFileSync(path.join(p.walDir, n))), `segment ${n} differs from the primary's`);
  }
  await p.close();
  closed = true;
});
