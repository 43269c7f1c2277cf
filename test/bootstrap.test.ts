// Our own bootstrap, the PostgreSQL way: Standby.open on an empty directory and `walstream
// basebackup` take BASE_BACKUP with PROGRESS and a CRC32C manifest, check every file against the
// manifest while receiving (pg_verifybackup's checks), report progress, and never leave a
// half-written directory that opens as a standby. The command line: a progress bar on a
// pseudo-terminal (script(1)), plain lines when piped, one-line errors for bad options.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { WalstreamError } from '../src/errors.js';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { BASE_BACKUP_INVALID, STAGING_DIR, takeBaseBackup } from '../src/standby/basebackup-client.js';
import type { BaseBackupProgress } from '../src/standby/bootstrap-progress.js';
import { readControl } from '../src/storage/control.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/walstream.js');
const MIB = 1024 * 1024;
/** Values the big backup holds: 200 × 1 MiB. */
const BIG_VALUES = 200;

/** A failing command's exit code and stderr. */
async function exitOf(args: string[]): Promise<{ status: number; stderr: string }> {
  try {
    await run('node', args);
    return { status: 0, stderr: '' };
  } catch (e) {
    const x = e as { code?: number; stderr?: string };
    return { status: x.code ?? -1, stderr: x.stderr ?? '' };
  }
}

async function fill(p: Primary, values: number, bytes: number): Promise<number> {
  let lsn = 0;
  for (let i = 0; i < values; i += 8) {
    const lsns = await Promise.all(Array.from({ length: Math.min(8, values - i) }, (_, j) => p.transaction((tx) => tx.put('t', `k${i + j}`, Buffer.alloc(bytes, (i + j) & 0xff)), { synchronousCommit: 'off' })));
    lsn = Math.max(lsn, ...lsns);
  }
  await p.flush();
  return lsn;
}

test('a 200 MiB bootstrap: progress monotonic to the exact total, the manifest checked, the standby equal to the primary', async (t) => {
  const dir = tmpDir('walstream-boot-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0, maxStoreBytes: 512 * MIB });
  let s: Standby | null = null;
  t.after(async () => {
    await s?.close();
    await p.close();
    rmrf(dir);
  });
  const lsn = await fill(p, BIG_VALUES, MIB);
  const events: BaseBackupProgress[] = [];
  s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'rep' }, readerThreads: 0, onBaseBackupProgress: (e) => events.push(e) });
  const bb = s.baseBackup!;
  assert.ok(bb.archiveBytes > BIG_VALUES * MIB, `archive of ${bb.archiveBytes} bytes`);
  assert.equal(bb.filesVerified, 4, 'backup_label, WALSTREAM_VERSION, the control file and the snapshot checked against the manifest');
  assert.ok(events.length >= 2, `${events.length} progress events`);
  assert.ok(events[0]!.bytesTotal >= bb.announcedBytes, 'the size PROGRESS announced before the archive is the total from the first event on');
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i]!.bytesDone >= events[i - 1]!.bytesDone, 'bytesDone never decreases');
    assert.ok(events[i]!.bytesTotal >= events[i - 1]!.bytesTotal, 'bytesTotal never decreases');
  }
  for (const e of events) assert.ok(e.bytesDone <= e.bytesTotal && e.rateBytesPerSec >= 0);
  const last = events[events.length - 1]!;
  assert.equal(last.done, true);
  assert.equal(events.filter((e) => e.done).length, 1);
  assert.equal(last.bytesDone, bb.archiveBytes);
  assert.equal(last.bytesTotal, bb.archiveBytes, 'ends exactly at the total');
  assert.equal(last.etaMs, 0);
  assert.ok(bb.announcedBytes > 0 && bb.announcedBytes <= bb.archiveBytes, 'PROGRESS announced the size (in kB, without WAL)');
  assert.ok(fs.existsSync(path.join(dir, 's', 'backup_manifest')) && !fs.existsSync(path.join(dir, 's', STAGING_DIR)));
  await s.waitForReplay(lsn, 120_000);
  assert.equal(s.store!.digest(), p.store.digest());
});

test('a damaged file or manifest is refused, naming it, and leaves nothing that opens as a standby', async (t) => {
  const dir = tmpDir('walstream-boot-bad-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0 });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  await fill(p, 20, 1000);
  const conninfo = `host=127.0.0.1 port=${p.port} user=rep`;
  const cases: [string, object, RegExp][] = [
    ['file', { corruptFile: 'WALSTREAM_VERSION' }, /checksum mismatch for file "WALSTREAM_VERSION"/],
    ['manifest', { corruptManifest: true }, /backup_manifest: manifest checksum mismatch/],
  ];
  for (const [what, testHooks, re] of cases) {
    const d = path.join(dir, `s-${what}`);
    await assert.rejects(takeBaseBackup({ primaryConninfo: conninfo, dataDir: d, testHooks }), (e: unknown) => e instanceof WalstreamError && e.code === BASE_BACKUP_INVALID && re.test(e.message));
    assert.deepEqual(fs.readdirSync(d), [], `${what}: nothing left behind`);
    assert.equal(readControl(d), null);
  }
  // What a crash mid-backup leaves (files, no control file): refused as a standby; a new backup replaces it.
  const crashed = path.join(dir, 's-crashed');
  fs.mkdirSync(path.join(crashed, STAGING_DIR, 'checkpoints'), { recursive: true });
  fs.writeFileSync(path.join(crashed, STAGING_DIR, 'backup_label'), 'x');
  await assert.rejects(Standby.open({ dataDir: crashed, primaryConninfo: conninfo, readerThreads: 0 }), /not a walstream data directory/);
  const r = await takeBaseBackup({ primaryConninfo: conninfo, dataDir: crashed });
  assert.equal(r.filesVerified, 4);
  assert.ok(!fs.existsSync(path.join(crashed, STAGING_DIR)));
  const s = await Standby.open({ dataDir: crashed, primaryConninfo: conninfo, readerThreads: 0 });
  try {
    assert.equal(s.store!.digest(), p.store.digest());
  } finally {
    await s.close();
  }
});

test('walstream basebackup: a bar on a terminal, plain lines when piped, one-line errors for bad options', async (t) => {
  const dir = tmpDir('walstream-boot-cli-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0 });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  await fill(p, 40, 64 * 1024);
  const conninfo = `host=127.0.0.1 port=${p.port} user=rep`;
  // A pseudo-terminal: cli-progress draws its bar (cursor control, the bar's characters).
  // (Asynchronous children only while the primary runs in this process.)
  const tty = await run('script', ['-qfec', `node ${BIN} basebackup --primary '${conninfo}' --data ${path.join(dir, 'tty')} --progress`, '/dev/null'], { timeout: 120_000 });
  assert.match(tty.stdout, /basebackup \[[█░]+\] 100% \| [\d.]+\/[\d.]+ MiB/);
  assert.match(tty.stdout, /\x1b\[/, 'terminal control sequences');
  assert.match(tty.stdout, /"basebackup":\{/);
  // Piped: plain lines, the last one "done", no control sequences.
  const piped = await run('node', [BIN, 'basebackup', '--primary', conninfo, '--data', path.join(dir, 'piped'), '--progress']);
  const lines = piped.stderr.trim().split('\n');
  assert.ok(lines.length >= 1 && lines.every((l) => /^walstream basebackup: [\d.]+\/[\d.]+ MiB \(\d+%\), [\d.]+ MiB\/s, /.test(l)), piped.stderr);
  assert.match(lines[lines.length - 1]!, /\(100%\).*done$/);
  assert.doesNotMatch(piped.stderr, /\x1b/);
  const summary = JSON.parse(piped.stdout) as { basebackup: { filesVerified: number } };
  assert.equal(summary.basebackup.filesVerified, 4);
  // --quiet: nothing at all; the directory opens as a standby.
  const quiet = await run('node', [BIN, 'basebackup', '--primary', conninfo, '--data', path.join(dir, 'quiet'), '--quiet', '--max-rate', '100M', '--checkpoint', 'spread']);
  assert.equal(quiet.stdout + quiet.stderr, '');
  const s = await Standby.open({ dataDir: path.join(dir, 'quiet'), primaryConninfo: conninfo, readerThreads: 0 });
  try {
    assert.equal(s.store!.digest(), p.store.digest());
  } finally {
    await s.close();
  }
  // Bad options: one line naming the option and what it accepts, exit code 2.
  const bad: [string[], RegExp][] = [
    [['--max-rate', '10'], /--max-rate <rate>.*Expected a transfer rate in kB\/s from 32 to 1048576/],
    [['--max-rate', 'fast'], /--max-rate <rate>/],
    [['--wal', 'stream'], /--wal <method>.*fetch, none/],
    [['--checkpoint', 'slow'], /--checkpoint <mode>.*fast, spread/],
    [['--progress', '--quiet'], /--quiet.*--progress|--progress.*--quiet/],
  ];
  for (const [args, re] of bad) {
    const r = await exitOf([BIN, 'basebackup', '--primary', conninfo, '--data', path.join(dir, 'never'), ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  }
  const noPrimary = await exitOf([BIN, 'basebackup', '--data', path.join(dir, 'never')]);
  assert.equal(noPrimary.status, 2);
  assert.match(noPrimary.stderr, /--primary/);
  assert.ok(!fs.existsSync(path.join(dir, 'never')));
});
