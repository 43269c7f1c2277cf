// Serving timelines on a promoted primary, against PostgreSQL 15's own clients: psql
// (replication=true) gets IDENTIFY_SYSTEM on timeline 2, TIMELINE_HISTORY 2 (filename and the
// file's bytes), and PostgreSQL's errors for a timeline not in the history and for a start point
// past where timeline 1 forked (with its DETAIL), and a start exactly at the switch point (the
// next timeline's row without COPY). pg_receivewal, started at the beginning of our
// WAL on timeline 1, streams timeline 1 to the switch point, follows to timeline 2 (fetching
// 00000002.history) and stops at --endpos: its files are byte-identical to ours — timeline 1's
// complete segments, its `.partial` up to the switch point (zeros after), 00000002.history and
// timeline 2's complete segments. pg_waldump reads our timeline 2 across the switch.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { lsnToString } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { listSegments } from '../src/wal/segfile.js';
import { readTimeLineHistory } from '../src/wal/timeline.js';
import { psql } from './helpers/psql.js';
import { PG_BIN, rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

function run(bin: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawn(path.join(PG_BIN, bin), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  c.stdout.on('data', (d) => (stdout += d));
  c.stderr.on('data', (d) => (stderr += d));
  const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => c.once('exit', (code) => {
    clearTimeout(t);
    resolve({ code, stdout, stderr });
  }));
}

async function load(p: Primary, tag: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await p.transaction((tx) => tx.put('t', `${tag}${i}`, { i, pad: 'w'.repeat(i % 5 === 0 ? 4000 : 300) }), { synchronousCommit: i % 100 === 0 ? 'on' : 'off' });
  await p.flush();
}

test('a promoted primary serves timelines 1 and 2: psql, PostgreSQL errors, pg_receivewal byte-identical across the switch', async () => {
  const root = tmpDir('walstream-promote-tli-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 256 * SEG });
  const sdir = path.join(root, 's');
  let s: Standby | null = null;
  let np: Primary | null = null;
  try {
    s = await Standby.open({ dataDir: sdir, primaryConninfo: { inProcess: p, applicationName: 's' }, readerThreads: 0, maxWalSizeBytes: 256 * SEG });
    await load(p, 'a', 1500); // ~1.5 MiB: timeline 1 spans segments
    await s.waitForReplay(p.flushLsn, 30_000);
    await p.close();
    np = await s.promote({ port: 0, checkpointTimeoutMs: 0, walKeepSizeBytes: 256 * SEG, maxWalSizeBytes: 256 * SEG });
    await load(np, 'b', 1500); // timeline 2 fills segments too
    const walDir = path.join(sdir, 'pg_wal');
    const switchpoint = readTimeLineHistory(walDir, 2)[1]!.end;
    const port = np.port!;

    // psql: IDENTIFY_SYSTEM, TIMELINE_HISTORY 2.
    const id = await psql(port, 'IDENTIFY_SYSTEM');
    assert.equal(id.status, 0, id.stderr);
    assert.equal(id.stdout.split('|')[1], '2');
    const th = await psql(port, 'TIMELINE_HISTORY 2');
    assert.equal(th.status, 0, th.stderr);
    const file = fs.readFileSync(path.join(walDir, '00000002.history'), 'utf8');
    assert.equal(`${th.stdout}\n`, `00000002.history|${file}`);

    // PostgreSQL's errors (before any COPY).
    const e1 = await psql(port, 'START_REPLICATION 0/1000000 TIMELINE 3');
    assert.match(e1.stderr, /ERROR:\s+requested timeline 3 is not in this server's history/);
    const past = switchpoint + 8 * 1024;
    const e2 = await psql(port, `START_REPLICATION ${lsnToString(past)} TIMELINE 1`);
    assert.match(e2.stderr, new RegExp(`ERROR:\\s+requested starting point ${lsnToString(past).replace('/', '\\/')} on timeline 1 is not in this server's history\\s+DETAIL:\\s+This server's history forked from timeline 1 at ${lsnToString(switchpoint).replace('/', '\\/')}\\.`));

    // A start exactly at the switch point: no COPY, only the next timeline's row, then the
    // command's own CommandComplete (psql prints its tag: what a promoted PostgreSQL 15 gives).
    const atSwitch = await psql(port, `START_REPLICATION ${lsnToString(switchpoint)} TIMELINE 1`);
    assert.equal(atSwitch.status, 0, atSwitch.stderr);
    assert.equal(atSwitch.stdout, `2|${lsnToString(switchpoint)}\nSTART_REPLICATION`);

    // pg_receivewal from the start of our WAL on timeline 1 (an empty .partial tells it where).
    const first = listSegments(walDir, SEG).filter((x) => x.tli === 1).map((x) => x.seg).sort((a, b) => a - b)[0]!;
    const out = path.join(root, 'recv');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, `${segmentFileName(1, first, SEG)}.partial`), '');
    const endpos = np.flushLsn;
    // pg_receivewal stops once it received past --endpos (endpos < received, strictly): one byte before our end.
    const rw = await run('pg_receivewal', ['-d', `host=127.0.0.1 port=${port} user=rep`, '-D', out, '--no-loop', '-E', lsnToString(endpos - 1), '-n', '-v'], 30_000);
    assert.equal(rw.code, 0, rw.stderr);
    assert.match(rw.stderr, /switched to timeline 2 at /, rw.stderr);

    // Byte-identical files.
    const same = (a: string, b: string, n?: number) => {
      const x = fs.readFileSync(a);
      const y = fs.readFileSync(b);
      assert.ok((n === undefined ? x.equals(y) : x.subarray(0, n).equals(y.subarray(0, n))), `${path.basename(a)} differs`);
    };
    same(path.join(out, '00000002.history'), path.join(walDir, '00000002.history'));
    const swSeg = segNo(switchpoint, SEG);
    for (let seg = first; seg < swSeg; seg++) same(path.join(out, segmentFileName(1, seg, SEG)), path.join(walDir, segmentFileName(1, seg, SEG)));
    const theirPartial = fs.readFileSync(path.join(out, `${segmentFileName(1, swSeg, SEG)}.partial`));
    same(path.join(out, `${segmentFileName(1, swSeg, SEG)}.partial`), path.join(walDir, `${segmentFileName(1, swSeg, SEG)}.partial`), switchpoint % SEG);
    assert.ok(theirPartial.subarray(switchpoint % SEG).every((b) => b === 0), 'pg_receivewal received nothing past the switch point on timeline 1');
    const lastComplete = segNo(endpos, SEG) - 1;
    assert.ok(lastComplete > swSeg, 'timeline 2 completed a segment after the switch segment');
    for (let seg = swSeg; seg <= lastComplete; seg++) same(path.join(out, segmentFileName(2, seg, SEG)), path.join(walDir, segmentFileName(2, seg, SEG)));

    // pg_waldump reads timeline 2 across the switch.
    const wd = await run('pg_waldump', ['-p', walDir, '-s', lsnToString(swSeg * SEG + 40), '-e', lsnToString(endpos), segmentFileName(2, swSeg, SEG), segmentFileName(2, segNo(endpos, SEG), SEG)]);
    assert.equal(wd.code, 0, wd.stderr);
    assert.ok(wd.stdout.includes('END_OF_RECOVERY tli 2; prev tli 1'));
  } finally {
    await np?.close().catch(() => undefined);
    await s?.close().catch(() => undefined);
    await p.close().catch(() => undefined);
  }
});
