// Physical replication slots (PostgreSQL 15's slot.c, slotfuncs.c and the WAL-retention rules of
// xlog.c). The slot table lives in a SharedArrayBuffer: the primary's thread creates it
// (ReplicationSlots.open restores pg_replslot/ from disk) and every walsender worker maps it
// (ReplicationSlots over the same handle) to create, drop, read, acquire and advance slots. Files:
// pg_replslot/<name>/state in PostgreSQL 15's own format (ReplicationSlotOnDisk, CRC-32C), written
// to a temp file, fsynced and renamed, like SaveSlotToPath/CreateSlotOnDisk. Nothing to stop: a
// slot is words in shared memory plus its directory; a walsender releases what it holds when its
// session ends (releaseSession), the primary does it for a worker that died.
//
// DEV DOCS
// Layout: a header (SH_* byte offsets) and maxReplicationSlots entries of SLOT_ENTRY_BYTES (SE_*
// offsets). SH_ALLOC_LOCK is ReplicationSlotAllocationLock: held for create, drop, copy, save and
// invalidation, including their file I/O (short: a 200-byte file and two fsyncs). SE_LOCK guards
// one entry's fields (walsenders advance restart_lsn under it). SH_CHANGE_SEQ is bumped and
// notified whenever a slot is released or dropped (DROP_REPLICATION_SLOT … WAIT sleeps on it).
// SH_REDO_LSN is the last checkpoint's redo point, published by the primary's checkpoint hook
// before it computes what WAL to keep: RESERVE_WAL takes it, publishes the slot, and re-reads it
// (a checkpoint that moved it in between may not have seen the slot: take the new one and retry).
//
// PostgreSQL facts kept (checked against a PostgreSQL 15 server):
//   * state file: magic 0x1051CA1, CRC-32C of bytes 8..199, version 2, length 184, then
//     ReplicationSlotPersistentData (name[64], database, persistency, xmin, catalog_xmin,
//     restart_lsn, invalidated_at, confirmed_flush, two_phase_at, two_phase, plugin[64]).
//   * errors: 42710 `replication slot "s" already exists`; 42704 `replication slot "s" does not
//     exist`; 55006 `replication slot "s" is active for PID n`; 42602/42622 invalid names; 53400
//     `all replication slots are in use`; 55000 `cannot copy a replication slot that doesn't
//     reserve WAL`.
//   * READ_REPLICATION_SLOT: unknown slot → one all-NULL row; no WAL reserved → physical|NULL|NULL.
//   * restart_lsn follows the standby's reported flush (walstream never moves it backwards);
//     RESERVE_WAL sets it to the last checkpoint's redo LSN. Dirty slots are written at checkpoints
//     (a crash can only leave restart_lsn behind, which keeps more WAL, never less).
//   * temporary slots belong to their session (active_pid stays set) and vanish with it; at start
//     any slot that is not persistent is removed.
//   * copy (pg_copy_physical_replication_slot): the new slot's positions are the source slot's,
//     installed under the allocation lock — never a fresh reservation from WAL that may be gone.
//   * retention (KeepLogSeg, GetWALAvailability, pg_get_replication_slots): see the functions
//     below. A slot whose WAL falls behind max_slot_wal_keep_size is invalidated at a checkpoint
//     (restart_lsn → NULL, invalidated_at = the old restart_lsn) and shows wal_status `lost`.
//     Acquiring it fails with PostgreSQL 18's clear error (55000 `can no longer access replication
//     slot "s"`); PostgreSQL 15 would stream and fail on the removed segment.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { SpinLock } from '../storage/latch.js';
import { assert } from '../util/assert.js';
import { crc32c } from '../wal/crc32c.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { fsyncDir, listSegments } from '../wal/segfile.js';
import { segNo, segStart } from '../wal/segment.js';
import { validateSlotName } from './protocol/commands.js';
import { fsyncSync } from '../util/fsync.js';

export const SLOT_DIR = 'pg_replslot';

// ---- on-disk format (ReplicationSlotOnDisk, PostgreSQL 15) ----
export const SLOT_MAGIC = 0x1051ca1;
export const SLOT_VERSION = 2;
export const SLOT_FILE_BYTES = 200;
export const SLOT_DATA_BYTES = 184;
/** The CRC covers the file from the version field to the end. */
export const SLOT_CHECKSUMMED_FROM = 8;
export const SD_MAGIC = 0;
export const SD_CHECKSUM = 4;
export const SD_VERSION = 8;
export const SD_LENGTH = 12;
export const SD_NAME = 16; // NameData[64]
export const SD_DATABASE = 80;
export const SD_PERSISTENCY = 84;
export const SD_XMIN = 88;
export const SD_CATALOG_XMIN = 92;
export const SD_RESTART_LSN = 96;
export const SD_INVALIDATED_AT = 104;
export const SD_CONFIRMED_FLUSH = 112;
export const SD_TWO_PHASE_AT = 120;
export const SD_TWO_PHASE = 128;
export const SD_PLUGIN = 129; // NameData[64]
export const NAMEDATALEN = 64;

export const SlotPersistency = { PERSISTENT: 0, EPHEMERAL: 1, TEMPORARY: 2 } as const;

// ---- shared memory (byte offsets) ----
export const SH_ALLOC_LOCK = 0; // Int32 spinlock (ReplicationSlotAllocationLock)
export const SH_CHANGE_SEQ = 4; // Int32 bumped + notified on release/drop
export const SH_REDO_LSN = 8; // Int64 last checkpoint's redo LSN
export const SH_HEADER_BYTES = 16;
export const SE_LOCK = 0; // Int32 spinlock for this entry
export const SE_IN_USE = 4; // Int32
export const SE_ACTIVE_PID = 8; // Int32 walsender id using the slot, 0 = none
export const SE_PERSISTENCY = 12; // Int32 SlotPersistency
export const SE_DIRTY = 16; // Int32 1 = changed since last written
export const SE_NAME_LEN = 20; // Int32 bytes in SE_NAME
export const SE_XMIN = 24; // Uint32
export const SE_CATALOG_XMIN = 28; // Uint32
export const SE_RESTART_LSN = 32; // Int64
export const SE_INVALIDATED_AT = 40; // Int64
export const SE_GENERATION = 48; // Int32 bumped whenever the entry is (re)used
export const SE_NAME = 56; // bytes[NAMEDATALEN]
export const SLOT_ENTRY_BYTES = SE_NAME + NAMEDATALEN;

export interface ReplicationSlotsHandle {
  sab: SharedArrayBuffer;
  maxReplicationSlots: number;
  /** Absolute data directory (pg_replslot/ lives there). */
  dataDir: string;
}

/** One slot as stored. */
export interface SlotData {
  index: number;
  name: string;
  persistency: number;
  temporary: boolean;
  activePid: number;
  restartLsn: Lsn;
  invalidatedAt: Lsn;
  xmin: number;
  catalogXmin: number;
  dirty: boolean;
}

/** WAL retention settings (PostgreSQL's max_wal_size, max_slot_wal_keep_size, wal_keep_size). */
export interface WalRetention {
  segSize: number;
  maxWalSizeBytes: number;
  /** -1 = unlimited (PostgreSQL's default). */
  maxSlotWalKeepSizeBytes: number;
  walKeepSizeBytes: number;
}

export type WalStatus = 'reserved' | 'extended' | 'unreserved' | 'lost';
type WalAvailability = 'invalid' | 'reserved' | 'extended' | 'unreserved' | 'removed';

/** pg_replication_slots, physical columns. */
export interface ReplicationSlotRow {
  slot_name: string;
  plugin: null;
  slot_type: 'physical';
  datoid: null;
  database: null;
  temporary: boolean;
  active: boolean;
  active_pid: number | null;
  xmin: number | null;
  catalog_xmin: null;
  restart_lsn: string | null;
  confirmed_flush_lsn: null;
  wal_status: WalStatus | null;
  safe_wal_size: number | null;
  two_phase: false;
}

export interface SlotInvalidation {
  name: string;
  /** The restart_lsn the slot lost (now its invalidated_at). */
  restartLsn: Lsn;
  /** Walsender that held it (to be terminated, as PostgreSQL does), or 0. */
  activePid: number;
}

// ---------------------------------------------------------------------------------------------
// Retention rules (pure)

/** ConvertToXSegs: whole segments in a size (PostgreSQL computes it from MB; same result for whole MB). */
function segsOf(bytes: number, segSize: number): number {
  return Math.floor(bytes / segSize);
}

/**
 * KeepLogSeg: the oldest segment to keep given the current position `recptr` and the slots'
 * minimum restart_lsn, capped by max_slot_wal_keep_size and extended to wal_keep_size. Returns
 * min(`from`, that segment).
 */
export function keepLogSeg(recptr: Lsn, slotMinLsn: Lsn | null, r: WalRetention, from: number): number {
  const currSeg = segNo(recptr, r.segSize);
  let seg = currSeg;
  if (slotMinLsn !== null && slotMinLsn !== 0 && slotMinLsn < recptr) {
    seg = segNo(slotMinLsn, r.segSize);
    if (r.maxSlotWalKeepSizeBytes >= 0) {
      const slotKeepSegs = segsOf(r.maxSlotWalKeepSizeBytes, r.segSize);
      if (currSeg - seg > slotKeepSegs) seg = currSeg - slotKeepSegs;
    }
  }
  if (r.walKeepSizeBytes > 0) {
    const keepSegs = segsOf(r.walKeepSizeBytes, r.segSize);
    if (currSeg - seg < keepSegs) seg = currSeg <= keepSegs ? 1 : currSeg - keepSegs;
  }
  return Math.min(seg, from);
}

/** GetWALAvailability for a slot's restart_lsn. `oldestSegNo` is the oldest segment still on disk. */
export function walAvailability(targetLsn: Lsn, ctx: { currentLsn: Lsn; slotMinLsn: Lsn | null; oldestSegNo: number; retention: WalRetention }): WalAvailability {
  if (targetLsn === 0) return 'invalid';
  const r = ctx.retention;
  const currSeg = segNo(ctx.currentLsn, r.segSize);
  const oldestSlotSeg = keepLogSeg(ctx.currentLsn, ctx.slotMinLsn, r, currSeg);
  const keepSegs = segsOf(r.maxWalSizeBytes, r.segSize) + 1;
  const oldestSegMaxWalSize = currSeg > keepSegs ? currSeg - keepSegs : 1;
  const targetSeg = segNo(targetLsn, r.segSize);
  if (targetSeg >= oldestSlotSeg) return targetSeg >= oldestSegMaxWalSize ? 'reserved' : 'extended';
  if (targetSeg >= ctx.oldestSegNo) return 'unreserved';
  return 'removed';
}

/** pg_get_replication_slots' wal_status and safe_wal_size for one slot. */
export function slotWalStatus(
  s: Pick<SlotData, 'restartLsn' | 'invalidatedAt' | 'activePid'>,
  ctx: { currentLsn: Lsn; slotMinLsn: Lsn | null; oldestSegNo: number; retention: WalRetention },
): { walStatus: WalStatus | null; safeWalSize: number | null } {
  let avail: WalAvailability;
  if (s.restartLsn === 0) avail = s.invalidatedAt !== 0 ? 'removed' : walAvailability(0, ctx);
  else avail = walAvailability(s.restartLsn, ctx);
  let walStatus: WalStatus | null;
  switch (avail) {
    case 'invalid':
      walStatus = null;
      break;
    case 'removed':
      // Still streaming (a live walsender may have moved past the removed file): unreserved.
      if (s.restartLsn !== 0 && s.activePid !== 0) {
        walStatus = 'unreserved';
        avail = 'unreserved';
      } else walStatus = 'lost';
      break;
    default:
      walStatus = avail;
  }
  const r = ctx.retention;
  let safeWalSize: number | null = null;
  if (avail !== 'removed' && r.maxSlotWalKeepSizeBytes >= 0) {
    // PostgreSQL computes this even without a restart_lsn (target segment 0).
    const targetSeg = segNo(s.restartLsn, r.segSize);
    const failSeg = targetSeg + Math.max(segsOf(r.maxSlotWalKeepSizeBytes, r.segSize), segsOf(r.walKeepSizeBytes, r.segSize)) + 1;
    safeWalSize = segStart(failSeg, r.segSize) - ctx.currentLsn;
  }
  return { walStatus, safeWalSize };
}

// ---------------------------------------------------------------------------------------------
// State files

export function encodeSlotState(s: { name: string; persistency: number; xmin: number; catalogXmin: number; restartLsn: Lsn; invalidatedAt: Lsn }): Buffer {
  const b = Buffer.alloc(SLOT_FILE_BYTES);
  b.writeUInt32LE(SLOT_MAGIC, SD_MAGIC);
  b.writeUInt32LE(SLOT_VERSION, SD_VERSION);
  b.writeUInt32LE(SLOT_DATA_BYTES, SD_LENGTH);
  const name = Buffer.from(s.name, 'utf8');
  assert(name.length < NAMEDATALEN, 'slot name too long for NameData');
  name.copy(b, SD_NAME);
  b.writeUInt32LE(0, SD_DATABASE);
  b.writeInt32LE(s.persistency, SD_PERSISTENCY);
  b.writeUInt32LE(s.xmin >>> 0, SD_XMIN);
  b.writeUInt32LE(s.catalogXmin >>> 0, SD_CATALOG_XMIN);
  b.writeBigUInt64LE(BigInt(s.restartLsn), SD_RESTART_LSN);
  b.writeBigUInt64LE(BigInt(s.invalidatedAt), SD_INVALIDATED_AT);
  b.writeUInt32LE(crc32c(b, SLOT_CHECKSUMMED_FROM, SLOT_FILE_BYTES) >>> 0, SD_CHECKSUM);
  return b;
}

/** Parse and verify a state file (RestoreSlotFromDisk's checks, PostgreSQL's messages). */
export function decodeSlotState(b: Uint8Array, relPath: string): { name: string; persistency: number; database: number; xmin: number; catalogXmin: number; restartLsn: Lsn; invalidatedAt: Lsn } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < SD_NAME) throw Errors.slotFileCorrupt(`could not read file "${relPath}": read ${buf.length} of ${SLOT_FILE_BYTES}`);
  const magic = buf.readUInt32LE(SD_MAGIC);
  if (magic !== SLOT_MAGIC) throw Errors.slotFileCorrupt(`replication slot file "${relPath}" has wrong magic number: ${magic} instead of ${SLOT_MAGIC}`);
  const version = buf.readUInt32LE(SD_VERSION);
  if (version !== SLOT_VERSION) throw Errors.slotFileCorrupt(`replication slot file "${relPath}" has unsupported version ${version}`);
  const length = buf.readUInt32LE(SD_LENGTH);
  if (length !== SLOT_DATA_BYTES) throw Errors.slotFileCorrupt(`replication slot file "${relPath}" has corrupted length ${length}`);
  if (buf.length < SLOT_FILE_BYTES) throw Errors.slotFileCorrupt(`could not read file "${relPath}": read ${buf.length} of ${SLOT_FILE_BYTES}`);
  const want = buf.readUInt32LE(SD_CHECKSUM);
  const got = crc32c(buf, SLOT_CHECKSUMMED_FROM, SLOT_FILE_BYTES) >>> 0;
  if (want !== got) throw Errors.slotFileCorrupt(`checksum mismatch for replication slot file "${relPath}": is ${got}, should be ${want}`);
  const nameEnd = buf.indexOf(0, SD_NAME);
  const name = buf.toString('utf8', SD_NAME, nameEnd < 0 || nameEnd > SD_NAME + NAMEDATALEN ? SD_NAME + NAMEDATALEN : nameEnd);
  return {
    name,
    database: buf.readUInt32LE(SD_DATABASE),
    persistency: buf.readInt32LE(SD_PERSISTENCY),
    xmin: buf.readUInt32LE(SD_XMIN),
    catalogXmin: buf.readUInt32LE(SD_CATALOG_XMIN),
    restartLsn: Number(buf.readBigUInt64LE(SD_RESTART_LSN)),
    invalidatedAt: Number(buf.readBigUInt64LE(SD_INVALIDATED_AT)),
  };
}

/** Write `<dir>/state` atomically: state.tmp, fsync, rename, fsync file and directory. */
function writeStateFile(dir: string, data: Buffer): void {
  const tmp = path.join(dir, 'state.tmp');
  const fin = path.join(dir, 'state');
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, fin);
  fsyncDir(dir);
}

// ---------------------------------------------------------------------------------------------
// The slot table

const utf8d = new TextDecoder();

export class ReplicationSlots {
  readonly maxReplicationSlots: number;
  readonly dataDir: string;
  readonly slotDir: string;
  private readonly i32: Int32Array;
  private readonly u32: Uint32Array;
  private readonly big: BigInt64Array;
  private readonly u8: Uint8Array;
  private readonly alloc: SpinLock;
  private readonly locks: SpinLock[] = [];

  constructor(readonly handle: ReplicationSlotsHandle) {
    this.maxReplicationSlots = handle.maxReplicationSlots;
    this.dataDir = handle.dataDir;
    this.slotDir = path.join(handle.dataDir, SLOT_DIR);
    assert(handle.sab.byteLength >= ReplicationSlots.bytesFor(handle.maxReplicationSlots), 'ReplicationSlots buffer too small');
    this.i32 = new Int32Array(handle.sab);
    this.u32 = new Uint32Array(handle.sab);
    this.big = new BigInt64Array(handle.sab);
    this.u8 = new Uint8Array(handle.sab);
    this.alloc = new SpinLock(this.i32, SH_ALLOC_LOCK >> 2);
    for (let i = 0; i < this.maxReplicationSlots; i++) this.locks.push(new SpinLock(this.i32, (this.base(i) + SE_LOCK) >> 2));
  }

  static bytesFor(maxReplicationSlots: number): number {
    return SH_HEADER_BYTES + maxReplicationSlots * SLOT_ENTRY_BYTES;
  }

  /**
   * The primary's side: map pg_replslot/ into a new shared table. Removes leftovers of interrupted
   * creates/drops (`*.tmp`) and non-persistent slots; refuses damaged state files (XX001) and
   * more slots than maxReplicationSlots (53400), as PostgreSQL does at startup.
   */
  static open(opts: { dataDir: string; maxReplicationSlots: number; redoLsn?: Lsn }): ReplicationSlots {
    const max = opts.maxReplicationSlots;
    if (!Number.isInteger(max) || max < 0 || max > 10_000) throw Errors.invalidOption('maxReplicationSlots', 'must be an integer from 0 to 10000');
    const dataDir = path.resolve(opts.dataDir);
    const rs = new ReplicationSlots({ sab: new SharedArrayBuffer(Math.max(8, ReplicationSlots.bytesFor(max))), maxReplicationSlots: max, dataDir });
    rs.publishRedo(opts.redoLsn ?? 0);
    rs.restore();
    return rs;
  }

  private base(i: number): number {
    return SH_HEADER_BYTES + i * SLOT_ENTRY_BYTES;
  }
  private geti(i: number, off: number): number {
    return this.i32[(this.base(i) + off) >> 2]!;
  }
  private seti(i: number, off: number, v: number): void {
    this.i32[(this.base(i) + off) >> 2] = v | 0;
  }
  private getu(i: number, off: number): number {
    return this.u32[(this.base(i) + off) >> 2]!;
  }
  private getb(i: number, off: number): number {
    return Number(this.big[(this.base(i) + off) >> 3]!);
  }
  private setb(i: number, off: number, v: number): void {
    this.big[(this.base(i) + off) >> 3] = BigInt(v);
  }
  private nameOf(i: number): string {
    const at = this.base(i) + SE_NAME;
    return utf8d.decode(this.u8.slice(at, at + this.geti(i, SE_NAME_LEN)));
  }

  private withAlloc<T>(fn: () => T): T {
    this.alloc.lock();
    try {
      return fn();
    } finally {
      this.alloc.unlock();
    }
  }
  private withSlot<T>(i: number, fn: () => T): T {
    const l = this.locks[i]!;
    l.lock();
    try {
      return fn();
    } finally {
      l.unlock();
    }
  }

  private snapshot(i: number): SlotData | null {
    return this.withSlot(i, () => {
      if (this.geti(i, SE_IN_USE) === 0) return null;
      const persistency = this.geti(i, SE_PERSISTENCY);
      return {
        index: i,
        name: this.nameOf(i),
        persistency,
        temporary: persistency === SlotPersistency.TEMPORARY,
        activePid: this.geti(i, SE_ACTIVE_PID),
        restartLsn: this.getb(i, SE_RESTART_LSN),
        invalidatedAt: this.getb(i, SE_INVALIDATED_AT),
        xmin: this.getu(i, SE_XMIN),
        catalogXmin: this.getu(i, SE_CATALOG_XMIN),
        dirty: this.geti(i, SE_DIRTY) !== 0,
      };
    });
  }

  /** Index of the in-use slot named `name`, or -1. */
  private find(name: string): number {
    for (let i = 0; i < this.maxReplicationSlots; i++) {
      if (Atomics.load(this.i32, (this.base(i) + SE_IN_USE) >> 2) === 0) continue;
      if (this.withSlot(i, () => this.geti(i, SE_IN_USE) !== 0 && this.nameOf(i) === name)) return i;
    }
    return -1;
  }

  private bumpChange(): void {
    Atomics.add(this.i32, SH_CHANGE_SEQ >> 2, 1);
    Atomics.notify(this.i32, SH_CHANGE_SEQ >> 2);
  }

  private dirOf(name: string): string {
    return path.join(this.slotDir, name);
  }

  private stateOf(i: number): Buffer {
    return this.withSlot(i, () =>
      encodeSlotState({
        name: this.nameOf(i),
        persistency: this.geti(i, SE_PERSISTENCY),
        xmin: this.getu(i, SE_XMIN),
        catalogXmin: this.getu(i, SE_CATALOG_XMIN),
        restartLsn: this.getb(i, SE_RESTART_LSN),
        invalidatedAt: this.getb(i, SE_INVALIDATED_AT),
      }),
    );
  }

  // ---- startup ----

  private restore(): void {
    fs.mkdirSync(this.slotDir, { recursive: true, mode: 0o700 });
    let changed = false;
    for (const ent of fs.readdirSync(this.slotDir, { withFileTypes: true })) {
      const dir = path.join(this.slotDir, ent.name);
      if (!ent.isDirectory()) continue;
      if (ent.name.endsWith('.tmp')) {
        fs.rmSync(dir, { recursive: true, force: true });
        changed = true;
        continue;
      }
      fs.rmSync(path.join(dir, 'state.tmp'), { force: true });
      const rel = `${SLOT_DIR}/${ent.name}/state`;
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(path.join(dir, 'state'));
      } catch (e) {
        throw Errors.slotFileCorrupt(`could not open file "${rel}": ${(e as Error).message}`);
      }
      const s = decodeSlotState(bytes, rel);
      if (s.persistency !== SlotPersistency.PERSISTENT) {
        fs.rmSync(dir, { recursive: true, force: true });
        changed = true;
        continue;
      }
      if (s.database !== 0) throw Errors.featureNotSupported(`logical replication slot "${s.name}" exists, but walstream supports physical slots only`);
      let free = -1;
      for (let i = 0; i < this.maxReplicationSlots && free < 0; i++) if (this.geti(i, SE_IN_USE) === 0) free = i;
      if (free < 0) throw Errors.configurationLimitExceeded('too many replication slots active before shutdown', 'Increase max_replication_slots and try again.');
      this.install(free, s.name, SlotPersistency.PERSISTENT, 0, s.restartLsn, s.invalidatedAt, s.xmin, s.catalogXmin);
      this.seti(free, SE_DIRTY, 0);
    }
    if (changed) fsyncDir(this.slotDir);
  }

  private install(i: number, name: string, persistency: number, activePid: number, restart: Lsn, invalidatedAt: Lsn, xmin: number, catalogXmin: number): void {
    this.withSlot(i, () => {
      const b = Buffer.from(name, 'utf8');
      const at = this.base(i) + SE_NAME;
      this.u8.fill(0, at, at + NAMEDATALEN);
      this.u8.set(b, at);
      this.seti(i, SE_NAME_LEN, b.length);
      this.seti(i, SE_PERSISTENCY, persistency);
      this.seti(i, SE_ACTIVE_PID, activePid);
      this.setb(i, SE_RESTART_LSN, restart);
      this.setb(i, SE_INVALIDATED_AT, invalidatedAt);
      this.seti(i, SE_XMIN, xmin);
      this.seti(i, SE_CATALOG_XMIN, catalogXmin);
      this.seti(i, SE_DIRTY, 1);
      this.seti(i, SE_GENERATION, this.geti(i, SE_GENERATION) + 1);
      Atomics.store(this.i32, (this.base(i) + SE_IN_USE) >> 2, 1);
    });
  }

  // ---- commands ----

  /** CheckSlotRequirements (the part that applies here). */
  private checkRequirements(): void {
    if (this.maxReplicationSlots === 0) throw Errors.objectNotInPrerequisiteState('replication slots can only be used if max_replication_slots > 0');
  }

  /** Publish the last checkpoint's redo LSN (the primary's checkpoint hook does this). */
  publishRedo(lsn: Lsn): void {
    Atomics.store(this.big, SH_REDO_LSN >> 3, BigInt(lsn));
  }
  get redoLsn(): Lsn {
    return Number(Atomics.load(this.big, SH_REDO_LSN >> 3));
  }

  /**
   * CREATE_REPLICATION_SLOT name [TEMPORARY] PHYSICAL [RESERVE_WAL] (ReplicationSlotCreate).
   * A temporary slot belongs to session `pid` (needed then) and stays active for it.
   */
  create(name: string, opts: { reserveWal?: boolean; temporary?: boolean; pid?: number } = {}): SlotData {
    this.checkRequirements();
    validateSlotName(name);
    const temporary = opts.temporary ?? false;
    const pid = opts.pid ?? 0;
    if (temporary && pid === 0) throw Errors.invalidParameterValue('a temporary replication slot needs a session (walsender) to own it');
    const i = this.withAlloc(() => {
      let free = -1;
      for (let k = 0; k < this.maxReplicationSlots; k++) {
        const inUse = this.geti(k, SE_IN_USE) !== 0;
        if (inUse && this.withSlot(k, () => this.nameOf(k)) === name) throw Errors.duplicateObject(`replication slot "${name}" already exists`);
        if (!inUse && free < 0) free = k;
      }
      if (free < 0) throw Errors.configurationLimitExceeded('all replication slots are in use', 'Free one or increase max_replication_slots.');
      const persistency = temporary ? SlotPersistency.TEMPORARY : SlotPersistency.PERSISTENT;
      // CreateSlotOnDisk: build the directory under a temp name, then rename it into place.
      const dir = this.dirOf(name);
      const tmp = `${dir}.tmp`;
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { mode: 0o700 });
      writeStateFile(tmp, encodeSlotState({ name, persistency, xmin: 0, catalogXmin: 0, restartLsn: 0, invalidatedAt: 0 }));
      fs.renameSync(tmp, dir);
      fsyncDir(dir);
      fsyncDir(this.slotDir);
      this.install(free, name, persistency, temporary ? pid : 0, 0, 0, 0, 0);
      this.seti(free, SE_DIRTY, 0);
      return free;
    });
    if (opts.reserveWal) {
      // ReplicationSlotReserveWal: the last checkpoint's redo; retry if a checkpoint moved it meanwhile.
      for (;;) {
        const redo = this.redoLsn;
        this.withSlot(i, () => {
          this.setb(i, SE_RESTART_LSN, redo);
          this.seti(i, SE_DIRTY, 1);
        });
        if (this.redoLsn === redo) break;
      }
      this.withAlloc(() => this.saveLocked(i));
    }
    return this.snapshot(i)!;
  }

  /**
   * DROP_REPLICATION_SLOT name [WAIT]: 42704 if missing, 55006 if another session has it active
   * (with `wait`, sleep until it is released). `pid` is the dropping session (0 = the primary).
   */
  async drop(name: string, opts: { pid?: number; wait?: boolean } = {}): Promise<void> {
    for (;;) {
      const seq = Atomics.load(this.i32, SH_CHANGE_SEQ >> 2);
      const busy = this.tryDrop(name, opts.pid ?? 0, opts.wait ?? false);
      if (busy === 0) return;
      const r = Atomics.waitAsync(this.i32, SH_CHANGE_SEQ >> 2, seq);
      if (r.async) {
        const keep = setInterval(() => {}, 1 << 30);
        try {
          await r.value;
        } finally {
          clearInterval(keep);
        }
      }
    }
  }

  /** Drop without waiting (throws 55006 when active elsewhere). */
  dropNow(name: string, pid = 0): void {
    this.tryDrop(name, pid, false);
  }

  /** Returns 0 when dropped, or the pid it must wait for (only when `wait`). */
  private tryDrop(name: string, pid: number, wait: boolean): number {
    this.checkRequirements();
    return this.withAlloc(() => {
      const i = this.find(name);
      if (i < 0) throw Errors.undefinedObject(`replication slot "${name}" does not exist`);
      const active = this.withSlot(i, () => this.geti(i, SE_ACTIVE_PID));
      if (active !== 0 && active !== pid) {
        if (wait) return active;
        throw Errors.objectInUse(`replication slot "${name}" is active for PID ${active}`);
      }
      this.dropLocked(i, name);
      return 0;
    });
  }

  private dropLocked(i: number, name: string): void {
    // ReplicationSlotDropPtr: rename the directory away first, so a crash cannot resurrect a half-dropped slot.
    const dir = this.dirOf(name);
    const tmp = `${dir}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    try {
      fs.renameSync(dir, tmp);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.withSlot(i, () => {
      Atomics.store(this.i32, (this.base(i) + SE_IN_USE) >> 2, 0);
      this.seti(i, SE_ACTIVE_PID, 0);
      this.setb(i, SE_RESTART_LSN, 0);
      this.setb(i, SE_INVALIDATED_AT, 0);
      this.seti(i, SE_NAME_LEN, 0);
      this.seti(i, SE_DIRTY, 0);
    });
    fs.rmSync(tmp, { recursive: true, force: true });
    fsyncDir(this.slotDir);
    this.bumpChange();
  }

  /** READ_REPLICATION_SLOT's row: [slot_type, restart_lsn, restart_tli] (all NULL for an unknown slot). */
  readRow(name: string, tli: number): [string | null, string | null, string | null] {
    const i = this.find(name);
    const s = i < 0 ? null : this.snapshot(i);
    if (s === null) return [null, null, null];
    if (s.restartLsn === 0) return ['physical', null, null];
    return ['physical', lsnToString(s.restartLsn), String(tli)];
  }

  /** The slot named `name`, or null. */
  get(name: string): SlotData | null {
    const i = this.find(name);
    return i < 0 ? null : this.snapshot(i);
  }

  /** Every slot in use, in table order. */
  all(): SlotData[] {
    const out: SlotData[] = [];
    for (let i = 0; i < this.maxReplicationSlots; i++) {
      const s = this.snapshot(i);
      if (s) out.push(s);
    }
    return out;
  }

  /**
   * START_REPLICATION SLOT name (ReplicationSlotAcquire): 42704 missing, 55006 active for another
   * session, 55000 invalidated. Returns the slot index to pass to confirmFlush/release.
   */
  acquire(name: string, pid: number): number {
    assert(pid > 0, 'acquire needs a session pid');
    const i = this.find(name);
    if (i < 0) throw Errors.undefinedObject(`replication slot "${name}" does not exist`);
    this.withSlot(i, () => {
      if (this.geti(i, SE_IN_USE) === 0 || this.nameOf(i) !== name) throw Errors.undefinedObject(`replication slot "${name}" does not exist`);
      const active = this.geti(i, SE_ACTIVE_PID);
      if (active !== 0 && active !== pid) throw Errors.objectInUse(`replication slot "${name}" is active for PID ${active}`);
      if (this.getb(i, SE_RESTART_LSN) === 0 && this.getb(i, SE_INVALIDATED_AT) !== 0) {
        throw Errors.objectNotInPrerequisiteState(`can no longer access replication slot "${name}"`, 'This replication slot has been invalidated due to "wal_removed".');
      }
      this.seti(i, SE_ACTIVE_PID, pid);
    });
    return i;
  }

  /** ReplicationSlotRelease: a persistent slot becomes inactive; a temporary one stays with its session. */
  release(index: number, pid: number): void {
    const released = this.withSlot(index, () => {
      if (this.geti(index, SE_IN_USE) === 0 || this.geti(index, SE_ACTIVE_PID) !== pid) return false;
      if (this.geti(index, SE_PERSISTENCY) === SlotPersistency.TEMPORARY) return false;
      this.seti(index, SE_ACTIVE_PID, 0);
      return true;
    });
    if (released) this.bumpChange();
  }

  /**
   * End of a session (walsender exit, or the primary reaping a dead worker): release every slot
   * `pid` holds and drop its temporary slots (ReplicationSlotCleanup).
   */
  releaseSession(pid: number): void {
    if (pid === 0) return;
    for (let i = 0; i < this.maxReplicationSlots; i++) {
      const s = this.snapshot(i);
      if (s === null || s.activePid !== pid) continue;
      if (s.temporary) {
        this.withAlloc(() => {
          if (this.withSlot(i, () => this.geti(i, SE_IN_USE) !== 0 && this.geti(i, SE_ACTIVE_PID) === pid)) this.dropLocked(i, s.name);
        });
      } else this.release(i, pid);
    }
  }

  /**
   * PhysicalConfirmReceivedLocation: the standby flushed up to `flush`. restart_lsn follows it
   * (never backwards, and never for an invalidated slot). Returns true if it moved.
   */
  confirmFlush(index: number, pid: number, flush: Lsn): boolean {
    if (flush === 0) return false;
    return this.withSlot(index, () => {
      if (this.geti(index, SE_IN_USE) === 0 || this.geti(index, SE_ACTIVE_PID) !== pid) return false;
      if (this.getb(index, SE_INVALIDATED_AT) !== 0 && this.getb(index, SE_RESTART_LSN) === 0) return false;
      if (flush <= this.getb(index, SE_RESTART_LSN)) return false;
      this.setb(index, SE_RESTART_LSN, flush);
      this.seti(index, SE_DIRTY, 1);
      return true;
    });
  }

  /** Hot-standby feedback through a slot (PhysicalReplicationSlotNewXmin): xmin 0 clears it. */
  setXmin(index: number, pid: number, xmin: number, catalogXmin: number): void {
    this.withSlot(index, () => {
      if (this.geti(index, SE_IN_USE) === 0 || this.geti(index, SE_ACTIVE_PID) !== pid) return;
      if (this.getu(index, SE_XMIN) === xmin >>> 0 && this.getu(index, SE_CATALOG_XMIN) === catalogXmin >>> 0) return;
      this.seti(index, SE_XMIN, xmin);
      this.seti(index, SE_CATALOG_XMIN, catalogXmin);
      this.seti(index, SE_DIRTY, 1);
    });
  }

  /**
   * pg_copy_physical_replication_slot(src, dst [, temporary]): a new slot whose restart_lsn is
   * the source's, installed in one step under the allocation lock — so the WAL it points at is
   * still pinned by the source when the copy starts pinning it. 42704 if the source is missing,
   * 55000 if it reserves no WAL (or was invalidated), 42710/42602 for the new name.
   */
  copy(src: string, dst: string, opts: { temporary?: boolean; pid?: number } = {}): SlotData {
    this.checkRequirements();
    const temporary = opts.temporary ?? false;
    const pid = opts.pid ?? 0;
    if (temporary && pid === 0) throw Errors.invalidParameterValue('a temporary replication slot needs a session (walsender) to own it');
    const i = this.withAlloc(() => {
      const si = this.find(src);
      if (si < 0) throw Errors.undefinedObject(`replication slot "${src}" does not exist`);
      const s = this.snapshot(si)!;
      if (s.restartLsn === 0) throw Errors.objectNotInPrerequisiteState("cannot copy a replication slot that doesn't reserve WAL");
      validateSlotName(dst);
      let free = -1;
      for (let k = 0; k < this.maxReplicationSlots; k++) {
        const inUse = this.geti(k, SE_IN_USE) !== 0;
        if (inUse && this.withSlot(k, () => this.nameOf(k)) === dst) throw Errors.duplicateObject(`replication slot "${dst}" already exists`);
        if (!inUse && free < 0) free = k;
      }
      if (free < 0) throw Errors.configurationLimitExceeded('all replication slots are in use', 'Free one or increase max_replication_slots.');
      // Re-read the source under its lock at the moment of installation.
      const cur = this.snapshot(si);
      if (cur === null || cur.name !== src || cur.restartLsn < s.restartLsn || cur.restartLsn === 0) {
        throw Errors.internal(`could not copy replication slot "${src}"`, 'The source replication slot was modified incompatibly during the copy operation.');
      }
      const persistency = temporary ? SlotPersistency.TEMPORARY : SlotPersistency.PERSISTENT;
      const dir = this.dirOf(dst);
      const tmp = `${dir}.tmp`;
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { mode: 0o700 });
      writeStateFile(tmp, encodeSlotState({ name: dst, persistency, xmin: cur.xmin, catalogXmin: 0, restartLsn: cur.restartLsn, invalidatedAt: 0 }));
      fs.renameSync(tmp, dir);
      fsyncDir(dir);
      fsyncDir(this.slotDir);
      this.install(free, dst, persistency, temporary ? pid : 0, cur.restartLsn, 0, cur.xmin, 0);
      this.seti(free, SE_DIRTY, 0);
      return free;
    });
    return this.snapshot(i)!;
  }

  /** ReplicationSlotsComputeRequiredLSN: the oldest restart_lsn any slot needs, or null. */
  requiredLsn(): Lsn | null {
    let min: Lsn | null = null;
    for (let i = 0; i < this.maxReplicationSlots; i++) {
      if (Atomics.load(this.i32, (this.base(i) + SE_IN_USE) >> 2) === 0) continue;
      const r = this.withSlot(i, () => (this.geti(i, SE_IN_USE) === 0 ? 0 : this.getb(i, SE_RESTART_LSN)));
      if (r !== 0 && (min === null || r < min)) min = r;
    }
    return min;
  }

  private saveLocked(i: number): void {
    if (this.geti(i, SE_IN_USE) === 0) return;
    const name = this.withSlot(i, () => {
      this.seti(i, SE_DIRTY, 0);
      return this.nameOf(i);
    });
    try {
      writeStateFile(this.dirOf(name), this.stateOf(i));
    } catch (e) {
      this.withSlot(i, () => this.seti(i, SE_DIRTY, 1));
      throw e;
    }
  }

  /** CheckPointReplicationSlots: write every dirty slot. Returns how many were written. */
  saveDirty(): number {
    return this.withAlloc(() => {
      let n = 0;
      for (let i = 0; i < this.maxReplicationSlots; i++) {
        if (this.geti(i, SE_IN_USE) !== 0 && this.withSlot(i, () => this.geti(i, SE_DIRTY)) !== 0) {
          this.saveLocked(i);
          n++;
        }
      }
      return n;
    });
  }

  /**
   * InvalidateObsoleteReplicationSlots: every slot whose restart_lsn lies before segment
   * `oldestKeepSeg` loses its reservation (restart_lsn → 0, invalidated_at = old value), written
   * at once. Returns them (with the walsender to terminate, as PostgreSQL does).
   */
  invalidateObsolete(oldestKeepSeg: number, segSize: number): SlotInvalidation[] {
    const oldest = segStart(oldestKeepSeg, segSize);
    return this.withAlloc(() => {
      const out: SlotInvalidation[] = [];
      for (let i = 0; i < this.maxReplicationSlots; i++) {
        const hit = this.withSlot(i, () => {
          if (this.geti(i, SE_IN_USE) === 0) return null;
          const r = this.getb(i, SE_RESTART_LSN);
          if (r === 0 || r >= oldest) return null;
          this.setb(i, SE_INVALIDATED_AT, r);
          this.setb(i, SE_RESTART_LSN, 0);
          this.seti(i, SE_DIRTY, 1);
          return { name: this.nameOf(i), restartLsn: r, activePid: this.geti(i, SE_ACTIVE_PID) };
        });
        if (hit) {
          this.saveLocked(i);
          out.push(hit);
        }
      }
      return out;
    });
  }

  /**
   * The primary's checkpoint step (CheckPointReplicationSlots + the KeepLogSeg/invalidation part of
   * CreateCheckPoint): publish the new redo point, write dirty slots, invalidate slots beyond
   * max_slot_wal_keep_size, and return the oldest LSN that slots and wal_keep_size still need
   * (null: nothing beyond the redo point). Call it where WAL recycling asks its pins.
   */
  checkpoint(args: { redoLsn: Lsn; currentLsn: Lsn; retention: WalRetention }): { keepFromLsn: Lsn | null; invalidated: SlotInvalidation[] } {
    const r = args.retention;
    this.publishRedo(args.redoLsn);
    this.saveDirty();
    const redoSeg = segNo(args.redoLsn, r.segSize);
    let keepSeg = keepLogSeg(args.currentLsn, this.requiredLsn(), r, redoSeg);
    const invalidated = this.invalidateObsolete(keepSeg, r.segSize);
    if (invalidated.length > 0) keepSeg = keepLogSeg(args.currentLsn, this.requiredLsn(), r, redoSeg);
    return { keepFromLsn: keepSeg < redoSeg ? segStart(keepSeg, r.segSize) : null, invalidated };
  }

  /** pg_replication_slots (physical columns), with wal_status and safe_wal_size as PostgreSQL 15 computes them. */
  rows(ctx: { currentLsn: Lsn; retention: WalRetention; walDir?: string; oldestSegNo?: number }): ReplicationSlotRow[] {
    const r = ctx.retention;
    let oldestSegNo = ctx.oldestSegNo;
    if (oldestSegNo === undefined) {
      const segs = listSegments(ctx.walDir ?? path.join(this.dataDir, 'pg_wal'), r.segSize).filter((s) => !s.partial);
      oldestSegNo = segs.length > 0 ? segs[0]!.seg : segNo(ctx.currentLsn, r.segSize);
    }
    const slotMinLsn = this.requiredLsn();
    return this.all().map((s) => {
      const { walStatus, safeWalSize } = slotWalStatus(s, { currentLsn: ctx.currentLsn, slotMinLsn, oldestSegNo: oldestSegNo!, retention: r });
      return {
        slot_name: s.name,
        plugin: null,
        slot_type: 'physical',
        datoid: null,
        database: null,
        temporary: s.temporary,
        active: s.activePid !== 0,
        active_pid: s.activePid === 0 ? null : s.activePid,
        xmin: s.xmin === 0 ? null : s.xmin,
        catalog_xmin: null,
        restart_lsn: s.restartLsn === 0 ? null : lsnToString(s.restartLsn),
        confirmed_flush_lsn: null,
        wal_status: walStatus,
        safe_wal_size: safeWalSize,
        two_phase: false,
      };
    });
  }
}
