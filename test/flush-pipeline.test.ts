// The walreceiver's flush rule (src/standby/flush-pipeline.ts): WAL in a segment file created,
// installed or renamed since the last flush is published as flushed only after the fdatasync of
// its file and then the fsync of pg_wal; WAL in a segment whose directory entry is already durable
// needs no directory fsync. Checked by recording, through the pipeline's injectable I/O hooks, the
// order of fdatasyncs, directory fsyncs and publications (counts and orderings, never time), on the
// synchronous path (live), the background path (catch-up batches), a wal-only `.partial` rename,
// and a failed background fdatasync (nothing published). Also: the segment-file module's one
// temp-name scheme and link-never-replaces install.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FlushPipeline, type FlushIo } from '../src/standby/flush-pipeline.js';
import { createSegmentFile, ensureSegment, installSegment, listSegments, removeTempSegments, SegmentPreparer, tempSegmentPath, TEMP_SEGMENT_PREFIX } from '../src/wal/segfile.js';
import { segmentFileName } from '../src/wal/segment.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
function newWalDir(): string {
  const d = tmpDir('walstream-flushrule-');
  dirs.push(d);
  return d;
}

/** I/O hooks that log each call in order (and can fail the next background fdatasync). */
function recordingIo(log: string[]): FlushIo & { failNextAsync: boolean } {
  const io = {
    failNextAsync: false,
    fdatasyncSync: (_fd: number) => void log.push('fdatasync'),
    fdatasync: async (_fd: number) => {
      if (io.failNextAsync) {
        io.failNextAsync = false;
        log.push('fdatasync-failed');
        throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
      }
      log.push('fdatasync');
    },
    fsyncDir: (_dir: string) => void log.push('fsyncDir'),
    fsyncDirAsync: async (_dir: string) => void log.push('fsyncDir'),
  };
  return io;
}

function pipeline(walDir: string, log: string[], mode: 'replica' | 'wal-only' = 'replica') {
  const io = recordingIo(log);
  const p = new FlushPipeline(
    { walDir, mode, walInitZero: true, directIo: false, io },
    {
      flushed: (target) => void log.push(`publish ${target}`),
      backgroundSettled: () => {},
      directBytes: () => {},
      warning: () => {},
    },
  );
  p.setIdentity(1, SEG);
  return { p, io };
}

const page = (n: number) => new Uint8Array(n).fill(0xab);

test('catch-up, synchronous flush: a new segment is fdatasynced, then pg_wal fsynced, then published; the next flush into it needs no directory fsync', async () => {
  const walDir = newWalDir();
  const log: string[] = [];
  const { p } = pipeline(walDir, log);
  const start = 5 * SEG;
  p.resetPositions(start, start);
  p.noteSenderWalEnd(start + 50 * SEG); // far behind: new segments are created sparse, without fsync
  await p.write(start, page(8192));
  assert.equal(p.writtenLsn, start + 8192);
  assert.equal(p.flushed, start, 'nothing flushed before the flush');
  p.flushNow(false);
  assert.deepEqual(log, ['fdatasync', 'fsyncDir', `publish ${start + 8192}`]);
  log.length = 0;
  await p.write(start + 8192, page(8192));
  p.flushNow(false);
  assert.deepEqual(log, ['fdatasync', `publish ${start + 16384}`], 'same segment: its directory entry is already durable');
  assert.ok(fs.existsSync(path.join(walDir, segmentFileName(1, 5, SEG))));
  await p.close();
});

test('catch-up, background batch across a segment boundary: both files fdatasynced, then pg_wal once, then one publication', async () => {
  const walDir = newWalDir();
  const log: string[] = [];
  const { p } = pipeline(walDir, log);
  const start = 3 * SEG + SEG / 2;
  p.resetPositions(start, start);
  p.noteSenderWalEnd(start + 50 * SEG);
  await p.write(start, page(SEG)); // the rest of segment 3 (new) and half of segment 4 (new)
  await p.flushBackground();
  await p.flushSettled(false);
  const publishAt = log.indexOf(`publish ${start + SEG}`);
  assert.ok(publishAt > 0, log.join(', '));
  assert.deepEqual(log.slice(0, publishAt), ['fdatasync', 'fdatasync', 'fsyncDir']);
  assert.equal(log.filter((e) => e.startsWith('publish')).length, 1, 'the settled flush had nothing left to publish twice');
  assert.equal(p.flushed, start + SEG);
  await p.close();
});

test('wal-only: a completed segment is renamed from .partial, and pg_wal is fsynced after the rename before it is published', async () => {
  const walDir = newWalDir();
  const log: string[] = [];
  const { p } = pipeline(walDir, log, 'wal-only');
  const start = 2 * SEG;
  p.resetPositions(start, start);
  // Live (not catching up): the new segment is created durable by segfile.ts itself.
  await p.write(start, page(4096));
  p.flushNow(false);
  assert.deepEqual(log, ['fdatasync', `publish ${start + 4096}`]);
  assert.ok(fs.existsSync(path.join(walDir, segmentFileName(1, 2, SEG) + '.partial')));
  log.length = 0;
  await p.write(start + 4096, page(SEG - 4096)); // completes segment 2
  p.flushNow(false);
  assert.deepEqual(log, ['fdatasync', 'fsyncDir', `publish ${start + SEG}`]);
  assert.ok(fs.existsSync(path.join(walDir, segmentFileName(1, 2, SEG))));
  assert.ok(!fs.existsSync(path.join(walDir, segmentFileName(1, 2, SEG) + '.partial')));
  await p.close();
});

test('a failed background fdatasync publishes nothing and is kept as the failure', async () => {
  const walDir = newWalDir();
  const log: string[] = [];
  const { p, io } = pipeline(walDir, log);
  const start = 7 * SEG;
  p.resetPositions(start, start);
  p.noteSenderWalEnd(start + 50 * SEG);
  await p.write(start, page(512 * 1024));
  io.failNextAsync = true;
  await p.flushBackground();
  await assert.rejects(p.flushSettled(false), /injected/);
  assert.ok(p.failure !== null);
  assert.equal(p.flushed, start);
  assert.ok(!log.some((e) => e.startsWith('publish')), log.join(', '));
  await p.close();
});

test('segment files: one temp-name scheme, install never replaces, short files are extended, temps removed', () => {
  const walDir = newWalDir();
  const tmp = tempSegmentPath(walDir, 9);
  assert.ok(path.basename(tmp).startsWith(`${TEMP_SEGMENT_PREFIX}${process.pid}.9.`));
  // A segment that exists is never replaced by an install.
  assert.equal(ensureSegment(walDir, 1, 9, SEG), true);
  const file = path.join(walDir, segmentFileName(1, 9, SEG));
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('keep'), 0, 4, 0);
  fs.closeSync(fd);
  fs.writeFileSync(tmp, Buffer.alloc(SEG));
  assert.equal(installSegment(tmp, file, SEG, 'zero', true), false);
  assert.equal(fs.readFileSync(file).subarray(0, 4).toString(), 'keep');
  assert.ok(!fs.existsSync(tmp));
  // A short file (a crash mid-creation) is extended, not replaced.
  const shortFile = path.join(walDir, segmentFileName(1, 10, SEG));
  fs.writeFileSync(shortFile, Buffer.from('head'));
  assert.equal(createSegmentFile(walDir, shortFile, 10, SEG, 'zero', true), true);
  assert.equal(fs.statSync(shortFile).size, SEG);
  assert.equal(fs.readFileSync(shortFile).subarray(0, 4).toString(), 'head');
  // The step-wise preparer (walwriter) uses the same scheme and leaves no temp behind.
  const prep = new SegmentPreparer(walDir, 1, 11, SEG, 256 * 1024);
  let steps = 0;
  while (!prep.step()) {
    steps++;
    assert.equal(fs.readdirSync(walDir).filter((n) => n.startsWith(`${TEMP_SEGMENT_PREFIX}${process.pid}.11.`)).length, 1);
  }
  assert.equal(steps, 3);
  assert.deepEqual(listSegments(walDir, SEG).map((s) => s.seg), [9, 10, 11]);
  fs.writeFileSync(tempSegmentPath(walDir, 12), 'x');
  assert.equal(removeTempSegments(walDir), 1);
  assert.equal(fs.readdirSync(walDir).filter((n) => n.startsWith(TEMP_SEGMENT_PREFIX)).length, 0);
});

test('wal-only, end of a timeline: the old timeline\'s incomplete segment stays .partial; the next timeline\'s first segment is written and flushed again from its start', async () => {
  const walDir = newWalDir();
  const log: string[] = [];
  const { p } = pipeline(walDir, log, 'wal-only');
  const start = 3 * SEG;
  const switchpoint = start + 8192 + 100;
  p.resetPositions(start, start);
  await p.write(start, page(switchpoint - start));
  await p.flushSettled(false);
  assert.equal(p.flushed, switchpoint);
  await p.endTimeline();
  const old = segmentFileName(1, 3, SEG);
  assert.ok(fs.existsSync(path.join(walDir, `${old}.partial`)), 'kept as .partial');
  assert.ok(!fs.existsSync(path.join(walDir, old)), 'not renamed: the segment is not complete');
  assert.equal(fs.statSync(path.join(walDir, `${old}.partial`)).size, SEG, 'full size');
  p.setIdentity(2, SEG);
  p.resetPositions(start, start);
  log.length = 0;
  const tli2 = new Uint8Array(SEG).fill(0xcd);
  await p.write(start, tli2);
  await p.flushSettled(false);
  assert.deepEqual(log.filter((l) => l.startsWith('publish')), [`publish ${start + SEG}`], 'the rewritten bytes below the old flush are flushed too');
  assert.ok(log.includes('fdatasync') && log.includes('fsyncDir'));
  const next = segmentFileName(2, 3, SEG);
  assert.ok(fs.readFileSync(path.join(walDir, next)).equals(Buffer.from(tli2)), 'complete: renamed to its final name');
  assert.equal(fs.readFileSync(path.join(walDir, `${old}.partial`)).subarray(0, switchpoint - start).every((b) => b === 0xab), true, 'the old timeline\'s bytes untouched');
  await p.close();
});
