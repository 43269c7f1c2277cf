// Crash safety of Standby.promote(): a child process is killed (SIGKILL, through
// WALSTREAM_TEST_PROMOTE_CRASH_AT) at each step of a promotion. Before the control file write
// the directory must reopen as a standby (Standby.open) whose second promotion completes on a
// timeline above any history file already written (2, or 3 once 00000002.history exists); from
// the control file write on it must open as a primary (Primary.open) on timeline 2, with the old
// timeline's last segment `.partial`: before the end-of-recovery checkpoint ('control',
// 'partial') by replaying from the standby's last restartpoint, on timeline 1, through
// END_OF_RECOVERY onto timeline 2; after it ('checkpoint') from a checkpoint on timeline 2.
// Either way every commit the old primary acknowledged before the promotion is in the store
// (digest), and the final primary takes new commits. Commits the promoted primary acknowledged
// right after the promotion survive a SIGKILL that follows them.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Primary } from '../src/primary/primary.js';
import { PROMOTE_CRASH_ENV, PROMOTE_STEPS, type PromoteStep } from '../src/primary/promotion.js';
import { DbState, readControl } from '../src/storage/control.js';
import { Standby } from '../src/standby/standby.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { readTimeLineHistory } from '../src/wal/timeline.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'promote-child.js');
const dirs: string[] = [];
const children: Array<ReturnType<typeof spawn>> = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  dirs.forEach(rmrf);
});

/** Run the child to the crash step; resolves with its exit signal and output. */
function runChild(dataDir: string, port: number, lsn: number, step: PromoteStep | '', commits?: number): Promise<{ signal: NodeJS.Signals | null; code: number | null; out: string }> {
  const args = [CHILD, dataDir, String(port), String(lsn), ...(commits === undefined ? [] : [String(commits)])];
  const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, [PROMOTE_CRASH_ENV]: step } });
  children.push(c);
  let out = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => c.once('exit', (code, signal) => resolve({ code, signal, out })));
}

const PRIMARY_FROM: PromoteStep = 'control';
/** From this step on, the end-of-recovery checkpoint is done (the redo point is on timeline 2). */
const CHECKPOINTED_FROM: PromoteStep = 'checkpoint';

test('promotion killed at each step: the directory is a standby or a primary, never half, and nothing acknowledged is lost', async () => {
  const root = tmpDir('walstream-promote-crash-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, users: { rep: 'pw' }, checkpointTimeoutMs: 0 });
  try {
    for (let i = 0; i < 600; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i, pad: 'q'.repeat(i % 9 === 0 ? 2500 : 60) }), { synchronousCommit: i % 40 === 0 ? 'on' : 'off' });
    const acked = await p.flush();
    const digest = p.store.digest();
    for (const step of PROMOTE_STEPS) {
      const sdir = path.join(root, `s-${step}`);
      const r = await runChild(sdir, p.port!, acked, step);
      assert.equal(r.signal, 'SIGKILL', `${step}: the child was killed (${r.code}) ${r.out}`);
      assert.ok(r.out.includes('ready'), r.out);
      const walDir = path.join(sdir, 'pg_wal');
      const c = readControl(sdir)!;
      const historyWritten = fs.existsSync(path.join(walDir, '00000002.history'));
      if (PROMOTE_STEPS.indexOf(step) < PROMOTE_STEPS.indexOf(PRIMARY_FROM)) {
        assert.equal(c.tli, 1, `${step}: still timeline 1`);
        assert.notEqual(c.state, DbState.InProduction, `${step}: still in recovery`);
        assert.equal(historyWritten, PROMOTE_STEPS.indexOf(step) >= PROMOTE_STEPS.indexOf('history'), `${step}: history file`);
        const s = await Standby.open({ dataDir: sdir, primaryConninfo: { inProcess: p, applicationName: step }, readerThreads: 0 });
        try {
          await s.waitForReplay(acked, 30_000);
          assert.equal(s.store!.digest(), digest, `${step}: the standby has every acknowledged commit`);
          const np = await s.promote({ checkpointTimeoutMs: 0 });
          try {
            const want = historyWritten ? 3 : 2;
            assert.equal(np.timeline, want, `${step}: the second promotion picks a timeline above the history files`);
            assert.deepEqual(readTimeLineHistory(walDir, want).map((e) => e.tli), [want, 1], `${step}: timeline ${want} forks from 1`);
            assert.equal(np.store.digest(), digest);
            await np.transaction((tx) => tx.put('t', 'after', step));
            assert.equal(np.get('t', 'after'), step);
          } finally {
            await np.close();
          }
        } finally {
          await s.close();
        }
      } else {
        assert.equal(c.tli, 2, `${step}: the switch was made`);
        assert.equal(c.state, DbState.InProduction);
        const sw = readTimeLineHistory(walDir, 2)[1]!.end;
        const checkpointed: boolean = PROMOTE_STEPS.indexOf(step) >= PROMOTE_STEPS.indexOf(CHECKPOINTED_FROM);
        assert.equal(c.redoLsn >= sw, checkpointed, `${step}: the redo point is ${checkpointed ? 'past' : 'before'} the switch point`);
        const np = await Primary.open({ dataDir: sdir, checkpointTimeoutMs: 0 });
        try {
          assert.equal(np.timeline, 2);
          assert.equal(np.recovery.redoLsn, c.redoLsn, `${step}: recovery started at the control file's redo point`);
          assert.ok(np.recovery.endLsn > sw, `${step}: recovery replayed END_OF_RECOVERY past the switch point`);
          assert.equal(np.store.digest(), digest, `${step}: every acknowledged commit`);
          const old = segmentFileName(1, segNo(sw, SEG), SEG);
          assert.ok(fs.existsSync(path.join(walDir, `${old}.partial`)) && !fs.existsSync(path.join(walDir, old)), `${step}: the old segment is .partial`);
          await np.transaction((tx) => tx.put('t', 'after', step));
        } finally {
          await np.close();
        }
        const again = await Primary.open({ dataDir: sdir, checkpointTimeoutMs: 0 });
        try {
          assert.equal(again.get('t', 'after'), step);
        } finally {
          await again.close();
        }
      }
    }
  } finally {
    await p.close();
  }
});

test('commits a promoted standby acknowledged before its end-of-recovery checkpoint survive a crash', async () => {
  const root = tmpDir('walstream-promote-crash-commits-');
  dirs.push(root);
  const COMMITS = 20;
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, users: { rep: 'pw' }, checkpointTimeoutMs: 0 });
  try {
    for (let i = 0; i < 300; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i, pad: 'q'.repeat(200) }), { synchronousCommit: i % 30 === 0 ? 'on' : 'off' });
    const acked = await p.flush();
    const digestBefore = p.store.digest();
    const sdir = path.join(root, 's');
    const r = await runChild(sdir, p.port!, acked, '', COMMITS);
    assert.equal(r.signal, 'SIGKILL', `the child killed itself (${r.code}) ${r.out}`);
    const ackedLines = r.out.split('\n').filter((l) => l.startsWith('acked '));
    assert.equal(ackedLines.length, COMMITS, r.out);
    const np = await Primary.open({ dataDir: sdir, checkpointTimeoutMs: 0 });
    try {
      assert.equal(np.timeline, 2);
      for (let i = 0; i < COMMITS; i++) assert.equal(np.get('after', `a${i}`), i, `acknowledged commit a${i} after the promotion`);
      for (let i = 0; i < 300; i++) assert.deepEqual(np.get('t', `k${i}`), { i, pad: 'q'.repeat(200) });
      assert.equal(p.store.digest(), digestBefore);
    } finally {
      await np.close();
    }
  } finally {
    await p.close();
  }
});
