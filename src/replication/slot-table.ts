// SlotTable: the replication slot table in a SharedArrayBuffer, and its locking. The primary's
// thread creates the buffer (ReplicationSlots.open) and every walsender worker maps the same
// handle; this base class of ReplicationSlots (slots.ts) owns the layout and the word-level
// access, so slots.ts holds only the commands.
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

import path from 'node:path';
import { SpinLock } from '../storage/latch.js';
import { assert } from '../util/assert.js';
import type { Lsn } from '../wal/lsn.js';
import { encodeSlotState, NAMEDATALEN, SLOT_DIR, SlotPersistency } from './slot-state-file.js';

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

const utf8d = new TextDecoder();

export abstract class SlotTable {
  readonly maxReplicationSlots: number;
  readonly dataDir: string;
  readonly slotDir: string;
  protected readonly i32: Int32Array;
  protected readonly u32: Uint32Array;
  protected readonly big: BigInt64Array;
  protected readonly u8: Uint8Array;
  protected readonly alloc: SpinLock;
  protected readonly locks: SpinLock[] = [];

  protected constructor(readonly handle: ReplicationSlotsHandle) {
    this.maxReplicationSlots = handle.maxReplicationSlots;
    this.dataDir = handle.dataDir;
    this.slotDir = path.join(handle.dataDir, SLOT_DIR);
    assert(handle.sab.byteLength >= SlotTable.bytesFor(handle.maxReplicationSlots), 'slot table buffer too small');
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

  protected base(i: number): number {
    return SH_HEADER_BYTES + i * SLOT_ENTRY_BYTES;
  }
  protected geti(i: number, off: number): number {
    return this.i32[(this.base(i) + off) >> 2]!;
  }
  protected seti(i: number, off: number, v: number): void {
    this.i32[(this.base(i) + off) >> 2] = v | 0;
  }
  protected getu(i: number, off: number): number {
    return this.u32[(this.base(i) + off) >> 2]!;
  }
  protected getb(i: number, off: number): number {
    return Number(this.big[(this.base(i) + off) >> 3]!);
  }
  protected setb(i: number, off: number, v: number): void {
    this.big[(this.base(i) + off) >> 3] = BigInt(v);
  }
  protected nameOf(i: number): string {
    const at = this.base(i) + SE_NAME;
    return utf8d.decode(this.u8.slice(at, at + this.geti(i, SE_NAME_LEN)));
  }

  protected withAlloc<T>(fn: () => T): T {
    this.alloc.lock();
    try {
      return fn();
    } finally {
      this.alloc.unlock();
    }
  }
  protected withSlot<T>(i: number, fn: () => T): T {
    const l = this.locks[i]!;
    l.lock();
    try {
      return fn();
    } finally {
      l.unlock();
    }
  }

  protected snapshot(i: number): SlotData | null {
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
  protected find(name: string): number {
    for (let i = 0; i < this.maxReplicationSlots; i++) {
      if (Atomics.load(this.i32, (this.base(i) + SE_IN_USE) >> 2) === 0) continue;
      if (this.withSlot(i, () => this.geti(i, SE_IN_USE) !== 0 && this.nameOf(i) === name)) return i;
    }
    return -1;
  }

  protected bumpChange(): void {
    Atomics.add(this.i32, SH_CHANGE_SEQ >> 2, 1);
    Atomics.notify(this.i32, SH_CHANGE_SEQ >> 2);
  }

  protected dirOf(name: string): string {
    return path.join(this.slotDir, name);
  }

  protected stateOf(i: number): Buffer {
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
}
