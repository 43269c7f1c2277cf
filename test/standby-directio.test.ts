// Direct I/O while catching up (walReceiverDirectIo): the staging that writes WAL in aligned blocks
// (unaligned starts read back their block's head, partial tails are rewritten, several writes in
// flight land in place), and a standby that catches up many segments with it: its segments are
// byte-identical to the primary's, replay matches the primary, the stream turns buffered once live,
// and a restart resumes; with the option off, nothing is written direct and the result is the same;
// a standby process killed with SIGKILL again and again in the middle of a direct catch-up ends equal
// to the primary.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import type { Lsn } from '../src/wal/lsn.js';
import { segmentFileName } from '../src/wal/segment.js';
import { DIRECT_IO_ALIGN_BYTES, DirectWriteStage, openDirect } from '../src/wal/direct-io.js';
import { prng } from './helpers/prng.js';
import { killStandbyChildren, StandbyChild } from './helpers/standby-proc.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
after(() => {
  killStandbyChildren();
  dirs.forEach(rmrf);
});
function newDir(): string {
  const d = tmpDir('walstream-dio-');
  dirs.push(d);
  return d;
}

test('DirectWriteStage: unaligned start, partial tails rewritten, writes in flight, file equals what was staged', async () => {
  const dir = newDir();
  const file = path.join(dir, 'seg');
  const size = 2 * SEG;
  const rand = prng(7);
  const rng = { int: (n: number) => Math.floor(rand() * n) };
  // A file whose existing bytes before the start offset must survive (the head block is read back).
  const expected = Buffer.alloc(size);
  for (let i = 0; i < 5000; i++) expected[i] = rng.int(256);
  fs.writeFileSync(file, expected.subarray(0, 5000));
  fs.truncateSync(file, size);
  const dfd = openDirect(file);
  assert.ok(dfd !== null, 'this file system takes O_DIRECT');
  const stage = new DirectWriteStage(64 * 1024, 2);
  try {
    assert.ok(stage.probe(dfd));
    let off = 5000; // not block-aligned
    stage.begin(dfd, off, 1);
    let writeOuts = 0;
    let submits = 0;
    while (off < size) {
      const n = Math.min(size - off, 1 + rng.int(rng.int(4) === 0 ? 200_000 : 3000));
      const chunk = Buffer.alloc(n);
      for (let i = 0; i < n; i += 97) chunk[i] = rng.int(256);
      chunk.copy(expected, off);
      let w = 0;
      while (w < n) {
        w += stage.put(chunk, w, n - w);
        if (stage.full) {
          await stage.submit();
          submits++;
        }
      }
      off += n;
      assert.equal(stage.end, off);
      if (rng.int(5) === 0) {
        // a flush: everything staged goes out, the partial block stays staged and is rewritten later
        await stage.settle();
        stage.writeOut();
        writeOuts++;
        assert.equal(stage.completedEnd, off);
        assert.ok(fs.readFileSync(file).subarray(0, off).equals(expected.subarray(0, off)), `file equals what was staged up to ${off}`);
      }
    }
    await stage.settle();
    stage.finish();
    assert.ok(submits > 10 && writeOuts > 10, `both paths ran (${submits} submits, ${writeOuts} writeOuts)`);
    assert.ok(fs.readFileSync(file).equals(expected), 'the whole file equals what was staged');
    assert.equal(DIRECT_IO_ALIGN_BYTES % 512, 0);
  } finally {
    fs.closeSync(dfd);
  }
});

async function fill(p: Primary, from: number, bytes: number): Promise<number> {
  const start = p.insertLsn;
  let i = from;
  const pend: Array<Promise<number>> = [];
  // Values of odd sizes, so XLogData and record boundaries never line up with blocks.
  while (p.insertLsn - start < bytes) {
    const n = i++;
    pend.push(p.transaction((tx) => tx.put('t', `k${n % 3000}`, { n, pad: 'd'.repeat(50 + ((n * 7919) % 20_011)) }), { synchronousCommit: 'off' }));
    if (pend.length >= 64) await Promise.all(pend.splice(0));
  }
  await Promise.all(pend);
  await p.flush();
  return i;
}

function completeSegments(walDir: string, from: number, to: number): string[] {
  const names: string[] = [];
  for (let s = from; s < to; s++) names.push(segmentFileName(1, s, SEG));
  return names.filter((n) => fs.existsSync(path.join(walDir, n)));
}

for (const directIo of [true, false]) {
  test(`replica catching up 24 segments with walReceiverDirectIo=${directIo}: byte-identical segments, replay equals the primary, live afterwards, restart resumes`, async () => {
    const dir = newDir();
    const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 256 * SEG });
    const opts = {
      dataDir: path.join(dir, 's'), primaryConninfo: `host=127.0.0.1 port=${p.port} user=rep`, readerThreads: 0,
      walReceiverDirectIo: directIo, checkpointTimeoutMs: 0, maxWalSizeBytes: 256 * SEG,
    };
    let pinned = 0;
    p.pinWal(() => pinned);
    try {
      let i = await fill(p, 0, SEG / 2);
      let s = await Standby.open(opts);
      await s.waitForReplay(p.flushLsn);
      pinned = s.flushLsn;
      await s.close();
      const from = Math.floor(pinned / SEG);
      i = await fill(p, i, 24 * SEG);
      s = await Standby.open(opts);
      try {
        await s.waitForReplay(p.flushLsn, 60_000);
        const st = s.receiverStatus();
        if (directIo) assert.ok(st.bytes_written_direct > 16 * SEG, `most of the catch-up was written direct (${st.bytes_written_direct} bytes)`);
        else assert.equal(st.bytes_written_direct, 0);
        assert.equal(s.store!.digest(), p.store.digest(), 'replay equals the primary');
        // Live again: small commits, written buffered after the direct catch-up (the partial block is rewritten).
        const before = s.receiverStatus().bytes_written_direct;
        for (let k = 0; k < 50; k++) await p.transaction((tx) => tx.put('t', `live${k}`, k));
        await s.waitForReplay(p.flushLsn);
        assert.equal(s.receiverStatus().bytes_written_direct, before, 'live streaming is buffered');
        assert.equal(s.get('t', 'live49'), 49);
      } finally {
        await s.close();
      }
      const to = Math.floor(p.flushLsn / SEG);
      const names = completeSegments(path.join(dir, 'p', 'pg_wal'), from, to);
      assert.ok(names.length >= 20, `${names.length} complete segments to compare`);
      for (const n of names) {
        assert.ok(fs.readFileSync(path.join(dir, 'p', 'pg_wal', n)).equals(fs.readFileSync(path.join(dir, 's', 'pg_wal', n))), `${n} byte-identical on the standby`);
      }
      // Restart: the standby resumes where it flushed (more catch-up, then equal again).
      i = await fill(p, i, 4 * SEG);
      s = await Standby.open(opts);
      try {
        await s.waitForReplay(p.flushLsn, 60_000);
        assert.equal(s.store!.digest(), p.store.digest(), 'equal after the restart');
      } finally {
        await s.close();
      }
    } finally {
      await p.close();
    }
  });
}

test('wal-only catch-up with direct I/O: complete segments byte-identical, renamed from .partial', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 256 * SEG });
  const opts = { dataDir: path.join(dir, 'w'), primaryConninfo: `host=127.0.0.1 port=${p.port} user=rep`, mode: 'wal-only' as const };
  let pinned = 0;
  p.pinWal(() => pinned);
  async function receiveTo(end: number): Promise<number> {
    const s = await Standby.open(opts);
    try {
      const t0 = Date.now();
      while (s.flushLsn < end) {
        assert.ok(Date.now() - t0 < 60_000, 'wal-only catch-up finishes');
        await new Promise((r) => setTimeout(r, 10));
      }
      pinned = s.flushLsn;
      return s.receiverStatus().bytes_written_direct;
    } finally {
      await s.close();
    }
  }
  try {
    let i = await fill(p, 0, SEG / 2);
    await receiveTo(p.flushLsn); // starts at the primary's current segment
    const from = Math.floor(pinned / SEG);
    i = await fill(p, i, 20 * SEG);
    assert.ok((await receiveTo(p.flushLsn)) > 10 * SEG, 'the catch-up was written direct');
    const walDir = path.join(dir, 'w', 'pg_wal');
    const to = Math.floor(p.flushLsn / SEG);
    let compared = 0;
    for (let seg = from; seg < to; seg++) {
      const n = segmentFileName(1, seg, SEG);
      assert.ok(fs.readFileSync(path.join(dir, 'p', 'pg_wal', n)).equals(fs.readFileSync(path.join(walDir, n))), `${n} byte-identical`);
      compared++;
    }
    assert.ok(compared >= 19, `${compared} complete segments compared`);
    assert.ok(fs.existsSync(path.join(walDir, segmentFileName(1, to, SEG) + '.partial')), 'the segment in progress stays .partial');
  } finally {
    await p.close();
  }
});

test('SIGKILL of the standby process in the middle of a direct catch-up, 6 to 12 times (at least 2 mid-catch-up): it ends equal to the primary', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 256 * SEG, users: { rep: 'pw' } });
  let pinned = 0;
  p.pinWal(() => pinned);
  try {
    let i = await fill(p, 0, SEG / 2);
    const sdir = path.join(dir, 's');
    let c = new StandbyChild(sdir, p.port!);
    await c.line('ready');
    pinned = p.flushLsn; // the base backup's WAL and everything after stays
    await c.kill('SIGKILL');
    let sawDirect = false;
    let killedBehind = 0;
    // 6 rounds; more (up to 12) while fewer than 2 kills came mid-catch-up (a catch-up can end
    // within the few ms it takes to see it started).
    let round = 0;
    for (; round < 6 || (killedBehind < 2 && round < 12); round++) {
      i = await fill(p, i, 24 * SEG);
      c = new StandbyChild(sdir, p.port!);
      await c.line('ready');
      // Kill once the catch-up is under way (WAL written direct) or over, a random moment later.
      type Status = { bytes_written_direct: number; flushed_lsn: Lsn };
      let st: Status;
      const deadline = Date.now() + 20_000;
      for (;;) {
        st = await c.status<Status>();
        if (st.bytes_written_direct > 0 || st.flushed_lsn >= p.flushLsn || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      if (st.bytes_written_direct > 0) sawDirect = true;
      if (round % 2 === 1) await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 6)));
      st = await c.status<Status>();
      if (st.flushed_lsn < p.flushLsn) killedBehind++;
      await c.kill('SIGKILL');
    }
    assert.ok(sawDirect, 'catch-up went direct in some round before the kill');
    assert.ok(killedBehind >= 2, `${killedBehind} of ${round} kills came in the middle of a catch-up`);
    c = new StandbyChild(sdir, p.port!);
    await c.line('ready');
    const end = p.flushLsn;
    assert.equal(await c.digest(end), p.store.digest(), 'the standby equals the primary');
    await c.stop();
    let compared = 0;
    for (let seg = Math.floor(pinned / SEG) + 1; seg < Math.floor(end / SEG); seg++) {
      const n = segmentFileName(1, seg, SEG);
      assert.ok(fs.readFileSync(path.join(dir, 'p', 'pg_wal', n)).equals(fs.readFileSync(path.join(sdir, 'pg_wal', n))), `${n} byte-identical`);
      compared++;
    }
    assert.ok(compared >= 40, `${compared} segments compared`);
  } finally {
    await p.close();
  }
});
