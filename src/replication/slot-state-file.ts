// pg_replslot/<name>/state in PostgreSQL 15's own format (ReplicationSlotOnDisk in
// src/backend/replication/slot.c): magic 0x1051CA1, CRC-32C of bytes 8..199, version 2, length
// 184, then ReplicationSlotPersistentData (name[64], database, persistency, xmin, catalog_xmin,
// restart_lsn, invalidated_at, confirmed_flush, two_phase_at, two_phase, plugin[64]). Encoding,
// verification with PostgreSQL's messages (RestoreSlotFromDisk), and the atomic write
// (SaveSlotToPath: state.tmp, fsync, rename, fsync the directory). Pure functions plus one
// synchronous write; called by ReplicationSlots (slots.ts) under its allocation lock.

import path from 'node:path';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { writeFileDurably } from '../util/fsync.js';
import { crc32c } from '../wal/crc32c.js';
import type { Lsn } from '../wal/lsn.js';

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
export function writeStateFile(dir: string, data: Buffer): void {
  writeFileDurably(path.join(dir, 'state'), data, { tmp: path.join(dir, 'state.tmp'), replace: true });
}
