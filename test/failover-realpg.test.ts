// Following a timeline switch against REAL PostgreSQL 15: a primary, a standby of it made with
// pg_basebackup -R, and two WAL archivers streaming from that standby (cascading): walstream's
// wal-only walreceiver and PostgreSQL's own pg_receivewal. The test writes WAL on the primary,
// stops it, promotes the standby (timeline 2) and writes more WAL there. Both archivers follow the
// switch on the same connection (CopyDone, next_tli/next_tli_startpos, TIMELINE_HISTORY 2,
// START_REPLICATION ... TIMELINE 2 at the switch point's segment start); then our history file,
// our timeline-1 segments (complete ones and the last one, kept as a full-size `.partial`) and our
// complete timeline-2 segments are byte-identical to pg_receivewal's.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Standby } from '../src/standby/standby.js';
import { readControl } from '../src/storage/control.js';
import { RM_XLOG_ID, XLOG_SWITCH } from '../src/wal/consts.js';
import { type Lsn, lsnToString, parseLsn } from '../src/wal/lsn.js';
import { type EndOfWal, FileSegmentSource, findFirstRecord, isZeroedEnd, type PageSource, tliOfSegment, XLogReader } from '../src/wal/reader.js';
import { readTimeLineHistory, type TimeLineHistoryEntry } from '../src/wal/timeline.js';
import { startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { pgBaseBackup, pgTempRoot, startPgNode, type PgNode } from './helpers/pgnode.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 16 * 1024 * 1024;
const dirs: string[] = [];
const nodes: Array<PgNode | PgCluster> = [];
let receivewal: ChildProcess | null = null;
let ours: Standby | null = null;

after(async () => {
  if (receivewal && receivewal.exitCode === null && receivewal.signalCode === null) {
    const exited = new Promise((r) => receivewal!.once('exit', r));
    receivewal.kill('SIGINT');
    await exited;
  }
  await ours?.close();
  for (const n of nodes) await n.stop();
  dirs.forEach(rmrf);
});

const SEGMENT_RE = /^[0-9A-F]{24}$/;
const files = (d: string, tli: number) => (fs.existsSync(d) ? fs.readdirSync(d) : []).filter((n) => n.startsWith(tli.toString(16).toUpperCase().padStart(8, '0'))).sort();
const complete = (d: string, tli: number) => files(d, tli).filter((n) => SEGMENT_RE.test(n));

function sameBytes(a: string, b: string, what: string): void {
  const x = fs.readFileSync(a);
  const y = fs.readFileSync(b);
  assert.equal(y.length, x.length, `${what}: size`);
  assert.ok(x.equals(y), `${what}: byte-identical to pg_receivewal's`);
}

test('wal-only walreceiver follows a promotion to timeline 2 like pg_receivewal, byte for byte', async () => {
  const primary = await startPgCluster({ hbaLines: ['host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'] });
  nodes.push(primary);
  primary.psql('CREATE TABLE t (i int, pad text)');
  const root = pgTempRoot('walstream-follow-');
  dirs.push(root);
  const s1Dir = path.join(root, 's1');
  pgBaseBackup(primary.port, s1Dir);
  const s1 = await startPgNode(s1Dir, root);
  nodes.push(s1);
  await waitFor(() => s1.psql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").trim() === '1', 30_000, 'the real standby to stream', 100);

  // Both archivers stream from the real standby (cascading).
  const work = tmpDir('walstream-follow-ours-');
  dirs.push(work);
  const pgDir = path.join(work, 'pg_receivewal');
  fs.mkdirSync(pgDir);
  let rwOut = '';
  receivewal = spawn(primary.bin('pg_receivewal'), ['-h', '127.0.0.1', '-p', String(s1.port), '-U', 'postgres', '-D', pgDir, '-w', '-v', '--no-loop'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  receivewal.stdout!.on('data', (d) => (rwOut += d));
  receivewal.stderr!.on('data', (d) => (rwOut += d));
  const ourDir = path.join(work, 'standby');
  const timelines: Array<{ tli: number; prevTli: number; switchpoint: number }> = [];
  ours = await Standby.open({ dataDir: ourDir, mode: 'wal-only', primaryConninfo: `host=127.0.0.1 port=${s1.port} user=postgres application_name=walstream_follow`, walRetrieveRetryIntervalMs: 200 });
  ours.on('timeline', (m: { tli: number; prevTli: number; switchpoint: number }) => timelines.push(m));
  const walDir = path.join(ourDir, 'pg_wal');
  await waitFor(() => ours!.receiverStatus().status === 'streaming', 15_000, 'our walreceiver to stream');
  primary.psql('INSERT INTO t VALUES (0, NULL)');
  await waitFor(() => files(pgDir, 1).some((n) => n.endsWith('.partial')), 15_000, `pg_receivewal to stream: ${rwOut}`);
  await waitFor(() => files(walDir, 1).some((n) => n.endsWith('.partial')), 15_000, 'our first .partial segment');
  // Both begin in the same segment (the standby's current one): from here on both have every byte.
  assert.deepEqual(files(walDir, 1), files(pgDir, 1), 'the same first segment');

  // Timeline 1: two complete segments, then a switch point in the middle of a segment.
  for (let r = 0; r < 2; r++) primary.psql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g; SELECT pg_switch_wal()");
  primary.psql("INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 2000) g");
  await primary.stop(); // fast shutdown: the standby receives the shutdown checkpoint first
  let last = '';
  await waitFor(() => {
    const now = s1.psql('SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()').trim();
    const [recv, replay] = now.split('|');
    const settled = recv === replay && now === last;
    last = now;
    return settled;
  }, 30_000, 'the standby to replay all it received', 200).catch((e: Error) => {
    throw new Error(`${e.message}: ${last}\n${s1.log().slice(-3000)}`);
  });
  s1.promote();
  assert.equal(s1.psql('SELECT pg_is_in_recovery()').trim(), 'f');
  const history2 = fs.readFileSync(path.join(s1Dir, 'pg_wal', '00000002.history'));
  const switchpoint = parseLsn(/^1\t([0-9A-F]+\/[0-9A-F]+)\t/.exec(history2.toString('latin1'))![1]!);
  assert.ok(switchpoint % SEG !== 0, 'the switch point is inside a segment');

  // Timeline 2: two complete segments.
  for (let r = 0; r < 2; r++) s1.psql("INSERT INTO t SELECT g, repeat('z', 200) FROM generate_series(1, 3000) g; SELECT pg_switch_wal()");
  const want2 = (n: string[]) => n.length >= 2;
  await waitFor(() => want2(complete(pgDir, 2)), 30_000, `pg_receivewal's timeline 2 segments: ${rwOut}`);
  await waitFor(() => complete(pgDir, 2).every((n) => fs.existsSync(path.join(walDir, n))), 30_000, 'our timeline 2 segments');
  assert.match(rwOut, new RegExp(`switched to timeline 2 at ${lsnToString(switchpoint).replace('/', '\\/')}`), 'pg_receivewal followed the switch');

  // The exchange: one event, to timeline 2 at the switch point; the control file follows.
  assert.deepEqual(timelines, [{ tli: 2, prevTli: 1, switchpoint }]);
  assert.equal(readControl(ourDir)!.tli, 2);
  assert.equal(ours.receiverStatus().received_tli, 2);
  assert.equal(ours.receiverStatus().receive_start_lsn, switchpoint - (switchpoint % SEG), 'timeline 2 streams from the segment start');

  // History file.
  sameBytes(path.join(pgDir, '00000002.history'), path.join(walDir, '00000002.history'), '00000002.history');
  assert.ok(fs.readFileSync(path.join(walDir, '00000002.history')).equals(history2), 'the server\'s history file');
  // Timeline 1: the same files (complete segments, the last one kept as .partial), same bytes.
  const tli1 = files(pgDir, 1);
  assert.deepEqual(files(walDir, 1), tli1);
  const partialName = tli1[tli1.length - 1]!;
  assert.equal(partialName, `00000001${(Math.floor(switchpoint / SEG / 256)).toString(16).toUpperCase().padStart(8, '0')}${(Math.floor(switchpoint / SEG) % 256).toString(16).toUpperCase().padStart(8, '0')}.partial`, 'the switch point\'s segment, .partial');
  assert.equal(fs.statSync(path.join(walDir, partialName)).size, SEG, 'the .partial is full size (padded with zeros)');
  for (const n of tli1) sameBytes(path.join(pgDir, n), path.join(walDir, n), n);
  assert.ok(tli1.filter((n) => SEGMENT_RE.test(n)).length >= 2, 'complete timeline 1 segments');
  // Timeline 2: every complete segment, from the switch point's segment on.
  const tli2 = complete(pgDir, 2);
  assert.equal(tli2[0], `00000002${partialName.slice(8, 24)}`, 'timeline 2 begins in the switch point\'s segment');
  for (const n of tli2) sameBytes(path.join(pgDir, n), path.join(walDir, n), n);
  assert.match(rwOut, new RegExp(`not renaming "${partialName.replace('.', '\\.')}", segment is not complete`), 'pg_receivewal kept the same .partial');

  // Replay's page source and reader rules across the switch, on our own pg_wal.
  readAcrossTheSwitch(walDir, readControl(ourDir)!.sysid, tli1[0]!, switchpoint);
});

/** Segment number of a segment file name (16 MiB segments). */
function segOf(name: string): number {
  return parseInt(name.slice(8, 16), 16) * (0x1_0000_0000 / SEG) + parseInt(name.slice(16, 24), 16);
}

/** A page source that shows each page through `patch` (a copy), recording the TLIs it served. */
class PatchedPages implements PageSource {
  readonly tlis: number[] = [];
  constructor(private readonly inner: PageSource, private readonly patch: (pageLsn: Lsn, page: Uint8Array) => void = () => {}) {}
  readPage(pageLsn: Lsn, needBytes: number): Uint8Array | null {
    const p = this.inner.readPage(pageLsn, needBytes);
    if (p === null) return null;
    const c = Uint8Array.from(p);
    this.patch(pageLsn, c);
    this.tlis.push(new DataView(c.buffer).getUint32(4, true));
    return c;
  }
}

function readToEnd(src: PageSource, history: TimeLineHistoryEntry[] | null, sysid: bigint, from: Lsn): { records: number; end: EndOfWal } {
  const opts = { segSize: SEG, sysid };
  const reader = new XLogReader(src, opts, findFirstRecord(src, opts, from)!, null);
  if (history !== null) reader.setHistory(history);
  let records = 0;
  for (;;) {
    const r = reader.readRecord();
    if (r.kind === 'wait') throw new Error('no limit was set');
    if (r.kind === 'end') return { records, end: r };
    records++;
    if (r.record.header.rmid === RM_XLOG_ID && (r.record.header.info & 0xf0) === XLOG_SWITCH) reader.skipToNextSegment();
  }
}

function readAcrossTheSwitch(walDir: string, sysid: bigint, firstSegName: string, switchpoint: Lsn): void {
  const history = readTimeLineHistory(walDir, 2);
  assert.deepEqual(history.map((e) => e.tli), [2, 1]);
  const switchSeg = Math.floor(switchpoint / SEG);
  assert.equal(tliOfSegment(switchSeg - 1, SEG, history), 1, 'segments below the switch point\'s are timeline 1\'s');
  assert.equal(tliOfSegment(switchSeg, SEG, history), 2, 'the switch point\'s segment is timeline 2\'s');
  const from = segOf(firstSegName) * SEG;

  // With the history: every record on both timelines, page TLIs 1 then 2 (never back), a clean end.
  const src = new PatchedPages(new FileSegmentSource(walDir, history, SEG));
  const all = readToEnd(src, history, sysid, from);
  assert.ok(isZeroedEnd(all.end.reason), `a clean end of WAL: ${all.end.message}`);
  assert.ok(all.end.lsn > switchpoint + SEG, 'read well past the switch point');
  assert.equal(src.tlis[0], 1);
  assert.equal(src.tlis[src.tlis.length - 1], 2);
  for (let i = 1; i < src.tlis.length; i++) assert.ok(src.tlis[i]! >= src.tlis[i - 1]!, 'page TLIs never decrease');

  // One timeline only (the old source): timeline 1's .partial ends in zeros at the switch point.
  const old = readToEnd(new FileSegmentSource(walDir, 1, SEG), null, sysid, from);
  assert.equal(old.end.lsn, switchpoint);
  assert.ok(isZeroedEnd(old.end.reason));
  assert.ok(old.records < all.records);

  // A timeline that is not in the followed history: "unexpected timeline ID".
  const only1 = readToEnd(new FileSegmentSource(walDir, history, SEG), readTimeLineHistory(walDir, 1), sysid, from);
  assert.equal(only1.end.reason, 'unexpected-timeline');
  assert.match(only1.end.message, /^unexpected timeline ID 2 in log segment 00000002[0-9A-F]{16}, offset \d+$/);
  assert.ok(only1.end.lsn >= switchpoint - (switchpoint % 8192) && only1.end.lsn < switchpoint + 8192 + 40, 'at the first timeline 2 page');

  // A page whose TLI goes back (1 after 2): "out-of-sequence timeline ID".
  const backAt = switchpoint - (switchpoint % 8192) + 2 * 8192;
  const back = readToEnd(new PatchedPages(new FileSegmentSource(walDir, history, SEG), (lsn, page) => {
    if (lsn === backAt) new DataView(page.buffer).setUint32(4, 1, true);
  }), history, sysid, from);
  assert.equal(back.end.reason, 'timeline-regression');
  assert.match(back.end.message, /^out-of-sequence timeline ID 1 \(after 2\) in log segment /);
  assert.ok(back.end.lsn >= backAt - 8192 && back.end.lsn <= backAt + 8192);
}
