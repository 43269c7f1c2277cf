// Physical replication slots (PostgreSQL 15's slot.c, slotfuncs.c and the WAL-retention rules of
// xlog.c). The slot table lives in a SharedArrayBuffer: the primary's thread creates it
// (ReplicationSlots.open restores pg_replslot/ from disk) and every walsender worker maps it
// (ReplicationSlots over the same handle) to create, drop, read, acquire and advance slots. Files:
// pg_replslot/<name>/state in PostgreSQL 15's own format (ReplicationSlotOnDisk, CRC-32C), written
// to a temp file, fsynced and renamed, like SaveSlotToPath/CreateSlotOnDisk. Nothing to stop: a
// slot is words in shared memory plus its directory; a walsender releases what it holds when its
// session ends (releaseSession), the primary does it for a worker that died.
//
// Layers: slot-table.ts (the SharedArrayBuffer layout and locking), slot-state-file.ts (the
// on-disk format), wal-retention.ts (KeepLogSeg and GetWALAvailability, pure); this file: the
// commands (create, drop, copy, acquire, release, advance), restore at startup, checkpoints.
//
// PostgreSQL facts kept (checked against a PostgreSQL 15 server):
//   * state file: see slot-state-file.ts.
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
//   * retention (KeepLogSeg, GetWALAvailability, pg_get_replication_slots): see
//     wal-retention.ts. A slot whose WAL falls behind max_slot_wal_keep_size is invalidated at a checkpoint
//     (restart_lsn → NULL, invalidated_at = the old restart_lsn) and shows wal_status `lost`.
//     Acquiring it fails with PostgreSQL 18's clear error (55000 `can no longer access replication
//     slot "s"`); PostgreSQL 15 would stream and fail on the removed segment.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { fsyncDir } from '../util/fsync.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';
import { listSegments } from '../wal/segfile.js';
import { segNo, segStart } from '../wal/segment.js';
import { validateSlotName } from './protocol/commands.js';
import { decodeSlotState, encodeSlotState, NAMEDATALEN, SLOT_DIR, SlotPersistency, writeStateFile } from './slot-state-file.js';
import {
  type ReplicationSlotsHandle, SE_ACTIVE_PID, SE_CATALOG_XMIN, SE_DIRTY, SE_GENERATION, SE_IN_USE, SE_INVALIDATED_AT, SE_NAME, SE_NAME_LEN,
  SE_PERSISTENCY, SE_RESTART_LSN, SE_XMIN, SH_CHANGE_SEQ, SH_REDO_LSN, type SlotData, SlotTable,
} from './slot-table.js';
import { keepLogSeg, slotWalStatus, type WalRetention, type WalStatus } from './wal-retention.js';

export * from './slot-state-file.js';
export * from './slot-table.js';
export * from './wal-retention.js';

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
  /** An `Lsn` number (null for a slot that reserves no WAL yet). */
  restart_lsn: Lsn | null;
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

export class ReplicationSlots extends SlotTable {
  /** A walsender's side: map the table the primary created (ReplicationSlots.open). */
  constructor(handle: ReplicationSlotsHandle) {
    super(handle);
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
        restart_lsn: s.restartLsn === 0 ? null : s.restartLsn,
        confirmed_flush_lsn: null,
        wal_status: walStatus,
        safe_wal_size: safeWalSize,
        two_phase: false,
      };
    });
  }
}
