// Standby.promote(): a hot standby becomes a Primary over the same data directory and the same
// SharedStore, on timeline 2. Checked: the store's digest is the old primary's at the switch; the
// history file is PostgreSQL's bytes ("1\t<EndOfLog>\tno recovery target specified\n"); the new
// timeline's first segment holds the old segment's bytes up to the switch point and zeros after
// the new WAL, the old one is kept as `.partial`; pg_waldump (PostgreSQL 15) reads timeline 2
// from before the switch through END_OF_RECOVERY ("tli 2; prev tli 1") and the checkpoint; the
// standby's readers (get, pool) see the new primary's commits; the control file is in production
// on timeline 2, and Primary.open of the directory recovers every acknowledged commit there.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { readControl, DbState } from '../src/storage/control.js';
import { Standby } from '../src/standby/standby.js';
import { lsnToString } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN, rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

async function load(p: Primary, tag: string, n: number): Promise<number> {
  let end = 0;
  for (let i = 0; i < n; i++) end = await p.transaction((tx) => tx.put('t', `${tag}${i}`, { i, pad: 'y'.repeat(i % 7 === 0 ? 3000 : 80) }), { synchronousCommit: i % 50 === 0 ? 'on' : 'off' });
  await p.flush();
  return end;
}

test('promote in process: timeline 2, history file, segments, END_OF_RECOVERY, readers continue, reopen', async () => {
  const root = tmpDir('walstream-promote-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0 });
  const sdir = path.join(root, 's');
  let s: Standby | null = null;
  let np: Primary | null = null;
  try {
    s = await Standby.open({ dataDir: sdir, primaryConninfo: { inProcess: p, applicationName: 's' }, readerThreads: 1 });
    await load(p, 'a', 1500);
    const pEnd = p.flushLsn;
    await s.waitForReplay(pEnd, 30_000);
    const digestAtSwitch = p.store.digest();
    await p.close();

    np = await s.promote({ port: 0, checkpointTimeoutMs: 0 });
    assert.equal(np.timeline, 2);
    assert.equal(np.store, s.store, 'the same SharedStore');
    assert.equal(np.store.digest(), digestAtSwitch, 'everything the old primary flushed was replayed');
    assert.equal(typeof np.port, 'number');
    const walDir = path.join(sdir, 'pg_wal');

    // History file: PostgreSQL's bytes; the switch point is where the old primary's WAL ended
    // (its shutdown checkpoint included: the standby received and replayed it).
    const hist = fs.readFileSync(path.join(walDir, '00000002.history'), 'utf8');
    const m = /^1\t([0-9A-F]+\/[0-9A-F]+)\tno recovery target specified\n$/.exec(hist);
    assert.ok(m, JSON.stringify(hist));
    const sw = m[1]!;
    const [hi, lo] = sw.split('/').map((x) => parseInt(x, 16));
    const switchpoint = hi! * 2 ** 32 + lo!;
    assert.ok(switchpoint >= pEnd, `switch point ${sw} at or after the old primary's flush ${lsnToString(pEnd)}`);

    // Segments: the old one is .partial, the new one starts with the same bytes.
    const seg = segNo(switchpoint, SEG);
    const off = switchpoint % SEG;
    assert.ok(off > 0);
    const oldName = segmentFileName(1, seg, SEG);
    assert.ok(!fs.existsSync(path.join(walDir, oldName)), 'the old timeline\'s last segment is renamed');
    const partial = fs.readFileSync(path.join(walDir, `${oldName}.partial`));
    const fresh = fs.readFileSync(path.join(walDir, segmentFileName(2, seg, SEG)));
    assert.ok(partial.subarray(0, off).equals(fresh.subarray(0, off)), 'the new segment holds the old bytes up to the switch point');

    // Control file: in production on timeline 2 when promote() resolves; the end-of-recovery
    // checkpoint (requested, run in the background) then moves it past the switch point.
    const c0 = readControl(sdir)!;
    assert.equal(c0.tli, 2);
    assert.equal(c0.state, DbState.InProduction);
    if (np.stats().checkpoints === 0) await once(np, 'checkpoint');
    const c = readControl(sdir)!;
    assert.equal(c.tli, 2);
    assert.ok(c.checkpointLsn > switchpoint);

    // Commits on the new primary: readers of the standby see them.
    const end2 = await load(np, 'b', 300);
    assert.ok(end2 > switchpoint);
    assert.deepEqual((s.get('t', 'b299') as { i: number }).i, 299);
    assert.deepEqual(((await s.pool!.get('t', 'b10')) as { i: number }).i, 10);
    assert.equal(s.store!.digest(), np.store.digest());

    // pg_waldump on timeline 2 (named by the start segment: it would take the segment size from the
    // first file it lists, maybe a preallocated one), from before the switch (the new segment's copied bytes) across it.
    const startBefore = seg * SEG + 40;
    const wd = spawnSync(path.join(PG_BIN, 'pg_waldump'), ['-p', walDir, '-s', lsnToString(startBefore), '-e', lsnToString(np.flushLsn), segmentFileName(2, seg, SEG)], { encoding: 'utf8' });
    assert.equal(wd.status, 0, wd.stderr);
    const eor = wd.stdout.split('\n').filter((l) => l.includes('END_OF_RECOVERY'));
    assert.equal(eor.length, 1, wd.stdout.slice(-2000));
    const padded = `${hi!.toString(16).toUpperCase()}/${lo!.toString(16).toUpperCase().padStart(8, '0')}`;
    assert.ok(eor[0]!.includes(`lsn: ${padded}, prev `), eor[0]);
    assert.match(eor[0]!, /desc: END_OF_RECOVERY tli 2; prev tli 1; time \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC$/);
    // 24-byte header + 2-byte short data header + sizeof(xl_end_of_recovery) 16, xid 0.
    assert.match(eor[0]!, /^rmgr: XLOG\s+len \(rec\/tot\):\s+42\/\s+42, tx:\s+0, /);
    // The records after it (the checkpoint, the new commits) are read too.
    assert.ok(wd.stdout.split('\n').filter((l) => l.includes(', lsn: ') && !l.includes('END_OF_RECOVERY')).length > 300);
    const digest2 = np.store.digest();
    await np.close();
    np = null;
    await s.close();
    s = null;

    // Reopen as a primary: timeline 2, every commit.
    const re = await Primary.open({ dataDir: sdir, checkpointTimeoutMs: 0 });
    try {
      assert.equal(re.timeline, 2);
      assert.equal(re.store.digest(), digest2);
    } finally {
      await re.close();
    }
  } finally {
    await np?.close().catch(() => undefined);
    await s?.close().catch(() => undefined);
    await p.close().catch(() => undefined);
  }
});
