// `walstream controldata DIR` (src/cli/controldata.ts), run as the real command: on a primary
// that was closed cleanly, on primaries killed with SIGKILL in the middle of a commit load, beside
// a live primary, on a closed in-process standby, and on directories that are not walstream data
// directories or have a damaged control file. Its end of valid WAL is where a reopened Primary's
// crash recovery ends (the same records, the same end), where PostgreSQL 15's pg_waldump stops
// reading after a clean shutdown, and the flushed WAL of an idle primary and of its standby;
// `--json` carries the same values. Bad input gives one line on stderr naming the problem and
// exit status 1.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { CONTROL_FILE, readControl } from '../src/storage/control.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { segmentFileName, segNo } from '../src/wal/segment.js';
import { PG_BIN, rmrf, tmpDir } from './helpers/tmp.js';

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
const cli = new URL('../../bin/walstream.js', import.meta.url).pathname;
const crashChild = new URL('./helpers/crash-child.js', import.meta.url).pathname;
const SEG = 1 << 20;

function controldata(dir: string, json = false): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'controldata', ...(json ? ['--json'] : []), dir], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the command in both forms; checks they agree; returns label → value text. */
function report(dir: string): Record<string, string> {
  const text = controldata(dir);
  assert.equal(text.status, 0, text.stderr);
  assert.equal(text.stderr, '');
  const fields: Record<string, string> = {};
  for (const line of text.stdout.trimEnd().split('\n')) {
    const label = line.slice(0, line.indexOf(':'));
    const head = `${label}:`;
    const column = Math.max(38, head.length);
    assert.equal(line.slice(0, column), head.padEnd(38), `pg_controldata's value column: ${JSON.stringify(line)}`);
    fields[label] = line.slice(column);
  }
  const json = controldata(dir, true);
  assert.equal(json.status, 0, json.stderr);
  const obj = JSON.parse(json.stdout) as Record<string, string | number>;
  assert.deepEqual(Object.keys(obj), Object.keys(fields));
  for (const [k, v] of Object.entries(obj)) assert.equal(String(v), fields[k], k);
  return fields;
}

test('a cleanly closed primary: shut down, checkpoint = REDO, end of WAL where recovery and pg_waldump end', async () => {
  const root = tmpDir('walstream-cd-');
  dirs.push(root);
  const dataDir = path.join(root, 'data');
  let p = await Primary.open({ dataDir, walSegmentSize: SEG, checkpointTimeoutMs: 0 });
  for (let i = 0; i < 2000; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i, pad: 'x'.repeat(600) }), { synchronousCommit: i % 100 === 0 ? 'on' : 'off' });
  await p.checkpoint();
  for (let i = 0; i < 50; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i }), { synchronousCommit: 'on' });
  await p.close();

  const f = report(dataDir);
  const control = readControl(dataDir)!;
  assert.equal(f['pg_control version number'], '1');
  assert.equal(f['Database cluster state'], 'shut down');
  assert.equal(f['Database system identifier'], control.sysid.toString());
  assert.equal(f['Latest checkpoint location'], lsnToString(control.checkpointLsn));
  assert.equal(f["Latest checkpoint's REDO location"], f['Latest checkpoint location'], 'a shutdown checkpoint is its own REDO point');
  assert.equal(f["Latest checkpoint's TimeLineID"], '1');
  assert.equal(f['Bytes per WAL segment'], String(SEG));
  assert.equal(f['Latest checkpoint record found'], 'yes');
  assert.equal(f['Records from REDO to end of WAL'], '1');
  assert.equal(f['Last valid WAL record location'], f['Latest checkpoint location']);
  assert.equal(f['Newest timeline (history files)'], '1');
  const end = parseLsn(f['End of valid WAL location']!);
  assert.ok(end > control.checkpointLsn);

  // PostgreSQL's pg_waldump stops at the same place (its segment size is read from the start
  // segment's header: later, preallocated segments are zeros).
  const wd = spawnSync(path.join(PG_BIN, 'pg_waldump'), ['-p', path.join(dataDir, 'pg_wal'), '-s', lsnToString(control.redoLsn), segmentFileName(1, segNo(control.redoLsn, SEG), SEG)], { encoding: 'utf8' });
  const m = /invalid record length at ([0-9A-F]+\/[0-9A-F]+): wanted 24, got 0/.exec(wd.stderr);
  assert.ok(m, wd.stderr);
  assert.equal(parseLsn(m[1]!), end);

  p = await Primary.open({ dataDir, walSegmentSize: SEG, checkpointTimeoutMs: 0 });
  try {
    assert.equal(p.recovery.endLsn, end, 'a reopened primary recovers to the printed end of WAL');
    assert.equal(p.recovery.recordsReplayed, 1);
    assert.equal(f['End of valid WAL reason'], p.recovery.endReason);
  } finally {
    await p.close();
  }
});

/** Starts the crash child, waits for `acks` acknowledged commits, kills it with SIGKILL. */
async function killMidLoad(dataDir: string, start: number, acks: number): Promise<void> {
  const cp = spawn(process.execPath, [crashChild, dataDir, String(start), '8', 'on', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  cp.stderr.on('data', (d) => (err += d));
  let seen = 0;
  const exited = new Promise<void>((r) => cp.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    cp.stdout.on('data', (d: Buffer) => {
      seen += (d.toString().match(/^ack /gm) ?? []).length;
      if (seen >= acks) resolve();
    });
    void exited.then(() => reject(new Error(`crash child exited early: ${err}`)));
  });
  cp.kill('SIGKILL');
  await exited;
}

test('primaries killed with SIGKILL mid-load: in production, and a reopened primary recovers exactly to the printed end of WAL', async () => {
  const root = tmpDir('walstream-cd-');
  dirs.push(root);
  const dataDir = path.join(root, 'data');
  let start = 0;
  for (const acks of [20, 400, 3000]) {
    await killMidLoad(dataDir, start, acks);
    start += 1_000_000;
    const f = report(dataDir);
    assert.equal(f['Database cluster state'], 'in production', `after ${acks} commits`);
    assert.equal(f['Latest checkpoint record found'], 'yes');
    const end = parseLsn(f['End of valid WAL location']!);
    const records = Number(f['Records from REDO to end of WAL']);
    const p = await Primary.open({ dataDir, walSegmentSize: SEG, checkpointTimeoutMs: 0 });
    try {
      assert.equal(lsnToString(p.recovery.endLsn), lsnToString(end), `after ${acks} commits: end of WAL`);
      assert.equal(p.recovery.recordsReplayed, records, `after ${acks} commits: records from REDO`);
      assert.equal(lsnToString(p.recovery.redoLsn), f["Latest checkpoint's REDO location"]);
      assert.equal(f['End of valid WAL reason'], p.recovery.endReason);
      assert.ok(records > 1, 'the kill left WAL after the checkpoint');
    } finally {
      await p.close();
    }
    // The command only read: the reopened primary's own state is what it prints now.
    assert.equal(report(dataDir)['Database cluster state'], 'shut down');
  }
});

test('beside a live primary (read-only) and on a closed standby: end of valid WAL = the flushed WAL', async () => {
  const root = tmpDir('walstream-cd-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0 });
  let s: Standby | null = null;
  try {
    for (let i = 0; i < 300; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i }), { synchronousCommit: 'off' });
    s = await Standby.open({ dataDir: path.join(root, 's'), primaryConninfo: { inProcess: p, applicationName: 's' }, readerThreads: 0 });
    for (let i = 0; i < 300; i++) await p.transaction((tx) => tx.put('t', `k${i}`, { i, again: true }), { synchronousCommit: 'off' });
    const end = await p.flush();
    await s.waitForReplay(end, 30_000);
    const live = report(p.dataDir);
    assert.equal(live['Database cluster state'], 'in production');
    assert.equal(live['End of valid WAL location'], lsnToString(end), 'an idle primary\'s WAL ends at its flush position');
    await s.close();
    s = null;
    const sb = report(path.join(root, 's'));
    assert.equal(sb['Database cluster state'], 'shut down in recovery');
    assert.equal(sb['End of valid WAL location'], lsnToString(end), 'the standby received everything the primary flushed');
    assert.equal(sb['Database system identifier'], live['Database system identifier']);
    assert.ok(parseLsn(sb['Minimum recovery ending location']!) <= end);
    assert.equal(p.get('t', 'k0') !== undefined, true, 'the primary kept running');
  } finally {
    await s?.close();
    await p.close();
  }
});

test('bad input: one line on stderr naming the problem, exit status 1, no stack trace', async () => {
  const root = tmpDir('walstream-cd-');
  dirs.push(root);
  const good = path.join(root, 'good');
  const p = await Primary.open({ dataDir: good, walSegmentSize: SEG, checkpointTimeoutMs: 0 });
  await p.close();
  const copy = (name: string): string => {
    const d = path.join(root, name);
    fs.cpSync(good, d, { recursive: true });
    return d;
  };
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'x');
  const empty = path.join(root, 'empty');
  fs.mkdirSync(empty);
  const pgLike = path.join(root, 'pg');
  fs.mkdirSync(path.join(pgLike, 'global'), { recursive: true });
  fs.writeFileSync(path.join(pgLike, 'global', 'pg_control'), Buffer.alloc(8192));
  const flipped = copy('flipped');
  const ctl = fs.readFileSync(path.join(flipped, CONTROL_FILE));
  ctl[30] ^= 0x01;
  fs.writeFileSync(path.join(flipped, CONTROL_FILE), ctl);
  const short = copy('short');
  fs.truncateSync(path.join(short, CONTROL_FILE), 100);
  const noWal = copy('nowal');
  fs.rmSync(path.join(noWal, 'pg_wal'), { recursive: true });

  const cases: Array<[string, RegExp]> = [
    [path.join(root, 'missing'), /"[^"]*missing" is not a walstream data directory: no such file or directory$/],
    [file, /"[^"]*a-file" is not a walstream data directory: it is not a directory$/],
    [empty, /"[^"]*empty" is not a walstream data directory: it has no walstream\.control$/],
    [pgLike, /"[^"]*pg" is not a walstream data directory: it is a PostgreSQL data directory \(read it with pg_controldata\)$/],
    [flipped, /control file "[^"]*flipped\/walstream\.control" is damaged: incorrect checksum$/],
    [short, /control file "[^"]*short\/walstream\.control" is damaged: size is 100 bytes, expected 256$/],
    [noWal, /"[^"]*nowal" is not a walstream data directory: pg_wal is missing$/],
  ];
  for (const [dir, want] of cases) {
    for (const json of [false, true]) {
      const r = controldata(dir, json);
      assert.equal(r.status, 1, `${dir}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n');
      assert.equal(lines.length, 2, `one line: ${JSON.stringify(r.stderr)}`);
      assert.equal(lines[1], '');
      assert.ok(lines[0]!.startsWith('walstream controldata: '), lines[0]);
      assert.match(lines[0]!, want);
    }
  }
  // No argument: commander's usage error, non-zero.
  const none = spawnSync(process.execPath, [cli, 'controldata'], { encoding: 'utf8' });
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /missing required argument 'dir'/);
  // The good directory still reads.
  assert.equal(report(good)['Database cluster state'], 'shut down');
});
