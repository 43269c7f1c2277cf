// `walstream promote` and a `walstream standby` process: the command writes the `promote` signal
// file and signals the standby named by the pid file; the standby promotes in its own process,
// serves replication on --promote-port (psql's IDENTIFY_SYSTEM reports timeline 2), and after
// SIGTERM the directory opens as a primary on timeline 2 with every commit the old primary
// acknowledged. --promote-trigger-file (promote_trigger_file) does the same. Bad input gives one
// line on stderr: a missing directory, a primary's directory ("server is not in standby mode").

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { ROOT, walstream } from './helpers/bench-report.js';
import { psql } from './helpers/psql.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
const procs: ChildProcess[] = [];
after(() => {
  for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  dirs.forEach(rmrf);
});

/** `walstream standby …` as a child; resolves lines of stdout as they come. */
function standbyProc(args: string[]): { proc: ChildProcess; line: (re: RegExp) => Promise<string>; out: () => string } {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'walstream.js'), 'standby', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  const waiters: Array<() => void> = [];
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    waiters.splice(0).forEach((w) => w());
  });
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  proc.once('exit', () => waiters.splice(0).forEach((w) => w()));
  const line = (re: RegExp) => new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${out}`)), 60_000);
    const check = () => {
      const m = out.split('\n').find((l) => re.test(l));
      if (m !== undefined) {
        clearTimeout(t);
        resolve(m);
      } else if (proc.exitCode !== null || proc.signalCode !== null) {
        clearTimeout(t);
        reject(new Error(`standby exited: ${out}`));
      } else waiters.push(check);
    };
    check();
  });
  return { proc, line, out: () => out };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

test('walstream promote: the standby process promotes to timeline 2 and serves replication; --promote-trigger-file too', async () => {
  const root = tmpDir('walstream-promote-cli-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, users: { rep: 'pw' }, checkpointTimeoutMs: 0 });
  try {
    const conninfo = `host=127.0.0.1 port=${p.port} user=rep password=pw`;
    const s1 = standbyProc(['--data', path.join(root, 's1'), '--primary', conninfo, '--promote-port', '0', '--status-every-ms', '0']);
    const trigger = path.join(root, 'trigger');
    const s2 = standbyProc(['--data', path.join(root, 's2'), '--primary', conninfo, '--promote-trigger-file', trigger, '--status-every-ms', '0']);
    await Promise.all([s1.line(/"standby"/), s2.line(/"standby"/)]);
    for (let i = 0; i < 300; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i }), { synchronousCommit: i % 30 === 0 ? 'on' : 'off' });
    await p.flush();
    const digest = p.store.digest();
    await p.close();

    // walstream promote → the standby process (SIGUSR1 + the signal file).
    const r = await walstream(['promote', '--data', path.join(root, 's1')], 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'server promoted\n');
    const promoted = JSON.parse(await s1.line(/"promoted"/)) as { promoted: { timeline: number; port: number } };
    assert.equal(promoted.promoted.timeline, 2);
    assert.ok(!fs.existsSync(path.join(root, 's1', 'promote')), 'the signal file is consumed');
    const id = await psql(promoted.promoted.port, 'IDENTIFY_SYSTEM');
    assert.equal(id.status, 0, id.stderr);
    assert.equal(id.stdout.split('|')[1], '2', `IDENTIFY_SYSTEM timeline: ${id.stdout}`);

    // promote_trigger_file.
    fs.writeFileSync(trigger, '');
    assert.equal(JSON.parse(await s2.line(/"promoted"/)).promoted.timeline, 2);
    await Promise.all([stop(s1.proc), stop(s2.proc)]);
    for (const d of ['s1', 's2']) {
      const np = await Primary.open({ dataDir: path.join(root, d), checkpointTimeoutMs: 0 });
      try {
        assert.equal(np.timeline, 2);
        assert.equal(np.store.digest(), digest, `${d}: every acknowledged commit`);
      } finally {
        await np.close();
      }
    }

    // Bad input: one line each.
    const bad: Array<[string, RegExp]> = [
      [path.join(root, 'missing'), /is not a walstream data directory/],
      [path.join(root, 's1'), /^walstream: cannot promote: server is not in standby mode$/],
    ];
    for (const [dir, re] of bad) {
      const b = await walstream(['promote', '--data', dir]);
      assert.equal(b.code, 1);
      assert.equal(b.stdout, '');
      assert.match(b.stderr.split('\n')[0]!, re);
    }
  } finally {
    await p.close().catch(() => undefined);
  }
});
