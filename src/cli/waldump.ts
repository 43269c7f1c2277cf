// `walstream waldump`: decode walstream WAL (and frame PostgreSQL's) from a data directory, a
// pg_wal directory or one segment file, like pg_waldump; `--stats` counts records per rmgr and
// per record type the way `pg_waldump --stats[=record]` does.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { RM_WALSTREAM_ID, SIZE_OF_LONG_PHD, WALSTREAM_RECORD_NAMES, XLOG_PAGE_MAGIC, XLOG_SWITCH, validSegmentSize } from '../wal/consts.js';
import { type Lsn, lsnToPaddedString } from '../wal/lsn.js';
import { decodeCheckpointMainData, decodeTxnMainData } from '../wal/record.js';
import { FileSegmentSource, findFirstRecord, type WalRecord, XLogReader } from '../wal/reader.js';
import { listSegments, type SegmentEntry } from '../wal/segfile.js';
import { parseSegmentFileName } from '../wal/segment.js';

const BUILTIN_RMGRS = [
  'XLOG', 'Transaction', 'Storage', 'CLOG', 'Database', 'Tablespace', 'MultiXact', 'RelMap', 'Standby', 'Heap2', 'Heap',
  'Btree', 'Hash', 'Gin', 'Gist', 'Sequence', 'SPGist', 'BRIN', 'CommitTs', 'ReplicationOrigin', 'Generic', 'LogicalMessage',
];

function rmgrName(rmid: number): string {
  if (rmid < BUILTIN_RMGRS.length) return BUILTIN_RMGRS[rmid]!;
  return `custom${String(rmid).padStart(3, '0')}`;
}

function recordTypeName(rec: WalRecord): string {
  const info = rec.header.info & 0xf0;
  if (rec.header.rmid === RM_WALSTREAM_ID) return WALSTREAM_RECORD_NAMES[info] ?? `UNKNOWN (${rec.header.info.toString(16)})`;
  if (rec.header.rmid === 0 && info === XLOG_SWITCH) return 'SWITCH';
  return `UNKNOWN (${rec.header.info.toString(16)})`;
}

function describe(rec: WalRecord): string {
  const main = rec.bytes.subarray(rec.body.mainDataOffset, rec.body.mainDataOffset + rec.body.mainDataLength);
  const type = recordTypeName(rec);
  if (rec.header.rmid === RM_WALSTREAM_ID) {
    try {
      if (type === 'TXN') {
        const t = decodeTxnMainData(main, false);
        const tables = [...new Set(t.ops.map((o) => o.table))].join(',');
        return `TXN ops ${t.ops.length} (${t.ops.filter((o) => o.kind === 'put').length} put, ${t.ops.filter((o) => o.kind === 'delete').length} delete) tables ${tables}`;
      }
      if (type.startsWith('CHECKPOINT')) {
        const c = decodeCheckpointMainData(main);
        return `${type} redo ${lsnToPaddedString(c.redo)}; tli ${c.tli}; xid ${c.nextXid}; snapshot ${c.snapshotName}`;
      }
    } catch (e) {
      return `${type} (undecodable: ${(e as Error).message})`;
    }
  }
  return type;
}

export interface DumpTarget {
  walDir: string;
  segSize: number;
  tli: number;
  startLsn: Lsn;
  segments: SegmentEntry[];
}

/** Work out directory, segment size (from the first long page header), timeline and start. */
export function resolveTarget(target: string): DumpTarget {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch {
    throw Errors.walMissing(`"${target}" does not exist`);
  }
  let walDir: string;
  let first: string | null = null;
  if (st.isDirectory()) {
    walDir = fs.existsSync(path.join(target, 'pg_wal')) ? path.join(target, 'pg_wal') : target;
  } else {
    walDir = path.dirname(target);
    first = path.basename(target);
  }
  const names = fs.readdirSync(walDir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  const probe = first ?? names[0];
  if (probe === undefined) throw Errors.walMissing(`could not find any WAL file in "${walDir}"`);
  const fd = fs.openSync(path.join(walDir, probe), 'r');
  const hdr = Buffer.alloc(SIZE_OF_LONG_PHD);
  fs.readSync(fd, hdr, 0, SIZE_OF_LONG_PHD, 0);
  fs.closeSync(fd);
  if (hdr.readUInt16LE(0) !== XLOG_PAGE_MAGIC) throw Errors.walCorrupt(probe, `invalid magic number ${hdr.readUInt16LE(0).toString(16)}`);
  const segSize = hdr.readUInt32LE(32);
  if (!validSegmentSize(segSize)) throw Errors.walCorrupt(probe, `WAL segment size must be a power of two between 1 MB and 1 GB, but the header specifies ${segSize} bytes`);
  const parsed = parseSegmentFileName(probe, segSize)!;
  const segments = listSegments(walDir, segSize).filter((s) => !s.partial && s.tli === parsed.tli);
  return { walDir, segSize, tli: parsed.tli, startLsn: parsed.seg * segSize, segments };
}

export interface DumpStats {
  records: number;
  bytes: number;
  byRmgr: Record<string, { count: number; bytes: number }>;
  byRecord: Record<string, { count: number; bytes: number }>;
  firstLsn: string | null;
  endLsn: string;
  endMessage: string;
}

export function dumpWal(target: string, opts: { stats: boolean; limit?: number }, out: (line: string) => void): DumpStats {
  const t = resolveTarget(target);
  const src = new FileSegmentSource(t.walDir, t.tli, t.segSize);
  const start = findFirstRecord(src, { segSize: t.segSize, sysid: null }, t.startLsn);
  const stats: DumpStats = { records: 0, bytes: 0, byRmgr: {}, byRecord: {}, firstLsn: null, endLsn: '', endMessage: '' };
  if (start === null) throw Errors.walCorrupt(lsnToPaddedString(t.startLsn), 'could not find a valid record');
  const reader = new XLogReader(src, { segSize: t.segSize, sysid: null }, start, null);
  stats.firstLsn = lsnToPaddedString(start);
  for (;;) {
    const r = reader.readRecord();
    if (r.kind !== 'record') {
      stats.endLsn = lsnToPaddedString(r.lsn);
      stats.endMessage = r.kind === 'end' ? r.message : 'waiting';
      break;
    }
    const rec = r.record;
    const rm = rmgrName(rec.header.rmid);
    const type = recordTypeName(rec);
    stats.records++;
    stats.bytes += rec.header.totLen;
    (stats.byRmgr[rm] ??= { count: 0, bytes: 0 }).count++;
    stats.byRmgr[rm]!.bytes += rec.header.totLen;
    const rk = `${rm}/${type}`;
    (stats.byRecord[rk] ??= { count: 0, bytes: 0 }).count++;
    stats.byRecord[rk]!.bytes += rec.header.totLen;
    if (!opts.stats) {
      out(
        `rmgr: ${rm.padEnd(11)} len (rec/tot): ${String(rec.header.totLen).padStart(6)}/${String(rec.header.totLen).padStart(6)}, tx: ${String(rec.header.xid).padStart(10)}, lsn: ${lsnToPaddedString(rec.start)}, prev ${lsnToPaddedString(rec.header.prev)}, desc: ${describe(rec)}`,
      );
    }
    if (rec.header.rmid === 0 && (rec.header.info & 0xf0) === XLOG_SWITCH) reader.skipToNextSegment();
    if (opts.limit !== undefined && stats.records >= opts.limit) break;
  }
  src.close();
  if (opts.stats) {
    out(`${'Type'.padEnd(40)} ${'N'.padStart(10)} ${'Record size'.padStart(14)}`);
    out(`${'----'.padEnd(40)} ${'-'.padStart(10)} ${'-----------'.padStart(14)}`);
    for (const [k, v] of Object.entries(stats.byRecord).sort()) out(`${k.padEnd(40)} ${String(v.count).padStart(10)} ${String(v.bytes).padStart(14)}`);
    out(`${'Total'.padEnd(40)} ${String(stats.records).padStart(10)} ${String(stats.bytes).padStart(14)}`);
  }
  out(`end of WAL at ${stats.endLsn}: ${stats.endMessage}`);
  return stats;
}
