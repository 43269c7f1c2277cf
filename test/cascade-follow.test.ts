// A cascading walsender follows its standby's timeline switch while a downstream streams from it
// (PostgreSQL 15's walsender.c XLogSendPhysical, "becameHistoric" on a cascading walsender). An
// in-process primary p with two replica standbys: s1 serves replication (port 0) to s2, which
// streams from s1 over TCP; s1b is the one that gets promoted. Under load, p stops, s1b is promoted
// (timeline 2) and s1 is re-pointed to it. s2 is never re-pointed: s1's walsender must notice that
// timeline 1 became historic, send it up to the switch point only, end it (CopyDone and the next
// timeline's row), and serve timeline 2, so that s2 follows through s1. Checked: s2 (still streaming
// from s1) is on timeline 2, in its walreceiver and control file; its store digest is s1b's once
// s1b's commits reached it; its timeline 2 segment files are s1's bytes. A real pg_receivewal
// streaming from s1 follows the same way (timeline 1's last segment .partial, timeline 2's segments
// s1's bytes). Then a new downstream s3, cloned from s1 after the switch, streams timeline 2 from it.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { readControl } from '../src/storage/control.js';
import { Standby } from '../src/standby/standby.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { type ReceiveWal, startPgReceivewal, waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
/** Hang bound of every wait (ms): a failure bound, not a latency. */
const HANG_MS = 90_000;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

async function load(p: Primary, tag: string, n: number): Promise<number> {
  let end = 0;
  for (let i = 0; i < n; i++) end = await p.transaction((tx) => tx.put('t', `${tag}${i}`, { i, pad: 'z'.repeat(i % 9 === 0 ? 4000 : 120) }), { synchronousCommit: i % 40 === 0 ? 'on' : 'off' });
  await p.flush();
  return end;
}

/** Most commits of one background load (bounds the store's size, whatever the machine's speed). */
const BG_MAX_COMMITS = 4000;

/** Commits until `stop()` says so, BG_MAX_COMMITS, or the primary goes away (its close rejects what is in flight). */
async function loadUntil(p: Primary, tag: string, stop: () => boolean): Promise<number> {
  let n = 0;
  try {
    while (!stop() && n < BG_MAX_COMMITS) {
      await p.transaction((tx) => tx.put('t', `${tag}${n}`, { n, pad: 'y'.repeat(n % 7 === 0 ? 3000 : 200) }), { synchronousCommit: n % 10 === 0 ? 'on' : 'off' });
      n++;
    }
  } catch {
    // the primary closed under the load
  }
  return n;
}

const conninfo = (port: number, applicationName: string) => ({ host: '127.0.0.1', port, user: 'rep', applicationName });

function switchPointOf(history: Buffer): number {
  const m = /^1\t([0-9A-F]+)\/([0-9A-F]+)\t/.exec(history.toString('latin1'));
  assert.ok(m !== null, 'timeline 2 history names timeline 1 with its switch point');
  return Number((BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`));
}

test('a downstream of a cascading standby follows it onto timeline 2 without being re-pointed', async () => {
  const root = tmpDir('walstream-cfollow-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0 });
  const s1dir = path.join(root, 's1');
  const s2dir = path.join(root, 's2');
  let s1: Standby | null = null;
  let s1b: Standby | null = null;
  let s2: Standby | null = null;
  let s3: Standby | null = null;
  let np: Primary | null = null;
  let rw: ReceiveWal | null = null;
  try {
    s1 = await Standby.open({ dataDir: s1dir, primaryConninfo: conninfo(p.port!, 's1'), port: 0, readerThreads: 0, walRetrieveRetryIntervalMs: 100 });
    s1b = await Standby.open({ dataDir: path.join(root, 's1b'), primaryConninfo: conninfo(p.port!, 's1b'), readerThreads: 0 });
    // s2's base backup and stream come from s1; restartpoints at every replayed checkpoint.
    s2 = await Standby.open({ dataDir: s2dir, primaryConninfo: conninfo(s1.replication!.port, 's2'), readerThreads: 0, checkpointTimeoutMs: 0, walRetrieveRetryIntervalMs: 100 });
    const s1Port = s1.replication!.port;
    const warnings: string[] = [];
    const s1Timelines: number[] = [];
    const s2Timelines: number[] = [];
    const s2Replayed: Array<{ tli: number; switchpoint: number }> = [];
    s2.on('warning', (e: Error) => warnings.push(`s2: ${e.message}`));
    s1.on('warning', (e: Error) => warnings.push(`s1: ${e.message}`));
    s1.on('timeline', (m: { tli: number }) => s1Timelines.push(m.tli));
    s2.on('timeline', (m: { tli: number }) => s2Timelines.push(m.tli));
    s2.on('replayTimeline', (m: { tli: number; switchpoint: number }) => s2Replayed.push(m));

    // A real PostgreSQL 15 client downstream of s1 as well: pg_receivewal, streaming timeline 1.
    rw = startPgReceivewal(s1Port, path.join(root, 'rw'));
    await waitFor(() => s1!.replicationStatus().filter((r) => r.state === 'streaming').length === 2, HANG_MS, `s2 and pg_receivewal streaming from s1 (${rw.output()})`);

    const end1 = await load(p, 'a', 800);
    await s2.waitForReplay(end1, HANG_MS);
    assert.equal(s2.receiverStatus().status, 'streaming');
    assert.equal(s2.receiverStatus().received_tli, 1);

    // p stops under load: its shutdown sends everything to s1 and s1b first.
    let pStop = false;
    const bgP = loadUntil(p, 'b', () => pStop);
    await load(p, 'c', 300);
    pStop = true;
    await p.close();
    await bgP;
    await waitFor(() => s1!.flushLsn === s1b!.flushLsn && s2!.flushLsn === s1!.flushLsn, HANG_MS, 's1, s1b and s2 to have all of p');
    const tl1End = s1.flushLsn;

    np = await s1b.promote({ port: 0, checkpointTimeoutMs: 0, walSegmentSize: SEG });
    assert.equal(np.timeline, 2);
    const hist = fs.readFileSync(path.join(root, 's1b', 'pg_wal', '00000002.history'));
    const switchpoint = switchPointOf(hist);
    assert.ok(tl1End <= switchpoint, 'nothing on timeline 1 past the switch point');

    // Re-point s1 (only s1) while s1b commits; s2 stays connected to s1 throughout.
    let npStop = false;
    const bgNp = loadUntil(np, 'd', () => npStop);
    s1.setPrimaryConninfo(conninfo(np.port!, 's1'));
    await waitFor(() => s1Timelines.includes(2), HANG_MS, `s1 to follow timeline 2 (${warnings.join(' | ')})`);
    await waitFor(() => s2Timelines.includes(2) && s2!.receiverStatus().status === 'streaming', HANG_MS, `s2 to follow timeline 2 through s1 (${warnings.join(' | ')})`);
    npStop = true;
    const bgCommits = await bgNp;
    assert.ok(bgCommits > 0, 's1b committed during the switch');
    const end2 = await load(np, 'e', 1500);
    await np.checkpoint();
    const end3 = np.flushLsn;
    assert.ok(end3 >= end2);
    await s2.waitForReplay(end3, HANG_MS).catch((e: Error) => {
      throw new Error(`${e.message}; warnings: ${warnings.join(' | ')}`);
    });
    await s1.waitForReplay(end3, HANG_MS);

    // s2 followed through s1 without being re-pointed: same sender, timeline 2 everywhere.
    const st = s2.receiverStatus();
    assert.equal(st.sender_port, s1Port, 's2 still streams from s1');
    assert.equal(st.received_tli, 2);
    assert.deepEqual(s2Timelines, [2], "s2's walreceiver followed to timeline 2 once");
    assert.deepEqual(warnings.filter((w) => w.startsWith('s2:')), [], 's2 streamed from s1 without an error or a reconnect');
    assert.equal(s2Replayed.length, 1, "s2's replay switched timelines once");
    assert.equal(s2Replayed[0]!.switchpoint, switchpoint);
    assert.equal(s2.timeline, 2);
    await waitFor(() => readControl(s2dir)!.tli === 2, HANG_MS, "s2's control file on timeline 2");
    assert.equal(s2.store!.digest(), np.store.digest(), "s2's store is s1b's");
    assert.equal(s1.store!.digest(), np.store.digest(), "s1's store is s1b's");
    assert.equal((s2.get('t', 'e1499') as { i: number }).i, 1499);
    assert.ok(fs.readFileSync(path.join(s2dir, 'pg_wal', '00000002.history')).equals(hist), "s1b's history file, through s1");

    // Byte for byte: s2's timeline 2 segments are s1's (the switch segment too: its bytes before
    // the switch point are timeline 1's, sent by s1 from its timeline 1 file while s1 rewrote them).
    const w1 = path.join(s1dir, 'pg_wal');
    const w2 = path.join(s2dir, 'pg_wal');
    let compared = 0;
    for (let seg = segNo(switchpoint, SEG); seg < segNo(end3, SEG); seg++) {
      const name = segmentFileName(2, seg, SEG);
      assert.ok(fs.readFileSync(path.join(w2, name)).equals(fs.readFileSync(path.join(w1, name))), `${name}: s1's bytes`);
      compared++;
    }
    assert.ok(compared >= 1, 'at least one complete timeline 2 segment compared');
    // And the switch segment up to where s2 has it, against s1's.
    const lastName = segmentFileName(2, segNo(end3, SEG), SEG);
    const upto = end3 % SEG;
    assert.ok(fs.readFileSync(path.join(w2, lastName)).subarray(0, upto).equals(fs.readFileSync(path.join(w1, lastName)).subarray(0, upto)), `${lastName} up to ${upto}: s1's bytes`);

    // pg_receivewal followed through s1 too (the end of timeline 1 and the next timeline's row as
    // PostgreSQL's walsender sends them): timeline 1's last segment is .partial, timeline 2's
    // complete segments are s1's bytes.
    const rwDir = path.join(root, 'rw');
    const lastFull = segmentFileName(2, segNo(end3, SEG) - 1, SEG);
    await waitFor(() => fs.existsSync(path.join(rwDir, lastFull)), HANG_MS, `pg_receivewal to complete ${lastFull} (${rw.output()})`);
    assert.match(rw.output(), /switched to timeline 2 at /, 'pg_receivewal followed timeline 2 on the same connection');
    assert.ok(fs.existsSync(path.join(rwDir, `${segmentFileName(1, segNo(switchpoint, SEG), SEG)}.partial`)), "timeline 1's last segment is .partial");
    assert.ok(fs.readFileSync(path.join(rwDir, '00000002.history')).equals(hist), "pg_receivewal fetched s1b's history file from s1");
    for (let seg = segNo(switchpoint, SEG); seg < segNo(end3, SEG); seg++) {
      const name = segmentFileName(2, seg, SEG);
      assert.ok(fs.readFileSync(path.join(rwDir, name)).equals(fs.readFileSync(path.join(w1, name))), `pg_receivewal's ${name}: s1's bytes`);
    }

    // A downstream that starts after the switch: s3's base backup comes from s1 (a restartpoint on
    // timeline 2), then it streams timeline 2 from s1 (whose switch segment has two files).
    s3 = await Standby.open({ dataDir: path.join(root, 's3'), primaryConninfo: conninfo(s1.replication!.port, 's3'), readerThreads: 0 });
    const end4 = await load(np, 'f', 300);
    await s3.waitForReplay(end4, HANG_MS);
    await s2.waitForReplay(end4, HANG_MS);
    assert.equal(s3.timeline, 2);
    assert.equal(s3.receiverStatus().received_tli, 2);
    assert.equal(s3.store!.digest(), np.store.digest(), "s3's store is s1b's");
    assert.equal(s2.store!.digest(), np.store.digest(), "s2's store is s1b's");
  } finally {
    await rw?.stop();
    await s3?.close().catch(() => undefined);
    await s2?.close().catch(() => undefined);
    await s1?.close().catch(() => undefined);
    await np?.close().catch(() => undefined);
    await s1b?.close().catch(() => undefined);
    await p.close().catch(() => undefined);
  }
});
