// A replica standby follows a promotion onto the new timeline while streaming (PostgreSQL 15's
// walreceiver at the end of a timeline + the startup process's rescanLatestTimeLine). A primary P
// (in process, TCP listener) with two replica standbys s1 and s2; P stops, s1 is promoted
// (timeline 2) and s2 is re-pointed to it with setPrimaryConninfo. Checked: s2 streams timeline 1
// up to the switch point and timeline 2 after it, with no byte lost or repeated (its timeline 2
// segments are s1's bytes, its store digest is s1's); its startup worker replays across the
// switch; its control file records timeline 2; commits on s1 keep arriving; restartpoints after
// the switch remove timeline 1's segments before the redo point but keep the history file; and s2
// reopened afterwards is still on timeline 2, consistent and streaming.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { readControl } from '../src/storage/control.js';
import { Standby } from '../src/standby/standby.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

async function load(p: Primary, tag: string, n: number): Promise<number> {
  let end = 0;
  for (let i = 0; i < n; i++) end = await p.transaction((tx) => tx.put('t', `${tag}${i}`, { i, pad: 'z'.repeat(i % 9 === 0 ? 4000 : 120) }), { synchronousCommit: i % 40 === 0 ? 'on' : 'off' });
  await p.flush();
  return end;
}

const conninfo = (port: number) => ({ host: '127.0.0.1', port, user: 'rep', applicationName: 's2' });

test('a replica re-pointed to a promoted standby follows timeline 2 while streaming; restart stays on it', async () => {
  const root = tmpDir('walstream-follow-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0 });
  const s1dir = path.join(root, 's1');
  const s2dir = path.join(root, 's2');
  let s1: Standby | null = null;
  let s2: Standby | null = null;
  let np: Primary | null = null;
  try {
    s1 = await Standby.open({ dataDir: s1dir, primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'rep', applicationName: 's1' }, readerThreads: 0 });
    // Restartpoints at every replayed checkpoint, so s2 makes some after the switch.
    s2 = await Standby.open({ dataDir: s2dir, primaryConninfo: conninfo(p.port!), readerThreads: 0, checkpointTimeoutMs: 0, walRetrieveRetryIntervalMs: 100 });
    const warnings: string[] = [];
    const received: number[] = [];
    const replayed: Array<{ tli: number; switchpoint: number }> = [];
    const restartpoints: Array<{ redoLsn: number; segmentsRemoved: number; segmentsRecycled: number }> = [];
    s2.on('warning', (e: Error) => warnings.push(e.message));
    s2.on('timeline', (m: { tli: number }) => received.push(m.tli));
    s2.on('replayTimeline', (m: { tli: number; switchpoint: number }) => replayed.push(m));
    s2.on('restartpoint', (r: { redoLsn: number; segmentsRemoved: number; segmentsRecycled: number }) => restartpoints.push(r));

    const end1 = await load(p, 'a', 1200);
    await p.checkpoint();
    await s1.waitForReplay(p.flushLsn, 30_000);
    await s2.waitForReplay(end1, 30_000);
    await p.close();
    // Both have everything the old primary wrote (its shutdown checkpoint too).
    await waitFor(() => s2!.flushLsn === s1!.flushLsn && s2!.replayLsn === s1!.replayLsn, 30_000, 's2 to have what s1 has');

    np = await s1.promote({ port: 0, checkpointTimeoutMs: 0, walSegmentSize: SEG });
    assert.equal(np.timeline, 2);
    const hist = fs.readFileSync(path.join(s1dir, 'pg_wal', '00000002.history'));
    const switchpoint = Number(BigInt(`0x${/^1\t([0-9A-F]+)\/([0-9A-F]+)\t/.exec(hist.toString('latin1'))!.slice(1, 3).map((x) => x.padStart(8, '0')).join('')}`));
    assert.ok(s2.flushLsn <= switchpoint, 's2 has nothing past the switch point');

    // Commits on s1 while s2 still retries the old primary, then more after the re-point.
    await load(np, 'b', 600);
    s2.setPrimaryConninfo(conninfo(np.port!));
    // (Before s1's checkpoints: without a slot, they would remove the segments s2 still needs.)
    await waitFor(() => received.includes(2) && s2!.receiverStatus().status === 'streaming', 30_000, `s2 streaming timeline 2 (${warnings.join(' | ')})`);
    const endC = await load(np, 'c', 3000);
    await s2.waitForReplay(endC, 60_000);
    // Byte for byte: every complete timeline 2 segment is s1's file (the switch segment included,
    // whose bytes before the switch point came from timeline 1's stream of P).
    const w1 = path.join(s1dir, 'pg_wal');
    const w2 = path.join(s2dir, 'pg_wal');
    assert.ok(fs.readFileSync(path.join(w2, '00000002.history')).equals(hist), "s1's history file");
    let compared = 0;
    for (let seg = segNo(switchpoint, SEG); seg < segNo(endC, SEG); seg++) {
      const name = segmentFileName(2, seg, SEG);
      assert.ok(fs.readFileSync(path.join(w2, name)).equals(fs.readFileSync(path.join(w1, name))), `${name}: s1's bytes`);
      compared++;
    }
    assert.ok(compared >= 1, 'at least one complete timeline 2 segment compared');

    for (let r = 0; r < 4; r++) {
      await load(np, `c${r}-`, 700);
      await np.checkpoint();
    }
    const end2 = np.flushLsn;
    await s2.waitForReplay(end2, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}; warnings: ${warnings.join(' | ')}`);
    });
    assert.deepEqual(received, [2], 'the walreceiver followed to timeline 2 once');
    assert.equal(replayed.length, 1, 'replay switched timelines once');
    assert.equal(replayed[0]!.tli, 2);
    assert.equal(replayed[0]!.switchpoint, switchpoint);
    assert.equal(s2.receiverStatus().received_tli, 2);
    assert.equal(s2.timeline, 2);
    assert.equal(readControl(s2dir)!.tli, 2, 'the control file records timeline 2');
    assert.equal(s2.store!.digest(), np.store.digest(), "s2's store is s1's");
    assert.equal((s2.get('t', 'c3-699') as { i: number }).i, 699);

    // Restartpoints after the switch: the redo point moved onto timeline 2's WAL and timeline 1's
    // older segments went (recycled or removed); the history file stays.
    await waitFor(() => restartpoints.some((r) => r.redoLsn > switchpoint), 30_000, 'a restartpoint past the switch point');
    const rp = restartpoints.filter((r) => r.redoLsn > switchpoint).pop()!;
    const tl1Left = fs.readdirSync(w2).filter((n) => n.startsWith('00000001') && parseInt(n.slice(8, 24), 16) < segNo(rp.redoLsn, SEG));
    assert.deepEqual(tl1Left, [], 'no timeline 1 segment before the redo point');
    assert.ok(fs.existsSync(path.join(w2, '00000002.history')));

    // Restart: still timeline 2, consistent, streaming from s1.
    const digest = np.store.digest();
    await s2.close();
    s2 = null;
    const cAfter = readControl(s2dir)!;
    assert.equal(cAfter.tli, 2);
    s2 = await Standby.open({ dataDir: s2dir, primaryConninfo: conninfo(np.port!), readerThreads: 0 });
    assert.equal(s2.timeline, 2);
    assert.equal(s2.store!.digest(), digest);
    await waitFor(() => s2!.receiverStatus().status === 'streaming', 30_000, 's2 streaming again');
    assert.equal(s2.receiverStatus().received_tli, 2);
    const end3 = await load(np, 'd', 300);
    await s2.waitForReplay(end3, 30_000);
    assert.equal(s2.store!.digest(), np.store.digest());
  } finally {
    await s2?.close().catch(() => undefined);
    await np?.close().catch(() => undefined);
    await s1?.close().catch(() => undefined);
    await p.close().catch(() => undefined);
  }
});

test('promoteTriggerFile (promote_trigger_file): the file appearing promotes the standby with promoteOptions', async () => {
  const root = tmpDir('walstream-trigger-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0 });
  const trigger = path.join(root, 'failover.trigger');
  let s: Standby | null = null;
  try {
    await assert.rejects(
      Standby.open({ dataDir: path.join(root, 'w'), primaryConninfo: conninfo(p.port!), mode: 'wal-only', promoteTriggerFile: trigger }),
      /"promoteTriggerFile": needs mode 'replica'/,
    );
    await assert.rejects(Standby.open({ dataDir: path.join(root, 'x'), primaryConninfo: conninfo(p.port!), promoteOptions: { dataDir: 'y' } as never }), /"promoteOptions": must not set dataDir/);
    s = await Standby.open({ dataDir: path.join(root, 's'), primaryConninfo: conninfo(p.port!), readerThreads: 0, promoteTriggerFile: trigger, promoteOptions: { port: 0, checkpointTimeoutMs: 0 } });
    const end = await load(p, 'a', 200);
    await s.waitForReplay(end, 30_000);
    await p.close();
    const promoted = new Promise<{ tli: number }>((resolve) => s!.once('promoted', resolve));
    fs.writeFileSync(trigger, '');
    assert.equal((await promoted).tli, 2);
    const np = s.promoted!;
    assert.equal(np.timeline, 2);
    assert.equal(typeof np.port, 'number', 'serves replication on promoteOptions.port');
    assert.ok(!fs.existsSync(trigger), 'the trigger file is removed');
    assert.equal((s.get('t', 'a199') as { i: number }).i, 199);
    await np.close();
  } finally {
    await s?.close().catch(() => undefined);
    await p.close().catch(() => undefined);
  }
});
