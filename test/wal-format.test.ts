// WAL written by walstream's inserter + walwriter is read by PostgreSQL 15's pg_waldump from the
// first record to the last, across pages and segments, and by our own reader.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { XLogCtl, XC_FLUSHED, XC_STOP, XC_WRITE_REQUEST } from '../src/wal/xlogctl.js';
import { WalInserter } from '../src/wal/insert.js';
import { buildTxnRecord, type TxnOp } from '../src/wal/record.js';
import { FileSegmentSource, XLogReader } from '../src/wal/reader.js';
import { crc32c } from '../src/wal/crc32c.js';
import { parseLsn, lsnToString } from '../src/wal/lsn.js';
import { segmentFileName } from '../src/wal/segment.js';
import { tmpDir, rmrf, PG_BIN } from './helpers/tmp.js';
import { dumpWal } from '../src/cli/waldump.js';
import { prng as rng } from './helpers/prng.js';

const dirs: string[] = [];
after(() => { if (!process.env.KEEP) dirs.forEach(rmrf); else console.log("kept", dirs); });


async function writeWal(walDir: string, segSize: number, records: number, seed: number, bigMax: number): Promise<{ end: number; count: number }> {
  const start = segSize;
  const ctl = XLogCtl.create(64 * 8192, segSize, 7711262697068326132n, 1, start);
  const w = new Worker(new URL('../src/primary/walwriter.js', import.meta.url), {
    workerData: { handle: ctl.handle, walDir, walWriterDelayMs: 5, walWriterFlushAfterBytes: 1 << 20, commitDelayUs: 0, commitSiblings: 5, spinIterations: 100 },
  });
  const ins = new WalInserter(ctl, start, 0);
  const r = rng(seed);
  let end = start;
  for (let i = 0; i < records; i++) {
    const ops: TxnOp[] = [];
    const n = 1 + Math.floor(r() * 4);
    for (let j = 0; j < n; j++) {
      const big = r() < 0.05;
      const vlen = big ? 8192 + Math.floor(r() * bigMax) : Math.floor(r() * 200);
      const value = new Uint8Array(vlen).map((_, k) => (k * 31 + i) & 0xff);
      const key = new TextEncoder().encode(`k${Math.floor(r() * 1000)}`);
      ops.push(r() < 0.2 ? { kind: 'delete', table: 't', key, keyIsString: true } : { kind: 'put', table: r() < 0.5 ? 't' : 'u', key, keyIsString: true, value });
    }
    const rec = buildTxnRecord(1000 + i, ins.prevRecord, 848733672855183, ops);
    end = ins.insert(rec, rec.length).end;
  }
  ctl.advance(XC_WRITE_REQUEST, end);
  ctl.wakeWalWriter();
  while (ctl.load(XC_FLUSHED) < end) await new Promise((res) => setTimeout(res, 5));
  Atomics.store(ctl.i32, XC_STOP, 1);
  ctl.wakeWalWriter();
  await new Promise((res) => w.once('exit', res));
  return { end, count: records };
}

test('CRC-32C check value', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
});

test('LSN text form', () => {
  assert.equal(lsnToString(parseLsn('1/7FD0FA98')), '1/7FD0FA98');
  assert.equal(lsnToString(0x3001d60), '0/3001D60');
  assert.equal(segmentFileName(2, parseLsn('1/7FD0FA98') / (16 << 20) | 0, 16 << 20), '00000002000000010000007F');
});

for (const segSize of [1 << 20, 16 << 20]) {
  test(`pg_waldump reads every record of a mixed workload (segment ${segSize >> 20} MiB)`, async () => {
    const dir = tmpDir();
    dirs.push(dir);
    const walDir = path.join(dir, 'pg_wal');
    fs.mkdirSync(walDir);
    const { end, count } = await writeWal(walDir, segSize, segSize === 1 << 20 ? 600 : 400, segSize, segSize === 1 << 20 ? 300_000 : 1_000_000);
    const segs = fs.readdirSync(walDir).filter((n) => /^[0-9A-F]{24}$/.test(n));
    // The WAL written spans several segments (the seeded workload decides how many; the walwriter
    // may have prepared more ahead, depending on how fast this disk is).
    const lastSeg = Math.floor((end - 1) / segSize);
    assert.ok(lastSeg >= 2, `the WAL spans several segments (1 to ${lastSeg})`);
    for (let s = 1; s <= lastSeg; s++) assert.ok(segs.includes(segmentFileName(1, s, segSize)), `segment ${s} written`);
    for (const s of segs) assert.equal(fs.statSync(path.join(walDir, s)).size, segSize, 'segments are full size');
    // our reader
    const src = new FileSegmentSource(walDir, 1, segSize);
    const rd = new XLogReader(src, { segSize, sysid: 7711262697068326132n }, segSize + 40, null);
    let n = 0;
    for (;;) {
      const r = rd.readRecord();
      if (r.kind !== 'record') {
        assert.equal(r.kind, 'end');
        assert.match((r as { message: string }).message, /wanted 24, got 0/);
        break;
      }
      n++;
    }
    src.close();
    assert.equal(n, count);
    assert.equal(rd.nextLsn, end);
    // pg_waldump from the first record to the end
    // Name the first segment: with -p alone pg_waldump takes the segment size from whichever file
    // readdir returns first, which may be a preallocated (still zero) one.
    const first = path.join(walDir, segmentFileName(1, 1, segSize));
    const last = path.join(walDir, segmentFileName(1, Math.floor(end / segSize), segSize));
    const res = spawnSync(path.join(PG_BIN, 'pg_waldump'), ['--stats', first, last], { encoding: 'utf8' });
    // The only error is the normal end of WAL, exactly where we stopped writing.
    assert.equal(res.stderr.trim(), `pg_waldump: error: error in WAL record at ${lsnToString(rd.prevLsn)}: invalid record length at ${lsnToString(end)}: wanted 24, got 0`);
    const m = /custom130\s+(\d+)/.exec(res.stdout);
    assert.ok(m, res.stdout);
    assert.equal(Number(m![1]), count);
    // walstream waldump agrees
    const stats = dumpWal(walDir, { stats: true }, () => {});
    assert.equal(stats.byRmgr['custom130']!.count, count);
  });
}
