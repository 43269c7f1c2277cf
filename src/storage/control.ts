// The control file (PostgreSQL's pg_control): system identifier, segment size, state, timeline
// and the latest checkpoint's positions. 256 bytes with a CRC-32C; replaced atomically
// (temp file, fsync, rename, fsync directory) so a crash leaves the old or the new one.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { crc32c } from '../wal/crc32c.js';
import { XLOG_BLCKSZ } from '../wal/consts.js';
import { type Lsn, readLsnLE, writeLsnLE } from '../wal/lsn.js';
import { writeFileDurably } from '../util/fsync.js';

export const CONTROL_FILE = 'walstream.control';
const MAGIC = 0x57534354; // 'WSCT'
const VERSION = 1;
const SIZE = 256;
const NAME_OFF = 64;
const NAME_MAX = 64;

export const enum DbState {
  ShutDown = 1,
  InProduction = 2,
  InArchiveRecovery = 3,
  ShutDownInRecovery = 4,
}

export const DB_STATE_NAMES: Record<number, string> = {
  1: 'shut down',
  2: 'in production',
  3: 'in archive recovery',
  4: 'shut down in recovery',
};

export interface ControlData {
  sysid: bigint;
  segSize: number;
  state: DbState;
  tli: number;
  checkpointLsn: Lsn;
  redoLsn: Lsn;
  nextXid: number;
  timeMs: number;
  snapshotName: string;
  minRecoveryPoint: Lsn;
}

export function encodeControl(c: ControlData): Buffer {
  const b = Buffer.alloc(SIZE);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(VERSION, 4);
  b.writeBigUInt64LE(c.sysid, 8);
  b.writeUInt32LE(c.segSize, 16);
  b.writeUInt32LE(XLOG_BLCKSZ, 20);
  b.writeUInt32LE(c.state, 24);
  b.writeUInt32LE(c.tli, 28);
  writeLsnLE(b, 32, c.checkpointLsn);
  writeLsnLE(b, 40, c.redoLsn);
  b.writeUInt32LE(c.nextXid >>> 0, 48);
  b.writeDoubleLE(c.timeMs, 56);
  const name = Buffer.from(c.snapshotName, 'ascii');
  if (name.length >= NAME_MAX) throw Errors.internal('snapshot name too long');
  name.copy(b, NAME_OFF);
  writeLsnLE(b, 128, c.minRecoveryPoint);
  b.writeUInt32LE(crc32c(b, 0, SIZE - 4), SIZE - 4);
  return b;
}

export function decodeControl(b: Uint8Array, file: string): ControlData {
  const bad = (why: string) => Errors.controlFileCorrupt(file, why);
  if (b.length !== SIZE) throw bad(`size is ${b.length} bytes, expected ${SIZE}`);
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (buf.readUInt32LE(0) !== MAGIC) throw bad('bad magic number');
  if (buf.readUInt32LE(SIZE - 4) !== crc32c(buf, 0, SIZE - 4)) throw bad('incorrect checksum');
  if (buf.readUInt32LE(4) !== VERSION) throw bad(`unsupported version ${buf.readUInt32LE(4)}`);
  if (buf.readUInt32LE(20) !== XLOG_BLCKSZ) throw bad('WAL block size differs');
  const nameEnd = buf.indexOf(0, NAME_OFF);
  return {
    sysid: buf.readBigUInt64LE(8),
    segSize: buf.readUInt32LE(16),
    state: buf.readUInt32LE(24) as DbState,
    tli: buf.readUInt32LE(28),
    checkpointLsn: readLsnLE(buf, 32),
    redoLsn: readLsnLE(buf, 40),
    nextXid: buf.readUInt32LE(48),
    timeMs: buf.readDoubleLE(56),
    snapshotName: buf.toString('ascii', NAME_OFF, nameEnd < 0 || nameEnd > NAME_OFF + NAME_MAX ? NAME_OFF + NAME_MAX : nameEnd),
    minRecoveryPoint: readLsnLE(buf, 128),
  };
}

/** Read the control file, or null if it does not exist. Throws controlFileCorrupt if damaged. */
export function readControl(dataDir: string): ControlData | null {
  const file = path.join(dataDir, CONTROL_FILE);
  let b: Buffer;
  try {
    const st = fs.statSync(file);
    if (st.size > 4096) throw Errors.controlFileCorrupt(file, `size is ${st.size} bytes`);
    b = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return decodeControl(b, file);
}

export function writeControl(dataDir: string, c: ControlData): void {
  const file = path.join(dataDir, CONTROL_FILE);
  writeFileDurably(file, encodeControl(c), { tmp: file + '.tmp', replace: true });
}

/** initdb's system identifier: (unix seconds << 32) | (µs << 12) | (pid & 0xFFF). */
export function makeSystemIdentifier(): bigint {
  const ms = Date.now();
  const sec = BigInt(Math.floor(ms / 1000));
  const usec = BigInt((ms % 1000) * 1000 + Math.floor(Math.random() * 1000));
  return (sec << 32n) | (usec << 12n) | BigInt(process.pid & 0xfff);
}
