// The durability primitives (src/util/fsync.ts): the slow-disk setting's grammar, and that a
// process started with it applies it to every flush it makes (checked by what the module reports
// and counts, not by timing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FSYNC_DELAY_ENV, fdatasyncSync, flushCount, fsyncDir, parseFsyncDelay, writeFileDurably } from '../src/util/fsync.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const FSYNC_URL = new URL('../src/util/fsync.js', import.meta.url).href;

test('parseFsyncDelay: N, MIN-MAX, off, and precise errors', () => {
  assert.equal(parseFsyncDelay(undefined), null);
  assert.equal(parseFsyncDelay(''), null);
  assert.equal(parseFsyncDelay('0'), null);
  assert.deepEqual(parseFsyncDelay('500'), { minUs: 500, maxUs: 500 });
  assert.deepEqual(parseFsyncDelay(' 300-3000 '), { minUs: 300, maxUs: 3000 });
  for (const bad of ['abc', '-5', '3000-300', '1.5', '99999999']) {
    assert.throws(() => parseFsyncDelay(bad), (e: Error) => e.message.startsWith(`${FSYNC_DELAY_ENV}: expected microseconds as N or MIN-MAX`), bad);
  }
});

test('every flush goes through the module and is counted; off by default', () => {
  const dir = tmpDir('walstream-fsync-');
  try {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r+');
    const before = flushCount();
    try {
      fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fsyncDir(dir);
    assert.equal(flushCount() - before, 2);
  } finally {
    rmrf(dir);
  }
});

test('a process started with the slow-disk setting applies it (and refuses a bad one in one line)', () => {
  const script = `import(${JSON.stringify(FSYNC_URL)}).then((m) => { const fs = require('node:fs'); const fd = fs.openSync(process.argv[1], 'r'); m.fsyncSync(fd); m.fdatasync(fd).then(() => { console.log(JSON.stringify({ delay: m.fsyncDelay(), flushes: m.flushCount() })); }); })`;
  const dir = tmpDir('walstream-fsync-');
  try {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const ok = spawnSync(process.execPath, ['-e', script, file], { env: { ...process.env, [FSYNC_DELAY_ENV]: '100-200' }, encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { delay: { minUs: 100, maxUs: 200 }, flushes: 2 });
    const off = spawnSync(process.execPath, ['-e', script, file], { env: { ...process.env, [FSYNC_DELAY_ENV]: '' }, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(off.stdout), { delay: null, flushes: 2 });
    const bad = spawnSync(process.execPath, ['-e', script, file], { env: { ...process.env, [FSYNC_DELAY_ENV]: 'slow' }, encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /WALSTREAM_FSYNC_DELAY_US: expected microseconds as N or MIN-MAX \(0 to 10000000\), got "slow"/);
  } finally {
    rmrf(dir);
  }
});


test('writeFileDurably: replace renames over the old content; otherwise an existing file is kept (EEXIST); no temp file left', () => {
  const dir = tmpDir('walstream-fsync-');
  try {
    const file = path.join(dir, 'state');
    const tmp = path.join(dir, 'state.tmp');
    const before = flushCount();
    writeFileDurably(file, Buffer.from('one'), { tmp, replace: true });
    writeFileDurably(file, Buffer.from('two'), { tmp, replace: true });
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    assert.equal(flushCount() - before, 4, 'the file and its directory, twice');
    assert.throws(() => writeFileDurably(file, Buffer.from('three'), { tmp, replace: false }), (e: NodeJS.ErrnoException) => e.code === 'EEXIST');
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    fs.writeFileSync(tmp, 'stale');
    writeFileDurably(path.join(dir, 'new'), Buffer.from('x'), { tmp, replace: false });
    assert.deepEqual(fs.readdirSync(dir).sort(), ['new', 'state']);
  } finally {
    rmrf(dir);
  }
});
