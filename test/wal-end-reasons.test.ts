// The reader's typed end-of-WAL reasons (src/wal/reader.ts EndOfWalReason): WAL built by the
// inserter in memory (a small record, one spanning four pages, two more), then damaged one way per
// reason, the way PostgreSQL's xlogreader.c checks it; each read must end at the expected LSN with
// exactly that reason (asserted by the code, never by message text). Also: a clean end is a zeroed
// end (isZeroedEnd), a damaged tail is not, and crash recovery reports the code (endReasonCode, in
// primary-crash.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XLOG_BLCKSZ, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER } from '../src/wal/consts.js';
import { WalInserter } from '../src/wal/insert.js';
import { type EndOfWal, type EndOfWalReason, isZeroedEnd, type PageSource, XLogReader } from '../src/wal/reader.js';
import { buildTxnRecord, recordCrc } from '../src/wal/record.js';
import { XLogCtl } from '../src/wal/xlogctl.js';

const SEG = 1 << 20;
const SYSID = 4242n;
const PAGES = 8;

interface Wal {
  img: Uint8Array;
  recs: Array<{ start: number; end: number }>;
}

function buildWal(): Wal {
  const ctl = XLogCtl.create(32 * XLOG_BLCKSZ, SEG, SYSID, 1, SEG);
  const ins = new WalInserter(ctl, SEG, 0);
  const recs: Array<{ start: number; end: number }> = [];
  const enc = new TextEncoder();
  for (const vlen of [100, 20_000, 60, 60]) {
    const rec = buildTxnRecord(1000 + recs.length, ins.prevRecord, 1, [{ kind: 'put', table: 't', key: enc.encode(`k${recs.length}`), keyIsString: true, value: new Uint8Array(vlen).fill(7) }]);
    recs.push(ins.insert(rec, rec.length));
  }
  const img = new Uint8Array(PAGES * XLOG_BLCKSZ);
  for (let i = 0; i < PAGES; i++) {
    const off = ctl.ringOffset(SEG + i * XLOG_BLCKSZ);
    img.set(ctl.ring.subarray(off, off + XLOG_BLCKSZ), i * XLOG_BLCKSZ);
  }
  return { img, recs };
}

/** Pages of `img` (from LSN SEG on); null past it. */
function source(img: Uint8Array): PageSource {
  return {
    readPage(pageLsn: number): Uint8Array | null {
      const off = pageLsn - SEG;
      if (off < 0 || off + XLOG_BLCKSZ > img.length) return null;
      return img.subarray(off, off + XLOG_BLCKSZ);
    },
  };
}

function readToEnd(img: Uint8Array, from: number, sysid: bigint | null = SYSID): { records: number; end: EndOfWal } {
  const r = new XLogReader(source(img), { segSize: SEG, sysid }, from, null);
  let records = 0;
  for (;;) {
    const x = r.readRecord();
    if (x.kind === 'record') {
      records++;
      continue;
    }
    assert.equal(x.kind, 'end');
    return { records, end: x as EndOfWal };
  }
}

const dv = (img: Uint8Array) => new DataView(img.buffer, img.byteOffset, img.byteLength);
const pageOff = (page: number) => page * XLOG_BLCKSZ;
const lsnOff = (lsn: number) => lsn - SEG;

test('the undamaged WAL ends at zeros after its four records (zero-length, a zeroed end)', () => {
  const { img, recs } = buildWal();
  assert.ok(recs[1]!.end - recs[1]!.start > 2 * XLOG_BLCKSZ, 'the second record spans pages');
  const { records, end } = readToEnd(img, recs[0]!.start);
  assert.equal(records, 4);
  assert.equal(end.reason, 'zero-length');
  assert.equal(end.lsn, recs[3]!.end);
  assert.ok(isZeroedEnd(end.reason));
});

interface Case {
  reason: EndOfWalReason;
  /** Damage the image; returns where reading starts (default: the first record). */
  damage: (img: Uint8Array, recs: Wal['recs']) => number | void;
  /** Records read before the end, and where it is reported. */
  records: number;
  at: (recs: Wal['recs']) => number;
  sysid?: bigint;
}

const cases: Case[] = [
  { reason: 'zero-page', damage: () => SEG + 6 * XLOG_BLCKSZ, records: 0, at: () => SEG + 6 * XLOG_BLCKSZ },
  { reason: 'missing', damage: () => SEG + 20 * XLOG_BLCKSZ, records: 0, at: () => SEG + 20 * XLOG_BLCKSZ },
  { reason: 'bad-magic', damage: (img) => dv(img).setUint16(pageOff(1), 0xdead, true), records: 1, at: (r) => r[1]!.start },
  { reason: 'bad-info-bits', damage: (img) => dv(img).setUint16(pageOff(1) + 2, dv(img).getUint16(pageOff(1) + 2, true) | 0x8000, true), records: 1, at: (r) => r[1]!.start },
  { reason: 'pageaddr-mismatch', damage: (img) => dv(img).setUint32(pageOff(1) + 8, SEG + 100 * XLOG_BLCKSZ, true), records: 1, at: (r) => r[1]!.start },
  { reason: 'timeline-regression', damage: (img) => dv(img).setUint32(pageOff(1) + 4, 0, true), records: 1, at: (r) => r[1]!.start },
  { reason: 'missing-long-header', damage: (img) => dv(img).setUint16(2, dv(img).getUint16(2, true) & ~XLP_LONG_HEADER, true), records: 0, at: (r) => r[0]!.start },
  { reason: 'sysid-mismatch', damage: () => {}, sysid: SYSID + 1n, records: 0, at: (r) => r[0]!.start },
  { reason: 'segsize-mismatch', damage: (img) => dv(img).setUint32(32, 2 * SEG, true), records: 0, at: (r) => r[0]!.start },
  { reason: 'blcksz-mismatch', damage: (img) => dv(img).setUint32(36, 4096, true), records: 0, at: (r) => r[0]!.start },
  { reason: 'unexpected-contrecord', damage: () => SEG + XLOG_BLCKSZ, records: 0, at: () => SEG + XLOG_BLCKSZ },
  { reason: 'missing-contrecord', damage: (img) => dv(img).setUint16(pageOff(1) + 2, dv(img).getUint16(pageOff(1) + 2, true) & ~XLP_FIRST_IS_CONTRECORD, true), records: 1, at: (r) => r[1]!.start },
  { reason: 'contrecord-length', damage: (img) => dv(img).setUint32(pageOff(1) + 16, dv(img).getUint32(pageOff(1) + 16, true) + 1, true), records: 1, at: (r) => r[1]!.start },
  { reason: 'short-record', damage: (img, r) => dv(img).setUint32(lsnOff(r[3]!.end), 10, true), records: 4, at: (r) => r[3]!.end },
  { reason: 'record-too-long', damage: (img, r) => dv(img).setUint32(lsnOff(r[0]!.start), 0x7fffffff, true), records: 0, at: (r) => r[0]!.start },
  { reason: 'bad-rmid', damage: (img, r) => void (img[lsnOff(r[0]!.start) + 17] = 100), records: 0, at: (r) => r[0]!.start },
  { reason: 'prev-link', damage: (img, r) => dv(img).setUint32(lsnOff(r[2]!.start) + 8, r[2]!.start, true), records: 2, at: (r) => r[2]!.start },
  { reason: 'crc', damage: (img, r) => void (img[lsnOff(r[2]!.end) - 9] ^= 0x40), records: 2, at: (r) => r[2]!.start },
  {
    reason: 'bad-body',
    damage: (img, r) => {
      // Main data declared longer than the record (xl_tot_len), with a CRC that matches: only the
      // body decoding catches it.
      const o = lsnOff(r[0]!.start);
      const totLen = dv(img).getUint32(o, true);
      assert.equal(img[o + 24], 0xff, 'a short main-data header');
      img[o + 25] = 255;
      dv(img).setUint32(o + 20, recordCrc(img.subarray(o, o + totLen), totLen), true);
    },
    records: 0,
    at: (r) => r[0]!.start,
  },
];

for (const c of cases) {
  test(`end-of-WAL reason '${c.reason}' from crafted damage`, () => {
    const { img, recs } = buildWal();
    const from = c.damage(img, recs) ?? recs[0]!.start;
    const { records, end } = readToEnd(img, from, c.sysid ?? SYSID);
    assert.equal(end.reason, c.reason, end.message);
    assert.equal(records, c.records);
    assert.equal(end.lsn, c.at(recs));
    assert.equal(isZeroedEnd(end.reason), c.reason === 'zero-page');
    if (c.reason === 'sysid-mismatch') assert.equal(end.walSysid, SYSID);
    else assert.equal(end.walSysid, undefined);
  });
}

test('every reason is produced by a case above', () => {
  const all: EndOfWalReason[] = [
    'missing', 'zero-page', 'bad-magic', 'bad-info-bits', 'pageaddr-mismatch', 'timeline-regression', 'missing-long-header',
    'sysid-mismatch', 'segsize-mismatch', 'blcksz-mismatch', 'unexpected-contrecord', 'missing-contrecord', 'contrecord-length',
    'zero-length', 'short-record', 'record-too-long', 'bad-rmid', 'prev-link', 'crc', 'bad-body',
  ];
  const covered = new Set<EndOfWalReason>([...cases.map((c) => c.reason), 'zero-length']);
  assert.deepEqual(all.filter((r) => !covered.has(r)), []);
});
