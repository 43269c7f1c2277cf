// Offline replay profile (`walstream profile replay <datadir|pg_wal dir|segment file>`): reads a
// WAL range with the validating reader (src/wal/reader.ts), redoes every record into a scratch
// store (the startup worker's redoRecord, src/wal/replay.ts) and reports apply time per record
// kind and size band, records/s and MB/s, beside the CRC-32C limit of the same bytes measured in
// the same run (src/wal/crc32c.ts). Runs on the calling thread, synchronously between progress
// callbacks; the scratch store is dropped at the end. Nothing is written to disk.
//
// The CRC limit: each record's bytes are staged into one buffer; whenever it is full (and at the
// end) its CRC-32C is computed in one call and timed, so the limit is measured over exactly the
// bytes replayed, in large chunks (the fastest way to compute it). Its time is kept out of the
// replay time. Records of other resource managers (a PostgreSQL primary's WAL) are read and
// CRC-checked but not redone: walstream redoes only its own records.

import { Errors } from '../errors.js';
import { resolveTarget } from '../cli/waldump.js';
import { SharedStore } from '../storage/store.js';
import { crc32c, crc32cImplementation } from '../wal/crc32c.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { FileSegmentSource, findFirstRecord, XLogReader } from '../wal/reader.js';
import { redoRecord } from '../wal/replay.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { costRows, RECORD_KIND_SLOTS, recordKindName, recordKindSlot, SIZE_BANDS, sizeBandOf, type KindCost } from './record-kind.js';

/** Record bytes staged for one timed CRC-32C call, bytes. */
const CRC_STAGE_BYTES = 16 * 1024 * 1024;
/** Progress callbacks every this many records. */
const PROGRESS_EVERY_RECORDS = 4096;
/** The scratch store's limit, bytes (grown as needed, as a standby's store). */
const SCRATCH_STORE_BYTES = 1024 * 1024 * 1024;

export interface OfflineProfileOptions {
  /** Start at the first record at or after this LSN (default: the first record of the first segment). */
  from?: Lsn;
  /** Stop before the first record starting at or after this LSN (default: the end of valid WAL). */
  to?: Lsn;
  onProgress?: (p: { records: number; bytesDone: number; bytesTotal: number }) => void;
}

export interface OfflineProfileResult {
  profile: 'replay';
  target: string;
  /** The first record replayed and where replay stopped (`Lsn` numbers). */
  startLsn: Lsn;
  endLsn: Lsn;
  /** Why replay stopped: the --to position, or the end of valid WAL (the reader's message). */
  endReason: string;
  records: number;
  /** Sum of the records' total lengths (xl_tot_len), bytes. */
  bytes: number;
  /** Read, check, decode and redo, CRC staging excluded, ms. */
  replayMs: number;
  /** Redo alone (redoRecord), ms. */
  applyMs: number;
  recordsPerSec: number;
  replayMbPerSec: number;
  /** CRC-32C of the same record bytes (`bytes` equals `bytes` above), in chunks of up to 16 MiB. */
  crc: { implementation: string; bytes: number; ms: number; mbPerSec: number };
  /** replay MB/s / CRC-32C MB/s. */
  ratioToCrc: number | null;
  byKind: KindCost[];
  /** Redo time per record kind (all size bands), µs as ms with decimals. */
  kindLatency: Array<{ kind: string } & LatencySummary>;
}

const now = () => performance.now();
/** The CRCs computed, xor-ed (kept so that no call can be dropped as unused). */
export let crcSink = 0;

/** Replay the WAL range of `target` into a scratch store and profile it. */
export function profileReplay(target: string, o: OfflineProfileOptions = {}): OfflineProfileResult {
  if (o.from !== undefined && o.to !== undefined && o.to <= o.from) throw Errors.invalidOption('--to', `must be past --from (${lsnToString(o.from)}), got ${lsnToString(o.to)}`);
  const t = resolveTarget(target);
  const src = new FileSegmentSource(t.walDir, t.tli, t.segSize);
  try {
    const first = Math.max(o.from ?? t.startLsn, t.startLsn);
    const start = findFirstRecord(src, { segSize: t.segSize, sysid: null }, first);
    if (start === null) throw Errors.walCorrupt(lsnToString(first), 'could not find a valid record at or after it');
    const lastSeg = t.segments.length > 0 ? t.segments[t.segments.length - 1]!.seg : Math.floor(start / t.segSize);
    const bytesTotal = Math.max(1, (o.to ?? (lastSeg + 1) * t.segSize) - start);
    const reader = new XLogReader(src, { segSize: t.segSize, sysid: null }, start, null);
    const store = SharedStore.create({ maxStoreBytes: SCRATCH_STORE_BYTES });
    const costs = new Float64Array(RECORD_KIND_SLOTS * SIZE_BANDS.length * 3);
    const perKind = new Map<number, LatencyHistogram>();
    const stage = new Uint8Array(CRC_STAGE_BYTES);
    let staged = 0;
    let crcMs = 0;
    let crcBytes = 0;
    const flushCrc = () => {
      if (staged === 0) return;
      const c0 = now();
      crcSink ^= crc32c(stage, 0, staged);
      crcMs += now() - c0;
      crcBytes += staged;
      staged = 0;
    };
    let records = 0;
    let bytes = 0;
    let applyMs = 0;
    let endReason = '';
    let end = start;
    const t0 = now();
    for (;;) {
      const r = reader.readRecord();
      if (r.kind !== 'record') {
        endReason = r.kind === 'end' ? `end of valid WAL: ${r.message}` : 'end of the WAL present';
        end = r.lsn;
        break;
      }
      const rec = r.record;
      if (o.to !== undefined && rec.start >= o.to) {
        endReason = `--to ${lsnToString(o.to)}`;
        end = rec.start;
        break;
      }
      const len = rec.header.totLen;
      const a0 = now();
      const out = redoRecord(store, rec);
      const dt = now() - a0;
      applyMs += dt;
      const slot = recordKindSlot(rec.header.rmid, rec.header.info);
      const c = (slot * SIZE_BANDS.length + sizeBandOf(len)) * 3;
      costs[c] = costs[c]! + 1;
      costs[c + 1] = costs[c + 1]! + dt;
      if (dt > costs[c + 2]!) costs[c + 2] = dt;
      let h = perKind.get(slot);
      if (h === undefined) perKind.set(slot, (h = new LatencyHistogram()));
      h.recordMs(dt);
      if (out.kind === 'switch') reader.skipToNextSegment();
      // Stage the record's bytes for the CRC limit (a record longer than the stage: in pieces).
      for (let off = 0; off < len;) {
        const n = Math.min(len - off, CRC_STAGE_BYTES - staged);
        stage.set(rec.bytes.subarray(off, off + n), staged);
        staged += n;
        off += n;
        if (staged === CRC_STAGE_BYTES) flushCrc();
      }
      records++;
      bytes += len;
      end = rec.end;
      if (records % PROGRESS_EVERY_RECORDS === 0) o.onProgress?.({ records, bytesDone: Math.min(bytesTotal, rec.end - start), bytesTotal });
    }
    const wall = now() - t0;
    flushCrc();
    const replayMs = Math.max(wall - crcMs, 1e-6);
    o.onProgress?.({ records, bytesDone: bytesTotal, bytesTotal });
    const mb = (b: number, ms: number) => (ms > 0 ? +(b / 1e6 / (ms / 1000)).toFixed(2) : 0);
    const replayMbPerSec = mb(bytes, replayMs);
    const crcMbPerSec = mb(crcBytes, crcMs);
    return {
      profile: 'replay',
      target,
      startLsn: start,
      endLsn: end,
      endReason,
      records,
      bytes,
      replayMs: +replayMs.toFixed(3),
      applyMs: +applyMs.toFixed(3),
      recordsPerSec: Math.round(records / (replayMs / 1000)),
      replayMbPerSec,
      crc: { implementation: crc32cImplementation(), bytes: crcBytes, ms: +crcMs.toFixed(3), mbPerSec: crcMbPerSec },
      ratioToCrc: crcMbPerSec > 0 ? +(replayMbPerSec / crcMbPerSec).toFixed(3) : null,
      byKind: costRows(costs, null),
      kindLatency: [...perKind.entries()].sort((a, b) => a[0] - b[0]).map(([slot, h]) => ({ kind: recordKindName(slot), ...h.summary() })),
    };
  } finally {
    src.close();
  }
}
