// Crash safety: a child commits in a loop and is killed with SIGKILL at random moments; after
// reopening, every acknowledged transaction is present in full and no unacknowledged one is
// visible in part. Also: a torn or corrupted WAL tail is detected and not applied.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { tmpDir, rmrf } from './helpers/tmp.js';

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
const child = new URL('./helpers/crash-child.js', import.meta.url).pathname;
const ROUNDS = parseInt(process.env.WALSTREAM_CRASH_ROUNDS ?? '20', 10);

async function runAndKill(dataDir: string, start: number, killAfterMs: number, committers: number): Promise<Set<number>> {
  const acked = new Set<number>();
  // A lone committer flushes its own WAL (committerFlush); 8 leave it to the walwriter.
  const cp = spawn(process.execPath, [child, dataDir, String(start), String(committers), 'on', committers === 1 ? '1' : '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let err = '';
  cp.stderr.on('data', (d) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    cp.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') resolve();
        else if (line.startsWith('ack ')) acked.add(parseInt(line.slice(4), 10));
      }
    });
    cp.once('exit', (code) => reject(new Error(`child exited early (${code}): ${err}`)));
  });
  await ready;
  await new Promise((r) => setTimeout(r, killAfterMs));
  const exited = new Promise((r) => cp.once('exit', r));
  cp.kill('SIGKILL');
  await exited;
  return acked;
}

test(`kill -9 at random moments (${ROUNDS} rounds): every acknowledged commit survives, none is torn`, async () => {
  const dataDir = path.join(tmpDir(), 'data');
  dirs.push(path.dirname(dataDir));
  let start = 0;
  let totalAcked = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // 8 committers (the walwriter's group commits) and 1 (a lone committer flushes its own WAL).
    const acked = await runAndKill(dataDir, start, 50 + Math.floor(Math.random() * 250), round % 2 === 0 ? 8 : 1);
    totalAcked += acked.size;
    const p = await Primary.open({ dataDir, walSegmentSize: 1 << 20, checkpointTimeoutMs: 0 });
    try {
      // Segments the killed walwriter was creating are gone (RemoveTempXlogFiles). (The reopened
      // primary, in this process, may already be preparing its next one: xlogtemp.<our pid>.*.)
      const left = fs.readdirSync(path.join(dataDir, 'pg_wal')).filter((n) => n.startsWith('xlogtemp.') && !n.startsWith(`xlogtemp.${process.pid}.`));
      assert.deepEqual(left, [], `round ${round}: temp segment files of the killed process left`);
      for (const i of acked) {
        for (const s of ['a', 'b', 'c']) {
          const v = p.get('t', `k${i}-${s}`) as { i: number } | undefined;
          assert.ok(v && v.i === i, `round ${round}: acknowledged txn ${i} key ${s} missing after recovery`);
        }
      }
      // Atomicity: for every txn id seen at all, all three keys are there.
      let maxSeen = start - 1;
      for (const { key } of p.scan('t')) {
        const m = /^k(\d+)-([abc])$/.exec(key as string);
        if (!m) continue;
        const i = parseInt(m[1]!, 10);
        maxSeen = Math.max(maxSeen, i);
        for (const s of ['a', 'b', 'c']) assert.ok(p.get('t', `k${i}-${s}`) !== undefined, `round ${round}: txn ${i} visible only in part`);
      }
      assert.ok(p.recovery.recordsReplayed >= 1);
      start = Math.max(maxSeen, ...acked) + 1000;
    } finally {
      await p.close();
    }
  }
  assert.ok(totalAcked > ROUNDS, `commits were acknowledged (${totalAcked})`);
});

test('a truncated or corrupted WAL tail is detected; recovery stops at the last valid record and says so', async () => {
  const dataDir = path.join(tmpDir(), 'data');
  dirs.push(path.dirname(dataDir));
  const p = await Primary.open({ dataDir, walSegmentSize: 1 << 20, checkpointTimeoutMs: 0 });
  const ends: number[] = [];
  for (let i = 0; i < 50; i++) ends.push(await p.transaction((tx) => tx.put('t', `k${i}`, { i, pad: 'z'.repeat(i * 10) })));
  await p.flush();
  // Simulate a crash: copy the directory as it is on disk (WAL flushed, no shutdown checkpoint).
  const crashed = path.join(path.dirname(dataDir), 'crashed');
  fs.cpSync(dataDir, crashed, { recursive: true });
  fs.rmSync(path.join(crashed, 'walstream.pid'), { force: true });
  await p.close();
  // Corrupt one byte inside the last record's body: CRC must catch it.
  const seg = fs.readdirSync(path.join(crashed, 'pg_wal')).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  const lastEnd = ends[ends.length - 1]!;
  const prevEnd = ends[ends.length - 2]!;
  const segSize = 1 << 20;
  const file = path.join(crashed, 'pg_wal', seg.find((n) => parseInt(n.slice(16), 16) === Math.floor((lastEnd - 1) / segSize))!);
  const fd = fs.openSync(file, 'r+');
  const off = ((prevEnd + lastEnd) / 2) % segSize | 0;
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, off);
  b[0] = b[0]! ^ 0xff;
  fs.writeSync(fd, b, 0, 1, off);
  fs.closeSync(fd);
  const q = await Primary.open({ dataDir: crashed, walSegmentSize: segSize, checkpointTimeoutMs: 0 });
  try {
    assert.equal(q.recovery.tornTail, true);
    assert.equal(q.recovery.endReasonCode, 'crc');
    assert.equal(q.recovery.endLsn, prevEnd);
    assert.equal(q.get('t', 'k49'), undefined, 'the corrupted record is not applied');
    assert.deepEqual(q.get('t', 'k48'), { i: 48, pad: 'z'.repeat(480) });
    // New commits continue after the last valid record and survive another restart.
    await q.transaction((tx) => tx.put('t', 'after', 1));
  } finally {
    await q.close();
  }
  const r = await Primary.open({ dataDir: crashed, checkpointTimeoutMs: 0 });
  try {
    assert.equal(r.get('t', 'after'), 1);
    assert.equal(r.get('t', 'k49'), undefined);
  } finally {
    await r.close();
  }
});

test('a WAL file cut short in the middle of the last record is detected; the record is not applied', async () => {
  const dataDir = path.join(tmpDir(), 'data');
  dirs.push(path.dirname(dataDir));
  const segSize = 1 << 20;
  const p = await Primary.open({ dataDir, walSegmentSize: segSize, checkpointTimeoutMs: 0 });
  const ends: number[] = [];
  for (let i = 0; i < 20; i++) ends.push(await p.transaction((tx) => tx.put('t', `k${i}`, { i, pad: 'q'.repeat(5000) })));
  const crashed = path.join(path.dirname(dataDir), 'crashed');
  fs.cpSync(dataDir, crashed, { recursive: true });
  fs.rmSync(path.join(crashed, 'walstream.pid'), { force: true });
  await p.close();
  const lastEnd = ends[ends.length - 1]!;
  const prevEnd = ends[ends.length - 2]!;
  const seg = Math.floor((lastEnd - 1) / segSize);
  const file = path.join(crashed, 'pg_wal', fs.readdirSync(path.join(crashed, 'pg_wal')).find((n) => /^[0-9A-F]{24}$/.test(n) && parseInt(n.slice(16), 16) === seg)!);
  // A torn write: the file ends in the middle of the last record (as after a crash mid-write).
  fs.truncateSync(file, (prevEnd + 100) % segSize);
  const q = await Primary.open({ dataDir: crashed, checkpointTimeoutMs: 0 });
  try {
    assert.equal(q.recovery.endLsn, prevEnd);
    assert.equal(q.recovery.tornTail, true);
    assert.ok(q.recovery.endReason.length > 0);
    assert.ok(q.recovery.endReasonCode === 'missing' || q.recovery.endReasonCode === 'crc', String(q.recovery.endReasonCode));
    assert.equal(q.get('t', 'k19'), undefined);
    assert.equal((q.get('t', 'k18') as { i: number }).i, 18);
    await q.transaction((tx) => tx.put('t', 'after', 2));
  } finally {
    await q.close();
  }
});
