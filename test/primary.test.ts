// Primary basics: API, group commit, restart, bad data directories.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { Primary } from '../src/primary/primary.js';
import { tmpDir, rmrf } from './helpers/tmp.js';

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
function newDir(): string {
  const d = tmpDir();
  dirs.push(d);
  return path.join(d, 'data');
}

function dirHash(dir: string): string {
  const h = crypto.createHash('sha256');
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const f = path.join(d, n);
      const st = fs.statSync(f);
      h.update(f);
      if (st.isDirectory()) walk(f);
      else h.update(fs.readFileSync(f));
    }
  };
  walk(dir);
  return h.digest('hex');
}

test('transactions, get/scan, restart keeps everything', async () => {
  const dataDir = newDir();
  const p = await Primary.open({ dataDir, walSegmentSize: 1 << 20 });
  const l1 = await p.transaction((tx) => {
    tx.put('users', 'alice', { age: 30 });
    tx.put('users', 'bob', { age: 40 });
    tx.put('bin', new Uint8Array([1, 2, 3]), new Uint8Array(2_000_000).fill(7));
  });
  const l2 = await p.transaction((tx) => tx.delete('users', 'bob'), { synchronousCommit: 'off' });
  assert.ok(l2 > l1, 'LSNs increase');
  assert.deepEqual(p.get('users', 'alice'), { age: 30 });
  assert.equal(p.get('users', 'bob'), undefined);
  assert.deepEqual(p.scan('users').map((e) => e.key), ['alice']);
  const digest = p.store.digest();
  await p.close();
  const q = await Primary.open({ dataDir });
  try {
    assert.equal(q.recovery.wasCleanShutdown, true);
    assert.equal(q.store.digest(), digest);
    assert.equal((q.get('bin', new Uint8Array([1, 2, 3])) as Uint8Array).length, 2_000_000);
  } finally {
    await q.close();
  }
});

test('group commit: under concurrency, fsyncs are far fewer than commits', async () => {
  // One fdatasync covers every commit inserted before it starts. How many arrive while one runs
  // depends on this disk's speed today, so commit_delay (10 ms, while 5 or more commits wait)
  // holds each flush open long enough for all 64 committers' next commits, which are inserted in
  // the same turn of the event loop once the previous flush releases them: a flush or two per
  // round of 64 on any machine.
  const dataDir = newDir();
  const p = await Primary.open({ dataDir, commitDelayUs: 10_000, commitSiblings: 5 });
  try {
    const before = p.stats().walFsyncs;
    const N = 64;
    let commits = 0;
    await Promise.all(
      Array.from({ length: N }, async (_, w) => {
        for (let i = 0; i < 40; i++) {
          await p.transaction((tx) => tx.put('t', `w${w}-${i}`, i));
          commits++;
        }
      }),
    );
    const fsyncs = p.stats().walFsyncs - before;
    assert.equal(commits, N * 40);
    assert.ok(fsyncs * 8 < commits, `fsyncs ${fsyncs} vs commits ${commits}`);
  } finally {
    await p.close();
  }
});

test('a lone committer flushes its own WAL (committerFlush); concurrent ones leave it to the walwriter; off: never', async () => {
  for (const committerFlush of [true, false]) {
    const dataDir = newDir();
    // wal_writer_delay at its maximum: the walwriter flushes only when asked, so it never takes
    // WRITE_LOCK from under a lone commit on its own timer (however long each fdatasync takes here).
    // commit_delay (10 ms, while 5 or more commits wait): concurrent commits share the walwriter's
    // flushes whatever this disk's speed (see the group commit test); lone commits are not delayed.
    const p = await Primary.open({ dataDir, committerFlush, checkpointTimeoutMs: 0, walWriterDelayMs: 10_000, commitDelayUs: 10_000, commitSiblings: 5 });
    try {
      const s0 = p.stats();
      for (let i = 0; i < 50; i++) await p.transaction((tx) => tx.put('t', `lone${i}`, i));
      const s1 = p.stats();
      const lone = s1.committerFlushes - s0.committerFlushes;
      if (committerFlush) assert.equal(lone, 50, `lone commits flushed on their own thread: ${lone} of 50`);
      else assert.equal(lone, 0);
      assert.ok(s1.walFsyncs - s0.walFsyncs >= 50, 'one fdatasync per lone commit');
      // 64 at once: after the first flush releases many, they queue for the walwriter.
      await Promise.all(Array.from({ length: 64 }, async (_, w) => {
        for (let i = 0; i < 20; i++) await p.transaction((tx) => tx.put('t', `w${w}-${i}`, i));
      }));
      const s2 = p.stats();
      assert.ok(s2.committerFlushes - s1.committerFlushes <= 3, `concurrent commits flushed by the walwriter (${s2.committerFlushes - s1.committerFlushes} on the committing thread)`);
      // Group commit under concurrency (its own test measures the ratio; here: it happens at all).
      const fsyncs = s2.walFsyncs - s1.walFsyncs;
      assert.ok(fsyncs * 2 < 64 * 20, `${fsyncs} fdatasyncs for ${64 * 20} concurrent commits`);
      // Everything acknowledged is durable: reopen and read it back.
      await p.close();
      const q = await Primary.open({ dataDir, committerFlush });
      try {
        assert.equal(q.get('t', 'lone49'), 49);
        assert.equal(q.get('t', 'w63-19'), 19);
      } finally {
        await q.close();
      }
    } finally {
      await p.close();
    }
  }
});

test('checkpoints recycle old segments into future names (min_wal_size); WAL goes on in them; recovery stops at the end of valid WAL', async () => {
  const { spawnSync } = await import('node:child_process');
  const { PG_BIN } = await import('./helpers/tmp.js');
  const { segmentFileName } = await import('../src/wal/segment.js');
  const dataDir = newDir();
  const SEG = 1 << 20;
  const opts = { dataDir, walSegmentSize: SEG, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG, minWalSizeBytes: 32 * SEG };
  let p = await Primary.open(opts);
  const walDir = path.join(dataDir, 'pg_wal');
  const names = () => fs.readdirSync(walDir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  const blob = 'r'.repeat(3000);
  let n = 0;
  const fill = async (count: number) => {
    for (let i = 0; i < count; i++, n++) await p.transaction((tx) => tx.put('t', `k${n}`, { n, blob }), { synchronousCommit: i % 100 === 99 ? 'on' : 'off' });
    return p.flush();
  };
  try {
    const events: Array<{ segmentsRecycled: number; segmentsRemoved: number }> = [];
    p.on('checkpoint', (e) => events.push(e));
    await fill(2500); // ~7.5 MiB
    await p.checkpoint();
    await fill(10);
    await p.checkpoint();
    const recycled = events.reduce((a, e) => a + e.segmentsRecycled, 0);
    assert.ok(recycled >= 5, `old segments recycled (${JSON.stringify(events)})`);
    assert.equal(events.reduce((a, e) => a + e.segmentsRemoved, 0), 0, 'under min_wal_size nothing is removed');
    const endSeg = Math.floor(p.flushLsn / SEG);
    const future = names().filter((f) => parseInt(f.slice(16), 16) > endSeg + 1);
    assert.ok(future.length >= 5, `future segments: ${future.join(' ')}`);
    // WAL continues into the recycled files; everything reads back after a restart.
    const end = await fill(3000); // ~9 MiB: through several recycled segments
    assert.ok(Math.floor(end / SEG) > endSeg + 3);
    await p.close();
    p = await Primary.open(opts);
    // (the shutdown checkpoint record follows `end`)
    assert.ok(p.flushLsn > end && p.flushLsn - end < 1024, `recovery found the end of WAL (${p.flushLsn} vs ${end}): old pages after it are not WAL`);
    for (const k of [0, 2499, 2510, n - 1]) assert.equal((p.get('t', `k${k}`) as { n: number }).n, k);
    // pg_waldump agrees: it reads every record from the redo segment to the end, then stops.
    const first = segmentFileName(1, Math.floor(p.stats().redoLsn / SEG), SEG);
    const res = spawnSync(path.join(PG_BIN, 'pg_waldump'), ['--stats', path.join(walDir, first), path.join(walDir, segmentFileName(1, Math.floor(end / SEG), SEG))], { encoding: 'utf8' });
    assert.match(res.stdout, /Total\s+\d+/);
    assert.match(res.stderr, /wanted 24, got 0|invalid magic number|unexpected pageaddr/);
  } finally {
    await p.close();
  }
});

test('a directory that is not a walstream data directory is refused and left untouched', async () => {
  const d = newDir();
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'important.txt'), 'do not touch');
  const h = dirHash(d);
  await assert.rejects(Primary.open({ dataDir: d }), (e: { code?: string }) => e.code === 'WS_NOT_A_DATA_DIR');
  assert.equal(dirHash(d), h);
});

test('WAL of another system identifier is refused and nothing is overwritten', async () => {
  const a = newDir();
  const b = newDir();
  await (await Primary.open({ dataDir: a, walSegmentSize: 1 << 20 })).close();
  const pb = await Primary.open({ dataDir: b, walSegmentSize: 1 << 20 });
  await pb.transaction((tx) => tx.put('t', 'x', 1));
  await pb.close();
  // Replace a's WAL with b's.
  fs.rmSync(path.join(a, 'pg_wal'), { recursive: true });
  fs.cpSync(path.join(b, 'pg_wal'), path.join(a, 'pg_wal'), { recursive: true });
  const h = dirHash(a);
  await assert.rejects(Primary.open({ dataDir: a }), (e: { code?: string }) => e.code === 'WS_WAL_SYSID_MISMATCH');
  assert.equal(dirHash(a), h);
});

test('a damaged checkpoint or control file gives a clear error and overwrites nothing', async () => {
  const d = newDir();
  const p = await Primary.open({ dataDir: d, walSegmentSize: 1 << 20 });
  await p.transaction((tx) => tx.put('t', 'x', { v: 'y'.repeat(1000) }));
  await p.close();
  const ck = path.join(d, 'checkpoints');
  const snap = path.join(ck, fs.readdirSync(ck)[0]!);
  const orig = fs.readFileSync(snap);
  const bad = Buffer.from(orig);
  bad[Math.floor(bad.length / 2)]! ^= 0x55;
  fs.writeFileSync(snap, bad);
  let h = dirHash(d);
  await assert.rejects(Primary.open({ dataDir: d }), (e: { code?: string }) => e.code === 'WS_CHECKPOINT_CORRUPT');
  assert.equal(dirHash(d), h);
  fs.writeFileSync(snap, orig);
  const ctlFile = path.join(d, 'walstream.control');
  const c = fs.readFileSync(ctlFile);
  c[40]! ^= 0x01;
  fs.writeFileSync(ctlFile, c);
  h = dirHash(d);
  await assert.rejects(Primary.open({ dataDir: d }), (e: { code?: string }) => e.code === 'WS_CONTROL_CORRUPT');
  assert.equal(dirHash(d), h);
});

test('options are validated once with precise errors', async () => {
  await assert.rejects(Primary.open({ dataDir: newDir(), walSegmentSize: 3_000_000 }), /walSegmentSize/);
  await assert.rejects(Primary.open({ dataDir: newDir(), synchronousCommit: 'maybe' as never }), /synchronousCommit/);
});

test('pg_waldump reads a primary\'s random mixed workload end to end; walstream waldump --stats agrees', async () => {
  const { spawnSync } = await import('node:child_process');
  const { PG_BIN } = await import('./helpers/tmp.js');
  const { segmentFileName } = await import('../src/wal/segment.js');
  const { lsnToString } = await import('../src/wal/lsn.js');
  const dataDir = newDir();
  const segSize = 1 << 20;
  const p = await Primary.open({ dataDir, walSegmentSize: segSize, checkpointTimeoutMs: 0, maxWalSizeBytes: 1 << 30 });
  try {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 400; i++) {
      await p.transaction((tx) => {
        const n = 1 + Math.floor(rnd() * 5);
        for (let j = 0; j < n; j++) {
          const key = `k${Math.floor(rnd() * 200)}`;
          if (rnd() < 0.25) tx.delete('t', key);
          else tx.put(rnd() < 0.5 ? 't' : 'u', key, { i, blob: 'b'.repeat(rnd() < 0.05 ? 100_000 + Math.floor(rnd() * 400_000) : Math.floor(rnd() * 300)) });
        }
      }, { synchronousCommit: rnd() < 0.5 ? 'off' : 'on' });
      if (i === 200) await p.checkpoint();
    }
    const end = await p.flush();
    const walDir = path.join(dataDir, 'pg_wal');
    const segs = fs.readdirSync(walDir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    const firstSeg = segs[0]!;
    const lastSeg = segmentFileName(1, Math.floor(end / segSize), segSize);
    assert.ok(Math.floor(end / segSize) - parseInt(firstSeg.slice(16), 16) >= 3, 'several segments');
    const res = spawnSync(path.join(PG_BIN, 'pg_waldump'), ['--stats=record', path.join(walDir, firstSeg), path.join(walDir, lastSeg)], { encoding: 'utf8' });
    assert.match(res.stderr.trim(), new RegExp(`invalid record length at ${lsnToString(end).replace('/', '\\/')}: wanted 24, got 0$`));
    const pgCounts: Record<string, number> = {};
    for (const m of res.stdout.matchAll(/^(\S+\/\S+(?: \(\w+\))?)\s+(\d+) \(/gm)) pgCounts[m[1]!] = Number(m[2]);
    const cli = spawnSync(process.execPath, [new URL('../../bin/walstream.js', import.meta.url).pathname, 'waldump', '--json', path.join(walDir, firstSeg)], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    const ours = JSON.parse(cli.stdout) as { records: number; byRmgr: Record<string, { count: number }> };
    const pgTotal = Object.values(pgCounts).reduce((a, b) => a + b, 0);
    assert.equal(ours.records, pgTotal, `record totals: ours ${ours.records}, pg_waldump ${JSON.stringify(pgCounts)}`);
    assert.equal(ours.byRmgr['custom130']!.count, pgCounts['custom130/UNKNOWN (0)']! + (pgCounts['custom130/UNKNOWN (10)'] ?? 0) + (pgCounts['custom130/UNKNOWN (20)'] ?? 0));
  } finally {
    await p.close();
  }
});

test('a checkpoint with nothing changed since the last keeps its snapshot (new redo point); the next write makes the next one write a snapshot; a crash image recovers either way', async () => {
  const { PID_FILE } = await import('../src/storage/datadir.js');
  const dataDir = newDir();
  const opts = { dataDir, checkpointTimeoutMs: 0 };
  let p = await Primary.open(opts);
  const snaps = () => fs.readdirSync(path.join(dataDir, 'checkpoints')).sort();
  const events: Array<{ redo: number; snapshotWritten: boolean }> = [];
  const crashImage = async (keys: number) => {
    const copy = newDir();
    fs.cpSync(dataDir, copy, { recursive: true });
    fs.rmSync(path.join(copy, PID_FILE), { force: true }); // the crashed process is gone
    const q = await Primary.open({ dataDir: copy, checkpointTimeoutMs: 0 });
    try {
      for (let k = 0; k < keys; k++) assert.equal((q.get('t', `k${k}`) as { k: number }).k, k, `k${k} after recovery`);
      assert.equal(q.get('t', `k${keys}`), undefined);
    } finally {
      await q.close();
    }
  };
  try {
    p.on('checkpoint', (e) => events.push(e));
    for (let k = 0; k < 100; k++) await p.transaction((tx) => tx.put('t', `k${k}`, { k }));
    await p.checkpoint();
    const first = p.checkpointInfo();
    assert.equal(events.at(-1)!.snapshotWritten, true);
    assert.deepEqual(snaps(), [first.snapshotName]);
    await p.checkpoint();
    await p.checkpoint();
    const kept = p.checkpointInfo();
    assert.deepEqual(events.slice(-2).map((e) => e.snapshotWritten), [false, false]);
    assert.equal(kept.snapshotName, first.snapshotName);
    assert.ok(kept.redoLsn > first.redoLsn, 'the redo point moves on');
    assert.deepEqual(snaps(), [first.snapshotName]);
    // WAL after the kept snapshot's new redo point is replayed over it.
    for (let k = 100; k < 150; k++) await p.transaction((tx) => tx.put('t', `k${k}`, { k }));
    await crashImage(150);
    await p.checkpoint();
    const next = p.checkpointInfo();
    assert.equal(events.at(-1)!.snapshotWritten, true);
    assert.notEqual(next.snapshotName, first.snapshotName);
    assert.deepEqual(snaps(), [next.snapshotName], 'the old snapshot is removed');
    await crashImage(150);
    // A clean shutdown and reopen: the store is the snapshot, so the next checkpoint keeps it.
    await p.close();
    p = await Primary.open(opts);
    p.on('checkpoint', (e) => events.push(e));
    await p.checkpoint();
    assert.equal(events.at(-1)!.snapshotWritten, false);
    for (let k = 0; k < 150; k++) assert.equal((p.get('t', `k${k}`) as { k: number }).k, k);
  } finally {
    await p.close();
  }
});
