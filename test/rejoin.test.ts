// The old primary rejoins after a failover. A primary P (a child process, SIGKILLed) with a
// synchronous standby s1 (in this process); s1 is promoted (timeline 2) after the kill.
// 1. P killed when it had written nothing past what s1 had: Standby.open of P's own directory
//    makes it a standby of s1 (control file "in archive recovery", consistent at its end of WAL),
//    it streams timeline 1 up to the switch point and follows timeline 2; its store digest is
//    s1's and every acknowledged commit is there.
// 2. P killed after commits at synchronous_commit=local that s1 never got (s1 was stopped): P's
//    WAL goes past the fork point. Standby.open refuses with WS_REJOIN_DIVERGED naming the fork
//    point and P's end of WAL, leaving the directory as it was; with rebuildIfDiverged the
//    directory is moved aside (kept, named in Standby.rejoin) and rebuilt from a base backup of
//    s1: digest equal, P's local-only commits gone, every acknowledged commit there.
// 3. The same through `walstream rejoin`: one error line without the flag (exit 1), then
//    --rebuild-if-diverged prints the aside path and a JSON line; `Standby.open` of the rebuilt
//    directory then follows s1.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WalstreamError } from '../src/errors.js';
import type { Primary } from '../src/primary/primary.js';
import { DbState, readControl } from '../src/storage/control.js';
import { PID_FILE } from '../src/storage/datadir.js';
import { Standby } from '../src/standby/standby.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { type Ack, FailoverPrimary, killFailoverChildren } from './helpers/failover-proc.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const WAIT_MS = 60_000;
/** Commits P makes at synchronous_commit=local after s1 stopped (the divergent ones). */
const LOCAL_COMMITS = 40;
const dirs: string[] = [];
after(() => {
  killFailoverChildren();
  dirs.forEach(rmrf);
});

const conninfo = (port: number, name: string) => ({ host: '127.0.0.1', port, user: 'rep', applicationName: name });
const conninfoText = (port: number) => `host=127.0.0.1 port=${port} user=rep application_name=old`;

interface Failover {
  root: string;
  pdir: string;
  s1: Standby;
  np: Primary;
  acked: Ack[];
  switchpoint: number;
  /** P's last local-only commit (diverged runs), else 0. */
  localEnd: number;
}

/** P with s1; some acknowledged commits; then (diverged) s1 stops and P commits locally; P killed; s1 promoted. */
async function failover(tag: string, diverge: boolean): Promise<Failover> {
  const root = tmpDir(`walstream-rejoin-${tag}-`);
  dirs.push(root);
  const pdir = path.join(root, 'p');
  const s1dir = path.join(root, 's1');
  const prim = new FailoverPrimary(pdir, 0, 2);
  const port = Number((await prim.line('ready ')).split(' ')[1]);
  let s1 = await Standby.open({ dataDir: s1dir, primaryConninfo: conninfo(port, 's1'), readerThreads: 0, walRetrieveRetryIntervalMs: 100 });
  prim.send('go');
  await prim.until(() => prim.acks.length >= 50, '50 acknowledged commits');
  prim.send('stop');
  const idle = Number((await prim.line('idle ')).split(' ')[1]);
  await waitFor(() => s1.flushLsn >= idle, WAIT_MS, 's1 to have all of P\'s WAL');
  let localEnd = 0;
  if (diverge) {
    await s1.close();
    prim.send(`async ${LOCAL_COMMITS}`);
    localEnd = Number((await prim.line('local ')).split(' ')[1]);
  }
  await prim.kill();
  if (diverge) s1 = await Standby.open({ dataDir: s1dir, primaryConninfo: conninfo(port, 's1'), readerThreads: 0, walRetrieveRetryIntervalMs: 100 });
  const np = await s1.promote({ port: 0, checkpointTimeoutMs: 0 });
  const m = /^1\t([0-9A-F]+\/[0-9A-F]+)\t/.exec(fs.readFileSync(path.join(s1dir, 'pg_wal', '00000002.history'), 'latin1'));
  const switchpoint = parseLsn(m![1]!);
  if (diverge) assert.ok(localEnd > switchpoint, 'P wrote past the fork point');
  return { root, pdir, s1, np, acked: [...prim.acks], switchpoint, localEnd };
}

async function closeAll(f: Failover, ...standbys: Array<Standby | null>): Promise<void> {
  for (const s of standbys) await s?.close().catch(() => undefined);
  await f.np.close().catch(() => undefined);
  await f.s1.close().catch(() => undefined);
}

/** New commits on the new primary reach `s`; its store is the new primary's, with every acknowledged commit. */
async function followsNewPrimary(f: Failover, s: Standby): Promise<void> {
  for (let i = 0; i < 100; i++) await f.np.transaction((tx) => tx.put('t', `after-${i}`, { n: i }), { synchronousCommit: 'local' });
  await s.waitForReplay(f.np.flushLsn, WAIT_MS);
  assert.equal(s.timeline, 2);
  assert.equal(s.receiverStatus().received_tli, 2);
  assert.equal(s.store!.digest(), f.np.store.digest(), "the rejoined directory's store is the new primary's");
  for (const a of f.acked) assert.equal((s.get('t', a.key) as { n: number } | undefined)?.n, a.n, `acknowledged ${a.key}`);
  assert.equal(s.get('t', 'local-0'), undefined, 'nothing past the fork point');
}

test('an old primary killed before it wrote past the fork point rejoins as a standby of the promoted one', async () => {
  const f = await failover('clean', false);
  let old: Standby | null = null;
  try {
    assert.equal(readControl(f.pdir)!.state, DbState.InProduction);
    old = await Standby.open({ dataDir: f.pdir, primaryConninfo: conninfo(f.np.port!, 'old'), readerThreads: 0 });
    const r = old.rejoin!;
    assert.equal(r.wasPrimary, true);
    assert.equal(r.diverged, false);
    assert.equal(r.upstreamTli, 2);
    assert.equal(r.forkLsn, f.switchpoint);
    assert.ok(r.endOfWal <= f.switchpoint, `end of WAL ${lsnToString(r.endOfWal)} at or before the fork ${lsnToString(f.switchpoint)}`);
    assert.equal(r.movedAside, null);
    assert.equal(old.baseBackup, null, 'no base backup: its own WAL and snapshot');
    const c = readControl(f.pdir)!;
    assert.equal(c.state, DbState.InArchiveRecovery, 'the control file says standby');
    assert.ok(c.minRecoveryPoint >= r.endOfWal);
    await followsNewPrimary(f, old);
    assert.equal(readControl(f.pdir)!.tli, 2);
  } finally {
    await closeAll(f, old);
  }
});

test('an old primary that committed past the fork point is refused, then rebuilt with rebuildIfDiverged (moved aside)', async () => {
  const f = await failover('api', true);
  let old: Standby | null = null;
  try {
    const before = fs.readFileSync(path.join(f.pdir, 'walstream.control'));
    let err: WalstreamError | null = null;
    await assert.rejects(Standby.open({ dataDir: f.pdir, primaryConninfo: conninfo(f.np.port!, 'old'), readerThreads: 0 }), (e: unknown) => {
      err = e as WalstreamError;
      return e instanceof WalstreamError && e.code === 'WS_REJOIN_DIVERGED';
    });
    const e = err as unknown as WalstreamError;
    assert.match(e.message, new RegExp(`ends at [0-9A-F]+/[0-9A-F]+, past the fork point ${lsnToString(f.switchpoint)}$`));
    const end = parseLsn(/ends at (\S+),/.exec(e.message)![1]!);
    assert.ok(end >= f.localEnd, `its end of WAL ${lsnToString(end)} covers its last local commit ${lsnToString(f.localEnd)}`);
    assert.match(e.hint ?? '', /rebuildIfDiverged/);
    assert.ok(fs.readFileSync(path.join(f.pdir, 'walstream.control')).equals(before), 'the directory is left as it was');
    assert.ok(!fs.existsSync(path.join(f.pdir, PID_FILE)));

    old = await Standby.open({ dataDir: f.pdir, primaryConninfo: conninfo(f.np.port!, 'old'), readerThreads: 0, rebuildIfDiverged: true });
    const r = old.rejoin!;
    assert.equal(r.diverged, true);
    assert.equal(r.endOfWal, end);
    assert.equal(r.forkLsn, f.switchpoint);
    assert.ok(r.movedAside !== null && r.movedAside.startsWith(`${f.pdir}.diverged-`), String(r.movedAside));
    dirs.push(r.movedAside);
    assert.ok(fs.readFileSync(path.join(r.movedAside, 'walstream.control')).equals(before), 'the old contents are kept aside');
    assert.notEqual(old.baseBackup, null, 'rebuilt from a base backup');
    await followsNewPrimary(f, old);
  } finally {
    await closeAll(f, old);
  }
});

test('walstream rejoin: one error line when diverged; --rebuild-if-diverged moves it aside and rebuilds', async () => {
  const f = await failover('cli', true);
  let old: Standby | null = null;
  try {
    await f.s1.close(); // (only its readers: the primary owns the directory)
    const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const args = ['rejoin', '--data', f.pdir, '--primary', conninfoText(f.np.port!)];
    // (Async: the new primary in this process must keep serving while the child runs.)
    const run = (extra: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [main, ...args, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.stderr.on('data', (d) => (stderr += d));
      c.once('close', (status) => resolve({ status, stdout, stderr }));
    });
    const usage = spawnSync(process.execPath, [main, 'rejoin', '--data', f.pdir], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.equal(usage.stderr.trim(), "walstream: required option '--primary <conninfo>' not specified");
    const refused = await run([]);
    assert.equal(refused.status, 1, refused.stderr);
    const lines = refused.stderr.trim().split('\n');
    assert.match(lines[0]!, new RegExp(`^walstream: data directory "${f.pdir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" has diverged from timeline 2: its WAL on timeline 1 ends at [0-9A-F]+/[0-9A-F]+, past the fork point ${lsnToString(f.switchpoint)}$`));
    assert.ok(!/\n\s+at /.test(refused.stderr), 'no stack trace');
    assert.equal(readControl(f.pdir)!.state, DbState.InProduction, 'left as it was');

    const rebuilt = await run(['--rebuild-if-diverged']);
    assert.equal(rebuilt.status, 0, rebuilt.stderr);
    const out = JSON.parse(rebuilt.stdout.trim().split('\n').pop()!) as { rejoined: { diverged: boolean; movedAside: string; rebuilt: boolean; forkLsn: string; timeline: number } };
    assert.equal(out.rejoined.diverged, true);
    assert.equal(out.rejoined.rebuilt, true);
    assert.equal(out.rejoined.forkLsn, lsnToString(f.switchpoint));
    dirs.push(out.rejoined.movedAside);
    assert.ok(rebuilt.stderr.includes(`moved the diverged data directory aside to "${out.rejoined.movedAside}"`), rebuilt.stderr);
    assert.equal(readControl(out.rejoined.movedAside)!.state, DbState.InProduction, 'the old directory, kept');
    assert.equal(readControl(f.pdir)!.state, DbState.ShutDownInRecovery, 'a standby directory, shut down');

    old = await Standby.open({ dataDir: f.pdir, primaryConninfo: conninfo(f.np.port!, 'old'), readerThreads: 0 });
    await followsNewPrimary(f, old);
  } finally {
    await closeAll(f, old);
  }
});
